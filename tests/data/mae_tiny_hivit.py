# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""A tiny HiViT-MAE for end-to-end tests: the real recipe
(configs/mae/mae_hivit-base-p16-hifeat_8xb512-amp-coslr-400e_in1k.py: 75% of 16-px units
masked, fused stem features, fixed sin-cos embeddings, cls-free decoder, normalised-pixel
loss on masked units) with a 32-wide HiViT on 64-px shapes images, 120 iterations of
batch 16, full precision. The data root is given on the command line
(``--cfg-options train_dataloader.dataset.data_root=DIR``, a tree written by
``hivit_mm.datasets.make_classification``)."""
_base_ = '../../configs/mae/mae_hivit-base-p16-hifeat_8xb512-amp-coslr-400e_in1k.py'

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=(1, 1, 2), num_heads=2),
        img_size=64),
    neck=dict(
        num_patches=16,
        embed_dim=7 * 32,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2))
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/shapes/cls/',
        data_prefix='train',
        with_label=False,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs')
        ]))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=2e-3))  # no AMP on CPU
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=120)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=5),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=False, begin=5)
]
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=120))
log_processor = dict(by_epoch=False, window_size=1)
resume = False
randomness = dict(seed=0)
