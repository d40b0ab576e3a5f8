# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# UperNet on HiViT-B, as the official segmentation release
# (zhangxiaosong18/hivit, segmentation/configs/upernet_hivit_base_80k_ade20k.py):
# the four HiViT stages (strides 4, 8, 16 and the max-pooled 32; channels C/4, C/2, C,
# C; no output norms) straight into UPerHead (1024 channels), an auxiliary FCN head on
# the main stage (stride 16, C channels); global attention with a relative position
# bias over the whole training crop, drop path 0.1. The configs using it set the input
# grid (backbone img_size = crop size, so that the relative tables of the 224-pixel
# fine-tuning grid are resized once, on load), the classes and the weights.
_base_ = 'mmseg::_base_/models/upernet_swin.py'
custom_imports = dict(
    imports=['hivit_mm.models', 'hivit_mm.engine'], allow_failed_imports=False)

embed_dims = 512  # of arch 'base'; the stage channels are C/4, C/2, C, C
model = dict(
    backbone=dict(
        _delete_=True,
        type='hivit_mm.HiViT',
        arch='base',
        img_size=224,
        drop_path_rate=0.1,
        use_abs_pos_embed=True,
        use_rel_pos_bias=True,
        rel_pos_zero_init=True,  # for weights trained without relative tables
        out_indices=(0, 1, 2, 3),
        out_norm=False),
    decode_head=dict(
        in_channels=[embed_dims // 4, embed_dims // 2, embed_dims, embed_dims],
        in_index=[0, 1, 2, 3],
        channels=1024),
    auxiliary_head=dict(in_channels=embed_dims, in_index=2))
