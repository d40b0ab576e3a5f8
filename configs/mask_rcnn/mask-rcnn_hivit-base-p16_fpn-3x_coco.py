# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# Mask R-CNN + FPN with an MAE pre-trained HiViT-B on COCO: 36 epochs, batch 16
# (8 GPUs x 2), DETR-style multi-scale crop augmentation, mixed precision. The official
# recipe (zhangxiaosong18/hivit,
# detection/configs/_hivit_/hivit_base_mask_rcnn_fpn_3x_coco.py; 53.3 box AP):
#
# * backbone: MAE pre-trained weights (not fine-tuned), no relative position bias, the
#   absolute embedding of the 224 pre-training grid resized to each input at every
#   forward with the release's scale factor ((h + 0.1) / 14, bicubic), drop path 0.2,
#   ViTDet-style 14x14 window attention (not shifted) in the main blocks except the
#   last of each quarter (global blocks 4, 9, 14, 19: HiViT's default rule), the grid
#   padded with zero tokens before each windowed block (unmasked) and cropped after it;
# * features: stride 4 after the first half of stem stage 0's blocks, stride 8 right
#   after the first PatchMerge, the main stage (16) and its max-pool (32) (channels C/4,
#   C/2, C, C), each LayerNorm-ed (eps 1e-6) by the backbone's output norms, into a
#   plain FPN (256 channels, 5 levels). These are the release's behaviours (HiViT's
#   defaults, stated below): tests/test_official_fidelity.py checks the backbone's maps
#   against a reference of the release;
# * box head: 4 shared convs + 1 fc with SyncBN, decoded-box GIoU loss x10;
# * AdamW lr 1e-4, betas (0.9, 0.999), wd 0.05 (none on norms, biases and position
#   tables), layer-wise lr decay 0.9 (the depths come from HiViT.get_layer_depth: stem
#   and embeddings at 0.9**21, main block k at 0.9**(20 - k), necks and heads at 1),
#   500-iteration linear warmup from 1e-3, x0.1 at epochs 27 and 33, no gradient clip.
#
# Pre-trained weights: the `checkpoint` file below, an MAE checkpoint whose encoder is a
# hivit_mm.MaskedHiViT (keys 'backbone.*'), e.g. the last epoch of
# configs/mae/mae_hivit-base-p16-hifeat_8xb512-amp-coslr-1600e_in1k.py, or the official
# mae_hivit_base_1600ep.pth converted by
# tools/model_converters/hivit_official_to_hivit_mm.py. To use another file, override
# the init_cfg itself (`--cfg-options checkpoint=...` would only change the top-level
# variable, which the model dict has already copied):
#
#   bash tools/dist_train.sh \
#       configs/mask_rcnn/mask-rcnn_hivit-base-p16_fpn-3x_coco.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/mae_hivit_base.pth
#
# mmdet's own tools/train.py runs it too (custom_imports registers hivit_mm). SyncBN
# falls back to BN on a single process (mmengine) and on CPU-only distributed runs
# (hivit_mm.utils.compat); AmpOptimWrapper needs a GPU (on a CPU: --cfg-options
# optim_wrapper.type=OptimWrapper).
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
    '../_base_/reliable_runtime.py',
]
custom_imports = dict(
    imports=['hivit_mm.models', 'hivit_mm.engine'], allow_failed_imports=False)

checkpoint = ('work_dirs/mae_hivit-base-p16-hifeat_8xb512-amp-coslr-1600e_in1k/'
              'epoch_1600.pth')

embed_dims = 512  # of arch 'base'; the stage channels are C/4, C/2, C, C
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='hivit_mm.HiViT',
        arch='base',
        img_size=224,
        drop_path_rate=0.2,
        use_abs_pos_embed=True,
        use_rel_pos_bias=False,
        window_size=14,
        window_padding='zeros',
        pos_embed_resize='scale_factor',
        out_indices=(0, 1, 2, 3),
        stem_taps='mid',
        out_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[embed_dims // 4, embed_dims // 2, embed_dims, embed_dims]),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg,
            reg_decoded_bbox=True,
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))))

# data (inherited): the DETR-style AutoAugment pipeline (multi-scale short side 480-800,
# or resize 400-600 -> random crop 384-600 -> multi-scale), flip 0.5; test 1333x800
train_dataloader = dict(batch_size=2)  # x 8 GPUs
auto_scale_lr = dict(base_batch_size=16)

# schedule
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='hivit_mm.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[27, 33],
        gamma=0.1)
]
