# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# The 3x recipe (model, pre-trained weights, optimizer, layer decay, warmup, AMP) on
# mmdet's 1x schedule: 12 epochs, lr x0.1 at epochs 8 and 11, single-scale training
# (short side 800, long side <= 1333) with flip 0.5, as mmdet's coco_instance.py.
# Not an official HiViT result; a cheaper benchmark of a pre-trained encoder.
_base_ = './mask-rcnn_hivit-base-p16_fpn-3x_coco.py'

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
