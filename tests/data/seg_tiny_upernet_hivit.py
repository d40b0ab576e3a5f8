# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""A tiny UperNet on HiViT for end-to-end tests (seconds per run on a CPU).

The segmentation demo config
(configs/demo/upernet_hivit-demo-p16_1xb8-800i_shapes-128x128.py: the ADE20K 512
recipe with relative position bias over the whole crop, UPerHead on the four stages,
an auxiliary FCN head on the main stage, AdamW with layer-wise lr decay, slide
inference, on the 128-px shapes ADE20K-style set) shrunk: the tiny HiViT
(``_base_/tiny-hivit.py``) on 64x64 crops, 16/8-channel heads; 4 iterations of batch
2, then a validation with mIoU (slide inference, 64x64 windows, stride 32). The data
root is given on the command line, e.g. ``--cfg-options
train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR
test_dataloader.dataset.data_root=DIR``, where ``DIR`` was written by
``hivit_mm.datasets.make_segmentation(DIR, num_train, num_val, img_size=128)``.
"""
_base_ = [
    '../../configs/demo/upernet_hivit-demo-p16_1xb8-800i_shapes-128x128.py',
    './_base_/tiny-hivit.py'
]

crop_size = (64, 64)
data_preprocessor = dict(size=crop_size, test_cfg=dict(size=crop_size))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch=dict(_delete_=True, **_base_.tiny_arch), img_size=crop_size, init_cfg=None),
    decode_head=dict(in_channels=[8, 16, 32, 32], channels=16),
    auxiliary_head=dict(in_channels=32, channels=8),
    test_cfg=dict(crop_size=crop_size, stride=(32, 32)))

train_pipeline = [
    dict(_base_.train_pipeline[3], crop_size=crop_size) if i == 3 else step
    for i, step in enumerate(_base_.train_pipeline)
]
train_dataloader = dict(
    batch_size=2, **_base_.tiny_loader, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, **_base_.tiny_loader)
test_dataloader = val_dataloader

train_cfg = dict(max_iters=4, val_interval=4)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)
]
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=4))
log_processor = dict(window_size=1)
