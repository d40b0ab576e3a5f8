# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The tiny HiViT-MAE (``mae_tiny_hivit.py``) for the bit-exact resume test: an
epoch-based loop of 2 epochs of 3 batches of 4 images (12 training images), random
resized crops and flips in 2 data-loader workers, random masks, a checkpoint every 4
iterations (mid-epoch) and a ``FaultAt`` hook (off) that kills the run
(``custom_hooks.0.where=kill_after_iter custom_hooks.0.iter=4``). Needs ``tests/data`` on
``PYTHONPATH``."""
_base_ = './mae_tiny_hivit.py'

custom_imports = dict(
    imports=['hivit_mm.models', 'fault_injection'], allow_failed_imports=False)
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(
            type='RandomResizedCrop',
            scale=64,
            crop_ratio_range=(0.3, 1.0),
            backend='pillow',
            interpolation='bicubic'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs')
    ]))
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=2),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=False, begin=2, end=6)
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4))
custom_hooks = [dict(type='FaultAt', where='never')]
