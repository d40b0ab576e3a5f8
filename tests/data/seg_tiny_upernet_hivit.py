# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""A tiny UperNet on HiViT for end-to-end tests (seconds per run on a CPU).

The ADE20K 512 recipe
(configs/upernet/upernet_hivit-base-p16_8xb2-160k_ade20k-512x512.py: HiViT with
relative position bias over the whole crop, UPerHead on the four stages, an
auxiliary FCN head on the main stage, AdamW with layer-wise lr decay, slide inference)
with a 32-wide HiViT (depths 1, 1, 2) on 64x64 crops and 128x128 images of the built-in
shapes world: 4 iterations of batch 2, then a validation with mIoU (slide inference,
64x64 windows, stride 32). Full precision (CPU). The data root is given on the command
line, e.g. ``--cfg-options train_dataloader.dataset.data_root=DIR
val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR``, where
``DIR`` was written by ``hivit_mm.datasets.make_segmentation(DIR, num_train, num_val,
img_size=128)``.
"""
_base_ = '../../configs/upernet/upernet_hivit-base-p16_8xb2-160k_ade20k-512x512.py'

classes = ('background', 'circle', 'square', 'star', 'triangle')  # SEG_CLASSES
embed_dims = 32
crop_size = (64, 64)
data_preprocessor = dict(size=crop_size, test_cfg=dict(size=crop_size))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch=dict(
            _delete_=True, embed_dims=embed_dims, depths=(1, 1, 2), num_heads=2),
        img_size=crop_size,
        init_cfg=None),
    decode_head=dict(
        in_channels=[embed_dims // 4, embed_dims // 2, embed_dims, embed_dims],
        channels=16,
        num_classes=len(classes)),
    auxiliary_head=dict(
        in_channels=embed_dims, channels=8, num_classes=len(classes)),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(32, 32)))

data_root = 'data/shapes/ade'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(
        type='RandomResize',
        scale=(128, 128),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
shapes_dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=False,
    metainfo=dict(classes=classes))
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        **shapes_dataset,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        **shapes_dataset,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_iters=4, val_interval=4)
optim_wrapper = dict(type='OptimWrapper')  # layer decay kept, AMP dropped (CPU)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=4))
log_processor = dict(window_size=1)
randomness = dict(seed=0)
