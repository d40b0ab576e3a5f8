# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""HiViT's detection and segmentation forward passes against the official release.

The references below are written here, from the definitions of the official release
(zhangxiaosong18/hivit, MIT): ``detection/mmdet/models/backbones/hivit.py``,
``segmentation/backbone/hivit.py``, ``detection/models/models_hivit.py`` and
``segmentation/mmcv_custom/checkpoint.py::load_checkpoint_hivit``. They work on a state
dict in the release's key layout (one flat ``blocks`` list, ``absolute_pos_embed``);
the same weights go through hivit_mm's converter into :class:`hivit_mm.models.HiViT`,
and both run in float64, so any difference is a difference of behaviour:

* relative tables resized on load by cubic splines on a geometric grid of source
  offsets (BEiT; the release's ``interp2d(kind='cubic')``, here a tensor product of
  not-a-knot cubic splines, cross-checked against SciPy's ``RectBivariateSpline``);
* the absolute embedding kept at its pre-training grid and resized at every forward by
  ``interpolate(scale_factor=((h + 0.1) / h0, (w + 0.1) / w0), mode='bicubic')``;
* window attention (ViTDet): the grid padded with zero tokens before each windowed
  block, no key mask, cropped after the block;
* the stride-4 map after the first half of stem stage 0's blocks, the stride-8 map right
  after the first PatchMerge.
"""
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.interpolate import CubicSpline, RectBivariateSpline

from hivit_mm.models import HiViT
from hivit_mm.models.convert_hivit import convert_official_hivit

RTOL = 1e-5
SMALL = dict(embed_dims=64, depths=(2, 2, 4), num_heads=4)
StateDict = Dict[str, torch.Tensor]


# ----------------------------------------------------------------------------
# References
# ----------------------------------------------------------------------------
def ref_geometric_ratio(src: int, dst: int) -> float:
    """The release's ratio ``q``: bisection on [1.01, 1.5] to a width of 1e-6 of
    ``sum(q**i for i < src // 2) > dst // 2``; the last midpoint is kept."""
    left, right = 1.01, 1.5
    q = None
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if sum(q**i for i in range(src // 2)) > dst // 2:
            right = q
        else:
            left = q
    return q


def ref_geometric_table(table: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    """``(src**2, heads) -> (dst**2, heads)`` (sides of the square offset tables):
    source offsets 0, +-1, +-(1 + q), +-(1 + q + q**2), ...; per head a cubic
    interpolating spline (not-a-knot ends) along each axis, sampled at the integer
    offsets -(dst // 2) .. dst // 2. Values pass through float32, as the release's
    ``.float().numpy()``."""
    q = ref_geometric_ratio(src, dst)
    dis = np.cumsum([q**i for i in range(src // 2)])  # 1, 1 + q, ...
    xs = np.concatenate([-dis[::-1], [0.], dis])
    t = dst // 2
    xd = np.arange(-t, t + 0.1, 1.0)
    out = []
    for h in range(table.shape[1]):
        z = table[:, h].reshape(src, src).float().numpy().astype(np.float64)
        z = CubicSpline(xs, z, axis=0, bc_type='not-a-knot')(xd)  # dst, src
        z = CubicSpline(xs, z, axis=1, bc_type='not-a-knot')(xd)  # dst, dst
        out.append(torch.tensor(z, dtype=torch.float32).reshape(-1, 1))
    return torch.cat(out, dim=1).to(table.dtype)


def ref_abs_pos(table: torch.Tensor, img_hw: Tuple[int, int]) -> torch.Tensor:
    """The release's ``interpolate_pos_encoding``: ``(1, N0, C) -> (1, h*w, C)``."""
    n0 = math.isqrt(table.shape[1])
    H, W = img_hw
    h, w = H // 16, W // 16
    if h * w == table.shape[1] and H == W:
        return table
    x = table.reshape(1, n0, n0, -1).permute(0, 3, 1, 2)  # 1, C, n0, n0
    x = F.interpolate(x, scale_factor=((h + 0.1) / n0, (w + 0.1) / n0), mode='bicubic')
    assert x.shape[-2:] == (h, w)
    return x.permute(0, 2, 3, 1).reshape(1, h * w, -1)  # 1, hw, C


def _ln(x, sd, key, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], sd[key + '.weight'], sd[key + '.bias'], eps)


def _linear(x, sd, key):
    return F.linear(x, sd[key + '.weight'], sd.get(key + '.bias'))


def _mlp(x, sd, key):
    return _linear(F.gelu(_linear(x, sd, key + '.fc1')), sd, key + '.fc2')


def _attn_block(x, sd, key, heads, bias=None):
    """Official ``BlockWithRPE`` with attention: ``(B, N, C) -> (B, N, C)``."""
    B, N, C = x.shape
    h = _ln(x, sd, key + '.norm1')
    qkv = _linear(h, sd, key + '.attn.qkv').reshape(B, N, 3, heads, C // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each B, heads, N, C/heads
    attn = (q * (C // heads)**-0.5) @ k.transpose(-2, -1)  # B, heads, N, N
    if bias is not None:
        attn = attn + bias
    o = (attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
    x = x + _linear(o, sd, key + '.attn.proj')
    return x + _mlp(_ln(x, sd, key + '.norm2'), sd, key + '.mlp')


def _layernorm2d(x, w, b):
    return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], w, b,
                        1e-6).permute(0, 3, 1, 2)


def ref_forward(sd: StateDict, img: torch.Tensor, depths: Sequence[int], heads: int,
                window_size: Optional[int] = None, global_indices: Sequence[int] = (),
                out_norms: Optional[List[Tuple[torch.Tensor, torch.Tensor]]] = None,
                rel_grid: Optional[int] = None) -> List[torch.Tensor]:
    """The release's detection/segmentation ``HiViT.forward`` with ``with_fpn=True``
    and ``out_indices=['H', 'M', last, last]``: four maps at strides 4, 8, 16, 32.

    ``out_norms``: the detector's ``LayerNorm2d`` after each tap (``None``: the
    segmentor's identities); ``rel_grid``: side of the grid of the relative tables
    (global attention only, as the release).
    """
    B, _, H, W = img.shape
    hp, wp = H // 16, W // 16
    x = F.conv2d(img, sd['patch_embed.proj.weight'], sd['patch_embed.proj.bias'],
                 stride=4)  # B, C, 4hp, 4wp
    C = x.shape[1]
    x = x.reshape(B, C, hp, 4, wp, 4).permute(0, 2, 4, 3, 5, 1).reshape(
        B, hp * wp, 4, 4, C)  # B, L, 4, 4, C
    x = _ln(x, sd, 'patch_embed.norm')
    n_stem = 2 * depths[0] + 1 + 2 * depths[1] + 1
    merge = (depths[0] - 1, depths[0] + depths[1])  # the release's merge_indices
    feats = []
    for i in range(n_stem):
        key = f'blocks.{i}'
        if key + '.reduction.weight' in sd:  # PatchMerge
            x = torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :],
                           x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]], dim=-1)
            x = _linear(_ln(x, sd, key + '.norm'), sd, key + '.reduction')
        else:
            x = x + _mlp(_ln(x, sd, key + '.norm2'), sd, key + '.mlp')
        for tap, inner in zip(merge, (4, 2)):
            if i == tap:
                feats.append(
                    x.reshape(B, hp, wp, inner, inner, -1).permute(0, 5, 1, 3, 2, 4)
                    .reshape(B, -1, hp * inner, wp * inner))  # B, C', inner*hp, inner*wp
    x = x[..., 0, 0, :] + ref_abs_pos(sd['absolute_pos_embed'], (H, W))  # B, L, C
    C = x.shape[-1]
    bias_index = None
    if rel_grid is not None:
        g = rel_grid
        coords = torch.stack(torch.meshgrid(torch.arange(g), torch.arange(g),
                                            indexing='ij')).flatten(1)  # 2, g*g
        rel = coords[:, :, None] - coords[:, None, :]  # 2, gg, gg
        bias_index = (rel[0] + g - 1) * (2 * g - 1) + rel[1] + g - 1
    for k in range(depths[2]):
        key = f'blocks.{n_stem + k}'
        bias = None
        if bias_index is not None:
            table = sd[key + '.attn.relative_position_bias_table']
            bias = table[bias_index].permute(2, 0, 1)  # heads, N, N
        if window_size is not None and k not in global_indices:
            ws = window_size
            g = x.reshape(B, hp, wp, C)
            ph, pw = (-hp) % ws, (-wp) % ws
            g = F.pad(g, (0, 0, 0, pw, 0, ph))  # zero tokens
            Hp, Wp = hp + ph, wp + pw
            win = g.reshape(B, Hp // ws, ws, Wp // ws, ws, C).permute(
                0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)  # B*nW, ws*ws, C
            win = _attn_block(win, sd, key, heads)
            g = win.reshape(B, Hp // ws, Wp // ws, ws, ws, C).permute(
                0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)[:, :hp, :wp]  # crop
            x = g.reshape(B, hp * wp, C)
        else:
            x = _attn_block(x, sd, key, heads, bias)
    main = x.permute(0, 2, 1).reshape(B, C, hp, wp)
    feats += [main, F.max_pool2d(main, 2, 2)]
    if out_norms is not None:
        feats = [_layernorm2d(f, *wb) for f, wb in zip(feats, out_norms)]
    return feats


# ----------------------------------------------------------------------------
# Weights in the release's layout
# ----------------------------------------------------------------------------
def smooth_table(side: int, heads: int, g: torch.Generator) -> torch.Tensor:
    """A learned-looking relative table: smooth in the offset, peaked at 0."""
    r = torch.arange(side, dtype=torch.float64) - side // 2
    dh, dw = torch.meshgrid(r, r, indexing='ij')
    out = []
    for _ in range(heads):
        a, b, c = torch.rand(3, generator=g, dtype=torch.float64)
        t = 2 * a * torch.exp(-(dh**2 + dw**2) / (2 + 8 * b)) + 0.3 * torch.cos(
            (dh + 2 * dw) / (3 + 5 * c))
        out.append(t.reshape(-1, 1))
    return torch.cat(out, 1).float()


def official_state(depths: Sequence[int], dim: int, heads: int, grid: int,
                   rel_pos: bool, seed: int = 0) -> StateDict:
    """Random weights (float32) with the release's keys for an ``img_size`` grid."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.1):
        return torch.randn(*shape, generator=g) * std

    def norm(key, d):
        sd[key + '.weight'] = 1 + rnd(d)
        sd[key + '.bias'] = rnd(d)

    def linear(key, i, o, bias=True):
        sd[key + '.weight'] = rnd(o, i, std=i**-0.5)
        if bias:
            sd[key + '.bias'] = rnd(o)

    sd: StateDict = {}
    c = dim // 4
    sd['patch_embed.proj.weight'] = rnd(c, 3, 4, 4, std=0.2)
    sd['patch_embed.proj.bias'] = rnd(c)
    norm('patch_embed.norm', c)
    i = 0
    for stage in range(2):
        for _ in range(2 * depths[stage]):
            norm(f'blocks.{i}.norm2', c)
            linear(f'blocks.{i}.mlp.fc1', c, 3 * c)
            linear(f'blocks.{i}.mlp.fc2', 3 * c, c)
            i += 1
        norm(f'blocks.{i}.norm', 4 * c)
        linear(f'blocks.{i}.reduction', 4 * c, 2 * c, bias=False)
        i += 1
        c *= 2
    for _ in range(depths[2]):
        norm(f'blocks.{i}.norm1', dim)
        linear(f'blocks.{i}.attn.qkv', dim, 3 * dim)
        linear(f'blocks.{i}.attn.proj', dim, dim)
        norm(f'blocks.{i}.norm2', dim)
        linear(f'blocks.{i}.mlp.fc1', dim, 4 * dim)
        linear(f'blocks.{i}.mlp.fc2', 4 * dim, dim)
        if rel_pos:
            sd[f'blocks.{i}.attn.relative_position_bias_table'] = smooth_table(
                2 * grid - 1, heads, g)
        i += 1
    sd['absolute_pos_embed'] = rnd(1, grid * grid, dim, std=0.5)
    return sd


def to_hivit_mm(sd: StateDict, depths: Sequence[int], grid: int) -> StateDict:
    """Backbone keys of hivit_mm, through the project's converter, with the grid
    it records for the position tables (``grid x grid``, as :func:`official_state`)."""
    converted = convert_official_hivit(dict(model=sd), depths, img_size=16 * grid)
    out = OrderedDict((k[len('backbone.'):], v) for k, v in converted.items()
                      if k.startswith('backbone.'))
    out._metadata = OrderedDict({'': converted._metadata['backbone']})
    return out


def relative_close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = ((got - want).abs().max() / want.abs().max()).item()
    assert err < RTOL, f'{what}: relative max difference {err:.3g}'


# ----------------------------------------------------------------------------
# Relative tables
# ----------------------------------------------------------------------------
def test_reference_spline_is_scipy_interp2d_cubic():
    """The reference's separable not-a-knot splines equal FITPACK's interpolating
    bicubic spline (``RectBivariateSpline(kx=ky=3, s=0)``, what ``interp2d`` cubic
    fitted on a rectangular grid)."""
    g = torch.Generator().manual_seed(0)
    table = smooth_table(27, 2, g)
    got = ref_geometric_table(table, 27, 79)
    q = ref_geometric_ratio(27, 79)
    dis = np.cumsum([q**i for i in range(13)])
    xs = np.concatenate([-dis[::-1], [0.], dis])
    xd = np.arange(-39, 39.1, 1.0)
    for h in range(2):
        z = table[:, h].reshape(27, 27).numpy().astype(np.float64)
        want = RectBivariateSpline(xs, xs, z, kx=3, ky=3, s=0)(xd, xd)
        np.testing.assert_allclose(got[:, h].reshape(79, 79).numpy(), want, rtol=1e-6,
                                   atol=1e-6)


@pytest.mark.parametrize('src,dst', [(14, 40), (4, 8)])
def test_geometric_resize_keeps_near_offsets_and_the_corners(src, dst):
    """Offsets 0 and +-1 keep their source values and the far corners map to the far
    corners, also where the ratio is beyond the release's bracket (4 -> 8 units)."""
    from hivit_mm.models.geometry import geometric_ratio, resize_rel_pos_bias_table
    assert ref_geometric_ratio(27, 79) == pytest.approx(1.1685, abs=1e-4)
    assert geometric_ratio(13, 39) == ref_geometric_ratio(27, 79)
    s, d = 2 * src - 1, 2 * dst - 1
    table = smooth_table(s, 3, torch.Generator().manual_seed(1))
    out = resize_rel_pos_bias_table(table, (src, src), (dst, dst), mode='geometric')
    a = table.reshape(s, s, 3)
    b = out.reshape(d, d, 3)
    for dh, dw in [(0, 0), (0, 1), (1, 0), (-1, 1), (1, -1), (-1, -1)]:
        torch.testing.assert_close(b[d // 2 + dh, d // 2 + dw],
                                   a[s // 2 + dh, s // 2 + dw], rtol=1e-5, atol=1e-5)
    for i, j in [(0, 0), (-1, -1), (0, -1)]:
        torch.testing.assert_close(b[i, j], a[i, j], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('src,dst', [(14, 40), (14, 32), (7, 12), (8, 14), (14, 20)])
def test_geometric_resize_equals_the_reference(src, dst):
    from hivit_mm.models.geometry import resize_rel_pos_bias_table
    table = smooth_table(2 * src - 1, 4, torch.Generator().manual_seed(src + dst))
    got = resize_rel_pos_bias_table(table, (src, src), (dst, dst), mode='geometric')
    relative_close(got, ref_geometric_table(table, 2 * src - 1, 2 * dst - 1),
                   f'{src}->{dst}')
    # the bicubic option stays available and differs
    other = resize_rel_pos_bias_table(table, (src, src), (dst, dst), mode='bicubic')
    assert (other - got).abs().max() > 1e-3


def test_geometric_resize_refuses_what_the_release_cannot_do():
    from hivit_mm.models.geometry import resize_rel_pos_bias_table
    table = torch.zeros(27 * 27, 2)
    with pytest.raises(ValueError, match='geometric'):
        resize_rel_pos_bias_table(table, (14, 14), (10, 10), mode='geometric')
    with pytest.raises(ValueError, match='geometric'):
        resize_rel_pos_bias_table(torch.zeros(27 * 39, 2), (14, 20), (40, 40),
                                  mode='geometric')


# ----------------------------------------------------------------------------
# Detection and segmentation backbones
# ----------------------------------------------------------------------------
def det_backbone(img_size: int, window_size: int,
                 global_blocks: Sequence[int]) -> HiViT:
    """The 3x COCO config's backbone options, on the small arch."""
    return HiViT(arch=dict(SMALL), img_size=img_size, use_abs_pos_embed=True,
                 use_rel_pos_bias=False, window_size=window_size,
                 global_blocks=global_blocks, out_indices=(0, 1, 2, 3), out_norm=True,
                 pos_embed_resize='scale_factor', window_padding='zeros',
                 stem_taps='mid')


@pytest.mark.parametrize('hw', [
    (128, 128),  # 8x8: windows fit
    (96, 160),  # 6x10: padded on both sides
    (112, 192),  # 7x12: padded at the bottom only
    (64, 80),  # 4x5: padded on the right only
    (64, 64),  # the pre-training grid itself
])
def test_detection_backbone_equals_the_release(hw):
    depths, dim, heads = SMALL['depths'], SMALL['embed_dims'], SMALL['num_heads']
    sd = official_state(depths, dim, heads, grid=4, rel_pos=False)
    model = det_backbone(64, window_size=4, global_blocks=(1, 3))
    missing = model.load_state_dict(to_hivit_mm(sd, depths, grid=4), strict=False)
    assert all(k.startswith('out_norms.') for k in missing.missing_keys), missing
    assert not missing.unexpected_keys
    g = torch.Generator().manual_seed(1)
    for norm in model.out_norms.values():  # as a trained detector: not 1 / 0
        norm.weight.data = 1 + 0.1 * torch.randn(norm.weight.shape, generator=g)
        norm.bias.data = 0.1 * torch.randn(norm.bias.shape, generator=g)
    model = model.double().eval()
    img = torch.randn(2, 3, *hw, generator=g, dtype=torch.float64)
    sd64 = {k: v.double() for k, v in sd.items()}
    norms = [(n.weight, n.bias) for n in model.out_norms.values()]
    with torch.no_grad():
        got = model(img)
        want = ref_forward(sd64, img, depths, heads, window_size=4,
                           global_indices=(1, 3), out_norms=norms)
    assert len(got) == 4
    for i, (a, b) in enumerate(zip(got, want)):
        relative_close(a, b, f'stage {i} at {hw}')


def test_detection_options_matter():
    """Each release behaviour changes the maps (so the test above can fail)."""
    depths, dim, heads = SMALL['depths'], SMALL['embed_dims'], SMALL['num_heads']
    sd = to_hivit_mm(official_state(depths, dim, heads, grid=4, rel_pos=False), depths,
                     grid=4)
    img = torch.randn(1, 3, 96, 160, generator=torch.Generator().manual_seed(2),
                      dtype=torch.float64)

    def run(**options):
        kw = dict(arch=dict(SMALL), img_size=64, window_size=4, global_blocks=(1, 3),
                  out_indices=(0, 1, 2, 3), pos_embed_resize='scale_factor',
                  window_padding='zeros', stem_taps='mid')
        kw.update(options)
        m = HiViT(**kw)
        m.load_state_dict(sd)
        with torch.no_grad():
            return m.double().eval()(img)

    base = run()
    assert (run(stem_taps='end')[0] - base[0]).abs().max() > 1e-3
    assert (run(stem_taps='end')[1] - base[1]).abs().max() > 1e-3
    assert (run(window_padding='masked')[2] - base[2]).abs().max() > 1e-3
    assert (run(pos_embed_resize='size')[2] - base[2]).abs().max() > 1e-4


def test_segmentation_backbone_at_640_from_a_224_checkpoint(tmp_path):
    """The ADE20K config's backbone: a 224 classifier's weights (14x14 absolute
    table, 27x27 relative tables) loaded into the 640 grid, then a 640x640 crop."""
    arch = dict(embed_dims=32, depths=(1, 1, 2), num_heads=2)
    depths, dim, heads = arch['depths'], arch['embed_dims'], arch['num_heads']
    sd = official_state(depths, dim, heads, grid=14, rel_pos=True, seed=3)
    path = tmp_path / 'cls224.pth'
    # the converter records the release's 224 px (14x14) grid
    torch.save(dict(state_dict=convert_official_hivit(dict(model=sd), depths)), path)
    model = HiViT(arch=dict(arch), img_size=640, pretrain_img_size=224,
                  use_abs_pos_embed=True, use_rel_pos_bias=True, rel_pos_zero_init=True,
                  out_indices=(0, 1, 2, 3), out_norm=False,
                  pos_embed_resize='scale_factor', rel_pos_resize='geometric',
                  stem_taps='mid',
                  init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                prefix='backbone.'))
    model.init_weights()
    assert model.pos_embed.shape == (1, 196, dim)  # kept at the 224 grid
    # the release's load: every relative table resized geometrically to 79x79
    ref = dict(sd)
    for k, v in sd.items():
        if k.endswith('relative_position_bias_table'):
            ref[k] = ref_geometric_table(v, 27, 79)
            i = int(k.split('.')[1]) - (2 * depths[0] + 2 * depths[1] + 2)
            relative_close(model.blocks[i].attn.relative_position_bias_table.data,
                           ref[k], k)
    img = torch.randn(1, 3, 640, 640, generator=torch.Generator().manual_seed(4),
                      dtype=torch.float64)
    model = model.double().eval()
    with torch.no_grad():
        got = model(img)
        want = ref_forward({k: v.double() for k, v in ref.items()}, img, depths, heads,
                           rel_grid=40)
    for i, (a, b) in enumerate(zip(got, want)):
        relative_close(a, b, f'stage {i}')
