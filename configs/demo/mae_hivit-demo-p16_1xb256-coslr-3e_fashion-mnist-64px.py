# Demo stage 1: HiViT-MAE pre-training on the 60,000 Fashion-MNIST training images
# (labels unused): the shapes MAE demo config (the real recipe shrunk to the demo HiViT:
# mae_hivit-demo-p16_1xb64-coslr-20e_shapes.py) on Fashion-MNIST
# (_base_/fashion-mnist-64px.py; crops of 50-100% of the image here), batch 256,
# 3 epochs (705 iterations), warm-up half an epoch then cosine. Full precision as
# written; tools/demo.py adds --amp (bf16 autocast) on a CPU with bf16 instructions.
_base_ = [
    './mae_hivit-demo-p16_1xb64-coslr-20e_shapes.py', './_base_/fashion-mnist-64px.py'
]

model = dict(data_preprocessor=_base_.fmnist_preprocessor)
crop = dict(_base_.fmnist_train_pipeline[0], crop_ratio_range=(0.5, 1.0))
train_dataloader = dict(
    batch_size=256, **_base_.fmnist_loader,
    dataset=dict(_base_.fmnist_train_set, _delete_=True,
                 pipeline=[crop, *_base_.fmnist_train_pipeline[1:]]))

max_epochs = 3
param_scheduler = [dict(_base_.param_scheduler[0], end=0.5),
                   dict(_base_.param_scheduler[1], begin=0.5)]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
