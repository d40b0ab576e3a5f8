# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# HiViT-B, supervised from scratch on ImageNet-1k: 300 epochs, batch 1024 (8 GPUs x 128).
# The official recipe (zhangxiaosong18/hivit, supervised/configs/*.yaml; Swin codebase):
# AdamW lr 1e-3 @ 1024, wd 0.05 except norms/biases/position tables, 20 warmup epochs
# from 1e-6, per-iteration cosine to 1e-5, no gradient clipping, drop path 0.5,
# RandAugment m9-mstd0.5-inc1, random erasing 0.25, Mixup 0.8 / CutMix 1.0, label
# smoothing 0.1. The primitive of this folder: the tiny and small configs inherit it.
#
#   bash tools/dist_train.sh configs/hivit/hivit-base-p16_8xb128_in1k.py 8
#
# (The official runs used mixed precision: add --amp to tools/train.py for it.)
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_hivit.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/reliable_runtime.py',
]
custom_imports = dict(
    imports=['hivit_mm.models', 'hivit_mm.engine'], allow_failed_imports=False)

# model: HiViT -> mean-pool + LayerNorm (official fc_norm) -> linear
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='hivit_mm.HiViT',
        arch='base',
        img_size=224,
        drop_path_rate=0.5,
        use_abs_pos_embed=True,
        use_rel_pos_bias=True,
        out_indices=(2, )),
    neck=dict(type='hivit_mm.MeanPoolLayerNorm', in_channels=512),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.)),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]))

# data: the Swin pipeline (RandAugment timm_increasing m9 mstd0.5, erasing 0.25), 128/GPU
train_dataloader = dict(batch_size=128)

# schedule (inherited): AdamW 1e-3 @ 1024, no weight decay on norms, biases and position
# tables, 300 epochs, auto_scale_lr base 1024. Here: no gradient clipping (the official
# yaml files set CLIP_GRAD None), and warmup and cosine per iteration as the official
# scheduler (supervised/lr_scheduler.py: timm's CosineLRScheduler without a warmup
# prefix): one cosine over the whole run, t in [0, 300] epochs, from 1e-3 to 1e-5, its
# first 20 epochs overlapped by the linear warmup from 1e-6 (mmengine chains the two),
# so the lr right after warmup is 0.989 of the peak, not the peak (a cosine restarted
# after warmup would run up to 13% above the official curve).
optim_wrapper = dict(clip_grad=None)
max_epochs = 300
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=20,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
