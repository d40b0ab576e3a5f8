# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""A tiny Mask R-CNN on HiViT for end-to-end tests (seconds per run on a CPU).

The detection demo config (configs/demo/mask-rcnn_hivit-demo-p16_fpn-4e_shapes.py: the
1x recipe with windowed HiViT, output norms, FPN, 4conv1fc GIoU box head, AdamW with
layer-wise lr decay, on the 128-px shapes COCO set) shrunk: the tiny HiViT
(``_base_/tiny-hivit.py``; padded 3x3 windows on the 8x8 grid in the first main block,
global attention in the second), 32-channel necks and heads, fewer proposals; 4
iterations of batch 2, then a validation with bbox and segm mAP. The data root is
given on the command line, e.g. ``--cfg-options train_dataloader.dataset.data_root=DIR
val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR
val_evaluator.ann_file=DIR/annotations/instances_val.json
test_evaluator.ann_file=DIR/annotations/instances_val.json``, where ``DIR`` was written
by ``hivit_mm.datasets.make_detection(DIR, num_train, num_val, img_size=128)``.
"""
_base_ = [
    '../../configs/demo/mask-rcnn_hivit-demo-p16_fpn-4e_shapes.py',
    './_base_/tiny-hivit.py'
]

channels = 32
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **_base_.tiny_arch),
        window_size=3,  # padded windows (8x8 grid) in block 0
        global_blocks=(1, ),
        init_cfg=None),
    neck=dict(in_channels=[8, 16, 32, 32], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, conv_out_channels=channels,
                       fc_out_channels=2 * channels),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100)),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))
train_dataloader = dict(batch_size=2, **_base_.tiny_loader)
val_dataloader = dict(batch_size=1, **_base_.tiny_loader)
test_dataloader = val_dataloader

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=4)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)
]
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=4))
log_processor = dict(by_epoch=False, window_size=1)
