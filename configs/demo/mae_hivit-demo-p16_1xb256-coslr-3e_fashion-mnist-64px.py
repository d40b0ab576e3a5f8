# Demo stage 1: HiViT-MAE pre-training on the 60,000 Fashion-MNIST training images
# (Xiao et al. 2017; labels unused), the real recipe (configs/mae/) shrunk: the demo
# HiViT (configs/demo/mae_hivit-demo-p16_1xb64-coslr-20e_shapes.py) on 64-px inputs
# (4x4 mask units of 16 px; 75% masked, 4 kept), fused stem features, fixed sin-cos
# embeddings, normalised-pixel loss on the masked units; batch 256, 3 epochs
# (705 iterations), full precision.
#
# Images: the 28x28 grey images, random-resized-cropped (scale 0.5-1, bicubic) to 64 px
# and flipped; the grey channel is replicated to three by the data preprocessor (its
# per-channel mean and std broadcast the (B, 1, H, W) batch to (B, 3, H, W)), so every
# checkpoint has the standard three-channel patch embedding and transfers to the RGB
# detection and segmentation stages. Mean and std: the training set's pixel statistics.
# Data: `bash tools/misc/get_fashion_mnist.sh` (`make demo` runs it) puts the four
# uncompressed IDX files into data/fashion_mnist/, read by mmpretrain's FashionMNIST.
_base_ = '../mae/mae_hivit-base-p16-hifeat_8xb512-amp-coslr-400e_in1k.py'

fmnist_mean, fmnist_std = 72.94, 90.02  # grey level, 60k training images
model = dict(
    data_preprocessor=dict(
        mean=[fmnist_mean] * 3, std=[fmnist_std] * 3, to_rgb=False),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=128, depths=(1, 1, 4), num_heads=4),
        img_size=64),
    neck=dict(
        num_patches=16,
        embed_dim=7 * 128,  # fused stem features of the 128-wide demo HiViT
        decoder_embed_dim=128,
        decoder_depth=2,
        decoder_num_heads=4))

train_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0),
        backend='cv2',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=256,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        type='FashionMNIST',
        data_root='data/fashion_mnist/',
        data_prefix='',
        split='train',
        test_mode=False,
        download=False,  # tools/misc/get_fashion_mnist.sh fetches the files
        pipeline=train_pipeline))

max_epochs = 3
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1.5e-3))  # fp32 on CPU
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=0.5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.,
        by_epoch=True,
        begin=0.5,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
# seeded: CPU runs repeat exactly (tests/test_demo.py); deterministic=True would also
# pin GPU kernels, but raises on ops without a deterministic CUDA kernel
randomness = dict(seed=0, deterministic=False)
resume = False
