# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# HiViT-L fine-tuned on ImageNet-1k from an MAE pre-trained encoder
# (configs/mae/mae_hivit-large-p16-hifeat_8xb512-amp-coslr-1600e_in1k.py): 50 epochs,
# batch 1024 (8 GPUs x 128), mixed precision.
#
# No official HiViT-L fine-tuning recipe exists. This is the HiViT-B recipe this file
# inherits (augmentation, AdamW, relative position bias zero-initialised, layer decay
# numbered per block as the release's fine-tuning, 5 warmup epochs, per-iteration
# cosine) with the MAE paper's settings for its large model
# (He et al., arXiv 2111.06377, appendix A.1): 50 epochs, base lr 1e-3 per 256 images
# (4e-3 at 1024), layer-wise lr decay 0.75, drop path 0.2.
#
# Memory: add --cfg-options model.backbone.with_cp=True for activation checkpointing
# (see the MAE config). Set the pre-trained checkpoint on the command line:
#
#   bash tools/dist_train.sh \
#       configs/hivit/benchmarks/hivit-large-p16_8xb128-amp-coslr-50e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/mae_hivit_large.pth
_base_ = './hivit-base-p16_8xb128-amp-coslr-100e_in1k.py'

embed_dims = 768
lr = 4e-3
model = dict(
    backbone=dict(arch='large', drop_path_rate=0.2),
    neck=dict(in_channels=embed_dims),
    head=dict(in_channels=embed_dims))

optim_wrapper = dict(optimizer=dict(lr=lr), paramwise_cfg=dict(layer_decay_rate=0.75))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    # each group ends at its own lr x 1e-6 / lr, as the HiViT-B recipe
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=1e-6 / lr,
        by_epoch=True,
        begin=5,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=50)
