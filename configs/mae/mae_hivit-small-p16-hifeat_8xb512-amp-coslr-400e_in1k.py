# HiViT-Small MAE: the base recipe with a small encoder (384 wide). No official
# small MAE run exists (the authors trained only base); the decoder is kept at 512-d x 6.
_base_ = './mae_hivit-base-p16-hifeat_8xb512-amp-coslr-400e_in1k.py'

model = dict(
    backbone=dict(arch='small'),
    neck=dict(embed_dim=7 * 384))
