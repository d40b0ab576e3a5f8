# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""HiViT-MAE: masking, frozen embeddings, decoder bookkeeping, loss and gradients."""
import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmpretrain.models.necks import MAEPretrainDecoder
from mmpretrain.structures import DataSample

from conftest import HIVIT_TINY, backward_reaches_every_parameter, tiny_hivit_mae
from hivit_mm.models import ClsFreeMAEDecoder, MaskedHiViT, random_unit_masking


# -- masking ---------------------------------------------------------------------
def test_masking_counts_and_bookkeeping():
    ids_keep, mask, ids_restore = random_unit_masking(3, 196, 0.75)
    assert ids_keep.shape == (3, 49)  # int(196 * 0.25)
    assert mask.shape == (3, 196) and torch.equal(mask.sum(1), torch.full((3, ), 147.))
    for b in range(3):
        assert not mask[b, ids_keep[b]].any()  # kept units are unmasked
        assert len(set(ids_keep[b].tolist())) == 49
    # ids_restore inverts the shuffle: kept tokens first, then the rest
    shuffled = torch.cat([ids_keep, torch.zeros(3, 147, dtype=torch.long)], 1)
    restored = torch.gather(shuffled, 1, ids_restore)
    visible = mask == 0
    assert torch.equal(restored[visible], torch.arange(196).expand(3, -1)[visible])


def test_masks_are_random_per_sample_and_reproducible():
    g = torch.Generator().manual_seed(1)
    a = random_unit_masking(4, 16, 0.5, generator=g)[0]
    assert len({tuple(sorted(r.tolist())) for r in a}) > 1
    g2 = torch.Generator().manual_seed(1)
    assert torch.equal(a, random_unit_masking(4, 16, 0.5, generator=g2)[0])


@pytest.mark.parametrize('ratio', [0., 1., -0.1, 1.5])
def test_mask_ratio_out_of_range_is_rejected(ratio):
    with pytest.raises(ValueError, match='mask_ratio must be in'):
        random_unit_masking(1, 16, ratio)
    with pytest.raises(ValueError, match='mask_ratio must be in'):
        MaskedHiViT(arch=dict(HIVIT_TINY), img_size=32, mask_ratio=ratio)


def test_encoder_output_shapes_and_size_check():
    enc = MaskedHiViT(arch=dict(HIVIT_TINY), img_size=64, fuse_stem_features=True)
    enc.init_weights()
    latent, mask, ids_restore = enc(torch.randn(2, 3, 64, 64))
    assert latent.shape == (2, 4, 7 * 32) and mask.shape == (2, 16)
    assert enc(torch.randn(2, 3, 64, 64), mask=None)[0].shape == (2, 32, 4, 4)
    with pytest.raises(ValueError, match='img_size 64x64'):
        enc(torch.randn(2, 3, 32, 32))


def test_fused_features_are_the_stem_tokens_of_each_kept_unit():
    enc = MaskedHiViT(arch=dict(HIVIT_TINY), img_size=64, fuse_stem_features=True)
    enc.init_weights()
    enc.norm = nn.Identity()
    x = torch.randn(1, 3, 64, 64)
    torch.manual_seed(3)
    latent, mask, ids_restore = enc(x)
    torch.manual_seed(3)
    ids_keep = random_unit_masking(1, 16, 0.75)[0]
    s0, s1, main = enc.forward_units(x, ids_keep)
    expected = torch.cat([s0[0, 2].flatten(), s1[0, 2].flatten(), main[0, 2]])
    torch.testing.assert_close(latent[0, 2], expected)


# -- decoder ---------------------------------------------------------------------
def _bookkeeping(decoder, num_patches=16, keep=4, dim=8):
    """Feed each visible token its unit index; return where each value lands."""
    decoder.decoder_embed = nn.Identity()
    decoder.decoder_blocks = nn.ModuleList()
    decoder.ln1 = nn.Identity()
    decoder.decoder_pred = nn.Identity()
    decoder.decoder_pos_embed.data.zero_()
    decoder.mask_token.data.fill_(-1.)
    ids_keep, mask, ids_restore = random_unit_masking(
        2, num_patches, 1 - keep / num_patches,
        generator=torch.Generator().manual_seed(0))
    feats = ids_keep[..., None].float().expand(-1, -1, dim)
    out = decoder(feats, ids_restore)[..., 0]
    expected = torch.where(mask.bool(), -1., torch.arange(num_patches).float())
    return out, expected


def test_decoder_puts_visible_token_k_at_position_k():
    out, expected = _bookkeeping(ClsFreeMAEDecoder(num_patches=16, embed_dim=8,
                                                   decoder_embed_dim=8,
                                                   decoder_depth=1, decoder_num_heads=2))
    assert out.shape == (2, 16)
    assert torch.equal(out, expected)


def test_stock_decoder_misplaces_tokens_of_a_cls_free_encoder():
    """Why ClsFreeMAEDecoder exists: mmpretrain's decoder drops token 0 as a class
    token, so a class-free encoder's visible tokens land in the wrong slots."""
    stock = MAEPretrainDecoder(num_patches=16, embed_dim=8, decoder_embed_dim=8,
                               decoder_depth=1, decoder_num_heads=2)
    stock.decoder_pos_embed = nn.Parameter(torch.zeros(1, 17, 8), requires_grad=False)
    out, expected = _bookkeeping(stock)
    assert not torch.equal(out[:, 1:], expected)


def test_decoder_pos_embed_is_fixed_sincos_without_cls_slot():
    dec = ClsFreeMAEDecoder(num_patches=16, embed_dim=8, decoder_embed_dim=8,
                            decoder_depth=1, decoder_num_heads=2)
    dec.init_weights()
    assert dec.decoder_pos_embed.shape == (1, 16, 8)
    assert not dec.decoder_pos_embed.requires_grad
    assert dec.decoder_pos_embed.abs().sum() > 0


# -- algorithm ---------------------------------------------------------------------
def _batch(model, n=2, img=64):
    data = dict(inputs=torch.rand(n, 3, img, img) * 255,  # default_collate-stacked
                data_samples=[DataSample() for _ in range(n)])
    return model.data_preprocessor(data, True)


def test_loss_counts_masked_units_only():
    model = tiny_hivit_mae(fuse=True)
    head = model.head
    imgs = torch.rand(2, 3, 64, 64)
    target = head.construct_target(imgs)  # B, L, 768 (normalised pixels)
    mask = torch.zeros(2, 16)
    mask[:, :12] = 1
    pred = target.clone()
    pred[mask == 0] += 5.  # wrong only on visible units
    assert head.loss(pred, imgs, mask).item() == pytest.approx(0., abs=1e-6)
    pred = target.clone()
    pred[mask == 1] += 1.  # wrong on masked units
    assert head.loss(pred, imgs, mask).item() == pytest.approx(1., rel=1e-4)


@pytest.mark.parametrize('fuse,rpe', [(True, False), (False, True)])
def test_gradients_reach_every_trainable_parameter(fuse, rpe):
    model = tiny_hivit_mae(fuse=fuse, rpe=rpe)
    for name, p in model.named_parameters():
        if 'relative_position_bias_table' in name:
            nn.init.normal_(p, std=.5)
    data = _batch(model)
    backward_reaches_every_parameter(model, data)


def test_fixed_embeddings_get_no_gradient_and_do_not_change():
    model = tiny_hivit_mae(fuse=True)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()
              if n.endswith('pos_embed')}
    qkv_before = model.backbone.blocks[0].attn.qkv.weight.detach().clone()
    assert sorted(frozen) == ['backbone.pos_embed', 'neck.decoder_pos_embed']
    optim = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05)))
    data = _batch(model)
    optim.update_params(model(**data, mode='loss')['loss'])
    params = dict(model.named_parameters())
    for name, before in frozen.items():
        assert not params[name].requires_grad and params[name].grad is None
        assert torch.equal(params[name], before)
    assert not torch.equal(model.backbone.blocks[0].attn.qkv.weight, qkv_before)


def test_large_mae_config_is_the_base_recipe_with_hivit_l():
    from mmengine.config import Config

    from conftest import REPO
    base, large = (Config.fromfile(str(
        REPO / f'configs/mae/mae_hivit-{arch}-p16-hifeat_8xb512-amp-coslr-1600e_in1k.py'))
        for arch in ('base', 'large'))
    assert large.model.backbone == dict(base.model.backbone, arch='large')
    assert large.model.neck == dict(base.model.neck, embed_dim=7 * 768)  # fused stem
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert large[key] == base[key], key
