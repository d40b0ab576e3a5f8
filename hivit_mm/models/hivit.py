# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""HiViT: hierarchical vision transformer with MLP-only stem stages.

Zhang et al., "HiViT: A Simpler and More Efficient Design of Hierarchical Vision
Transformer", ICLR 2023 (arXiv 2205.14949). Written from the paper and, as a
specification, the authors' MIT-licensed release (zhangxiaosong18/hivit).

An image is cut into 16x16-pixel *units*. A stride-4 convolution turns each unit into a
4x4 grid of tokens; two stem stages of MLP-only blocks (with a PatchMerge between them)
work inside each unit, so nothing mixes tokens of different units before the *main
stage*, a plain transformer over one token per unit (stride 16). Masked units can
therefore be dropped right after the patch embedding, as MAE does on a plain ViT
(:meth:`HiViT.forward_units` with ``ids_keep``).

Stages, as addressed by ``out_indices`` (``stem_taps='mid'``, the default, taps the
stem as the official detector and segmentor do; ``'end'`` at the ends of the stem
stages, the features MAE fuses):

====== ======= ======== ===============================================================
stage  stride  channels what
====== ======= ======== ===============================================================
0      4       C/4      ``'mid'``: after the first half of stem stage 0's blocks;
                        ``'end'``: end of stem stage 0 (before its PatchMerge)
1      8       C/2      ``'mid'``: right after the first PatchMerge, before stem stage
                        1's blocks; ``'end'``: end of stem stage 1
2      16      C        end of the main stage
3      32      C        max-pool (k=2, s=2) of stage 2
====== ======= ======== ===============================================================

Options
-------
Dense prediction follows the official release (``detection/mmdet/models/backbones/
hivit.py``, ``segmentation/backbone/hivit.py``): each behaviour of it is a named option
of :class:`HiViT` whose default is the release's (listed first), the alternative kept.

``stem_taps``
    ``'mid'``: the release's ``out_indices=['H', 'M', ...]``, stage 0 after the first
    half of stem stage 0's blocks, stage 1 right after the first PatchMerge (the release
    computes these places as block ``d0 - 1`` and ``d0 + d1`` of its flat list, which
    they are for its archs, ``d0 == d1``). ``'end'``: the ends of the stem stages (the
    features MAE fuses).
``window_padding``
    With ``window_size`` (ViTDet-style windows in main-stage tokens for the main blocks
    not in ``global_blocks``, the grid padded to a multiple of the window).
    ``'zeros'`` (the release's detector, as ViTDet): before each windowed block the grid
    is padded with zero tokens, which take part in attention as keys (as their LayerNorm
    bias), and the block's output is cropped back. ``'masked'``: padded once per run of
    windowed blocks and masked out of the keys, so the output does not depend on the
    padding.
``pos_embed_resize``
    How the absolute table of grid ``(h0, w0)`` meets an input grid ``(h, w)``, at
    every forward (:func:`~hivit_mm.models.geometry.resize_abs_pos_embed`).
    ``'scale_factor'`` (the release's detector and segmentor:
    ``interpolate(scale_factor=((h + 0.1) / h0, (w + 0.1) / w0), mode='bicubic')``,
    whose sampling positions follow the scale factor rather than the sizes).
    ``'size'``: bicubic to the target size (mmpretrain's ``resize_pos_embed``).
``rel_pos_resize``
    How relative tables of a checkpoint made for another grid are resized on load
    (:func:`~hivit_mm.models.geometry.resize_rel_pos_bias_table`). ``'geometric'`` (the
    release's segmentation loader: bicubic splines on a geometric grid of source
    offsets, so that near offsets keep their learned bias; square grids, to a larger
    one). ``'bicubic'``: the table stretched as an image, every offset scaled alike.

Freezing: ``frozen_stages=k`` freezes stages ``0..k`` with their output norms (stage 0:
patch embedding and stem stage 0; 1: the first PatchMerge and stem stage 1; 2: the
second PatchMerge, position tables and the main stage; 3, a parameter-free pool: only
its output norm); frozen modules stay in eval mode.

The module reads top to bottom: helpers (argument checks, layer ids for layer-wise lr
decay, window partition and windowed blocks, unit-major tokens to maps), blocks, the
resizing of position tables on load, the model with its arch table. Geometry shared
with GreenMIM (unit grid, relative-position index, table resizing, masking) is in
:mod:`hivit_mm.models.geometry`; strict loading of pre-trained weights in
:mod:`hivit_mm.models.loading`.
"""
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.utils import LayerNorm2d, resize_pos_embed

from hivit_mm.registry import MODELS
from .attention import attention
from .geometry import (check_choice, normalize_out_indices, relative_position_index,
                       resize_abs_pos_embed, resize_rel_pos_bias_table, select_arch,
                       take_units, unit_grid)
from .loading import init_pretrained

__all__ = [
    'HiViT', 'quarter_global_blocks', 'layer_depth', 'window_partition', 'window_merge',
    'run_windowed', 'units_to_map', 'resize_position_tables', 'UNIT_SIZE', 'MAIN_STAGE',
    'POOLED_STAGE'
]

UNIT_SIZE = 16  # pixels per side of a mask unit (one main-stage token)
TOKENS_PER_UNIT_SIDE = 4  # stage-0 tokens per side of a unit (patch-embedding stride 4)
MAIN_STAGE = 2  # the stage of the main (attention) blocks, stride 16
POOLED_STAGE = 3  # stride 32: a parameter-free max-pool (k=2, s=2) of MAIN_STAGE


# ----------------------------------------------------------------------------
# Pure helpers
# ----------------------------------------------------------------------------
def quarter_global_blocks(depth: int) -> Tuple[int, ...]:
    """Main-stage blocks that keep global attention when the others use windows.

    The last block of each quarter of the main stage, as ViTDet does:
    depth 20 gives ``(4, 9, 14, 19)`` (the official HiViT-B detector), 10 gives
    ``(1, 4, 6, 9)``, 4 gives ``(0, 1, 2, 3)``.

    Args:
        depth (int): Number of main-stage blocks.

    Returns:
        tuple[int, ...]: Sorted, distinct block indices.
    """
    return tuple(sorted({(q + 1) * depth // 4 - 1 for q in range(4)} - {-1}))


def _unrecorded_grid(state: Dict[str, torch.Tensor]) -> Optional[Tuple[int, int]]:
    """The grid of position tables saved without a record, where their sizes tell it.

    ``h*w`` absolute tokens and ``(2h-1)*(2w-1)`` relative rows fix ``h + w`` and
    ``h*w``, so ``{h, w}`` but not which is the height: only a square grid is told
    apart (64 tokens alone may be 8x8 or 4x16; 4x16 and 16x4 have the same sizes).

    Returns:
        tuple[int, int] | None: ``(n, n)``; None if ``state`` holds no position table.

    Raises:
        ValueError: If it holds tables whose grid the sizes do not tell, naming them,
            their sizes and how to give the grid.
    """
    pe = state.get('pos_embed')
    rel = {k: t.shape[0] for k, t in state.items()
           if k.endswith('relative_position_bias_table')}
    if pe is None and not rel:
        return None
    side = math.isqrt(pe.shape[1]) if pe is not None else 0
    if pe is not None and rel and side * side == pe.shape[1] and all(
            rows == (2 * side - 1)**2 for rows in rel.values()):
        return side, side
    tables = ([f'pos_embed ({pe.shape[1]} tokens)'] if pe is not None else []) + [
        f'{k} ({rows} rows)' for k, rows in list(rel.items())[:2]]
    raise ValueError(
        f'position tables saved without the grid they were made for: '
        f'{", ".join(tables)}{" ..." if len(rel) > 2 else ""}. Their sizes do not tell '
        'the grid (64 tokens may be 8x8 or 4x16; a 4x16 and a 16x4 grid have the same '
        'sizes), and a table read as another grid loads wrong weights silently. Say '
        'it: convert the checkpoint with tools/model_converters/*_to_hivit_mm.py '
        '--img-size H W (which records it; the official release is 224), or set the '
        "backbone's checkpoint_img_size=(H, W), the input size in pixels the tables "
        'were made for')


def _parse_arch(arch: Union[str, dict], arch_zoo: Dict[str, dict]) -> dict:
    """An :attr:`HiViT.arch_zoo` entry or a checked custom arch, ratios filled in."""
    arch = select_arch(arch, arch_zoo, dict(stem_mlp_ratio=3., mlp_ratio=4.), 'HiViT')
    dim, heads = arch['embed_dims'], arch['num_heads']
    if len(arch['depths']) != 3 or min(arch['depths']) < 1:
        raise ValueError(f'depths must be three positive ints, got {arch["depths"]}')
    if dim % 4 or dim % heads:
        raise ValueError(f'embed_dims {dim} must be divisible by 4 and by '
                         f'num_heads {heads}')
    return arch


def _parse_windows(window_size: Optional[int], global_blocks: Optional[Sequence[int]],
                   depth: int, table_grid: Optional[Tuple[int, int]]
                   ) -> Tuple[int, ...]:
    """Main blocks with global attention, checking the window arguments.

    Args:
        window_size (int, optional): Window side in main-stage tokens; None: global
            attention everywhere.
        global_blocks (Sequence[int], optional): Blocks kept global when windowed;
            None: :func:`quarter_global_blocks`.
        depth (int): Main blocks.
        table_grid (tuple[int, int], optional): Grid of the relative tables, if any
            (a window must fit in it).

    Returns:
        tuple[int, ...]: Sorted, distinct global block indices.
    """
    if window_size is None:
        if global_blocks is not None:
            raise ValueError('global_blocks is only used with window_size')
        return tuple(range(depth))
    if window_size < 1:
        raise ValueError(f'window_size must be positive, got {window_size}')
    if table_grid is not None and window_size > min(table_grid):
        raise ValueError(f'window_size {window_size} exceeds the relative table grid '
                         f'{table_grid}; raise img_size')
    gb = quarter_global_blocks(depth) if global_blocks is None else tuple(
        sorted(set(global_blocks)))
    if any(not 0 <= i < depth for i in gb):
        raise ValueError(f'global_blocks {tuple(global_blocks)} out of range '
                         f'for {depth} main blocks')
    return gb


def _block_runs(depth: int, global_blocks: Sequence[int]
                ) -> Tuple[Tuple[int, int, bool], ...]:
    """Consecutive runs ``(start, stop, windowed)`` of main blocks sharing a layout."""
    runs: List[Tuple[int, int, bool]] = []
    for i in range(depth):
        windowed = i not in global_blocks
        if runs and runs[-1][2] == windowed:
            runs[-1] = (runs[-1][0], i + 1, windowed)
        else:
            runs.append((i, i + 1, windowed))
    return tuple(runs)


def layer_depth(param_name: str, depths: Sequence[int], prefix: str = '',
                numbering: str = 'stem_as_one') -> Tuple[int, int]:
    """Layer id of a HiViT parameter for layer-wise learning-rate decay.

    Two numberings, both the release's:

    * ``'stem_as_one'`` (its detection and segmentation constructors,
      ``detection/mmcv_custom/hivit_layer_decay_optimizer_constructor.py``): the
      patch embedding, position embedding and the whole stem (stages 0 and 1,
      PatchMerges included) are layer 0; main-stage block ``k`` is layer ``k + 1``;
      ``num_layers = main depth + 2``.
    * ``'per_block'`` (its ImageNet fine-tuning, ``self_supervised/util/
      lr_decay.py``): the patch and position embeddings are layer 0; every stem
      MLP block is a layer of its own (stem stage 0 block ``j``: ``1 + j``; stem
      stage 1 block ``j``: ``1 + n0 + j``, with ``n0 = 2 * depths[0]`` blocks in
      stage 0); a PatchMerge shares the id of the block before it; main block ``k``
      is layer ``1 + n0 + n1 + k``; ``num_layers = n0 + n1 + main depth + 2``
      (HiViT-B: 30, so the embeddings train at ``rate ** 29``).

    In both, everything else (output norms, and any parameter outside the
    backbone, i.e. not starting with ``prefix``) is the last layer,
    ``num_layers - 1``.

    Args:
        param_name (str): Parameter name, e.g.
            ``'backbone.blocks.3.attn.qkv.weight'``.
        depths (Sequence[int]): The arch's ``depths`` (stem stage ``s`` has
            ``2 * depths[s]`` blocks).
        prefix (str): Prefix of backbone parameters. Defaults to ``''``.
        numbering (str): ``'stem_as_one'`` or ``'per_block'``. Defaults to
            ``'stem_as_one'``.

    Returns:
        tuple[int, int]: ``(layer_id, num_layers)``.

    Raises:
        ValueError: For an unknown ``numbering``.
    """
    if numbering not in ('stem_as_one', 'per_block'):
        raise ValueError(f"numbering must be 'stem_as_one' or 'per_block', got "
                         f'{numbering!r}')
    per_block = numbering == 'per_block'
    stem_blocks = [2 * d for d in depths[:2]] if per_block else [0, 0]
    first_main = 1 + sum(stem_blocks)  # layer id of main block 0
    num_layers = first_main + depths[2] + 1
    if not param_name.startswith(prefix):
        return num_layers - 1, num_layers
    name = param_name[len(prefix):]
    parts = name.split('.')
    if name.startswith('patch_embed.') or name == 'pos_embed':
        return 0, num_layers
    if name.startswith('stem.'):
        if not per_block:
            return 0, num_layers
        stage = int(parts[1])
        first = 1 + sum(stem_blocks[:stage])  # layer id of the stage's block 0
        if parts[2] == 'blocks':
            return first + int(parts[3]), num_layers
        return first + stem_blocks[stage] - 1, num_layers  # the downsample
    if name.startswith('blocks.'):
        return first_main + int(parts[1]), num_layers
    return num_layers - 1, num_layers


def window_partition(x: torch.Tensor, grid: Tuple[int, int], window: int,
                     mask_padding: bool = True
                     ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Cut a token grid into ``window x window`` windows (ViTDet-style, padded).

    Args:
        x (torch.Tensor): ``(B, h*w, C)`` tokens in raster order.
        grid (tuple[int, int]): ``(h, w)``.
        window (int): ``ws``; the grid is zero-padded at the bottom and right to a
            multiple of it.
        mask_padding (bool): Build the key mask of the padding. Defaults to True.

    Returns:
        tuple: ``windows (B*nW, ws*ws, C)`` (windows in raster order per sample) and
        the additive key mask ``(B*nW, 1, 1, ws*ws)`` (``-inf`` on padding), or None
        when the grid needs no padding or ``mask_padding`` is False.
    """
    B, _, C = x.shape
    (h, w), ws = grid, window
    ph, pw = -h % ws, -w % ws
    nh, nw = (h + ph) // ws, (w + pw) // ws
    x = F.pad(x.reshape(B, h, w, C), (0, 0, 0, pw, 0, ph))  # B, h+ph, w+pw, C
    x = x.reshape(B, nh, ws, nw, ws, C).transpose(2, 3)  # B, nh, nw, ws, ws, C
    x = x.reshape(B * nh * nw, ws * ws, C)  # B*nW, ws*ws, C
    if not (ph or pw) or not mask_padding:
        return x, None
    valid = torch.zeros(h + ph, w + pw, dtype=torch.bool, device=x.device)
    valid[:h, :w] = True
    valid = valid.reshape(nh, ws, nw, ws).transpose(1, 2).reshape(
        1, nh * nw, 1, 1, ws * ws)  # 1, nW, 1, 1, ws*ws
    key_mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
    key_mask = key_mask.masked_fill(~valid, float('-inf')).expand(
        B, -1, -1, -1, -1).reshape(B * nh * nw, 1, 1, ws * ws)  # B*nW, 1, 1, ws*ws
    return x, key_mask


def window_merge(x: torch.Tensor, batch: int, grid: Tuple[int, int],
                 window: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B*nW, ws*ws, C) -> (B, h*w, C)``,
    padding dropped."""
    (h, w), ws, C = grid, window, x.shape[-1]
    nh, nw = -(-h // ws), -(-w // ws)
    x = x.reshape(batch, nh, nw, ws, ws, C).transpose(2, 3)  # B, nh, ws, nw, ws, C
    x = x.reshape(batch, nh * ws, nw * ws, C)[:, :h, :w]  # B, h, w, C
    return x.reshape(batch, h * w, C)


def run_windowed(blocks: Sequence[nn.Module], x: torch.Tensor, grid: Tuple[int, int],
                 window: int, padding: str, rel_index: Optional[torch.Tensor],
                 run: Callable[..., torch.Tensor]) -> torch.Tensor:
    """Main blocks with attention inside ``window x window`` windows (ViTDet).

    Args:
        blocks (Sequence[nn.Module]): Consecutive windowed main blocks.
        x (torch.Tensor): ``(B, h*w, C)`` tokens in raster order.
        grid (tuple[int, int]): ``(h, w)``.
        window (int): ``ws``.
        padding (str): ``'zeros'`` (the official detector, as ViTDet: each block gets
            its own zero-padded grid, the padding unmasked, the output cropped) or
            ``'masked'`` (padded once for all ``blocks``, the padding masked out of
            the keys).
        rel_index (torch.Tensor, optional): ``(ws*ws, ws*ws)`` relative index.
        run (Callable): ``run(block, x, rel_index[, key_mask])`` runs one block.

    Returns:
        torch.Tensor: ``(B, h*w, C)``.
    """
    if padding == 'zeros':
        for blk in blocks:
            windows, _ = window_partition(x, grid, window,
                                          mask_padding=False)  # B*nW, ws*ws, C
            windows = run(blk, windows, rel_index)
            x = window_merge(windows, x.shape[0], grid, window)  # B, h*w, C
        return x
    windows, key_mask = window_partition(x, grid, window)  # B*nW, ws*ws, C
    for blk in blocks:
        windows = run(blk, windows, rel_index, key_mask)
    return window_merge(windows, x.shape[0], grid, window)  # B, h*w, C


def units_to_map(tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Unit-major tokens to an NCHW map.

    Args:
        tokens (torch.Tensor): ``(B, L, s, s, C)`` (an ``s x s`` grid per unit) or
            ``(B, L, C)`` (one token per unit), units in raster order.
        grid (tuple[int, int]): ``(h, w)`` units, ``L = h*w``.

    Returns:
        torch.Tensor: ``(B, C, h*s, w*s)``.
    """
    (h, w), B, C = grid, tokens.shape[0], tokens.shape[-1]
    side = tokens.shape[2] if tokens.dim() == 5 else 1
    m = tokens.reshape(B, h, w, side, side, C)  # B, h, w, s, s, C
    return m.permute(0, 5, 1, 3, 2, 4).reshape(B, C, h * side, w * side)  # B, C, H, W


# ----------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------
class Mlp(nn.Module):
    """Linear, GELU, Linear (with dropout), applied to the last dimension."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class StemBlock(nn.Module):
    """Pre-norm MLP block with a residual; token-wise, so it never mixes units."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, drop_path: float,
                 eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.mlp(self.norm(x)))


class PatchMerge(nn.Module):
    """Merge each 2x2 group of a unit's inner grid (Swin sub-token order).

    ``(B, L, h, w, C) -> (B, L, h/2, w/2, 2C)``: concatenates the sub-tokens at
    ``(0, 0), (1, 0), (0, 1), (1, 1)``, then LayerNorm and a bias-free linear.
    """

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :],
                       x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]],
                      dim=-1)  # B, L, h/2, w/2, 4C
        return self.reduction(self.norm(x))


class StemStage(nn.Module):
    """MLP-only blocks at one inner resolution, then a PatchMerge; its output is
    tapped after a given number of blocks (``stem_taps``)."""

    def __init__(self, dim: int, depth: int, mlp_ratio: float, drop: float,
                 drop_paths: Sequence[float], eps: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            StemBlock(dim, mlp_ratio, drop, dp, eps) for dp in drop_paths[:depth])
        self.downsample = PatchMerge(dim, eps)

    def forward(self, x: torch.Tensor, tap: int,
                run: Callable[..., torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x (torch.Tensor): ``(B, L, s, s, C)``, an ``s x s`` grid per unit.
            tap (int): Blocks run before the stage's output is taken (``0``: its
                input; ``len(blocks)``: after the last block).
            run (Callable): ``run(block, x)`` runs one block.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: The PatchMerged tokens
            ``(B, L, s/2, s/2, 2C)`` and the tapped output ``(B, L, s, s, C)``.
        """
        out = x
        for j, blk in enumerate(self.blocks):
            x = run(blk, x)
            if j + 1 == tap:
                out = x
        return self.downsample(x), out


class Attention(nn.Module):
    """Multi-head self-attention (:func:`~hivit_mm.models.attention.attention`).

    The relative position bias, when the block has a table, is looked up with an index
    given by the caller and added as a float mask.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float,
                 proj_drop: float, rel_table_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        if rel_table_size:
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros(rel_table_size, num_heads))
        else:
            self.relative_position_bias_table = None

    def forward(self,
                x: torch.Tensor,
                rel_index: Optional[torch.Tensor] = None,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x (torch.Tensor): ``(B, N, C)``.
            rel_index (torch.Tensor, optional): ``(N, N)`` or per-sample ``(B, N, N)``
                indices into the bias table. Required when the block has a table.
            key_mask (torch.Tensor, optional): ``(B, 1, 1, N)`` additive mask on keys
                (``-inf`` for padding).

        Returns:
            torch.Tensor: ``(B, N, C)``.
        """
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each B, heads, N, C/heads
        mask = key_mask
        if self.relative_position_bias_table is not None:
            bias = self.relative_position_bias_table[rel_index]  # [B,] N, N, heads
            bias = bias.movedim(-1, -3)  # [B,] heads, N, N
            mask = bias if mask is None else bias + mask
        x = attention(q, k, v, mask, dropout_p=self.attn_drop if self.training else
                      0.)  # B, heads, N, C/heads
        x = x.transpose(1, 2).reshape(B, N, C)  # B, N, C
        return self.proj_drop(self.proj(x))


class AttentionBlock(nn.Module):
    """Pre-norm transformer block of the main stage."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 drop: float, attn_drop: float, drop_path: float, eps: float,
                 rel_table_size: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop,
                              rel_table_size)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self,
                x: torch.Tensor,
                rel_index: Optional[torch.Tensor] = None,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), rel_index, key_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Conv k=s=4, then LayerNorm, laid out as a 4x4 token grid per unit.

    ``(B, 3, H, W) -> (B, H/16 * W/16, 4, 4, C)`` with units in row-major order.
    """

    def __init__(self, in_channels: int, dim: int, eps: float) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=TOKENS_PER_UNIT_SIDE,
                              stride=TOKENS_PER_UNIT_SIDE)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        hp, wp = H // UNIT_SIZE, W // UNIT_SIZE
        t = TOKENS_PER_UNIT_SIDE
        x = self.proj(x).reshape(B, -1, hp, t, wp, t)  # B, C, hp, 4, wp, 4
        x = x.permute(0, 2, 4, 3, 5, 1).reshape(B, hp * wp, t, t, -1)  # B, L, 4, 4, C
        return self.norm(x)


def resize_position_tables(state: Dict[str, torch.Tensor],
                           grid: Tuple[int, int],
                           pos_grid: Optional[Tuple[int, int]] = None,
                           rel_mode: str = 'geometric',
                           src_grid: Optional[Sequence[int]] = None,
                           src_pos_grid: Optional[Sequence[int]] = None,
                           unrecorded_grid: Optional[Tuple[int, int]] = None
                           ) -> Dict[str, torch.Tensor]:
    """Resize the position tables of a HiViT state dict saved for another grid.

    The one place where learned tables change size, run on every load (strict
    loading, resume, ``load_from``) through :class:`HiViT`'s ``load_state_dict``
    pre-hook, as mmpretrain resizes in a load hook. ``pos_embed`` is resized bicubically
    (mmpretrain's ``resize_pos_embed``), relative tables by
    :func:`~hivit_mm.models.geometry.resize_rel_pos_bias_table`.

    The grid the tables were made for is never guessed from a token count:
    :class:`HiViT` records it in the metadata of every state dict it saves (``grid``
    and ``pos_grid``), and so do the converters of :mod:`hivit_mm.models.convert_hivit`
    (the release's 224 px); a 4x16 table is resized as 4x16 (and a 16x4 one into a
    4x16 model is resized although its shape fits). Tables saved without the record
    are of ``unrecorded_grid`` if given, else of the one grid their sizes tell: a
    square one, from an absolute table of ``n*n`` tokens together with relative tables
    of ``(2n-1)**2`` rows (:func:`_unrecorded_grid`); anything else is refused, even
    when the shapes fit this model.

    Args:
        state (dict[str, torch.Tensor]): HiViT keys, prefix removed.
        grid (tuple[int, int]): ``(h, w)`` units of the target model's relative tables.
        pos_grid (tuple[int, int], optional): ``(h, w)`` of its absolute table.
            Defaults to ``grid``.
        rel_mode (str): ``mode`` of ``resize_rel_pos_bias_table``. Defaults to
            ``'geometric'`` (the official segmentation loader).
        src_grid (Sequence[int], optional): ``(h, w)`` the relative tables were saved
            for, if recorded. Defaults to None.
        src_pos_grid (Sequence[int], optional): ``(h, w)`` the absolute table was saved
            for, if recorded. Defaults to ``src_grid``.
        unrecorded_grid (tuple[int, int], optional): ``(h, w)`` of tables saved
            without a record (``HiViT(checkpoint_img_size=...)``). Defaults to None.

    Returns:
        dict[str, torch.Tensor]: A new dict, tables resized.

    Raises:
        ValueError: If a table does not fit its grid (recorded or given), or, saved
            without a record, its grid is not told (see :func:`_unrecorded_grid`).
    """
    state = dict(state)
    pos_grid = tuple(pos_grid or grid)
    if src_grid is None and src_pos_grid is None:
        src_grid = unrecorded_grid or _unrecorded_grid(state)
    src = None if src_grid is None else tuple(int(n) for n in src_grid)
    src_pos = src if src_pos_grid is None else tuple(int(n) for n in src_pos_grid)
    src = src or src_pos
    pe = state.get('pos_embed')
    if pe is not None:
        if pe.shape[1] != src_pos[0] * src_pos[1]:
            raise ValueError(f'pos_embed has {pe.shape[1]} tokens but was saved for the '
                             f'grid {src_pos}')
        if src_pos != pos_grid:
            state['pos_embed'] = resize_pos_embed(pe, src_pos, pos_grid, mode='bicubic',
                                                  num_extra_tokens=0)  # 1, h*w, C
    for k, t in state.items():
        if not k.endswith('relative_position_bias_table'):
            continue
        if t.shape[0] != (2 * src[0] - 1) * (2 * src[1] - 1):
            raise ValueError(f'{k} has {t.shape[0]} rows but was saved for the grid '
                             f'{src} ({2 * src[0] - 1} x {2 * src[1] - 1} offsets)')
        state[k] = resize_rel_pos_bias_table(t, src, grid, rel_mode)
    return state


def record_table_grids(module: nn.Module, state_dict, prefix: str,
                       local_metadata: dict) -> None:
    """``state_dict`` post-hook of :class:`HiViT`: record in the metadata the grids its
    position tables are made for (``grid``, ``pos_grid``)."""
    local_metadata['grid'] = list(module.grid)
    local_metadata['pos_grid'] = list(module.pos_grid)


def resize_tables_on_load(module: nn.Module, state_dict, prefix: str,
                          local_metadata: dict, *args) -> None:
    """``load_state_dict`` pre-hook of :class:`HiViT` (as mmpretrain resizes in a load
    hook): its position tables in ``state_dict`` resized in place to the module's grids
    (``module.resize_position_tables``, from the grids recorded in the metadata)."""
    own = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    for k, v in module.resize_position_tables(own, local_metadata).items():
        state_dict[prefix + k] = v


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------
@MODELS.register_module()
class HiViT(BaseModule):
    """HiViT backbone (one definition for classification, MAE, detection and
    segmentation; tasks differ by config). Options whose default is the release's and
    the alternatives kept are described in the module docstring ("Options").

    Args:
        arch (str | dict): A name of :attr:`arch_zoo` or a dict with ``embed_dims``,
            ``depths`` (stem stage 0, stem stage 1, main stage; a stem stage of depth
            ``d`` has ``2d`` MLP blocks, as in the paper), ``num_heads`` and optionally
            ``stem_mlp_ratio`` (default 3) and ``mlp_ratio`` (default 4). Defaults to
            ``'base'`` (the paper's and the released weights' HiViT-B).
        img_size (int | tuple[int, int]): Input size (pixels, multiples of 16) the
            position tables are made for; other inputs work. Defaults to 224.
        pretrain_img_size (int | tuple[int, int], optional): Input size the absolute
            table is kept for, if not ``img_size`` (the official segmentor keeps the
            224 table and resizes it at every forward). Defaults to None.
        checkpoint_img_size (int | tuple[int, int], optional): Input size (pixels) the
            position tables of loaded weights that do not record their grid were made
            for (see :func:`resize_position_tables`; a recorded grid takes
            precedence). Defaults to None: such tables load only where their sizes
            tell a square grid.
        in_channels (int): Defaults to 3.
        qkv_bias (bool): Defaults to True.
        drop_rate (float): Dropout after the position embedding and in MLPs.
            Defaults to 0.
        attn_drop_rate (float): Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly over every stem and
            main block (the official schedule). Defaults to 0.
        use_abs_pos_embed (bool): Learned absolute embedding added at the main stage.
            Defaults to True.
        use_rel_pos_bias (bool): Swin-style relative position bias in each main block,
            over the ``img_size`` grid. Defaults to False.
        rel_pos_zero_init (bool): Relative tables start at zeros (the official
            fine-tuning, detection and segmentation) instead of trunc-normal 0.02
            (official supervised training). Defaults to False.
        rel_pos_resize (str): ``'geometric'`` or ``'bicubic'``. Defaults to
            ``'geometric'``.
        pos_embed_resize (str): ``'scale_factor'`` or ``'size'``. Defaults to
            ``'scale_factor'``.
        window_size (int, optional): Window side in main-stage tokens for the main
            blocks not in ``global_blocks``. Defaults to None (global attention).
        window_padding (str): ``'zeros'`` or ``'masked'``. Defaults to ``'zeros'``.
        global_blocks (Sequence[int], optional): Main blocks kept global when
            windowed. Defaults to :func:`quarter_global_blocks`.
        out_indices (int | Sequence[int]): Stages to output (the module docstring's
            table); negative values count from 4. Defaults to ``(2, )``.
        stem_taps (str): ``'mid'`` or ``'end'``. Defaults to ``'mid'``.
        out_norm (bool): LayerNorm (eps 1e-6) on each output, as the official detector.
            Defaults to False.
        norm_eps (float): LayerNorm eps. Defaults to 1e-6 (official).
        frozen_stages (int): Freeze stages ``0..frozen_stages`` (module docstring);
            -1 freezes nothing. Defaults to -1.
        with_cp (bool): Activation checkpointing of every stem and main block in
            training (about a third more compute, much less activation memory; what
            HiViT-L needs on most GPUs). Defaults to False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=..., prefix=...)``
            loads weights in :meth:`init_weights` with strict key checks
            (:func:`~hivit_mm.models.loading.load_backbone_weights`). Defaults to None.

    Raises:
        ValueError: For an invalid arch, size, option value, window or stage argument.
    """
    arch_zoo: Dict[str, dict] = {
        # name: embed_dims, depths, heads      params (1000-class head), MACs @224
        'tiny': dict(embed_dims=384, depths=(1, 1, 10), num_heads=6),  # 19.18M 4.60G
        'small': dict(embed_dims=384, depths=(2, 2, 20), num_heads=6),  # 37.53M 9.07G
        'base': dict(embed_dims=512, depths=(2, 2, 20), num_heads=8),  # 66.42M 15.85G
        # iTPN's HiViT-L (no official HiViT weights), as mmpretrain's arch='large'
        'large': dict(embed_dims=768, depths=(2, 2, 40), num_heads=12),  # 290.71M 63.98G
    }
    num_stages = 4
    # Values of the options that choose between the release's behaviour (first) and
    # an alternative.
    options: Dict[str, Tuple[str, ...]] = dict(
        rel_pos_resize=('geometric', 'bicubic'),
        pos_embed_resize=('scale_factor', 'size'),
        window_padding=('zeros', 'masked'),
        stem_taps=('mid', 'end'))
    # Parts a checkpoint may lack as a whole (its model had none): they keep their init
    # (read by hivit_mm.models.loading).
    optional_keys: Tuple[str, ...] = ('relative_position_bias_table', 'out_norms.')

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 pretrain_img_size: Optional[Union[int, Tuple[int, int]]] = None,
                 checkpoint_img_size: Optional[Union[int, Tuple[int, int]]] = None,
                 in_channels: int = 3,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 use_abs_pos_embed: bool = True,
                 use_rel_pos_bias: bool = False,
                 rel_pos_zero_init: bool = False,
                 rel_pos_resize: str = 'geometric',
                 pos_embed_resize: str = 'scale_factor',
                 window_size: Optional[int] = None,
                 window_padding: str = 'zeros',
                 global_blocks: Optional[Sequence[int]] = None,
                 out_indices: Union[int, Sequence[int]] = (2, ),
                 stem_taps: str = 'mid',
                 out_norm: bool = False,
                 norm_eps: float = 1e-6,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch = _parse_arch(arch, self.arch_zoo)
        dim = self.embed_dims = self.arch['embed_dims']
        self.depths = tuple(self.arch['depths'])
        self.num_heads = self.arch['num_heads']
        self.grid = unit_grid(img_size, UNIT_SIZE, 'img_size')
        self.pos_grid = self.grid if pretrain_img_size is None else unit_grid(
            pretrain_img_size, UNIT_SIZE, 'pretrain_img_size')
        self.checkpoint_grid = None if checkpoint_img_size is None else unit_grid(
            checkpoint_img_size, UNIT_SIZE, 'checkpoint_img_size')
        chosen = dict(rel_pos_resize=rel_pos_resize, pos_embed_resize=pos_embed_resize,
                      window_padding=window_padding, stem_taps=stem_taps)
        for name, value in chosen.items():  # self.rel_pos_resize etc.
            setattr(self, name, check_choice(name, value, self.options[name]))
        self.out_indices = normalize_out_indices(out_indices, self.num_stages)
        self.channels = (dim // 4, dim // 2, dim, dim)
        self.strides = (4, 8, 16, 32)
        if not -1 <= frozen_stages < self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {self.num_stages - 1}], '
                             f'got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        self.use_rel_pos_bias = use_rel_pos_bias
        self.rel_pos_zero_init = rel_pos_zero_init

        stem_depths = [2 * d for d in self.depths[:2]]
        depth = self.depths[2]
        dpr = torch.linspace(0, drop_path_rate,
                             sum(stem_depths) + depth).tolist()  # official schedule
        self.patch_embed = PatchEmbed(in_channels, dim // 4, norm_eps)
        self.stem = nn.ModuleList(
            StemStage(self.channels[s], stem_depths[s], self.arch['stem_mlp_ratio'],
                      drop_rate, dpr[sum(stem_depths[:s]):], norm_eps) for s in (0, 1))
        self.pos_embed = nn.Parameter(torch.zeros(
            1, self.pos_grid[0] * self.pos_grid[1], dim)) if use_abs_pos_embed else None
        self.pos_drop = nn.Dropout(drop_rate)
        rel_table_size = ((2 * self.grid[0] - 1) *
                          (2 * self.grid[1] - 1)) if use_rel_pos_bias else 0
        self.blocks = nn.ModuleList(
            AttentionBlock(dim, self.num_heads, self.arch['mlp_ratio'], qkv_bias,
                           drop_rate, attn_drop_rate, dp, norm_eps, rel_table_size)
            for dp in dpr[sum(stem_depths):])
        self.window_size = window_size
        self.global_blocks = _parse_windows(window_size, global_blocks, depth,
                                            self.grid if use_rel_pos_bias else None)
        # Windowed runs of main blocks are partitioned once per run.
        self._runs = _block_runs(depth, self.global_blocks)
        # Relative indices shared by every block (global grid, and window grid when
        # windowed); derived, so non-persistent.
        window = None if window_size is None else (window_size, window_size)
        for name, g in (('rel_pos_index', self.grid), ('win_rel_pos_index', window)):
            self.register_buffer(name, relative_position_index(g, self.grid)
                                 if use_rel_pos_bias and g else None, persistent=False)
        self._rel_index_cache: Dict[tuple, torch.Tensor] = {}  # other grids, by device

        self.out_norms = nn.ModuleDict({
            str(i): LayerNorm2d(self.channels[i], eps=1e-6)
            for i in self.out_indices
        }) if out_norm else None
        self._freeze_stages()
        self.register_state_dict_post_hook(record_table_grids)
        self.register_load_state_dict_pre_hook(resize_tables_on_load)

    # -- weights --------------------------------------------------------------
    def init_weights(self) -> None:
        """Initialise as the official code, then load ``init_cfg`` weights if any."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=.02)
        for blk in self.blocks:
            table = blk.attn.relative_position_bias_table
            if table is not None:
                (nn.init.zeros_(table) if self.rel_pos_zero_init else trunc_normal_(
                    table, std=.02))
        if self.init_cfg is not None:
            init_pretrained(self, self.init_cfg)
        self._is_init = True

    def resize_position_tables(self, state: Dict[str, torch.Tensor],
                               saved_grids: Optional[dict] = None
                               ) -> Dict[str, torch.Tensor]:
        """:func:`resize_position_tables` to this model's grids, with its
        ``rel_pos_resize``, from the grids the tables were saved for if recorded (used
        by strict loading, :mod:`hivit_mm.models.loading`, and the ``load_state_dict``
        pre-hook); tables without a record are of ``checkpoint_img_size`` if set."""
        saved_grids = saved_grids or {}
        src_grid, src_pos_grid = saved_grids.get('grid'), saved_grids.get('pos_grid')
        return resize_position_tables(state, self.grid, self.pos_grid,
                                      self.rel_pos_resize, src_grid, src_pos_grid,
                                      self.checkpoint_grid)

    # -- freezing and layer-wise lr decay ------------------------------------
    def _stage_modules(self, stage: int) -> List[nn.Module]:
        if stage == 0:
            mods = [self.patch_embed, *self.stem[0].blocks]
        elif stage == 1:
            mods = [self.stem[0].downsample, *self.stem[1].blocks]
        elif stage == MAIN_STAGE:
            mods = [self.stem[1].downsample, *self.blocks]
        else:  # POOLED_STAGE: no parameters of its own
            mods = []
        if self.out_norms is not None and str(stage) in self.out_norms:
            mods.append(self.out_norms[str(stage)])
        return mods

    def _freeze_stages(self) -> None:
        for stage in range(self.frozen_stages + 1):
            for m in self._stage_modules(stage):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False
            if stage == MAIN_STAGE:  # frozen means deterministic: no dropout either
                self.pos_drop.eval()
                if self.pos_embed is not None:
                    self.pos_embed.requires_grad = False

    def train(self, mode: bool = True) -> 'HiViT':
        super().train(mode)
        self._freeze_stages()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '',
                        numbering: str = 'stem_as_one') -> Tuple[int, int]:
        """:func:`layer_depth` of a parameter of this model (the method layer-wise lr
        decay asks for, as mmpretrain's backbones have)."""
        return layer_depth(param_name, self.depths, prefix, numbering)

    # -- forward ------------------------------------------------------------
    def _run_block(self, blk: nn.Module, *args) -> torch.Tensor:
        if self.with_cp and self.training and args[0].requires_grad:
            return cp.checkpoint(blk, *args, use_reentrant=False)
        return blk(*args)

    def _rel_index_for(self, grid: Tuple[int, int]) -> torch.Tensor:
        """``(N, N)`` relative index for a grid no larger than the tables' (its offsets
        are a subset); a larger one has offsets the tables never learned: refused."""
        if grid == self.grid:
            return self.rel_pos_index
        if grid[0] > self.grid[0] or grid[1] > self.grid[1]:
            raise ValueError(
                f'input grid {grid} exceeds the relative position tables\' grid '
                f'{self.grid} (img_size {self.grid[0] * UNIT_SIZE}x'
                f'{self.grid[1] * UNIT_SIZE}); build the model with an img_size covering '
                'the input, or use window attention / sliding-window inference')
        key = (grid, self.rel_pos_index.device)
        if key not in self._rel_index_cache:  # derived once per grid, not per forward
            self._rel_index_cache[key] = relative_position_index(grid, self.grid).to(
                self.rel_pos_index.device)
        return self._rel_index_cache[key]

    def forward_units(self,
                      x: torch.Tensor,
                      ids_keep: Optional[torch.Tensor] = None,
                      stem_taps: str = 'end'
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the network on (optionally a subset of) units; unit-major tokens.

        Args:
            x (torch.Tensor): Images ``(B, 3, H, W)``, sides multiples of 16.
            ids_keep (torch.Tensor, optional): ``(B, L)`` int64 indices of the units to
                keep per sample (row-major over the ``H/16 x W/16`` grid). Masked units
                are dropped right after the patch embedding; the absolute embedding and
                the relative index are gathered to match. Requires global attention.
                Defaults to None (all units, in order).
            stem_taps (str): Where the two stem outputs are taken, ``'end'`` or
                ``'mid'`` (see ``HiViT``'s argument). Defaults to ``'end'`` (the stem
                features MAE's ``fuse_stem_features`` concatenates, as the release's
                ``hifeat``).

        Returns:
            tuple[torch.Tensor, torch.Tensor, torch.Tensor]: Stage outputs per kept
            unit: ``(B, L, 4, 4, C/4)``, ``(B, L, 2, 2, C/2)`` and ``(B, L, C)``.
        """
        grid = unit_grid(x.shape[-2:], UNIT_SIZE)
        x = self.patch_embed(x)  # B, N, 4, 4, C/4
        if ids_keep is not None:
            if self.window_size is not None:
                raise ValueError('masked forward (ids_keep) needs global attention; '
                                 'build the model with window_size=None')
            x = take_units(x, ids_keep)  # B, L, 4, 4, C/4
        # number of blocks of each stem stage before its output is tapped
        taps = ((len(self.stem[0].blocks) // 2, 0) if stem_taps == 'mid' else
                (len(self.stem[0].blocks), len(self.stem[1].blocks)))
        outs = []
        for stage, tap in zip(self.stem, taps):
            x, out = stage(x, tap, self._run_block)  # B, L, h/2, w/2, 2C
            outs.append(out)
        x = x.flatten(1, 3)  # B, L, C
        if self.pos_embed is not None:
            pos = resize_abs_pos_embed(self.pos_embed, self.pos_grid, grid,
                                       self.pos_embed_resize)  # 1, N, C
            if ids_keep is not None:
                pos = take_units(pos.expand(x.shape[0], -1, -1), ids_keep)  # B, L, C
            x = x + pos
        x = self.pos_drop(x)
        outs.append(self._main_stage(x, grid, ids_keep))
        return tuple(outs)

    def _main_stage(self, x: torch.Tensor, grid: Tuple[int, int],
                    ids_keep: Optional[torch.Tensor]) -> torch.Tensor:
        rel_index = None
        if self.use_rel_pos_bias and any(not w for _, _, w in self._runs):
            rel_index = self._rel_index_for(grid)  # N, N
            if ids_keep is not None:
                rel_index = rel_index[ids_keep[:, :, None],
                                      ids_keep[:, None, :]]  # B, L, L
        for start, stop, windowed in self._runs:
            if windowed:
                x = run_windowed(self.blocks[start:stop], x, grid, self.window_size,
                                 self.window_padding, self.win_rel_pos_index,
                                 self._run_block)
            else:
                for blk in self.blocks[start:stop]:
                    x = self._run_block(blk, x, rel_index)
        return x

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """
        Args:
            x (torch.Tensor): ``(B, 3, H, W)``, sides multiples of 16.

        Returns:
            tuple[torch.Tensor, ...]: For each of ``out_indices``, an NCHW map:
            stage 0 ``(B, C/4, H/4, W/4)``, 1 ``(B, C/2, H/8, W/8)``,
            2 ``(B, C, H/16, W/16)``, 3 ``(B, C, H/32, W/32)``.
        """
        grid = unit_grid(x.shape[-2:], UNIT_SIZE)
        units = self.forward_units(x, stem_taps=self.stem_taps)
        maps = {  # only the stages asked for (the pooled stage needs the main one)
            i: units_to_map(units[i], grid)
            for i in {MAIN_STAGE if i == POOLED_STAGE else i for i in self.out_indices}
        }
        outs = []
        for i in self.out_indices:
            out = F.max_pool2d(maps[MAIN_STAGE], 2) if i == POOLED_STAGE else maps[i]
            if self.out_norms is not None:
                out = self.out_norms[str(i)](out)
            outs.append(out.contiguous())
        return tuple(outs)
