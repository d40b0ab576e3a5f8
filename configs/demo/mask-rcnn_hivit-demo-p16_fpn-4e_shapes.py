# Demo stage 6: Mask R-CNN from the Fashion-MNIST MAE checkpoint of stage 1 on the shapes
# COCO set (_base_/shapes.py: 128-px images, 1-4 objects of 4 classes). The real 1x
# recipe (configs/mask_rcnn/mask-rcnn_hivit-base-p16_fpn-1x_coco.py: HiViT with output
# norms, FPN, 4conv1fc box head with GIoU loss, AdamW with layer-wise lr decay 0.9,
# warm-up then steps) shrunk: the demo HiViT (_base_/hivit-demo.py; its absolute
# embedding resized from the 4x4 pre-training grid to the input), 128-channel FPN/RPN
# and 64-channel RoI heads, anchors scaled for small objects, batch 8, 4 epochs. Full
# precision: mmcv's CPU RoIAlign has no bf16 kernel (--amp fails on a CPU).
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/demo/mae/epoch_3.pth
_base_ = [
    '../mask_rcnn/mask-rcnn_hivit-base-p16_fpn-1x_coco.py', './_base_/hivit-demo.py',
    './_base_/shapes.py'
]

channels = 128
data_root = _base_.shapes_coco_set['data_root']
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **_base_.demo_arch), img_size=64, drop_path_rate=0.1),
    neck=dict(in_channels=[32, 64, 128, 128], out_channels=channels),
    rpn_head=dict(
        in_channels=channels,
        feat_channels=channels,
        anchor_generator=dict(scales=[4])),  # 16-256 px anchors for 128-px images
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(
            in_channels=channels,
            conv_out_channels=64,  # the 4conv1fc head dominates a CPU step
            fc_out_channels=256,
            num_classes=len(_base_.shapes_classes)),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(
            in_channels=channels,
            conv_out_channels=64,
            num_classes=len(_base_.shapes_classes))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.8, 1.25), keep_ratio=True),
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
train_dataloader = dict(batch_size=8, **_base_.shapes_loader, dataset=dict(
    _base_.shapes_coco_set, ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, **_base_.shapes_loader, dataset=dict(
    _base_.shapes_coco_set, ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_epochs = 4
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=3e-4))
param_scheduler = [dict(_base_.param_scheduler[0], end=50),
                   dict(_base_.param_scheduler[1], end=max_epochs, milestones=[3])]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)  # CPU runs repeat exactly
