# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Contract tests of the HiViT backbone on tiny archs (CPU, seconds)."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.runner import save_checkpoint

from conftest import HIVIT_TINY
from hivit_mm.models import HiViT, attention
from hivit_mm.models.geometry import (relative_position_index, resize_abs_pos_embed,
                                      resize_rel_pos_bias_table)
from hivit_mm.models.hivit import quarter_global_blocks
from hivit_mm.models.loading import load_backbone_weights
from hivit_mm.utils.complexity import count_macs


def tiny(**kwargs) -> HiViT:
    torch.manual_seed(0)
    model = HiViT(arch=dict(HIVIT_TINY), **kwargs)
    model.init_weights()
    return model.eval()


def with_head(backbone: HiViT, num_classes: int = 1000) -> nn.Module:
    """Backbone + the official head (mean-pool, LN, linear), as in the paper's table."""
    from hivit_mm.models import MeanPoolLayerNorm

    class Classifier(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.neck = MeanPoolLayerNorm(backbone.embed_dims)
            self.fc = nn.Linear(backbone.embed_dims, num_classes)

        def forward(self, x):
            return self.fc(self.neck(self.backbone(x))[0])

    return Classifier()


# -- architecture table ------------------------------------------------------
@pytest.mark.parametrize('arch,params_m', [('tiny', 19.18), ('small', 37.53),
                                           ('base', 66.42)])
def test_param_counts_match_paper(arch, params_m):
    model = with_head(HiViT(arch=arch, use_rel_pos_bias=True))
    count = sum(p.numel() for p in model.parameters())
    assert f'{count / 1e6:.2f}' == f'{params_m:.2f}'


@pytest.mark.parametrize('arch,gmacs', [('tiny', 4.60), ('base', 15.85)])
def test_flops_match_paper(arch, gmacs):
    model = with_head(HiViT(arch=arch, use_rel_pos_bias=True)).eval()
    macs = count_macs(model, (1, 3, 224, 224))
    assert abs(macs / 1e9 - gmacs) / gmacs < 0.01, macs


def test_base_is_the_paper_base():
    base = HiViT(arch='base')
    assert (base.embed_dims, base.depths, base.num_heads) == (512, (2, 2, 20), 8)
    assert len(base.blocks) == 20
    assert [len(s.blocks) for s in base.stem] == [4, 4]


def test_large_is_mmpretrains_large():
    """HiViT-L, the iTPN definition (768 wide, depths (2, 2, 40), 12 heads), has exactly
    the parameters of mmpretrain's ``HiViT(arch='large')`` at equal settings (absolute
    embedding and relative bias on), and 290.71M with a 1000-class head."""
    from mmpretrain.models.backbones import HiViT as MMPretrainHiViT
    ours = HiViT(arch='large', use_rel_pos_bias=True)
    assert (ours.embed_dims, ours.depths, ours.num_heads) == (768, (2, 2, 40), 12)
    count = sum(p.numel() for p in ours.parameters())
    theirs = MMPretrainHiViT(arch='large', img_size=224, ape=True, rpe=True,
                             out_indices=[39])
    assert count == sum(p.numel() for p in theirs.parameters())
    del theirs
    assert f'{sum(p.numel() for p in with_head(ours).parameters()) / 1e6:.2f}' == '290.71'


def test_bad_arch_names_the_valid_ones():
    with pytest.raises(ValueError,
                       match=r"unknown HiViT arch 'huge'.*'base'.*'small'.*'tiny'"):
        HiViT(arch='huge')
    with pytest.raises(ValueError, match='needs keys'):
        HiViT(arch=dict(embed_dims=32, depths=(1, 1, 2)))
    with pytest.raises(ValueError, match='divisible'):
        HiViT(arch=dict(embed_dims=30, depths=(1, 1, 2), num_heads=4))
    with pytest.raises(ValueError, match='three positive ints'):
        HiViT(arch=dict(embed_dims=32, depths=(1, 2), num_heads=2))


def test_sizes_not_multiple_of_16_are_rejected():
    with pytest.raises(ValueError, match='img_size 40x40 is not a multiple'):
        HiViT(arch=dict(HIVIT_TINY), img_size=40)
    model = tiny(img_size=32)
    with pytest.raises(ValueError, match='input 32x40 is not a multiple'):
        model(torch.randn(1, 3, 32, 40))


# -- outputs -------------------------------------------------------------------
def test_stage_outputs_shapes_and_strides():
    model = tiny(img_size=64, out_indices=(0, 1, 2, 3), out_norm=True)
    outs = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 16, 24), (2, 16, 8, 12),
                                              (2, 32, 4, 6), (2, 32, 2, 3)]
    assert model.channels == (8, 16, 32, 32) and model.strides == (4, 8, 16, 32)
    assert sorted(model.out_norms) == ['0', '1', '2', '3']


def test_negative_out_indices_and_errors():
    model = tiny(img_size=32, out_indices=(-1, -2))
    assert model.out_indices == (3, 2)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [2, 4]
    with pytest.raises(ValueError, match='repeats'):
        HiViT(arch=dict(HIVIT_TINY), out_indices=(2, -2))
    with pytest.raises(ValueError, match='out of range'):
        HiViT(arch=dict(HIVIT_TINY), out_indices=(4, ))


def test_stage_maps_are_the_unit_tokens_in_place():
    """Token (unit u, inner i, j) lands at pixel row 4*uh + i, col 4*uw + j."""
    model = tiny(img_size=32, out_indices=(0, 1, 2), stem_taps='end')
    x = torch.randn(1, 3, 32, 48)
    s0, s1, main = model.forward_units(x)
    m0, m1, m2 = model(x)
    # unit 4 of the 2x3 grid is (1, 1); inner token (2, 3)
    assert torch.equal(m0[0, :, 4 + 2, 4 + 3], s0[0, 4, 2, 3])
    assert torch.equal(m1[0, :, 2 + 1, 2 + 0], s1[0, 4, 1, 0])
    assert torch.equal(m2[0, :, 1, 1], main[0, 4])


# -- masked path -----------------------------------------------------------------
def test_masked_path_with_all_units_in_order_equals_plain_path():
    model = tiny(img_size=64, use_rel_pos_bias=True)
    x = torch.randn(2, 3, 64, 64)
    ids = torch.arange(16).expand(2, -1)
    for a, b in zip(model.forward_units(x), model.forward_units(x, ids)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_masked_path_is_equivariant_to_unit_permutations_with_rpe():
    """A permutation of all units permutes the outputs: the gathered relative index
    (index[ids][:, ids]) and absolute embedding follow the units."""
    model = tiny(img_size=64, use_rel_pos_bias=True)
    for blk in model.blocks:  # make the bias matter
        nn.init.normal_(blk.attn.relative_position_bias_table, std=1.)
    x = torch.randn(2, 3, 64, 64)
    perm = torch.stack([torch.randperm(16), torch.randperm(16)])
    full = model.forward_units(x)[2]
    permuted = model.forward_units(x, perm)[2]
    expected = torch.gather(full, 1, perm[..., None].expand(-1, -1, 32))
    torch.testing.assert_close(permuted, expected, rtol=1e-5, atol=1e-5)


def test_masked_stem_matches_full_stem_per_unit():
    model = tiny(img_size=64)
    x = torch.randn(2, 3, 64, 64)
    keep = torch.tensor([[3, 7, 0], [15, 1, 2]])
    full, masked = model.forward_units(x), model.forward_units(x, keep)
    for f, m in zip(full[:2], masked[:2]):
        idx = keep.reshape(2, 3, *[1] * (f.dim() - 2)).expand(-1, -1, *f.shape[2:])
        torch.testing.assert_close(m, torch.gather(f, 1, idx), rtol=0, atol=0)


def test_rpe_changes_masked_outputs():
    """The bias is used under masking (mmpretrain silently drops it)."""
    model = tiny(img_size=64, use_rel_pos_bias=True)
    keep = torch.tensor([[3, 7, 0, 9]])
    x = torch.randn(1, 3, 64, 64)
    before = model.forward_units(x, keep)[2]
    nn.init.normal_(model.blocks[0].attn.relative_position_bias_table, std=1.)
    assert not torch.allclose(before, model.forward_units(x, keep)[2])


# -- sizes and tables ---------------------------------------------------------------
def test_abs_pos_embed_resized_only_when_grid_differs():
    table = torch.randn(1, 4, 32)
    for mode in ('scale_factor', 'size'):
        assert resize_abs_pos_embed(table, (2, 2), (2, 2), mode) is table
        assert resize_abs_pos_embed(table, (2, 2), (3, 5), mode).shape == (1, 15, 32)
    model = tiny(img_size=32, out_indices=(2, ))
    out = model(torch.randn(1, 3, 48, 80))[0]
    assert out.shape == (1, 32, 3, 5)


def test_relative_position_index_matches_brute_force():
    idx = relative_position_index((2, 3))
    coords = [(i, j) for i in range(2) for j in range(3)]
    for a, (ia, ja) in enumerate(coords):
        for b, (ib, jb) in enumerate(coords):
            assert idx[a, b] == (ia - ib + 1) * 5 + (ja - jb + 2)


def test_rel_table_resize_identity_and_shape():
    table = torch.randn(9, 2)
    assert resize_rel_pos_bias_table(table, (2, 2), (2, 2)) is table
    assert resize_rel_pos_bias_table(table, (2, 2), (4, 3)).shape == (35, 2)
    with pytest.raises(ValueError, match='expected 9'):
        resize_rel_pos_bias_table(torch.randn(8, 2), (2, 2), (3, 3))


def test_tables_saved_for_another_grid_are_resized_on_load():
    small = tiny(img_size=32, use_rel_pos_bias=True)
    big = tiny(img_size=64, use_rel_pos_bias=True)
    big.load_state_dict(small.state_dict(), strict=True)
    expected = resize_rel_pos_bias_table(  # HiViT's default rel_pos_resize
        small.blocks[1].attn.relative_position_bias_table, (2, 2), (4, 4), 'geometric')
    torch.testing.assert_close(big.blocks[1].attn.relative_position_bias_table.data,
                               expected)
    assert big.pos_embed.shape == (1, 16, 32)
    assert 'rel_pos_index' not in big.state_dict()  # derived, never saved


def test_rel_pos_index_is_one_shared_buffer():
    model = tiny(img_size=64, use_rel_pos_bias=True)
    buffers = [n for n, _ in model.named_buffers()]
    assert buffers == ['rel_pos_index']
    windowed = tiny(img_size=64, use_rel_pos_bias=True, window_size=2)
    assert [n for n, _ in windowed.named_buffers()] == ['rel_pos_index',
                                                        'win_rel_pos_index']


def test_rpe_on_a_grid_smaller_than_its_tables_is_exact():
    """A 1x2 input uses the tables' rows of the 1x2 offsets: the same output as the
    first two units of a 2x2 input kept by a masked forward (the stem is per unit)."""
    model = tiny(img_size=32, use_rel_pos_bias=True, use_abs_pos_embed=False)
    for blk in model.blocks:
        nn.init.normal_(blk.attn.relative_position_bias_table, std=1.)
    x = torch.randn(1, 3, 32, 32)
    small = model.forward_units(x[..., :16, :])[2]  # 1, 2, C
    kept = model.forward_units(x, torch.tensor([[0, 1]]))[2]
    torch.testing.assert_close(small, kept, rtol=0, atol=0)
    assert model(x[..., :16, :])[0].shape == (1, 32, 1, 2)
    with pytest.raises(ValueError, match=r'input grid \(3, 2\) exceeds'):
        model(torch.randn(1, 3, 48, 32))


# -- window attention ---------------------------------------------------------------
def _stitch_reference(model_global, x, ws):
    """Run the global model on each window-sized crop and stitch the main maps."""
    H, W = x.shape[-2:]
    step = ws * 16
    rows = []
    for top in range(0, H, step):
        row = [model_global(x[..., top:top + step, left:left + step])[0]
               for left in range(0, W, step)]
        rows.append(torch.cat(row, dim=-1))
    return torch.cat(rows, dim=-2)


@pytest.mark.parametrize('size', [(64, 64), (48, 80)])
@pytest.mark.parametrize('rpe', [False, True])
def test_window_attention_equals_global_attention_per_window(size, rpe):
    kwargs = dict(img_size=64, use_abs_pos_embed=False, use_rel_pos_bias=rpe)
    # masked padding: a border window sees only its own tokens (the release's zero
    # tokens are tested against its reference in test_official_fidelity.py)
    windowed = tiny(window_size=2, global_blocks=(), window_padding='masked', **kwargs)
    plain = tiny(**kwargs)
    for blk in windowed.blocks:
        if rpe:
            nn.init.normal_(blk.attn.relative_position_bias_table, std=1.)
    plain.load_state_dict(windowed.state_dict())
    x = torch.randn(1, 3, *size)
    torch.testing.assert_close(
        windowed(x)[0], _stitch_reference(plain, x, 2), rtol=1e-5, atol=1e-5)


def test_window_size_covering_grid_equals_global():
    windowed = tiny(img_size=64, window_size=4, global_blocks=(1, ))
    plain = tiny(img_size=64)
    plain.load_state_dict(windowed.state_dict())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(windowed(x)[0], plain(x)[0], rtol=1e-5, atol=1e-5)


def test_quarter_global_blocks_rule():
    assert quarter_global_blocks(20) == (4, 9, 14, 19)
    assert quarter_global_blocks(10) == (1, 4, 6, 9)
    assert tiny(window_size=2).global_blocks == (0, 1)
    with pytest.raises(ValueError, match='only used with window_size'):
        HiViT(arch=dict(HIVIT_TINY), global_blocks=(0, ))
    with pytest.raises(ValueError, match='masked forward'):
        tiny(img_size=32, window_size=1).forward_units(
            torch.randn(1, 3, 32, 32), torch.tensor([[0]]))


# -- training behaviour -------------------------------------------------------------
def test_gradients_reach_every_parameter():
    model = tiny(img_size=32, use_rel_pos_bias=True, out_indices=(0, 1, 2, 3),
                 out_norm=True, drop_path_rate=0.1).train()
    sum(o.square().mean() for o in model(torch.randn(2, 3, 32, 32))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or
               not p.grad.abs().sum()]
    assert not missing


def test_drop_path_follows_the_official_schedule():
    model = HiViT(arch=dict(HIVIT_TINY), drop_path_rate=0.5)
    blocks = [b for s in model.stem for b in s.blocks] + list(model.blocks)
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for b in blocks]
    assert len(rates) == 2 + 2 + 2  # 2*d0 + 2*d1 + d2
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, .5, 6))


def test_with_cp_gives_the_same_numbers():
    ref = tiny(img_size=32, use_rel_pos_bias=True).train()
    ckpt = tiny(img_size=32, use_rel_pos_bias=True, with_cp=True).train()
    ckpt.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 32, 32)
    out_ref, out_cp = ref(x)[0], ckpt(x)[0]
    torch.testing.assert_close(out_ref, out_cp)
    out_ref.sum().backward()
    out_cp.sum().backward()
    for (n, a), b in zip(ref.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=n)


@pytest.mark.parametrize('stages,frozen_prefixes', [
    (0, ('patch_embed.', 'stem.0.blocks.')),
    (2, ('patch_embed.', 'stem.', 'pos_embed', 'blocks.', 'out_norms.2.')),
])
def test_frozen_stages_stay_frozen_and_in_eval(stages, frozen_prefixes):
    model = tiny(frozen_stages=stages, out_indices=(2, ), out_norm=True)
    model.train()
    for name, p in model.named_parameters():
        assert p.requires_grad != name.startswith(frozen_prefixes), name
    assert not model.patch_embed.training
    assert model.blocks[0].training == (stages < 2)
    with pytest.raises(ValueError, match='frozen_stages'):
        HiViT(arch=dict(HIVIT_TINY), frozen_stages=4)


def test_layer_depth_convention():
    model = HiViT(arch=dict(HIVIT_TINY), use_rel_pos_bias=True, out_norm=True)
    depth = {n: model.get_layer_depth('backbone.' + n, 'backbone.')
             for n, _ in model.named_parameters()}
    assert {v[1] for v in depth.values()} == {4}
    assert depth['patch_embed.proj.weight'] == (0, 4)
    assert depth['pos_embed'] == (0, 4)
    assert depth['stem.1.downsample.reduction.weight'] == (0, 4)
    assert depth['blocks.0.attn.relative_position_bias_table'] == (1, 4)
    assert depth['blocks.1.mlp.fc2.bias'] == (2, 4)
    assert depth['out_norms.2.weight'] == (3, 4)
    assert model.get_layer_depth('head.fc.weight', 'backbone.') == (3, 4)


# -- checkpoints -------------------------------------------------------------------
def test_pretrained_init_cfg_loads_every_key(tmp_path):
    src = tiny(img_size=32, use_rel_pos_bias=True)
    path = str(tmp_path / 'ckpt.pth')
    save_checkpoint({'backbone.' + k: v for k, v in src.state_dict().items()}, path)
    dst = HiViT(arch=dict(HIVIT_TINY), img_size=32, use_rel_pos_bias=True,
                init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def test_pretrained_without_a_checkpoint_says_what_to_set():
    model = HiViT(arch=dict(HIVIT_TINY), init_cfg=dict(type='Pretrained', checkpoint=''))
    with pytest.raises(ValueError, match='model.backbone.init_cfg.checkpoint=PATH'):
        model.init_weights()


def test_pretrained_mismatches_are_named(tmp_path):
    src = tiny(img_size=32)
    state = src.state_dict()
    dst = tiny(img_size=32)
    bad = copy.copy(state)  # with the grid HiViT records
    del bad['blocks.1.mlp.fc1.weight']
    bad['blocks.0.extra'] = torch.zeros(1)
    bad['blocks.0.norm1.weight'] = torch.zeros(7)
    with pytest.raises(KeyError) as err:
        load_backbone_weights(dst, bad, source='bad.pth')
    msg = str(err.value)
    assert 'blocks.1.mlp.fc1.weight' in msg and 'blocks.0.extra' in msg
    assert 'blocks.0.norm1.weight: checkpoint (7,) vs model (32,)' in msg


def test_out_norms_missing_from_a_pretraining_checkpoint_keep_their_init():
    src = tiny(img_size=32)
    dst = tiny(img_size=32, out_indices=(0, 1, 2, 3), out_norm=True)
    load_backbone_weights(dst, src.state_dict())
    assert torch.equal(dst.out_norms['2'].weight, torch.ones(32))
    partial = copy.copy(src.state_dict())  # with the grid HiViT records
    partial['out_norms.0.weight'] = torch.ones(8)
    with pytest.raises(KeyError, match='out_norms.0.bias'):  # some, but not all
        load_backbone_weights(dst, partial)


def test_attention_masks_follow_the_autocast_dtype(monkeypatch):
    """SDPA needs the mask in the query's dtype (CUDA raises or misreads otherwise)."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        seen.append((q.dtype, None if attn_mask is None else attn_mask.dtype))
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(torch.nn.functional, 'scaled_dot_product_attention', spy)
    for key in attention.CPU_MATH_MAX_LEN:  # SDPA on every length, as on a GPU
        monkeypatch.setitem(attention.CPU_MATH_MAX_LEN, key, -1)
    model = tiny(img_size=48, window_size=2, global_blocks=(1, ), use_rel_pos_bias=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 48, 48))[0]
    assert torch.isfinite(out.float()).all()
    assert len(seen) == 2 and all(q == m == torch.bfloat16 for q, m in seen)


def test_rel_tables_missing_from_a_no_rpe_checkpoint_start_at_zero():
    src = tiny(img_size=32)  # no RPE, as MAE pre-training
    state = copy.copy(src.state_dict())  # with the grid HiViT records
    state['norm.weight'] = torch.ones(32)
    dst = tiny(img_size=32, use_rel_pos_bias=True, rel_pos_zero_init=True)
    load_backbone_weights(dst, state)
    assert not dst.blocks[0].attn.relative_position_bias_table.abs().sum()
    torch.testing.assert_close(dst.blocks[1].mlp.fc1.weight, src.blocks[1].mlp.fc1.weight)
