# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""GreenMIM: a Swin Transformer encoder that computes only the visible tokens.

Huang et al., "Green Hierarchical Vision Transformer for Masked Image Modeling",
NeurIPS 2022 (https://arxiv.org/abs/2205.13515). Written from the paper on top of
mmpretrain's Apache-2.0 ``SwinTransformer``; the authors' CC-BY-NC release
(LayneH/GreenMIM) was read as a specification only.

:class:`GreenSwin` *is* mmpretrain's ``SwinTransformer``: same modules, parameter names
and shapes, so checkpoints move between the two with ``strict=True`` either way. Only
the forward differs:

* **Mask units** are ``unit = patch_size * 2**(num_stages - 1)`` pixels square (32 for
  Swin), one last-stage token each. The stride-4 patch embedding runs on the whole image;
  then the tokens of the kept units are gathered. A stage-``s`` unit is a ``u x u`` block
  of tokens (``u = 8, 4, 2, 1``), stored *unit-major* (units in ``ids_keep`` order, then
  raster inside the unit), so the visible tokens of a batch form one ``(B, K*u*u, C)``
  tensor, PatchMerging is a reshape inside each unit (mmpretrain's ``nn.Unfold`` channel
  order, so weights are interchangeable with ``SwinTransformer``), and the last stage
  comes out in ``ids_keep`` order, as mmpretrain's ``MAE`` expects.
* **Windows** come from coordinates, without a roll: with window ``M`` and shift ``s``,
  a token at ``(h, w)`` is in window ``((h + o) // M, (w + o) // M)``, with
  ``o = (M - s) % M``. These offset windows are exactly the regions Swin separates with
  its cyclic shift and attention mask; partial border windows need no padding. Swin's
  rule applies per stage: shift ``M // 2`` on odd blocks, except that a stage at most
  ``M`` tokens on a side has no shift and a window of its side. Attention adds the
  relative position bias of the coordinate difference (mmpretrain's persistent
  ``relative_position_index`` buffers are kept for strict loading, not used) and
  ``-inf`` across windows.
* **Two attention modes** per stage (``attn_mode='auto'``, as released): with at most
  ``2 * M * M`` visible tokens per sample, one attention over all of them under a
  block-diagonal mask ("masking"); otherwise Group Window Attention ("grouping"): windows
  packed into equal-size groups (:mod:`hivit_mm.models.grouping`), one attention per
  group under a block mask, results scattered back and padding dropped.
* **Masks** may differ per sample. The items packed into groups are then the
  ``(sample, window)`` pairs of the whole batch, so a stage still runs as a few large
  tensor ops on a flattened ``(1, B*N, C)`` batch. When every row of ``ids_keep`` is the
  same (``shared_mask=True``, as released, or the unmasked dense path), one sample is
  planned and its layout is broadcast over the batch.
* **No host-device sync inside the network.** Masks are drawn on the host; the group
  plans of all stages are made there from the mask (cost ``O(windows)``), their index
  arrays cross to the device in one copy, and token-level indices are built there with
  vectorised ops. The layouts of the dense path are cached per input size.

Differences from the release: per-sample masks; the group size chosen by cost
(:func:`~hivit_mm.models.grouping.plan_groups`); ``-inf`` rather than ``-100`` across
windows (no leakage; equal to float precision); PatchMerging in mmpretrain's channel
order (the release's newest code concatenates the 2x2 sub-tokens in Swin order
``(0,0),(1,0),(0,1),(1,1)``, its 2022 checkpoints row-first: converting them permutes the
input channels of ``downsample.norm`` and ``downsample.reduction``); one
``(2M-1)**2`` bias table per block as in mmpretrain, whose centre serves a stage whose
window shrank (the release builds a smaller table there).

Outside pre-training, ``forward(x, mask=None)`` runs the same code with every unit kept.
It equals mmpretrain's ``SwinTransformer`` (``pad_small_map=False``) whenever the windows
tile every stage. Elsewhere mmpretrain pads: its zero tokens join the border windows
(which stay partial here), and a stage smaller than the window (window 14 at 224 px) is
refused unless ``pad_small_map=True``, which pads instead of shrinking the window as the
original Swin, and this module, do.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.transformer import PatchMerging
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.models.backbones.swin_transformer import SwinBlock
from mmpretrain.models.utils.attention import WindowMSA

from hivit_mm.registry import MODELS
from .attention import attention
from .geometry import (MaskedForward, check_choice, check_mask_ratio,
                       normalize_out_indices, random_unit_masking, relative_index,
                       select_arch, take_units, unit_grid, use_masking)
from .grouping import GroupPlan, plan_groups

__all__ = [
    'GreenSwin', 'WindowLayout', 'stage_window', 'unit_token_coords', 'window_index',
    'window_counts', 'window_attention', 'merge_units'
]

ATTN_MODES = ('auto', 'masking', 'grouping')
DENSE_CACHE_SIZE = 8  # input sizes whose dense layouts are kept


class WindowLayout(NamedTuple):
    """Where each visible token of a stage goes for one (shifted) window partition.

    The visible tokens of ``rows`` samples are flattened to ``rows * N`` tokens
    (``rows`` is ``B`` for per-sample masks, 1 for a mask shared by the batch) and laid
    out as ``num_groups`` groups of ``group_size`` slots.

    Attributes:
        rows (int): Samples planned (``P``).
        num_groups (int): ``G``.
        group_size (int): ``g``.
        gather (torch.Tensor, optional): ``(G*g,)`` token of each slot (padding slots
            repeat token 0). None: slots are the tokens (masking mode).
        scatter (torch.Tensor, optional): ``(P*N,)`` slot of each token. None: as above.
        bias_index (torch.Tensor): ``(G, g, g)`` row of the extended bias table for each
            (query, key) slot pair; the last row is ``-inf`` (different windows).
    """
    rows: int
    num_groups: int
    group_size: int
    gather: Optional[torch.Tensor]
    scatter: Optional[torch.Tensor]
    bias_index: torch.Tensor


# ----------------------------------------------------------------------------
# Pure helpers
# ----------------------------------------------------------------------------
def stage_window(resolution: Tuple[int, int], window_size: int) -> Tuple[int, int]:
    """Swin's window rule for a stage.

    Args:
        resolution (tuple[int, int]): ``(H, W)`` tokens of the stage.
        window_size (int): Configured window ``M``.

    Returns:
        tuple[int, int]: ``(window, shift)`` for the stage: ``(M, M // 2)``, or
        ``(min(H, W), 0)`` when ``min(H, W) <= M``.
    """
    side = min(resolution)
    if side <= window_size:
        return side, 0
    return window_size, window_size // 2


def unit_token_coords(ids_keep: torch.Tensor, grid_width: int, unit: int) -> torch.Tensor:
    """``(h, w)`` coordinates of the tokens of kept units, unit-major.

    Args:
        ids_keep (torch.Tensor): ``(B, K)`` kept units, raster index on a grid
            ``grid_width`` units wide.
        grid_width (int): Units per image row.
        unit (int): ``u``, tokens per unit side at this stage.

    Returns:
        torch.Tensor: ``(B, K*u*u, 2)`` int64 coordinates on the stage's token grid.
    """
    local = torch.arange(unit, device=ids_keep.device)
    h = (ids_keep // grid_width)[:, :, None, None] * unit + local[:, None]  # B, K, u, 1
    w = (ids_keep % grid_width)[:, :, None, None] * unit + local[None, :]  # B, K, 1, u
    coords = torch.stack(torch.broadcast_tensors(h, w), dim=-1)  # B, K, u, u, 2
    return coords.flatten(1, 3)  # B, K*u*u, 2


def window_index(coords: torch.Tensor, width: int, window: int,
                 shift: int) -> torch.Tensor:
    """Raster index of the (shifted) window holding each token.

    Window ``((h + o) // M, (w + o) // M)`` with ``o = (M - shift) % M``: the partition
    Swin makes with its cyclic shift and mask, border windows being partial.

    Args:
        coords (torch.Tensor): ``(..., 2)`` token coordinates.
        width (int): Tokens per row of the stage.
        window (int): ``M``.
        shift (int): ``s``.

    Returns:
        torch.Tensor: ``(...)`` window index, ``< ceil((H + o) / M) * ceil((W + o) / M)``.
    """
    offset = (window - shift) % window
    cols = -(-(width + offset) // window)
    win = torch.div(coords + offset, window, rounding_mode='floor')  # ..., 2
    return win[..., 0] * cols + win[..., 1]


def window_counts(ids_keep: np.ndarray, grid: Tuple[int, int], unit: int, window: int,
                  shift: int) -> np.ndarray:
    """Visible tokens per (shifted) window, from the kept units alone (host side).

    A unit covers a ``u x u`` block, so the count is separable: ``O_h @ V @ O_w.T`` with
    ``V`` the unit visibility map and ``O[k, j]`` the tokens of unit row ``j`` in window
    row ``k``. Windows are ordered as :func:`window_index`.

    Args:
        ids_keep (np.ndarray): ``(P, K)`` kept units.
        grid (tuple[int, int]): ``(H_u, W_u)`` units per image side.
        unit (int): ``u``.
        window (int): ``M``.
        shift (int): ``s``.

    Returns:
        np.ndarray: ``(P, n_h, n_w)`` int64 counts.
    """
    offset = (window - shift) % window

    def overlap(units: int) -> np.ndarray:
        coord = np.arange(units * unit)
        win = (coord + offset) // window
        return np.bincount(win * units + coord // unit,
                           minlength=(win[-1] + 1) * units).reshape(-1, units)  # n, U

    visible = np.zeros((ids_keep.shape[0], grid[0] * grid[1]))
    np.put_along_axis(visible, ids_keep, 1., axis=1)
    visible = visible.reshape(-1, *grid)  # P, H_u, W_u
    counts = overlap(grid[0]) @ visible @ overlap(grid[1]).T  # P, n_h, n_w
    return np.rint(counts).astype(np.int64)


def _pair_bias_index(window_id: torch.Tensor, coords: torch.Tensor,
                     table_window: int) -> torch.Tensor:
    """Bias-table row of every (query, key) pair; ``(2M-1)**2`` (-inf) across windows.

    Args:
        window_id (torch.Tensor): ``(G, g)`` window of each slot (-1 for padding, whose
            pairs then index a finite row, so padded rows cannot turn NaN).
        coords (torch.Tensor): ``(G, g, 2)`` coordinates of each slot.
        table_window (int): ``M`` the table was made for (``(2M-1)**2`` rows).

    Returns:
        torch.Tensor: ``(G, g, g)`` int64.
    """
    span = 2 * table_window - 1
    index = relative_index(coords, coords, (table_window, table_window))  # G, g, g
    same = window_id[:, :, None] == window_id[:, None, :]  # G, g, g
    return torch.where(same, index, span * span)


def _to_device(arrays: Sequence[np.ndarray], device: torch.device) -> List[torch.Tensor]:
    """Move int64 host arrays to ``device`` in one (pinned, asynchronous) copy."""
    sizes = [a.size for a in arrays]
    flat = torch.from_numpy(np.concatenate([a.ravel() for a in arrays]).astype(np.int64))
    if device.type == 'cuda':
        flat = flat.pin_memory().to(device, non_blocking=True)
    else:
        flat = flat.to(device)
    return [t.view(a.shape) for t, a in zip(flat.split(sizes), arrays)]  # as on host


# ----------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------
def window_attention(w_msa: WindowMSA, x: torch.Tensor,
                     layout: WindowLayout) -> torch.Tensor:
    """Window attention of visible tokens, with the parameters of an mmpretrain W-MSA.

    Args:
        w_msa (WindowMSA): Provides ``qkv``, ``proj``, ``relative_position_bias_table``,
            ``scale`` and dropouts.
        x (torch.Tensor): ``(B, N, C)`` visible tokens (normalised).
        layout (WindowLayout): Windows and groups of these tokens.

    Returns:
        torch.Tensor: ``(B, N, C)``.
    """
    B, N, C = x.shape
    heads, groups, size = w_msa.num_heads, layout.num_groups, layout.group_size
    x = x.reshape(B // layout.rows, layout.rows * N, C)  # B', P*N, C
    if layout.gather is not None:
        x = x[:, layout.gather]  # B', G*g, C
    batch = x.shape[0]
    qkv = w_msa.qkv(x).view(batch, groups, size, 3, heads, -1)  # B', G, g, 3, h, C/h
    qkv = qkv.permute(3, 0, 1, 4, 2, 5)  # 3, B', G, h, g, C/h
    table = w_msa.relative_position_bias_table  # (2M-1)**2, heads
    table = torch.cat([table, table.new_full((1, heads), float('-inf'))])
    bias = F.embedding(layout.bias_index, table)  # G, g, g, heads
    bias = bias.permute(0, 3, 1, 2).to(  # G, h, g, g
        dtype=qkv.dtype, memory_format=torch.contiguous_format)
    if batch == 1:  # groups as the batch: no broadcast needed
        q, k, v = qkv.reshape(3, groups, heads, size, -1).unbind(0)  # G, h, g, C/h
    else:  # one layout for all samples: broadcast the bias over them
        qkv = qkv.reshape(3, batch, groups * heads, size, -1)  # 3, B', G*h, g, C/h
        q, k, v = qkv.unbind(0)
        bias = bias.view(1, groups * heads, size, size)  # 1, G*h, g, g
    x = attention(q, k, v, bias, dropout_p=w_msa.attn_drop.p if w_msa.training else 0.,
                  scale=w_msa.scale)
    x = x.view(batch, groups, heads, size, -1).transpose(2, 3)  # B', G, g, h, C/h
    x = x.reshape(batch, groups * size, C)  # B', G*g, C
    if layout.scatter is not None:
        x = x[:, layout.scatter]  # B', P*N, C
    x = w_msa.proj_drop(w_msa.proj(x))
    return x.view(B, N, C)  # B, N, C


def _block_forward(block: SwinBlock, x: torch.Tensor,
                   layout: WindowLayout) -> torch.Tensor:
    """An mmpretrain ``SwinBlock`` on visible tokens ``(B, N, C)``."""

    def inner(x: torch.Tensor) -> torch.Tensor:
        attn = window_attention(block.attn.w_msa, block.norm1(x), layout)
        x = x + block.attn.drop(attn)
        return block.ffn(block.norm2(x), identity=x)

    if block.with_cp and x.requires_grad:
        return cp.checkpoint(inner, x, use_reentrant=False)
    return inner(x)


def merge_units(downsample: PatchMerging, x: torch.Tensor, unit: int) -> torch.Tensor:
    """mmcv ``PatchMerging`` (2x2, stride 2) of unit-major tokens.

    Args:
        downsample (PatchMerging): Provides ``norm`` and ``reduction``.
        x (torch.Tensor): ``(B, K*u*u, C)`` tokens, unit-major.
        unit (int): ``u``, even.

    Returns:
        torch.Tensor: ``(B, K*(u/2)**2, C_out)``, unit-major; input channels in
        ``nn.Unfold`` order ``c * 4 + 2 * dh + dw``.
    """
    B, _, C = x.shape
    half = unit // 2
    x = x.view(B, -1, half, 2, half, 2, C)  # B, K, i, dh, j, dw, C
    x = x.permute(0, 1, 2, 4, 6, 3, 5).reshape(B, -1, 4 * C)  # B, K*i*j, C*dh*dw
    if downsample.norm is not None:
        x = downsample.norm(x)
    return downsample.reduction(x)


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------
@MODELS.register_module()
class GreenSwin(SwinTransformer):
    """Swin Transformer that encodes only the visible tokens (GreenMIM).

    Parameters are those of mmpretrain's ``SwinTransformer`` built with the same
    arguments (``arch`` table: ``'tiny'``, ``'small'``, ``'base'`` (128, [2, 2, 18, 2],
    [4, 8, 16, 32]), ``'large'`` (192, [2, 2, 18, 2], [6, 12, 24, 48]) or a dict with
    ``embed_dims``, ``depths``, ``num_heads``). ``norm_cfg`` applies to every LayerNorm
    (patch embedding, blocks, PatchMerging, outputs).

    * ``forward(x)`` (``mask=True``): pre-training, for mmpretrain's ``MAE``. Draws a
      random mask, encodes the kept units and returns ``latent (B, L_keep, C_last)``
      after ``norm{last}``, ``mask (B, L)`` (1 = removed) and ``ids_restore (B, L)``.
    * ``forward(x, mask=None)``: every unit kept; the ``out_indices`` stage outputs after
      their norms, NCHW, as ``SwinTransformer``.
    * :meth:`forward_visible`: the raw stage outputs for given ``ids_keep``.

    Inputs must be multiples of ``patch_size * 2**(num_stages - 1)`` pixels (the unit).

    Args:
        arch (str | dict): Defaults to ``'base'``.
        img_size (int | tuple): Nominal input size. Defaults to 224.
        patch_size (int): Defaults to 4.
        in_channels (int): Defaults to 3.
        window_size (int): ``M``; GreenMIM uses 7 or 14. Defaults to 7.
        mask_ratio (float): Fraction of units removed, in (0, 1); ``int(L * (1 - r))``
            units are kept. Defaults to 0.75.
        shared_mask (bool): Draw one mask for the whole batch, as the release. Defaults
            to False (one per sample).
        attn_mode (str): ``'auto'`` (masking mode when a sample has at most ``2*M*M``
            visible tokens in a stage, else grouping, as released), ``'masking'`` or
            ``'grouping'`` (forced, for tests and benchmarks). Defaults to ``'auto'``.
        drop_rate (float): Dropout after the patch embedding. Defaults to 0.
        drop_path_rate (float): Stochastic depth. Defaults to 0 (GreenMIM).
        out_indices (int | Sequence[int]): Stages output by the dense forward (negative
            counts from the end); the masked forward needs the last. Defaults to ``(3,)``.
        with_cp (bool): Gradient checkpointing of each block. Defaults to False.
        frozen_stages (int): Stages to freeze, -1 for none. Defaults to -1.
        norm_eval (bool): Batch norms in eval mode. Defaults to False.
        norm_cfg (dict, optional): Defaults to ``dict(type='LN', eps=1e-6)`` (GreenMIM).
        init_cfg (dict | list[dict], optional): Defaults to None.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 window_size: int = 7,
                 mask_ratio: float = 0.75,
                 shared_mask: bool = False,
                 attn_mode: str = 'auto',
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        num_stages = len(select_arch(arch.lower() if isinstance(arch, str) else arch,
                                     self.arch_zoo, what='Swin')['depths'])
        check_choice('attn_mode', attn_mode, ATTN_MODES)
        if window_size < 1:
            raise ValueError(f'window_size must be positive, got {window_size}')
        out_indices = normalize_out_indices(out_indices, num_stages)
        norm_cfg = dict(type='LN', eps=1e-6) if norm_cfg is None else norm_cfg
        super().__init__(
            arch=arch, img_size=img_size, patch_size=patch_size, in_channels=in_channels,
            window_size=window_size, drop_rate=drop_rate, drop_path_rate=drop_path_rate,
            out_indices=out_indices, with_cp=with_cp, frozen_stages=frozen_stages,
            norm_eval=norm_eval, norm_cfg=norm_cfg, init_cfg=init_cfg,
            stage_cfgs=dict(block_cfgs=dict(norm_cfg=norm_cfg),
                            downsample_cfg=dict(norm_cfg=norm_cfg)),
            patch_cfg=dict(norm_cfg=norm_cfg))  # every LayerNorm: norm_cfg
        self.window_size = window_size
        self.mask_ratio = check_mask_ratio(mask_ratio)
        self.shared_mask = shared_mask
        self.attn_mode = attn_mode
        self.unit_tokens = 2**(self.num_layers - 1)  # stage-0 tokens per unit side
        self.unit_size = patch_size * self.unit_tokens  # pixels per unit side
        self._dense_layouts = {}  # (grid, device, attn_mode) -> layouts; not state

    # -- masking and planning (host) ------------------------------------------
    @torch.compiler.disable
    def _plan_layouts(self, ids_keep: np.ndarray, grid: Tuple[int, int],
                      device: torch.device) -> Tuple[torch.Tensor, list]:
        """Layouts of every stage and shift for kept units ``ids_keep (P, K)``.

        Group plans are made on the host, their arrays moved in one copy, token indices
        built on ``device``. Returns ``ids_keep`` on the device and, per stage, the
        layouts of even and odd blocks.
        """
        rows, num_keep = ids_keep.shape
        specs, arrays = [], [ids_keep]
        for s, stage in enumerate(self.stages):
            unit = self.unit_tokens >> s
            window, shift = stage_window((grid[0] * unit, grid[1] * unit),
                                         self.window_size)
            grouping = self.attn_mode == 'grouping' or (
                self.attn_mode == 'auto' and num_keep * unit * unit > 2 * window**2)
            for sh in ((0, shift) if shift and len(stage.blocks) > 1 else (0, )):
                plan = None
                if grouping:
                    counts = window_counts(ids_keep, grid, unit, window, sh).ravel()
                    plan = plan_groups(counts, stage.embed_dims)
                    arrays += [np.cumsum(counts) - counts,
                               plan.group * plan.group_size + plan.offset]
                specs.append((s, unit, window, sh, plan))
        moved = _to_device(arrays, device)
        ids_dev, moved = moved[0], moved[1:]

        layouts = [[] for _ in self.stages]
        with torch.no_grad():
            for s, unit, window, shift, plan in specs:
                coords = unit_token_coords(ids_dev, grid[1], unit)  # P, N, 2
                win = window_index(coords, grid[1] * unit, window, shift)  # P, N
                if plan is None:  # one group per sample
                    layout = WindowLayout(rows, rows, coords.shape[1], None, None,
                                          _pair_bias_index(win, coords, self.window_size))
                else:
                    start, slot = moved[:2]
                    moved = moved[2:]
                    layout = self._group_layout(win, coords, start, slot, plan)
                layouts[s].append(layout)
        return ids_dev, [(ls[0], ls[-1]) for ls in layouts]

    def _group_layout(self, win: torch.Tensor, coords: torch.Tensor, start: torch.Tensor,
                      slot: torch.Tensor, plan: GroupPlan) -> WindowLayout:
        """Token-level indices of a group plan (on the device, no sync).

        Args:
            win (torch.Tensor): ``(P, N)`` window of each token.
            coords (torch.Tensor): ``(P, N, 2)``.
            start (torch.Tensor): ``(P*n_win,)`` first token of each window when tokens
                are sorted by ``(sample, window)``.
            slot (torch.Tensor): ``(P*n_win,)`` first slot of each window.
            plan (GroupPlan): Group size and count.
        """
        rows = win.shape[0]
        n_win = start.numel() // rows
        item = win + torch.arange(rows, device=win.device)[:, None] * n_win  # P, N
        item = item.view(-1)  # P*N: (sample, window) of each token
        sorted_item, order = torch.sort(item, stable=True)  # P*N
        rank = torch.arange(item.numel(), device=item.device) - start[sorted_item]
        scatter = torch.empty_like(order)
        scatter[order] = slot[sorted_item] + rank  # P*N: slot of each token
        num_slots = plan.num_groups * plan.group_size
        gather = item.new_zeros(num_slots)
        gather[scatter] = torch.arange(item.numel(), device=item.device)  # G*g
        slot_item = item.new_full((num_slots, ), -1)
        slot_item[scatter] = item
        slot_coords = coords.new_zeros(num_slots, 2)
        slot_coords[scatter] = coords.view(-1, 2)  # G*g, 2
        bias_index = _pair_bias_index(
            slot_item.view(plan.num_groups, plan.group_size),  # G, g
            slot_coords.view(plan.num_groups, plan.group_size, 2),  # G, g, 2
            self.window_size)
        return WindowLayout(rows, plan.num_groups, plan.group_size, gather, scatter,
                            bias_index)

    # -- encoding (device) ----------------------------------------------------
    def _encode(self, x: torch.Tensor, ids_keep: Optional[torch.Tensor],
                layouts: list) -> Tuple[torch.Tensor, ...]:
        """Patch-embed, gather kept units (all if ``ids_keep`` is None), run stages."""
        B = x.shape[0]
        x, (H, W) = self.patch_embed(x)  # B, H*W, C
        x = self.drop_after_pos(x)
        unit = self.unit_tokens
        x = x.view(B, H // unit, unit, W // unit, unit, -1)  # B, H_u, u, W_u, u, C
        x = x.permute(0, 1, 3, 2, 4, 5).flatten(3).flatten(1, 2)  # B, L, u*u*C
        if ids_keep is not None:
            x = take_units(x, ids_keep)  # B, K, u*u*C
        x = x.reshape(B, -1, self.embed_dims)  # B, K*u*u, C (unit-major)
        outs = []
        for stage, (even, odd) in zip(self.stages, layouts):
            for j, block in enumerate(stage.blocks):
                x = _block_forward(block, x, odd if j % 2 else even)
            outs.append(x)
            if stage.downsample is not None:
                x = merge_units(stage.downsample, x, unit)
                unit //= 2
        return tuple(outs)

    def forward_visible(self, x: torch.Tensor,
                        ids_keep: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Encode the tokens of the kept units only.

        ``ids_keep`` is read on the host (a device tensor costs one sync; pass a CPU
        tensor to avoid it). Identical rows are planned once for the batch.

        Args:
            x (torch.Tensor): Images ``(B, C, H, W)``.
            ids_keep (torch.Tensor): ``(B, K)`` kept units per sample, distinct, raster
                index on the ``(H / unit, W / unit)`` grid.

        Returns:
            tuple[torch.Tensor]: Per stage, its block output ``(B, K*u_s**2, C_s)``
            (before PatchMerging and output norm), unit-major: token coordinates are
            :func:`unit_token_coords` ``(ids_keep, W / unit, u_s)``, ``u_s = 8, 4, 2, 1``.
        """
        grid = unit_grid(x.shape[-2:], self.unit_size)
        ids = ids_keep.detach().cpu().numpy()
        if ids.ndim != 2 or ids.shape[0] != x.shape[0] or ids.shape[1] == 0:
            raise ValueError(f'ids_keep must be (B={x.shape[0]}, K>0), got {ids.shape}')
        if ids.min() < 0 or ids.max() >= grid[0] * grid[1]:
            raise ValueError(f'ids_keep must be in [0, {grid[0] * grid[1]}), got values '
                             f'in [{ids.min()}, {ids.max()}]')
        if (np.diff(np.sort(ids, axis=1), axis=1) == 0).any():
            raise ValueError('ids_keep has a repeated unit in a row')
        shared = bool((ids == ids[:1]).all())
        ids_dev, layouts = self._plan_layouts(ids[:1] if shared else ids, grid, x.device)
        return self._encode(x, ids_dev.expand(x.shape[0], -1), layouts)  # ids: B, K

    def forward(self, x: torch.Tensor, mask: Optional[bool] = True) -> MaskedForward:
        """
        Args:
            x (torch.Tensor): Images ``(B, C, H, W)``.
            mask (bool, optional): True: mask (pre-training); None or False: every unit
                kept. Defaults to True.

        Returns:
            With ``mask``: ``latent (B, L_keep, C_last)`` (after ``norm{last}``, in the
            order of the kept part of ``ids_restore``), ``mask (B, L)`` (1 = removed,
            float) and ``ids_restore (B, L)``. Without: the ``out_indices`` stage outputs
            ``(B, C_i, H_i, W_i)``.
        """
        if not use_masking(mask):
            return self._forward_dense(x)
        last = self.num_layers - 1
        if last not in self.out_indices:
            raise ValueError(f'the masked forward needs norm{last}: add {last} to '
                             f'out_indices {self.out_indices}')
        B, grid = x.shape[0], unit_grid(x.shape[-2:], self.unit_size)
        ids_dev, layouts, unit_mask, ids_restore = self._mask_and_plan(B, grid, x.device)
        latent = self._encode(x, ids_dev.expand(B, -1), layouts)[-1]  # B, K, C_last
        repeat = B // ids_dev.shape[0]
        return (getattr(self, f'norm{last}')(latent), unit_mask.float().repeat(repeat, 1),
                ids_restore.repeat(repeat, 1))

    @torch.compiler.disable
    def _mask_and_plan(self, batch: int, grid: Tuple[int, int], device: torch.device):
        """Masks (one, or one per sample) and the layouts of every stage, made on the
        host and moved in one copy; never traced by ``torch.compile``, whose graph
        then holds the encoder alone."""
        ids_keep, unit_mask, ids_restore = random_unit_masking(
            1 if self.shared_mask else batch, grid[0] * grid[1], self.mask_ratio)
        ids_dev, layouts = self._plan_layouts(ids_keep.numpy(), grid, device)
        unit_mask, ids_restore = _to_device(
            [unit_mask.long().numpy(), ids_restore.numpy()], device)
        return ids_dev, layouts, unit_mask, ids_restore

    def _forward_dense(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Every unit kept; NCHW stage outputs as ``SwinTransformer``."""
        B, (Hu, Wu) = x.shape[0], unit_grid(x.shape[-2:], self.unit_size)
        key = (Hu, Wu, str(x.device), self.attn_mode)
        if key not in self._dense_layouts:
            if len(self._dense_layouts) == DENSE_CACHE_SIZE:  # drop the oldest size
                del self._dense_layouts[next(iter(self._dense_layouts))]
            ids = np.arange(Hu * Wu)[None]
            self._dense_layouts[key] = self._plan_layouts(ids, (Hu, Wu), x.device)[1]
        stages = self._encode(x, None, self._dense_layouts[key])
        outs = []
        for i in self.out_indices:
            unit = self.unit_tokens >> i
            out = getattr(self, f'norm{i}')(stages[i])  # B, L*u*u, C
            out = out.view(B, Hu, Wu, unit, unit, -1)  # B, H_u, W_u, u, u, C
            out = out.permute(0, 5, 1, 3, 2, 4)  # B, C, H_u, u, W_u, u
            outs.append(out.reshape(B, -1, Hu * unit, Wu * unit))  # B, C, H, W
        return tuple(outs)
