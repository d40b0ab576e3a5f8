# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# UperNet with an MAE pre-trained, ImageNet-1k fine-tuned HiViT-B on ADE20K in mmseg's
# common setting: 160k iterations, batch 16 (8 GPUs x 2), 512x512 crops (mmseg's
# ade20k.py data: random resize of (2048, 512) x 0.5-2.0, test at (2048, 512) with
# sliding 512x512 windows, stride 341), mixed precision.
#
# Not an official HiViT recipe: model, weights and optimizer are those of
# upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py (which documents them), with the
# backbone grid at 512 (32x32 tokens, tables resized on load), the lr scaled linearly
# to the batch (1e-3 x 16 / 32) and the 1500-iteration warmup of mmseg's 160k
# transformer configs (e.g. mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py).
_base_ = [
    '../_base_/models/upernet_hivit-base-p16.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/reliable_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]

checkpoint = 'work_dirs/hivit-base-p16_8xb128-amp-coslr-100e_in1k/epoch_100.pth'

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size, test_cfg=dict(size=crop_size))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        img_size=crop_size,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

train_dataloader = dict(batch_size=2)  # x 8 GPUs
auto_scale_lr = dict(enable=False, base_batch_size=16)

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='hivit_mm.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75))
max_iters = 160000
warmup_iters = 1500
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='PolyLR',
        eta_min=0.,
        power=1.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
train_cfg = dict(max_iters=max_iters)
