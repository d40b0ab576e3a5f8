# Demo stage 4: linear probe of the frozen Fashion-MNIST MAE encoder (stage 1), the real
# protocol (configs/hivit/benchmarks/hivit-base-p16_8xb2048-linear-coslr-90e_in1k.py:
# MAE's; frozen encoder, mean-pooled main-stage tokens, BatchNorm without affine, linear
# classifier, LARS, warmup then cosine) shrunk: the demo HiViT on 64-px images
# (as in the MAE stage), all 60,000 training labels, batch 256, 1 epoch, full
# precision, tested on the 10,000 test images.
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/demo/mae/epoch_3.pth
_base_ = '../hivit/benchmarks/hivit-base-p16_8xb2048-linear-coslr-90e_in1k.py'

fmnist_mean, fmnist_std = 72.94, 90.02  # grey level, 60k training images
model = dict(
    data_preprocessor=dict(
        num_classes=10, mean=[fmnist_mean] * 3, std=[fmnist_std] * 3, to_rgb=False),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=128, depths=(1, 1, 4), num_heads=4),
        img_size=64),
    neck=dict(in_channels=128),
    head=dict(num_classes=10, in_channels=128))
data_preprocessor = dict(num_classes=10)  # the base's top-level copy

train_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.6, 1.0),
        backend='cv2',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
test_pipeline = [
    dict(type='Resize', scale=(64, 64), backend='cv2', interpolation='bicubic'),
    dict(type='PackInputs')
]
dataset = dict(
    type='FashionMNIST',
    data_root='data/fashion_mnist/',
    data_prefix='',
    download=False)  # tools/misc/get_fashion_mnist.sh fetches the files
train_dataloader = dict(
    batch_size=256,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        split='train',
        test_mode=False,
        pipeline=train_pipeline,
        **dataset))
val_dataloader = dict(
    batch_size=500,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        split='test',
        test_mode=True,  # what selects the test files in mmpretrain 1.2
        pipeline=test_pipeline,
        **dataset))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 1
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=6.4))  # fp32 on CPU
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=0.2,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0.2,
        end=max_epochs,
        eta_min=0.0,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
# seeded: CPU runs repeat exactly (tests/test_demo.py); deterministic=True would also
# pin GPU kernels, but raises on ops without a deterministic CUDA kernel
randomness = dict(seed=0, deterministic=False)
