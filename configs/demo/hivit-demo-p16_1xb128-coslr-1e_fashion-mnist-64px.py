# Demo stage 5: fine-tuning from the Fashion-MNIST MAE checkpoint with all 60,000
# training labels, tested on the 10,000 test images: stage 2's recipe
# (hivit-demo-p16_1xb128-coslr-6e_fashion-mnist-10pct-64px.py) on the whole training
# set for 1 epoch (469 iterations), warm-up a fifth of it.
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/demo/mae/epoch_3.pth
_base_ = './hivit-demo-p16_1xb128-coslr-6e_fashion-mnist-10pct-64px.py'

train_dataloader = dict(dataset=dict(indices=None))  # all labels

max_epochs = 1
param_scheduler = [dict(_base_.param_scheduler[0], end=0.2),
                   dict(_base_.param_scheduler[1], begin=0.2, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
