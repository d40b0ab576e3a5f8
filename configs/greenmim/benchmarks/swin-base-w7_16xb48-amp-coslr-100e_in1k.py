# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# Swin-B (window 7) fine-tuned on ImageNet-1k from a GreenMIM pre-trained encoder with
# the batch of the current GreenMIM README's 83.8 top-1 (LayneH/GreenMIM README:
# "we use a batch size of 768 (48 x 16) for fine-tuning"): 16 GPUs x 48, and the
# SimMIM codebase's linear scaling of BASE_LR 1.25e-3, WARMUP_LR and MIN_LR 2.5e-7 by
# batch / 512 (x1.5: lr 1.875e-3, warmup from and cosine to 3.75e-7). Everything else,
# with its sources, is the 1024-batch recipe this inherits.
#
#   bash tools/dist_train.sh \
#       configs/greenmim/benchmarks/swin-base-w7_16xb48-amp-coslr-100e_in1k.py 16 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/converted.pth
_base_ = './swin-base-w7_8xb128-amp-coslr-100e_in1k.py'

train_dataloader = dict(batch_size=48)  # x 16 GPUs

batch_size = 16 * 48
base_lr = 1.25e-3 * batch_size / 512
warmup_lr = 2.5e-7 * batch_size / 512
min_lr = 2.5e-7 * batch_size / 512

optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=warmup_lr / base_lr,
        by_epoch=True,
        begin=0,
        end=20,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=100,
        eta_min=min_lr,
        by_epoch=True,
        begin=0,
        end=100,
        convert_to_iter_based=True)
]
auto_scale_lr = dict(base_batch_size=batch_size)
