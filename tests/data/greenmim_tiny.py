# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The GreenMIM Swin-B pre-training config shrunk for a CPU test (tens of seconds).

Everything of the real recipe is inherited (algorithm, decoder shape, loss, init rules,
AdamW betas and weight-decay rules, shared mask, ratio 0.75) except: a tiny GreenSwin
(embed 32, depths (2, 2, 2, 2), window 4) on 128-px shapes images (4x4 mask units of
32 px, 4 kept), a 64-d decoder, full precision (mmengine's AMP wrapper needs a GPU),
batch 8, a higher lr and 40 iterations, logged one by one; the loss falls from about
1.0 to about 0.7. The data root is given on the command line: ``--cfg-options
train_dataloader.dataset.data_root=DIR`` where ``DIR`` was written by
``hivit_mm.datasets.make_classification(DIR, n, 0, img_size=128)``.
"""
_base_ = [
    '../../configs/greenmim/greenmim_swin-base-w7_8xb256-amp-coslr-800e_in1k.py',
    '../../configs/demo/_base_/shapes.py', './_base_/tiny-hivit.py'
]

patch_size = 4
embed_dims = 32
img_size = 128
bound = (6 / (3 * patch_size**2 + embed_dims))**0.5  # the recipe's Uniform on the stem
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=embed_dims, depths=(2, 2, 2, 2),
                  num_heads=(1, 2, 4, 8)),
        img_size=img_size,
        window_size=4),
    neck=dict(
        num_patches=(img_size // 32)**2,
        embed_dim=8 * embed_dims,
        decoder_embed_dim=64,
        decoder_num_heads=4),
    init_cfg=[
        _base_.model.init_cfg[0],
        dict(_base_.model.init_cfg[1], a=-bound, b=bound), _base_.model.init_cfg[2]
    ])

crop = dict(_base_.train_pipeline[1], scale=img_size, crop_ratio_range=(0.5, 1.0))
train_dataloader = dict(
    batch_size=8, **_base_.tiny_loader,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _base_.shapes_cls_set, _delete_=True, data_prefix='train', ann_file='',
        with_label=False,
        pipeline=[_base_.train_pipeline[0], crop, *_base_.train_pipeline[2:]]))

max_iters = 40
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters - 5,
        eta_min=2e-4,
        by_epoch=False,
        begin=5,
        end=max_iters)
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=1)
resume = False
