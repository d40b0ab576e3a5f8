# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Geometry and masking primitives shared by the HiViT and GreenMIM encoders.

Each concept is defined once here, as timm keeps its relative-position helpers in
``timm/layers/pos_embed_rel.py``:

* the unit grid of an image (:func:`unit_grid`), a *unit* being the square of pixels
  that becomes one last-stage token (16 px in HiViT, 32 px in Swin);
* the Swin relative-position index (:func:`relative_index` from coordinates, and its
  grid form :func:`relative_position_index`) and the resizing of a relative-bias table
  to another grid (:func:`resize_rel_pos_bias_table`), and of an absolute table
  (:func:`resize_abs_pos_embed`);
* the fixed 2-D sin-cos position embedding of MAE, per row and column of any grid
  (:func:`sincos_position_embedding`);
* random masking of units (:func:`random_unit_masking`, MAE's per-sample masking, He et
  al., arXiv 2111.06377, Sec. 3), the gather of kept units (:func:`take_units`), the
  ``mask_ratio`` check and the ``mask`` argument of the encoders' ``forward``
  (:func:`use_masking`);
* the argument parsing both backbones share: ``arch`` (:func:`select_arch`),
  ``out_indices`` (:func:`normalize_out_indices`) and named options
  (:func:`check_choice`).
"""
import math
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmpretrain.models.utils import resize_pos_embed

__all__ = [
    'to_2tuple', 'unit_grid', 'relative_index', 'relative_position_index',
    'table_window', 'geometric_ratio', 'resize_rel_pos_bias_table', 'RESIZE_MODES',
    'resize_abs_pos_embed', 'sincos_position_embedding', 'check_mask_ratio',
    'random_unit_masking', 'take_units', 'use_masking', 'MaskedForward', 'select_arch',
    'normalize_out_indices', 'check_choice'
]

#: Modes of :func:`resize_rel_pos_bias_table`.
RESIZE_MODES = ('geometric', 'bicubic')


# ----------------------------------------------------------------------------
# Grids
# ----------------------------------------------------------------------------
def to_2tuple(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``(H, W)`` of an int or a pair."""
    return (size, size) if isinstance(size, int) else tuple(size)


def unit_grid(size: Union[int, Sequence[int]], unit: int, what: str = 'input'
              ) -> Tuple[int, int]:
    """Units per side of an image.

    Args:
        size (int | tuple[int, int]): ``(H, W)`` in pixels.
        unit (int): Pixels per unit side.
        what (str): Name of the size, for the message. Defaults to ``'input'``.

    Returns:
        tuple[int, int]: ``(H / unit, W / unit)``.

    Raises:
        ValueError: If a side is not a positive multiple of ``unit``.
    """
    h, w = (int(s) for s in to_2tuple(size))  # plain ints, also under torch.jit.trace
    if h % unit or w % unit or h <= 0 or w <= 0:
        raise ValueError(f'{what} {h}x{w} is not a multiple of the {unit}-pixel unit; '
                         'pad or resize the input (e.g. a size_divisor of 32)')
    return h // unit, w // unit


# ----------------------------------------------------------------------------
# Relative position bias (Swin, Liu et al., arXiv 2103.14030, Sec. 3.2)
# ----------------------------------------------------------------------------
def relative_index(q_coords: torch.Tensor, k_coords: torch.Tensor,
                   table_grid: Tuple[int, int]) -> torch.Tensor:
    """Row of a relative-bias table for every (query, key) pair of coordinates.

    A table made for a ``(Ht, Wt)`` grid holds ``(2Ht-1)*(2Wt-1)`` rows, one per offset
    ``(dh, dw)``; the row is ``(dh + Ht - 1) * (2Wt - 1) + dw + Wt - 1`` (the index of
    Swin, mmpretrain's ``WindowMSA`` and the official HiViT).

    Args:
        q_coords (torch.Tensor): ``(..., Nq, 2)`` int64 ``(h, w)`` of the queries.
        k_coords (torch.Tensor): ``(..., Nk, 2)`` of the keys.
        table_grid (tuple[int, int]): ``(Ht, Wt)``.

    Returns:
        torch.Tensor: ``(..., Nq, Nk)`` int64.
    """
    th, tw = table_grid
    rel = q_coords[..., :, None, :] - k_coords[..., None, :, :]  # ..., Nq, Nk, 2
    return (rel[..., 0] + th - 1) * (2 * tw - 1) + rel[..., 1] + tw - 1


def relative_position_index(grid: Tuple[int, int],
                            table_grid: Optional[Tuple[int, int]] = None
                            ) -> torch.Tensor:
    """:func:`relative_index` of every token pair of a grid (raster order).

    Args:
        grid (tuple[int, int]): ``(H, W)`` of the token grid.
        table_grid (tuple[int, int], optional): ``(Ht, Wt)`` the table was made for; it
            must cover the grid's offsets. Defaults to ``grid``.

    Returns:
        torch.Tensor: ``(H*W, H*W)`` int64 indices.

    Raises:
        ValueError: If the grid is larger than ``table_grid``.
    """
    th, tw = table_grid or grid
    h, w = grid
    if h > th or w > tw:
        raise ValueError(f'a relative table for grid {(th, tw)} cannot cover the '
                         f'offsets of grid {(h, w)}')
    coords = torch.stack(
        torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij'), -1)  # H, W, 2
    coords = coords.flatten(0, 1)  # HW, 2
    return relative_index(coords, coords, (th, tw))  # HW, HW


def table_window(rows: int, what: str = 'relative position bias table') -> int:
    """Side ``m`` of the square grid a ``(2m-1)**2``-row bias table was made for.

    Raises:
        ValueError: If ``rows`` is not the square of an odd number.
    """
    side = math.isqrt(rows)
    if side * side != rows or side % 2 == 0:
        raise ValueError(f'{what}: a relative position bias table has (2M-1)**2 rows, '
                         f'got {rows}; resize it explicitly before loading')
    return (side + 1) // 2


def geometric_ratio(src_half: int, dst_half: int) -> float:
    """Ratio ``q`` of the geometric grid of source offsets for a table resize.

    ``1 + q + ... + q**(src_half - 1)`` reaches ``dst_half``: the ``src_half`` source
    offsets of one side, spaced 1, q, q**2, ..., end at the last target offset. Found
    as the official HiViT segmentation loader (and BEiT's) does: bisection on
    ``[1.01, 1.5]`` until the bracket is under 1e-6 wide, the last midpoint kept (so
    tables resized here equal the release's to float precision).

    The release's bracket only reaches ratios up to 1.5 (it then leaves the far target
    offsets outside the grid and repeats the border values there); a ratio above it
    (small grids, e.g. 4 -> 8 units) is searched in ``[1.5, 2 * needed]`` the same way
    instead, so the grid always spans the target. Below 1.01 (a target barely larger)
    the release's 1.01 is kept.

    Args:
        src_half (int): Source offsets on one side of 0 (``Hs - 1``).
        dst_half (int): Target offsets on one side of 0 (``Hd - 1``).

    Returns:
        float: ``q``.
    """
    def span(q: float) -> float:  # 1 + q + ... + q**(src_half - 1)
        return (q**src_half - 1.0) / (q - 1.0)

    left, right = 1.01, 1.5
    while span(right) <= dst_half:  # beyond the release's bracket
        left, right = right, 2 * right
    q = left
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if span(q) > dst_half:
            right = q
        else:
            left = q
    return q


def _resize_geometric(table: torch.Tensor, src_side: int,
                      dst_side: int) -> torch.Tensor:
    """``(src_side**2, heads) -> (dst_side**2, heads)`` for square tables of odd sides;
    see :func:`resize_rel_pos_bias_table`."""
    from scipy.interpolate import RectBivariateSpline  # a dependency of mmdet/mmseg
    src_half, dst_half = src_side // 2, dst_side // 2
    q = geometric_ratio(src_half, dst_half)
    dis = np.cumsum(q**np.arange(src_half))  # 1, 1 + q, 1 + q + q**2, ...
    src = np.concatenate([-dis[::-1], [0.], dis])  # src_side offsets
    dst = np.arange(-dst_half, dst_half + 1, dtype=np.float64)  # dst_side offsets
    values = table.detach().float().cpu().numpy().astype(np.float64)  # src_side**2, heads
    k = min(3, src_side - 1)  # cubic, as the release, where the table allows it
    out = np.stack([
        RectBivariateSpline(src, src, values[:, h].reshape(src_side, src_side), kx=k,
                            ky=k, s=0)(dst, dst).reshape(-1)
        for h in range(values.shape[1])
    ], axis=1)  # dst_side**2, heads
    return torch.from_numpy(out).float().to(device=table.device, dtype=table.dtype)


def resize_rel_pos_bias_table(table: torch.Tensor,
                              src_grid: Tuple[int, int],
                              dst_grid: Tuple[int, int],
                              mode: str = 'bicubic') -> torch.Tensor:
    """Resize a relative-position bias table made for one grid to another.

    Identity when the grids are equal. Modes:

    * ``'geometric'`` (the official HiViT segmentation loader,
      ``segmentation/mmcv_custom/checkpoint.py::load_checkpoint_hivit``, after BEiT):
      the source offsets are placed on a geometric grid, 0, +-1, +-(1 + q), ... with
      :func:`geometric_ratio` ``q``, so that near offsets keep their place and far
      ones are stretched, and each head is interpolated there by a bicubic
      interpolating spline (SciPy's ``RectBivariateSpline(kx=3, ky=3, s=0)``, the
      spline of the release's ``interp2d(kind='cubic')``), then sampled at the
      integer target offsets; computed in float64 from the table's float32 values.
      Square grids only, and only to a larger grid, as the release. A 3x3 table (a
      2x2 grid, too small for a cubic) gets the quadratic spline.
    * ``'bicubic'``: the ``(2H-1, 2W-1)`` table is interpolated as an image
      (``align_corners=False``), as mmpretrain's
      ``resize_relative_position_bias_table``: every offset is scaled by the same
      factor (a neighbour's bias becomes the one learned for offset ``Hs / Hd``).

    Args:
        table (torch.Tensor): ``((2Hs-1)*(2Ws-1), heads)``.
        src_grid (tuple[int, int]): ``(Hs, Ws)`` the table was made for.
        dst_grid (tuple[int, int]): ``(Hd, Wd)`` to make it for.
        mode (str): One of :data:`RESIZE_MODES`. Defaults to ``'bicubic'`` (HiViT's
            ``rel_pos_resize`` defaults to ``'geometric'``).

    Returns:
        torch.Tensor: ``((2Hd-1)*(2Wd-1), heads)``, dtype of ``table``.

    Raises:
        ValueError: If ``mode`` is unknown, ``table`` does not fit ``src_grid``, or
            (geometric) a grid is not square or the target is not larger.
    """
    check_choice('resize mode', mode, RESIZE_MODES)
    if tuple(src_grid) == tuple(dst_grid):
        return table
    sh, sw = 2 * src_grid[0] - 1, 2 * src_grid[1] - 1
    dh, dw = 2 * dst_grid[0] - 1, 2 * dst_grid[1] - 1
    if table.shape[0] != sh * sw:
        raise ValueError(f'table has {table.shape[0]} rows, expected {sh * sw} for '
                         f'grid {tuple(src_grid)}')
    if mode == 'geometric':
        if sh != sw or dh != dw or dh <= sh:
            raise ValueError(
                f'geometric resizing of a relative table needs square grids and a '
                f'larger target, got {tuple(src_grid)} -> {tuple(dst_grid)}; use '
                "rel_pos_resize='bicubic' for this model")
        return _resize_geometric(table, sh, dh)
    heads = table.shape[1]
    img = table.float().t().reshape(1, heads, sh, sw)  # 1, heads, 2Hs-1, 2Ws-1
    img = F.interpolate(img, size=(dh, dw), mode='bicubic', align_corners=False)
    return img.reshape(heads, dh * dw).t().to(table.dtype)  # (2Hd-1)(2Wd-1), heads


def resize_abs_pos_embed(pos_embed: torch.Tensor, src_grid: Tuple[int, int],
                         dst_grid: Tuple[int, int], mode: str = 'scale_factor'
                         ) -> torch.Tensor:
    """An absolute position table of one grid resized to another (no extra tokens).

    Args:
        pos_embed (torch.Tensor): ``(1, Hs*Ws, C)``, raster order.
        src_grid (tuple[int, int]): ``(Hs, Ws)``.
        dst_grid (tuple[int, int]): ``(Hd, Wd)``.
        mode (str): ``'scale_factor'``, the official HiViT detector and segmentor
            (``detection/mmdet/models/backbones/hivit.py``): ``F.interpolate`` with
            ``scale_factor=((Hd + 0.1) / Hs, (Wd + 0.1) / Ws)``, bicubic, whose
            sampling positions follow the scale factor rather than the sizes (the
            ``+ 0.1`` keeps ``floor(Hs * factor)`` at ``Hd`` despite rounding); or
            ``'size'``, bicubic to the target size (mmpretrain's
            ``resize_pos_embed``). Defaults to ``'scale_factor'``.

    Returns:
        torch.Tensor: ``(1, Hd*Wd, C)``; ``pos_embed`` itself when the grids are equal.
    """
    if tuple(dst_grid) == tuple(src_grid):
        return pos_embed
    if mode == 'size':
        return resize_pos_embed(pos_embed, src_grid, dst_grid, mode='bicubic',
                                num_extra_tokens=0)
    (h0, w0), (h, w) = src_grid, (int(dst_grid[0]), int(dst_grid[1]))  # ints if traced
    table = pos_embed.reshape(1, h0, w0, -1).permute(0, 3, 1, 2)  # 1, C, h0, w0
    table = F.interpolate(table, scale_factor=((h + 0.1) / h0, (w + 0.1) / w0),
                          mode='bicubic')  # 1, C, h, w
    return table.permute(0, 2, 3, 1).reshape(1, h * w, -1)  # 1, h*w, C


def sincos_position_embedding(grid: Tuple[int, int], dim: int,
                              temperature: float = 10000.) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding of a ``(h, w)`` grid, row-major tokens.

    Token ``(r, c)`` (index ``r * w + c``) gets ``[sin(r * omega), cos(r * omega),
    sin(c * omega), cos(c * omega)]`` with ``omega_k = temperature ** (-k / (dim / 4))``
    (MAE, facebookresearch/mae ``util/pos_embed.py``). On square grids this equals
    mmpretrain's ``build_2d_sincos_position_embedding`` bit for bit (whose row/column
    halves are transposed relative to the MAE release), so existing checkpoints are
    unchanged; on other grids mmpretrain's table is scrambled (its ``meshgrid`` flattens
    the grid column-major), this one is not.

    Args:
        grid (tuple[int, int]): ``(h, w)``.
        dim (int): Channels, a multiple of 4.
        temperature (float): Defaults to 10000.

    Returns:
        torch.Tensor: ``(1, h * w, dim)``, float32.

    Raises:
        ValueError: If ``dim`` is not a multiple of 4.
    """
    if dim % 4:
        raise ValueError(
            f'the sin-cos embedding needs channels divisible by 4, got {dim}')
    h, w = grid
    omega = torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)
    omega = 1. / (temperature**omega)  # dim/4
    rows = torch.arange(h, dtype=torch.float32).repeat_interleave(w)  # h*w: r of token
    cols = torch.arange(w, dtype=torch.float32).repeat(h)  # h*w: c of token
    out_r = torch.einsum('m,d->md', [rows, omega])  # h*w, dim/4
    out_c = torch.einsum('m,d->md', [cols, omega])  # h*w, dim/4
    return torch.cat([out_r.sin(), out_r.cos(), out_c.sin(), out_c.cos()],
                     dim=1)[None]  # 1, h*w, dim


# ----------------------------------------------------------------------------
# Masking (MAE, He et al., arXiv 2111.06377, Sec. 3 "Masking")
# ----------------------------------------------------------------------------
def check_mask_ratio(mask_ratio: float) -> float:
    """Return ``mask_ratio`` if it is in (0, 1), else raise ``ValueError``."""
    if not 0 < mask_ratio < 1:
        raise ValueError(f'mask_ratio must be in (0, 1), got {mask_ratio}')
    return mask_ratio


def random_unit_masking(
    batch_size: int,
    num_units: int,
    mask_ratio: float,
    device: Union[str, torch.device] = 'cpu',
    generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw an independent random mask for each sample.

    Keeps ``int(num_units * (1 - mask_ratio))`` units per sample (at least one): those
    of lowest uniform noise, as MAE's ``random_masking``.

    Args:
        batch_size (int): ``B``.
        num_units (int): ``L``, units per image.
        mask_ratio (float): Fraction of units removed, in (0, 1).
        device (str | torch.device): Defaults to ``'cpu'``.
        generator (torch.Generator, optional): For reproducible masks. Defaults to None.

    Returns:
        tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ``ids_keep (B, L_keep)`` kept
        unit indices (in random order), ``mask (B, L)`` with 0 for kept and 1 for
        removed units, and ``ids_restore (B, L)`` mapping the kept-then-removed order
        back to the image.

    Raises:
        ValueError: If ``mask_ratio`` is not in (0, 1).
    """
    check_mask_ratio(mask_ratio)
    num_keep = max(1, int(num_units * (1 - mask_ratio)))
    noise = torch.rand(batch_size, num_units, device=device, generator=generator)
    ids_shuffle = noise.argsort(dim=1)  # B, L: ascending noise is kept
    ids_restore = ids_shuffle.argsort(dim=1)  # B, L
    mask = torch.ones(batch_size, num_units, device=device)
    mask[:, :num_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # B, L in image order
    return ids_shuffle[:, :num_keep], mask, ids_restore


def take_units(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Per-sample selection along the unit dimension (MAE's gather of kept units).

    Args:
        x (torch.Tensor): ``(B, N, *rest)``, units on dimension 1.
        ids (torch.Tensor): ``(B, L)`` int64 indices into ``N`` (``ids_keep`` or
            ``ids_restore`` of :func:`random_unit_masking`).

    Returns:
        torch.Tensor: ``(B, L, *rest)`` with ``out[b, l] = x[b, ids[b, l]]``.
    """
    index = ids.reshape(*ids.shape, *[1] * (x.dim() - 2)).expand(
        -1, -1, *x.shape[2:])  # B, L, *rest
    return torch.gather(x, 1, index)  # B, L, *rest


#: What a masked encoder's ``forward(x, mask)`` returns: with masking, mmpretrain
#: ``MAE``'s ``(latent (B, L_keep, C), mask (B, L) with 1 = removed, ids_restore
#: (B, L))``; without, the stage outputs of the dense forward.
MaskedForward = Union[Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                      Tuple[torch.Tensor, ...]]


def use_masking(mask: Optional[bool]) -> bool:
    """The ``mask`` argument of a masked encoder's ``forward``.

    ``True`` masks (pre-training, what mmpretrain's ``MAE.loss`` calls); ``None`` or
    ``False`` runs the dense forward (mmpretrain's ``extract_feat`` passes ``None``).

    Raises:
        TypeError: For anything else (e.g. a mask tensor, which would be ignored).
    """
    if mask is None or isinstance(mask, bool):
        return bool(mask)
    raise TypeError(f'mask must be True, False or None, got {type(mask).__name__}; '
                    'the encoder draws its own mask (see random_unit_masking)')


# ----------------------------------------------------------------------------
# Arguments shared by the backbones
# ----------------------------------------------------------------------------
def select_arch(arch: Union[str, Mapping], arch_zoo: Mapping[str, dict],
                optional: Mapping[str, object] = None, what: str = 'arch') -> dict:
    """An ``arch_zoo`` entry by name, or a checked custom dict.

    Args:
        arch (str | dict): A key of ``arch_zoo``, or a dict with the keys of its
            entries (and optionally those of ``optional``).
        arch_zoo (dict[str, dict]): Named archs; all entries have the same keys.
        optional (dict, optional): Optional keys with their defaults. Defaults to None.
        what (str): Model name for messages. Defaults to ``'arch'``.

    Returns:
        dict: A new dict with every required and optional key.

    Raises:
        ValueError: For an unknown name or a dict with missing or unknown keys.
        TypeError: If ``arch`` is neither a str nor a dict.
    """
    optional = dict(optional or {})
    if isinstance(arch, str):
        if arch not in arch_zoo:
            raise ValueError(f'unknown {what} arch {arch!r}; valid names: '
                             f'{sorted(arch_zoo)} (or a dict with '
                             f'{", ".join(next(iter(arch_zoo.values())))})')
        arch = arch_zoo[arch]
    if not isinstance(arch, Mapping):
        raise TypeError(f'arch must be a str or dict, got {type(arch).__name__}')
    required = set(next(iter(arch_zoo.values())))
    allowed = required | set(optional)
    if not required <= set(arch) or not set(arch) <= allowed:
        raise ValueError(f'a custom {what} arch needs keys {sorted(required)}'
                         + (f' and may add {sorted(allowed - required)}'
                            if optional else '') + f'; got {sorted(arch)}')
    return dict(optional, **arch)


def check_choice(name: str, value, choices: Sequence):
    """``value`` if it is one of ``choices``.

    Raises:
        ValueError: Naming the argument, the valid values and the one given.
    """
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')
    return value


def normalize_out_indices(out_indices: Union[int, Sequence[int]],
                          num_stages: int) -> Tuple[int, ...]:
    """``out_indices`` as non-negative stage numbers.

    Args:
        out_indices (int | Sequence[int]): Stages; negative values count from the end.
        num_stages (int): Stages of the backbone.

    Returns:
        tuple[int, ...]: In ``[0, num_stages)``, in the given order.

    Raises:
        ValueError: If empty, out of range, or a stage repeats.
    """
    raw = (out_indices, ) if isinstance(out_indices, int) else tuple(out_indices)
    if not raw:
        raise ValueError('out_indices is empty')
    if not all(-num_stages <= i < num_stages for i in raw):
        raise ValueError(f'out_indices {raw} out of range: stages are '
                         f'0..{num_stages - 1} or -{num_stages}..-1')
    norm = tuple(i % num_stages for i in raw)
    if len(set(norm)) != len(norm):
        raise ValueError(f'out_indices {raw} repeats a stage')
    return norm
