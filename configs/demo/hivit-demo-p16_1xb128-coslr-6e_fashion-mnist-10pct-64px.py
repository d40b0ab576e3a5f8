# Demo stage 2: fine-tuning the demo HiViT on Fashion-MNIST with 10% of the labels (the
# first 6,000 training images, about 600 a class), tested on the 10,000 test images;
# the real MAE fine-tuning recipe (configs/hivit/benchmarks/) shrunk: the demo HiViT
# (_base_/hivit-demo.py), layer-wise lr decay 0.85 with the release's layer numbering,
# relative position bias on (zero-initialised), drop path 0.1, label smoothing 0.1; no
# Mixup/CutMix/RandAugment (a few epochs on 28-px grey images); batch 128, 6 epochs
# (282 iterations), warm-up half an epoch then cosine. Full precision as written;
# tools/demo.py adds --amp (bf16 autocast) on a CPU with bf16 instructions. Images:
# _base_/fashion-mnist-64px.py. The demo runs it from the MAE checkpoint
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/demo/mae/epoch_3.pth
# and, with the same budget, from random initialisation
#   --cfg-options model.backbone.init_cfg=None
_base_ = [
    '../hivit/benchmarks/hivit-base-p16_8xb128-amp-coslr-100e_in1k.py',
    './_base_/hivit-demo.py', './_base_/fashion-mnist-64px.py'
]

model = dict(
    data_preprocessor=dict(num_classes=10, **_base_.fmnist_preprocessor),
    backbone=dict(
        arch=dict(_delete_=True, **_base_.demo_arch), img_size=64, drop_path_rate=0.1),
    neck=dict(in_channels=128),
    head=dict(num_classes=10, in_channels=128),
    train_cfg=None)
data_preprocessor = dict(num_classes=10)  # the base's top-level copy

train_dataloader = dict(batch_size=128, **_base_.fmnist_loader, dataset=dict(
    _base_.fmnist_train_set, _delete_=True, indices=6000))  # 10% labels
val_dataloader = dict(
    **_base_.fmnist_test_loader, dataset=dict(_base_.fmnist_test_set, _delete_=True))
test_dataloader = val_dataloader
test_evaluator = val_evaluator = dict(type='Accuracy', topk=(1, ))

max_epochs = 6
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(_base_.param_scheduler[0], start_factor=1e-3, end=0.5),
    dict(_base_.param_scheduler[1], eta_min_ratio=1e-3, begin=0.5, end=max_epochs)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False)
randomness = dict(seed=0)  # CPU runs repeat exactly (tests/test_demo.py)
