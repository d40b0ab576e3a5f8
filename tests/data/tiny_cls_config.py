# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""A tiny HiViT image classifier for the tools' tests (seconds per run on a CPU).

mmpretrain's ImageClassifier with a 32-wide HiViT (depths 1, 1, 2; relative position
bias) and the official head (mean-pool, LayerNorm, linear) on 32x32 images of the
built-in shapes world, an iteration-based loop of 2 iterations with a checkpoint and a
validation at iteration 2. The data root is given on the command line, e.g.
``--cfg-options train_dataloader.dataset.data_root=DIR
val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR``, where
``DIR`` was written by
``hivit_mm.datasets.make_classification(DIR, num_train, num_val, img_size=32)``.
"""
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../../configs/_base_/reliable_runtime.py',
]

classes = ('circle', 'square', 'star', 'triangle')  # hivit_mm.datasets.SHAPE_CLASSES

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        num_classes=len(classes),
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        to_rgb=True),
    backbone=dict(
        type='hivit_mm.HiViT',
        arch=dict(embed_dims=32, depths=(1, 1, 2), num_heads=2),
        img_size=32,
        use_rel_pos_bias=True),
    neck=dict(type='hivit_mm.MeanPoolLayerNorm', in_channels=32),
    head=dict(
        type='LinearClsHead',
        num_classes=len(classes),
        in_channels=32,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
dataset = dict(type='CustomDataset', data_root='data/shapes/cls', data_prefix='',
               classes=classes, pipeline=pipeline)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset, ann_file='meta/train.txt'))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, ann_file='meta/val.txt'))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict()
test_cfg = dict()

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = []
auto_scale_lr = dict(base_batch_size=4)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0)
