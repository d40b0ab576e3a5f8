# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""A tiny HiViT-MAE for end-to-end tests: the shapes MAE demo config
(configs/demo/mae_hivit-demo-p16_1xb64-coslr-20e_shapes.py: the real recipe with 75% of
16-px units masked, fused stem features, fixed sin-cos embeddings, cls-free decoder,
normalised-pixel loss on masked units, on 64-px shapes images) shrunk: the tiny HiViT
(``_base_/tiny-hivit.py``), a 1-block 32-d decoder, flips only, 120 iterations of
batch 16 logged one by one. The data root is given on the command line
(``--cfg-options train_dataloader.dataset.data_root=DIR``, a tree written by
``hivit_mm.datasets.make_classification``)."""
_base_ = [
    '../../configs/demo/mae_hivit-demo-p16_1xb64-coslr-20e_shapes.py',
    './_base_/tiny-hivit.py'
]

model = dict(
    backbone=dict(arch=dict(_delete_=True, **_base_.tiny_arch)),
    neck=dict(embed_dim=7 * 32, decoder_embed_dim=32, decoder_depth=1,
              decoder_num_heads=2))
train_dataloader = dict(batch_size=16, **_base_.tiny_loader, dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')]))
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=120)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=5),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=False, begin=5)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=120, max_keep_ckpts=3))
log_processor = dict(by_epoch=False, window_size=1)
