# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# GreenMIM Swin-B (window 7) as the official release trains it (Huang et al., NeurIPS
# 2022, arXiv 2205.13515; LayneH/GreenMIM `green_mim_swin_base_patch4_dec512b1`): Swin-B
# encoder (embed 128, depths [2, 2, 18, 2], heads [4, 8, 16, 32], patch 4, no absolute
# embedding, no drop path, LN eps 1e-6) that computes only the visible 32x32-px units (7x7
# = 49 at 224 px, ratio 0.75: 12 kept), one mask per iteration shared by the batch,
# "masking"/"grouping" attention chosen per stage; MAE decoder 512-d x 1 block x 16 heads
# with a fixed sin-cos embedding and no class-token slot, predicting 32*32*3 pixels per
# unit; L2 loss on normalised pixels of the masked units. Algorithm, head, loss and
# preprocessor are mmpretrain's, as in the HiViT MAE base this file inherits (its
# preprocessor, decoder width and heads and loss are GreenMIM's too).
_base_ = './mae_hivit-base-p16-hifeat.py'  # MAE with the class-free decoder

patch_size = 4
embed_dims = 128
model = dict(
    backbone=dict(
        _delete_=True,
        type='hivit_mm.GreenSwin',
        arch='base',
        img_size=224,
        patch_size=patch_size,
        window_size=7,
        mask_ratio=0.75,
        shared_mask=True,  # as released; False draws one mask per sample
        attn_mode='auto',
        drop_path_rate=0.,
        out_indices=(3, )),
    neck=dict(
        num_patches=49,  # (224 / 32)**2 mask units
        patch_size=32,
        embed_dim=8 * embed_dims,  # the last Swin stage
        decoder_depth=1),
    head=dict(patch_size=32),
    # Official `MaskedAutoencoder.initialize_weights`: Xavier-uniform on every Linear,
    # the encoder's included (over Swin's trunc-normal), biases 0; the patch-embedding
    # conv Xavier-uniform as a (C_out, C_in*p*p) matrix, i.e. U(+-sqrt(6 / (C_in*p*p +
    # C_out))) (mmengine's Xavier would count C_out*p*p); LayerNorms 1, 0. Then the
    # modules' own init: relative position tables trunc-normal(0.02) (mmpretrain's
    # WindowMSA), mask token normal(0.02) and sin-cos decoder embedding
    # (ClsFreeMAEDecoder). One difference: the conv bias is 0 here, PyTorch's default
    # uniform in the release.
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform', bias=0.),
        dict(
            type='Uniform',
            layer='Conv2d',
            a=-(6 / (3 * patch_size**2 + embed_dims))**0.5,
            b=(6 / (3 * patch_size**2 + embed_dims))**0.5,
            bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ])
