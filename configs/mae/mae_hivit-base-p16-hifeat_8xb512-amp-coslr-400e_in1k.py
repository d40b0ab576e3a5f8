# HiViT-B MAE pre-training on ImageNet-1k with the official recipe (zhangxiaosong18/hivit,
# self_supervised/get_started.md and main_pretrain.py):
# effective batch 4096 (8 GPUs x 512, or 8 x 256 with accumulative_counts=2),
# lr = 1e-4 * 4096 / 256 = 1.6e-3, AdamW (0.9, 0.95), wd 0.05 without decay on
# norms and biases only (the release's timm add_weight_decay: the trained sin-cos
# absolute embedding and the mask token are decayed), 40 warmup epochs then cosine
# per iteration to 0, RandomResizedCrop 224 scale (0.2, 1.0) bicubic + flip.
#
# Named with "-hifeat" (the release's fused stem features) so that no file has the
# name of mmpretrain's mae_hivit-base-p16_8xb512-amp-coslr-*e_in1k.py, which builds
# its [2, 2, 24] model.
#
#   bash tools/dist_train.sh \
#       configs/mae/mae_hivit-base-p16-hifeat_8xb512-amp-coslr-400e_in1k.py 8
_base_ = [
    '../_base_/models/mae_hivit-base-p16-hifeat.py',
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/reliable_runtime.py',
]

optim_wrapper = dict(
    type='AmpOptimWrapper',  # loss_scale 'dynamic' by default
    optimizer=dict(
        type='AdamW', lr=1.6e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))

# 40 warmup epochs, then cosine to 0 at the end of training (the cosine's end and
# period default to train_cfg.max_epochs, so the 800e/1600e configs only change that)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.,
        by_epoch=True,
        begin=40,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=400)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
resume = True
auto_scale_lr = dict(base_batch_size=4096)
