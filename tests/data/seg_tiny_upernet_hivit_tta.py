# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The ADE20K 640 recipe's test protocols with a tiny model, for end-to-end tests.

configs/upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py with a 32-wide HiViT
(depths 1, 1, 2), 16/8-channel heads with BN, and the built-in shapes data as its test
set; its single-scale test pipeline, `tta_model` and `tta_pipeline` (six scales x flip,
640x640 slide inference with stride 426) are kept. The data root is given on the
command line: ``--cfg-options test_dataloader.dataset.data_root=DIR`` with ``DIR``
written by ``hivit_mm.datasets.make_segmentation(DIR, num_train, num_val)``.
"""
_base_ = '../../configs/upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py'

classes = ('background', 'circle', 'square', 'star', 'triangle')  # SEG_CLASSES
embed_dims = 32
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=embed_dims, depths=(1, 1, 2), num_heads=2),
        init_cfg=None),
    decode_head=dict(
        in_channels=[embed_dims // 4, embed_dims // 2, embed_dims, embed_dims],
        channels=16,
        norm_cfg=norm_cfg,
        num_classes=len(classes)),
    auxiliary_head=dict(
        in_channels=embed_dims, channels=8, norm_cfg=norm_cfg,
        num_classes=len(classes)))

test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='BaseSegDataset',
        data_root='data/shapes/ade',
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        metainfo=dict(classes=classes),
        data_prefix=dict(
            img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
