# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The ADE20K 640 recipe's test protocols with a tiny model, for end-to-end tests.

configs/upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py (no demo config
shrinks it) with the tiny HiViT (``_base_/tiny-hivit.py``), 16/8-channel heads with BN,
and the shapes ADE20K-style set (configs/demo/_base_/shapes.py) as its test set; its
single-scale test pipeline, `tta_model` and `tta_pipeline` (six scales x flip, 640x640
slide inference with stride 426) are kept. The data root is given on the command line:
``--cfg-options test_dataloader.dataset.data_root=DIR`` with ``DIR`` written by
``hivit_mm.datasets.make_segmentation(DIR, num_train, num_val)``.
"""
_base_ = [
    '../../configs/upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py',
    '../../configs/demo/_base_/shapes.py', './_base_/tiny-hivit.py'
]

num_classes = len(_base_.shapes_ade_set['metainfo']['classes'])
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(arch=dict(_delete_=True, **_base_.tiny_arch), init_cfg=None),
    decode_head=dict(in_channels=[8, 16, 32, 32], channels=16, norm_cfg=norm_cfg,
                     num_classes=num_classes),
    auxiliary_head=dict(in_channels=32, channels=8, norm_cfg=norm_cfg,
                        num_classes=num_classes))

test_dataloader = dict(
    batch_size=1, **_base_.tiny_loader,
    dataset=dict(
        _base_.shapes_ade_set, _delete_=True, pipeline=_base_.test_pipeline,
        data_prefix=dict(
            img_path='images/validation', seg_map_path='annotations/validation')))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
