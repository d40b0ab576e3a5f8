# Fine-tuning the demo HiViT on the shapes classification task (`make demo` fine-tunes on
# Fashion-MNIST instead: hivit-demo-p16_1xb128-coslr-6e_fashion-mnist-10pct-64px.py; 4
# classes, 64 px) with 10% of the labels (the first 400 training images; the MAE stage
# saw all 4000 without labels): stage 2's recipe on the shapes data (_base_/shapes.py),
# no Mixup/CutMix (4 toy classes), batch 32, 30 epochs with a 3-epoch warm-up.
# Run it twice with the same budget: from the MAE checkpoint
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/demo/mae/epoch_20.pth
# and from random initialisation
#   --cfg-options model.backbone.init_cfg=None
_base_ = [
    './hivit-demo-p16_1xb128-coslr-6e_fashion-mnist-10pct-64px.py',
    './_base_/shapes.py'
]

classes = _base_.shapes_classes
model = dict(
    data_preprocessor=dict(
        _base_.data_preprocessor, _delete_=True, num_classes=len(classes)),
    head=dict(num_classes=len(classes)))
data_preprocessor = dict(num_classes=len(classes))

labelled = dict(_base_.shapes_cls_set, classes=classes)
train_dataloader = dict(
    batch_size=32,
    **_base_.shapes_loader,
    dataset=dict(
        labelled,
        _delete_=True,
        ann_file='meta/train.txt',
        indices=400,  # 10% of the labels
        pipeline=[
            dict(type='LoadImageFromFile'), _base_.shapes_cls_crop,
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs')
        ]))
val_dataloader = dict(
    batch_size=100,
    **_base_.shapes_loader,
    dataset=dict(
        labelled,
        _delete_=True,
        ann_file='meta/val.txt',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
test_dataloader = val_dataloader

max_epochs = 30
param_scheduler = [dict(_base_.param_scheduler[0], end=3),
                   dict(_base_.param_scheduler[1], begin=3, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
