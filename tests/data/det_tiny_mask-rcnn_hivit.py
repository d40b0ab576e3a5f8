# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""A tiny Mask R-CNN on HiViT for end-to-end tests (seconds per run on a CPU).

The 1x recipe (configs/mask_rcnn/mask-rcnn_hivit-base-p16_fpn-1x_coco.py: windowed
HiViT with output norms, FPN, 4conv1fc GIoU box head, AdamW with layer-wise lr decay)
with a 32-wide HiViT (depths 1, 1, 2 on a 64-pixel grid; padded 3x3 windows in the
first main block, global attention in the second), 32-channel necks and heads, and
128x128 images of the built-in shapes world: 4 iterations of batch 2, then a validation
with bbox and segm mAP. Full precision (CPU). The data root is given on the command
line, e.g. ``--cfg-options train_dataloader.dataset.data_root=DIR
val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR
val_evaluator.ann_file=DIR/annotations/instances_val.json
test_evaluator.ann_file=DIR/annotations/instances_val.json``, where ``DIR`` was written
by ``hivit_mm.datasets.make_detection(DIR, num_train, num_val, img_size=128)``.
"""
_base_ = '../../configs/mask_rcnn/mask-rcnn_hivit-base-p16_fpn-1x_coco.py'

classes = ('circle', 'square', 'star', 'triangle')  # hivit_mm.datasets.SHAPE_CLASSES
embed_dims = 32
channels = 32
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True, embed_dims=embed_dims, depths=(1, 1, 2), num_heads=2),
        img_size=64,
        window_size=3,  # padded windows (8x8 grid) in block 0
        global_blocks=(1, ),
        drop_path_rate=0.1,
        init_cfg=None),
    neck=dict(
        in_channels=[embed_dims // 4, embed_dims // 2, embed_dims, embed_dims],
        out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(
            in_channels=channels,
            conv_out_channels=channels,
            fc_out_channels=2 * channels,
            num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(
            in_channels=channels,
            conv_out_channels=channels,
            num_classes=len(classes))),
    # fewer proposals and sampled RoIs than COCO's (2000/1000 and 512), for speed
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=200, max_per_img=100), rcnn=dict(max_per_img=20)))

data_root = 'data/shapes/coco'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + '/annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=4)
optim_wrapper = dict(type='OptimWrapper')  # layer decay kept, AMP dropped (CPU)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=4))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0)
