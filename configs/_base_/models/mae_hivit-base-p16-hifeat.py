# HiViT-B MAE as the official release trains it (zhangxiaosong18/hivit,
# self_supervised/models/models_hivit_mae.py and main_pretrain.py): encoder [2, 2, 20],
# 512 wide, 8 heads, no relative bias, a sin-cos absolute embedding that is trained (the
# release's requires_grad=False sits on the tensor inside nn.Parameter, which ignores
# it; freeze_pos_embed=True keeps MAE's fixed table), stem features
# fused into the decoder input ("hifeat": 4x4 stage-0 + 2x2 stage-1 + main token =
# 7 * 512 channels, then LN), decoder 512-d x 6 blocks x 16 heads, normalised-pixel L2
# loss on masked units. Algorithm, head, loss and preprocessor are mmpretrain's.
custom_imports = dict(imports=['hivit_mm.models'], allow_failed_imports=False)

embed_dims = 512
model = dict(
    type='MAE',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='hivit_mm.MaskedHiViT',
        arch='base',
        img_size=224,
        mask_ratio=0.75,
        fuse_stem_features=True,
        freeze_pos_embed=False),
    neck=dict(
        type='hivit_mm.ClsFreeMAEDecoder',
        num_patches=196,
        patch_size=16,
        in_chans=3,
        embed_dim=7 * embed_dims,  # fused stem features; embed_dims without fusion
        decoder_embed_dim=512,
        decoder_depth=6,
        decoder_num_heads=16,
        mlp_ratio=4.),
    head=dict(
        type='MAEPretrainHead',
        norm_pix=True,
        patch_size=16,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    # Official: trunc-normal(0.02) on every Linear (not MAE-ViT's Xavier); the
    # patch-embedding conv keeps PyTorch's default.
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
    ])
