# HiViT-MAE pre-training on the shapes classification images (`make demo` pre-trains on
# Fashion-MNIST instead: mae_hivit-demo-p16_1xb256-coslr-3e_fashion-mnist-64px.py), the
# real recipe (configs/mae/) shrunk to the demo HiViT (_base_/hivit-demo.py) on the
# 64-px shapes images (_base_/shapes.py): masks 75% of the 16 units (keeps 4), fused
# stem features, fixed sin-cos embeddings, normalised-pixel loss on masked units; a
# 2-block 128-d decoder. Full precision, batch 64, 20 epochs.
_base_ = [
    '../mae/mae_hivit-base-p16-hifeat_8xb512-amp-coslr-400e_in1k.py',
    './_base_/hivit-demo.py', './_base_/shapes.py'
]

model = dict(
    backbone=dict(arch=dict(_delete_=True, **_base_.demo_arch), img_size=64),
    neck=dict(
        num_patches=16,
        embed_dim=7 * 128,  # fused stem features of the 128-wide demo HiViT
        decoder_embed_dim=128,
        decoder_depth=2,
        decoder_num_heads=4))

train_dataloader = dict(
    batch_size=64,
    **_base_.shapes_loader,
    dataset=dict(
        _base_.shapes_cls_set,
        _delete_=True,
        data_prefix='train',
        with_label=False,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(_base_.shapes_cls_crop, crop_ratio_range=(0.5, 1.0)),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs')
        ]))

max_epochs = 20
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1.5e-3))
param_scheduler = [dict(_base_.param_scheduler[0], start_factor=1e-3, end=2),
                   dict(_base_.param_scheduler[1], begin=2)]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
resume = False
