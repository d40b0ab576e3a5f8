# HiViT-MAE pre-training on the shapes classification images (`make demo` pre-trains on
# Fashion-MNIST instead: mae_hivit-demo-p16_1xb256-coslr-3e_fashion-mnist-64px.py), the
# real recipe (configs/mae/) shrunk to the demo HiViT on the 64-px shapes images: masks
# 75% of the 16 units (keeps 4), fused stem features, fixed sin-cos embeddings,
# normalised-pixel loss on masked units. Full precision (mmengine's AMP wrapper needs a
# GPU), batch 64, 20 epochs.
#
# The demo HiViT (all demo configs): embed 128 (stage widths 32 / 64 / 128), depths
# (1, 1, 4) (2 + 2 MLP stem blocks, 4 attention blocks), 4 heads. Images are 64 px here
# (4x4 units of 16 px) and 128 px for detection and segmentation. Data: the built-in
# shapes world (`python tools/misc/make_shapes.py data/shapes`; `make demo` does it).
_base_ = '../mae/mae_hivit-base-p16-hifeat_8xb512-amp-coslr-400e_in1k.py'

model = dict(
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
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/shapes/cls/',
        data_prefix='train',
        with_label=False,
        pipeline=train_pipeline))

max_epochs = 20
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1.5e-3))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=2,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.,
        by_epoch=True,
        begin=2,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
resume = False
# seeded: CPU runs repeat exactly; deterministic=True would also pin GPU kernels, but
# raises on ops without a deterministic CUDA kernel
randomness = dict(seed=0, deterministic=False)
