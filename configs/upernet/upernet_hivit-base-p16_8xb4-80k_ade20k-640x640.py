# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# UperNet with an MAE pre-trained, ImageNet-1k fine-tuned HiViT-B on ADE20K: 80k
# iterations, batch 32 (8 GPUs x 4), 640x640 crops, mixed precision. The official recipe
# (zhangxiaosong18/hivit, segmentation/configs/upernet_hivit_base_80k_ade20k.py; 52.8
# mIoU):
#
# * backbone: the fine-tuned classifier's weights, relative position bias on, global
#   attention over the 40x40-token crop, drop path 0.1; as the release's segmentor
#   (segmentation/backbone/hivit.py and mmcv_custom/checkpoint.py), the relative tables
#   of the 224 fine-tuning are resized to the 640 grid when loaded by cubic splines on
#   a geometric grid of offsets (near offsets keep their learned bias), the absolute
#   embedding stays the 14x14 table (pretrain_img_size 224) and is resized at every
#   forward with the release's scale factor (40.1 / 14, bicubic), and the stride-4/8
#   maps are tapped mid-stem (after the first half of stem stage 0, right after the
#   first PatchMerge) (tests/test_official_fidelity.py checks these against a
#   reference of the release); model details in
#   configs/_base_/models/upernet_hivit-base-p16.py;
# * AdamW lr 1e-3, betas (0.9, 0.999), wd 0.05 (none on norms, biases and position
#   tables), layer-wise lr decay 0.75 (the depths come from HiViT.get_layer_depth: stem
#   and embeddings at 0.75**21, main block k at 0.75**(20 - k), heads at 1), linear
#   warmup from 1e-6 over 750 iterations, then poly (power 1) to 0 at 80k;
# * data (mmseg's ade20k_640x640.py): random resize of (2560, 640) x 0.5-2.0, 640 crop
#   (cat_max_ratio 0.75), flip, photometric distortion; test at (2560, 640), sliding
#   640x640 windows with stride 426. Each window is exactly the backbone's grid; images
#   smaller than a window are padded to it (data_preprocessor test_cfg).
# * test protocols: single scale (above) is the default of `tools/test.py` and of the
#   validation during training; the paper's 52.8 is multi-scale + flip, `--tta`
#   (`tta_pipeline` below: the release's SETR-style scales, short side
#   max(640 r, 640) for r in 0.5..1.75, i.e. 640, 640, 640, 800, 960, 1120 with no
#   long-side cap, each with and without a horizontal flip, slide inference as above,
#   class probabilities averaged by mmseg's SegTTAModel):
#
#     python tools/test.py \
#         configs/upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py CKPT --tta
#
# Weights: the `checkpoint` file below, a HiViT-B classifier fine-tuned from MAE
# (keys 'backbone.*'), e.g. the last epoch of
# configs/hivit/benchmarks/hivit-base-p16_8xb128-amp-coslr-100e_in1k.py, or the official
# mae_hivit_base_1600ep_ft100ep.pth converted by
# tools/model_converters/hivit_official_to_hivit_mm.py. To use another file, override
# the init_cfg itself:
#
#   bash tools/dist_train.sh \
#       configs/upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH/TO/hivit_base_ft.pth
#
# mmseg's own tools/train.py runs it too. SyncBN falls back to BN on a single process
# and on CPU-only distributed runs; AmpOptimWrapper needs a GPU (on a CPU:
# --cfg-options optim_wrapper.type=OptimWrapper).
_base_ = [
    '../_base_/models/upernet_hivit-base-p16.py',
    'mmseg::_base_/datasets/ade20k_640x640.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/reliable_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]

checkpoint = 'work_dirs/hivit-base-p16_8xb128-amp-coslr-100e_in1k/epoch_100.pth'

crop_size = (640, 640)
data_preprocessor = dict(size=crop_size, test_cfg=dict(size=crop_size))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        img_size=crop_size,
        pretrain_img_size=224,
        rel_pos_resize='geometric',
        pos_embed_resize='scale_factor',
        stem_taps='mid',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(426, 426)))

train_dataloader = dict(batch_size=4)  # x 8 GPUs
auto_scale_lr = dict(enable=False, base_batch_size=32)

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='hivit_mm.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75))
max_iters = 80000
warmup_iters = 750
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

# Multi-scale + flip test (`tools/test.py ... --tta`), as the release's test pipeline
# (MultiScaleFlipAug of (2560, 640) x ratios 0.5..1.75 through SETR_Resize with
# setr_multi_scale=True: the short side becomes max(640 r, 640), the long side follows
# the aspect ratio, uncapped). mmseg's own ade20k_640x640.py tta_pipeline resizes the
# original image by the ratios instead (short side ~256..900 px for ADE20K).
tta_scales = [max(int(640 * r), crop_size[0]) for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)]
tta_model = dict(type='SegTTAModel')
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            # scale (long, short) with an out-of-reach long side: the short side is s
            [dict(type='Resize', scale=(1_000_000, s), keep_ratio=True)
             for s in tta_scales],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
