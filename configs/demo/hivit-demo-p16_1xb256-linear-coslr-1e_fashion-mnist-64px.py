# Demo stage 4: linear probe of the frozen Fashion-MNIST MAE encoder (stage 1), the real
# protocol (configs/hivit/benchmarks/hivit-base-p16_8xb2048-linear-coslr-90e_in1k.py:
# MAE's; frozen encoder, mean-pooled main-stage tokens, BatchNorm without affine, linear
# classifier, LARS, warm-up then cosine) shrunk: the demo HiViT (_base_/hivit-demo.py)
# on 64-px images, all 60,000 training labels, batch 256, 1 epoch, tested on the 10,000
# test images; data and test loader as stage 2's (_base_/fashion-mnist-64px.py). Full
# precision as written; tools/demo.py adds --amp (bf16 autocast) on a CPU with bf16
# instructions.
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/demo/mae/epoch_3.pth
_base_ = [
    '../hivit/benchmarks/hivit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
    './_base_/hivit-demo.py', './_base_/fashion-mnist-64px.py'
]

model = dict(
    data_preprocessor=dict(num_classes=10, **_base_.fmnist_preprocessor),
    backbone=dict(arch=dict(_delete_=True, **_base_.demo_arch), img_size=64),
    neck=dict(in_channels=128),
    head=dict(num_classes=10, in_channels=128))
data_preprocessor = dict(num_classes=10)  # the base's top-level copy

train_dataloader = dict(batch_size=256, **_base_.fmnist_loader, dataset=dict(
    _base_.fmnist_train_set, _delete_=True))
val_dataloader = dict(
    **_base_.fmnist_test_loader, dataset=dict(_base_.fmnist_test_set, _delete_=True))
test_dataloader = val_dataloader
test_evaluator = val_evaluator = dict(type='Accuracy', topk=(1, ))

max_epochs = 1
optim_wrapper = dict(type='OptimWrapper')
param_scheduler = [dict(_base_.param_scheduler[0], end=0.2),
                   dict(_base_.param_scheduler[1], T_max=None, begin=0.2, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
