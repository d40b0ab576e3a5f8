# Demo stage 7: UperNet from the classifier of stage 2 (fine-tuned from the Fashion-MNIST
# MAE checkpoint with 10% of the labels; it transferred better than the MAE checkpoint,
# README "The demo") on the shapes ADE20K-style set (_base_/shapes.py: 128-px images,
# background + 4 classes). The real 512x512 recipe (configs/upernet/: HiViT with
# relative position bias over the whole crop, its tables resized on load from the
# classifier's 4x4 grid to the 8x8 grid of the 128-px crop, zero-initialised from an MAE
# encoder, which has none; UPerHead on the four stages, auxiliary FCN head on the main
# stage, AdamW with layer-wise lr decay, warm-up then poly, slide inference) shrunk: the
# demo HiViT (_base_/hivit-demo.py), 128/64-channel heads, batch 8, 800 iterations.
# Full precision as written; tools/demo.py adds --amp (bf16 autocast) on a CPU with
# bf16 instructions.
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/demo/ft_mae/epoch_6.pth
_base_ = [
    '../upernet/upernet_hivit-base-p16_8xb2-160k_ade20k-512x512.py',
    './_base_/hivit-demo.py', './_base_/shapes.py'
]

crop_size = (128, 128)
num_classes = len(_base_.shapes_ade_set['metainfo']['classes'])
data_preprocessor = dict(size=crop_size, test_cfg=dict(size=crop_size))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch=dict(_delete_=True, **_base_.demo_arch),
        img_size=crop_size,
        drop_path_rate=0.1),
    decode_head=dict(
        in_channels=[32, 64, 128, 128], channels=128, num_classes=num_classes),
    auxiliary_head=dict(in_channels=128, channels=64, num_classes=num_classes),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(85, 85)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=8, **_base_.shapes_loader, dataset=dict(
    _base_.shapes_ade_set, _delete_=True, pipeline=train_pipeline,
    data_prefix=dict(img_path='images/training', seg_map_path='annotations/training')))
val_dataloader = dict(batch_size=4, **_base_.shapes_loader, dataset=dict(
    _base_.shapes_ade_set, _delete_=True, pipeline=test_pipeline,
    data_prefix=dict(
        img_path='images/validation', seg_map_path='annotations/validation')))
test_dataloader = val_dataloader

max_iters, warmup_iters = 800, 50
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
param_scheduler = [dict(_base_.param_scheduler[0], end=warmup_iters),
                   dict(_base_.param_scheduler[1], begin=warmup_iters, end=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)  # CPU runs repeat exactly
