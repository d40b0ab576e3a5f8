# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# HiViT-B fine-tuned on ImageNet-1k from an MAE pre-trained encoder: 100 epochs,
# batch 1024 (8 GPUs x 128), mixed precision.
#
# The official recipe (zhangxiaosong18/hivit, self_supervised/main_finetune.py and
# get_started.md; 84.6 top-1 from the 1600-epoch MAE model): AdamW lr 2e-3 @ 1024
# (blr 5e-4), betas (0.9, 0.999), wd 0.05 except norms/biases/position tables, layer-wise
# lr decay 0.85 numbered as the release's util/lr_decay.py (every stem MLP block is a
# layer, a PatchMerge shares the id of the block before it: embeddings at 0.85**29,
# main block k at 0.85**(20 - k), the head at 1), 5 warmup epochs, per-iteration
# cosine to 1e-6 (x each layer's scale),
# no gradient clipping, drop path 0.2, relative position bias on and zero-initialised
# (the pre-trained encoder has none), head trunc-normal std 2e-5; augmentation as the
# supervised recipe (RandAugment m9-mstd0.5-inc1, random erasing 0.25, Mixup 0.8,
# CutMix 1.0, label smoothing 0.1).
#
# Set the pre-trained checkpoint (an mmpretrain MAE checkpoint whose encoder is
# hivit_mm.MaskedHiViT, keys 'backbone.*') on the command line. Override the init_cfg
# itself: `--cfg-options checkpoint=...` would change only the top-level variable, which
# the model dict below has already copied.
#
#   bash tools/dist_train.sh \
#       configs/hivit/benchmarks/hivit-base-p16_8xb128-amp-coslr-100e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/mae_hivit_base.pth
#
# Lives in benchmarks/ and is named like mmpretrain's MAE fine-tuning benchmark
# (configs/mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py): it evaluates a
# self-supervised checkpoint rather than training a model from scratch.
_base_ = '../hivit-base-p16_8xb128_in1k.py'

checkpoint = ''  # MAE pre-trained model, see above

model = dict(
    backbone=dict(
        drop_path_rate=0.2,
        use_rel_pos_bias=True,
        rel_pos_zero_init=True,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    head=dict(init_cfg=dict(type='TruncNormal', layer='Linear', std=2e-5, bias=0.)))

# schedule: layer-wise lr decay; the depth of every parameter comes from the backbone
# (HiViT.get_layer_depth with the fine-tuning's per-block numbering), so no layer count
# is repeated here
optim_wrapper = dict(
    type='AmpOptimWrapper',  # loss_scale 'dynamic' by default
    optimizer=dict(
        type='AdamW', lr=2e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    constructor='hivit_mm.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        _delete_=True, layer_decay_rate=0.85, layer_numbering='per_block'),
    clip_grad=None)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    # eta_min_ratio: each group ends at its own lr x 1e-6 / 2e-3, as the official
    # scheduler, which scales min_lr by the layer's lr scale
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=1e-6 / 2e-3,
        by_epoch=True,
        begin=5,
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
