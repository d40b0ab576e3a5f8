# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# Linear probe of a HiViT-B MAE encoder on ImageNet-1k: 90 epochs, batch 16384
# (8 GPUs x 2048), mixed precision.
#
# The HiViT release reports no linear probe, so this is MAE's protocol (He et al. 2022,
# appendix A.2; mmpretrain's configs/mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-
# 90e_in1k.py, inherited here): the whole encoder frozen, a BatchNorm without affine
# parameters on the features, then a linear classifier (trunc-normal 0.01); LARS lr 6.4
# (0.1 x 16384 / 256), momentum 0.9, no weight decay, 10 warmup epochs then cosine;
# RandomResizedCrop 224 + flip only. HiViT has no class token: the feature is the mean
# of the main-stage tokens (hivit_mm.MeanPoolBatchNorm), taken before the encoder's
# final norm, which a HiViT backbone does not have (the BatchNorm standardises the
# features instead).
#
#   bash tools/dist_train.sh \
#       configs/hivit/benchmarks/hivit-base-p16_8xb2048-linear-coslr-90e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/mae_hivit_base.pth
_base_ = [
    'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
    '../../_base_/reliable_runtime.py',
]
custom_imports = dict(imports=['hivit_mm.models'], allow_failed_imports=False)

checkpoint = ''  # MAE pre-trained model, see above

model = dict(
    backbone=dict(
        _delete_=True,
        type='hivit_mm.HiViT',
        arch='base',
        img_size=224,
        use_abs_pos_embed=True,
        use_rel_pos_bias=False,  # the MAE encoder has none
        out_indices=(2, ),
        frozen_stages=2,  # patch embedding, stem, position embedding, main stage
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(_delete_=True, type='hivit_mm.MeanPoolBatchNorm', in_channels=512),
    head=dict(in_channels=512))
