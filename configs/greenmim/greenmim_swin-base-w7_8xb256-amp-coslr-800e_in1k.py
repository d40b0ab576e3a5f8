# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# GreenMIM Swin-B (window 7) pre-training on ImageNet-1k, the official recipe
# (LayneH/GreenMIM README and `scripts/srun_greenmim_swin_base.sh`, the script of the
# released Swin-B checkpoint): 800 epochs, effective batch 2048 (8 GPUs x
# 256), lr = blr * 2048 / 256 = 1e-4 * 8 = 8e-4, AdamW betas (0.9, 0.95), wd 0.05 with
# no decay on 1-D parameters (norms, biases), relative position tables and the mask
# token, 40 warmup epochs then per-iteration half-cycle cosine to 0, mask ratio 0.75,
# RandomResizedCrop 224 scale (0.2, 1.0) bicubic + horizontal flip, mixed precision.
#
# Where the release's scripts disagree, and what is used here:
# * blr: 1e-4 in `srun_greenmim_swin_base.sh` and the June-2022 `srun_mae_swin_base.sh`
#   (with the README's "8 GPUs, lr 8e-4"), 1.5e-4 in `run_greenmim_swin_base.sh` (586
#   per GPU x 7 GPUs, 200 epochs: a local experiment) and in the window-14 scripts.
#   Used: 1e-4, the documented setting of the released checkpoint.
# * epochs / batch: 800 / 256 per GPU in every script but the local 200-epoch one.
#   Used: 800 / 256. The epochs behind the paper's tables are not stated.
# * The README fine-tunes this checkpoint to 83.8 top-1 (83.7 in its June-2022 version):
#   configs/greenmim/benchmarks/swin-base-w7_8xb128-amp-coslr-100e_in1k.py.
# Also as released: one random mask per GPU and iteration, shared by its batch
# (`model.backbone.shared_mask=False` draws one per sample, as MAE), the released
# Group Window Attention switch ("masking" when a stage has <= 2*M*M visible tokens).
#
#   bash tools/dist_train.sh \
#       configs/greenmim/greenmim_swin-base-w7_8xb256-amp-coslr-800e_in1k.py 8
#
# Then keep the encoder for fine-tuning:
#   python tools/model_converters/greenmim_to_mmpretrain.py \
#       work_dirs/greenmim_swin-base-w7_8xb256-amp-coslr-800e_in1k/epoch_800.pth \
#       work_dirs/greenmim_swin-base-w7_800e_backbone.pth
_base_ = [
    '../_base_/models/greenmim_swin-base-w7.py',
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/reliable_runtime.py',
]

train_dataloader = dict(batch_size=256)  # per GPU

max_epochs = 800
warmup_epochs = 40
base_lr = 1e-4  # blr, per 256 images
batch_size = 8 * 256

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=base_lr * batch_size / 256, betas=(0.9, 0.95),
        weight_decay=0.05),
    paramwise_cfg=dict(
        flat_decay_mult=0.,  # every 1-D parameter: norms and biases
        custom_keys=dict(
            relative_position_bias_table=dict(decay_mult=0.),
            mask_token=dict(decay_mult=0.))))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=0.,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
resume = True
auto_scale_lr = dict(base_batch_size=batch_size)
