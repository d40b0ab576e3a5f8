# Fashion-MNIST (Xiao et al. 2017, arXiv:1708.07747; 60,000 training and 10,000 test
# images of clothing, 28x28 grey, 10 classes) for the demo stages, as variables a demo
# config takes with ``_base_.fmnist_*`` (its real config's loaders are ImageNet's).
#
# Images: 28 px upsampled to 64 (4x4 units of 16 px; bicubic), random-resized-cropped
# and flipped for training; the grey channel is replicated to three by the data
# preprocessor (its per-channel mean and std broadcast the (B, 1, H, W) batch to
# (B, 3, H, W)), so every checkpoint has the standard three-channel patch embedding and
# transfers to the RGB detection and segmentation stages. Mean and std: the training
# set's grey-level statistics. Data: `bash tools/misc/get_fashion_mnist.sh` (`make demo`
# runs it) puts the four uncompressed IDX files into data/fashion_mnist/, read by
# mmpretrain's FashionMNIST. Loaders: one worker (ReliableRunner restarts a training
# loader's workers each epoch, seeded per epoch, for an exact resume); tests in batches
# of 500.
fmnist_preprocessor = dict(mean=[72.94] * 3, std=[90.02] * 3, to_rgb=False)
fmnist_loader = dict(num_workers=1, persistent_workers=True)
fmnist_test_loader = dict(batch_size=500, **fmnist_loader)
fmnist_train_pipeline = [
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.6, 1.0),
         backend='cv2', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
fmnist_train_set = dict(
    type='FashionMNIST', data_root='data/fashion_mnist/', data_prefix='', split='train',
    test_mode=False, download=False,  # tools/misc/get_fashion_mnist.sh fetches the files
    pipeline=fmnist_train_pipeline)
fmnist_test_set = dict(
    fmnist_train_set, split='test', test_mode=True,  # test_mode selects the test files
    pipeline=[
        dict(type='Resize', scale=(64, 64), backend='cv2', interpolation='bicubic'),
        dict(type='PackInputs')
    ])
