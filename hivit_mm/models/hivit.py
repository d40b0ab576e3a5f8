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

Stages, as addressed by ``out_indices``:

====== ======= ======== ==============================================
stage  stride  channels what
====== ======= ======== ==============================================
0      4       C/4      end of stem stage 0 (before its PatchMerge)
1      8       C/2      end of stem stage 1 (before its PatchMerge)
2      16      C        end of the main stage
3      32      C        max-pool (k=2, s=2) of stage 2
====== ======= ======== ==============================================

The official detector taps its stride-4 map after the second of four stage-0 blocks and
its stride-8 map right after the first PatchMerge; this module uses ends of stages.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
from mmpretrain.models.utils import LayerNorm2d, resize_pos_embed

from hivit_mm.registry import MODELS

__all__ = [
    'HiViT', 'relative_position_index', 'resize_rel_pos_bias_table',
    'quarter_global_blocks'
]

UNIT_SIZE = 16  # pixels per side of a mask unit (one main-stage token)
INNER = 4  # stage-0 tokens per side of a unit (patch-embedding stride 4)


# ----------------------------------------------------------------------------
# Pure helpers
# ----------------------------------------------------------------------------
def relative_position_index(grid: Tuple[int, int],
                            table_grid: Optional[Tuple[int, int]] = None
                            ) -> torch.Tensor:
    """Swin-style index of every token pair of a grid into a relative-bias table.

    Args:
        grid (tuple[int, int]): ``(H, W)`` of the token grid.
        table_grid (tuple[int, int], optional): ``(Ht, Wt)`` the table was made for; it
            holds ``(2Ht-1)*(2Wt-1)`` entries and must cover the grid's offsets.
            Defaults to ``grid``.

    Returns:
        torch.Tensor: ``(H*W, H*W)`` int64 indices.
    """
    th, tw = table_grid or grid
    h, w = grid
    if h > th or w > tw:
        raise ValueError(f'a relative table for grid {(th, tw)} cannot cover the '
                         f'offsets of grid {(h, w)}')
    coords = torch.stack(
        torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij'))  # 2, H, W
    coords = coords.flatten(1)  # 2, HW
    rel = coords[:, :, None] - coords[:, None, :]  # 2, HW, HW
    return (rel[0] + th - 1) * (2 * tw - 1) + rel[1] + tw - 1


def resize_rel_pos_bias_table(table: torch.Tensor, src_grid: Tuple[int, int],
                              dst_grid: Tuple[int, int]) -> torch.Tensor:
    """Resize a relative-position bias table made for one grid to another (bicubic).

    Identity when the grids are equal.

    Args:
        table (torch.Tensor): ``((2Hs-1)*(2Ws-1), heads)``.
        src_grid (tuple[int, int]): ``(Hs, Ws)`` the table was made for.
        dst_grid (tuple[int, int]): ``(Hd, Wd)`` to make it for.

    Returns:
        torch.Tensor: ``((2Hd-1)*(2Wd-1), heads)``.
    """
    if tuple(src_grid) == tuple(dst_grid):
        return table
    sh, sw = 2 * src_grid[0] - 1, 2 * src_grid[1] - 1
    dh, dw = 2 * dst_grid[0] - 1, 2 * dst_grid[1] - 1
    if table.shape[0] != sh * sw:
        raise ValueError(f'table has {table.shape[0]} rows, expected {sh * sw} for '
                         f'grid {tuple(src_grid)}')
    heads = table.shape[1]
    img = table.float().t().reshape(1, heads, sh, sw)  # 1, heads, 2Hs-1, 2Ws-1
    img = F.interpolate(img, size=(dh, dw), mode='bicubic', align_corners=False)
    return img.reshape(heads, dh * dw).t().to(table.dtype)  # (2Hd-1)(2Wd-1), heads


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


def _sq_grid(num_tokens: int, what: str) -> Tuple[int, int]:
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f'{what}: {num_tokens} entries is not a square grid; resize '
                         'it explicitly before loading')
    return side, side


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
    """MLP-only blocks at one inner resolution, then a PatchMerge."""

    def __init__(self, dim: int, depth: int, mlp_ratio: float, drop: float,
                 drop_paths: Sequence[float], eps: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            StemBlock(dim, mlp_ratio, drop, dp, eps) for dp in drop_paths[:depth])
        self.downsample = PatchMerge(dim, eps)


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``.

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
        if mask is not None:  # SDPA wants the query's dtype (bf16/fp16 under autocast)
            mask = mask.to(q.dtype)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.)  # B, heads, N, C/heads
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
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=INNER, stride=INNER)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        hp, wp = H // UNIT_SIZE, W // UNIT_SIZE
        x = self.proj(x).reshape(B, -1, hp, INNER, wp, INNER)  # B, C, hp, 4, wp, 4
        x = x.permute(0, 2, 4, 3, 5, 1).reshape(B, hp * wp, INNER, INNER,
                                                -1)  # B, L, 4, 4, C
        return self.norm(x)


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------
@MODELS.register_module()
class HiViT(BaseModule):
    """HiViT backbone (one definition for classification, MAE, detection and
    segmentation; tasks differ by config).

    Args:
        arch (str | dict): A name of :attr:`arch_zoo` (``'tiny'``, ``'small'``,
            ``'base'``) or a dict with ``embed_dims``, ``depths`` (three ints: stem
            stage 0, stem stage 1, main stage; a stem stage of depth ``d`` has ``2d``
            MLP blocks, as in the paper), ``num_heads`` and optionally
            ``stem_mlp_ratio`` (default 3) and ``mlp_ratio`` (default 4).
            Defaults to ``'base'`` (the paper's and the released weights' HiViT-B:
            512 wide, depths ``(2, 2, 20)``, 66.42M parameters with a 1000-class head).
        img_size (int | tuple[int, int]): Input size the position tables are made for.
            Other sizes work (multiples of 16); the absolute embedding is then resized
            bicubically on the fly. Defaults to 224.
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
        rel_pos_zero_init (bool): Initialise relative tables to zeros (the official
            fine-tuning, detection and segmentation code) instead of trunc-normal 0.02
            (official supervised training). Defaults to False.
        window_size (int, optional): ViTDet-style window attention (in main-stage
            tokens) for the main blocks not listed in ``global_blocks``; the grid is
            padded to a multiple of it and padding is masked. Defaults to None (global
            attention everywhere).
        global_blocks (Sequence[int], optional): Main blocks that keep global attention
            when ``window_size`` is set. Defaults to :func:`quarter_global_blocks`.
        out_indices (int | Sequence[int]): Stages to output (see the module docstring);
            negative values count from 4. Defaults to ``(2, )``.
        out_norm (bool): LayerNorm (eps 1e-6) on each output, as the official detector.
            Defaults to False.
        norm_eps (float): LayerNorm eps. Defaults to 1e-6 (official).
        frozen_stages (int): Freeze stages ``0..frozen_stages`` (stage 0 = patch embedding
            and stem stage 0; stage 1 = the first PatchMerge and stem stage 1; stage 2 =
            the second PatchMerge, position tables and the main stage) with their output
            norms; frozen modules stay in eval mode. -1 freezes nothing. Defaults to -1.
        with_cp (bool): Activation checkpointing per block. Defaults to False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=..., prefix=...)``
            loads weights in :meth:`init_weights` with strict key checks (see
            :meth:`load_pretrained`). Defaults to None.
    """
    arch_zoo: Dict[str, dict] = {
        # name: embed_dims, depths, heads      params (1000-class head), MACs @224
        'tiny': dict(embed_dims=384, depths=(1, 1, 10), num_heads=6),  # 19.18M 4.60G
        'small': dict(embed_dims=384, depths=(2, 2, 20), num_heads=6),  # 37.53M 9.07G
        'base': dict(embed_dims=512, depths=(2, 2, 20), num_heads=8),  # 66.42M 15.85G
    }
    num_stages = 4
    # Keys of a pre-training encoder's state that a HiViT backbone does not use.
    pretrain_only_keys: Tuple[str, ...] = ('norm.', 'mask_token')

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 in_channels: int = 3,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 use_abs_pos_embed: bool = True,
                 use_rel_pos_bias: bool = False,
                 rel_pos_zero_init: bool = False,
                 window_size: Optional[int] = None,
                 global_blocks: Optional[Sequence[int]] = None,
                 out_indices: Union[int, Sequence[int]] = (2, ),
                 out_norm: bool = False,
                 norm_eps: float = 1e-6,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch = self._parse_arch(arch)
        dim = self.embed_dims = self.arch['embed_dims']
        self.depths = tuple(self.arch['depths'])
        self.num_heads = self.arch['num_heads']
        self.grid = self._grid_of(self._to_2tuple(img_size), 'img_size')
        self.out_indices = self._parse_out_indices(out_indices)
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
        self.stem = nn.ModuleList([
            StemStage(dim // 4, stem_depths[0], self.arch['stem_mlp_ratio'], drop_rate,
                      dpr[:stem_depths[0]], norm_eps),
            StemStage(dim // 2, stem_depths[1], self.arch['stem_mlp_ratio'], drop_rate,
                      dpr[stem_depths[0]:sum(stem_depths)], norm_eps),
        ])
        num_tokens = self.grid[0] * self.grid[1]
        self.pos_embed = nn.Parameter(torch.zeros(
            1, num_tokens, dim)) if use_abs_pos_embed else None
        self.pos_drop = nn.Dropout(drop_rate)
        rel_table_size = ((2 * self.grid[0] - 1) *
                          (2 * self.grid[1] - 1)) if use_rel_pos_bias else 0
        self.blocks = nn.ModuleList(
            AttentionBlock(dim, self.num_heads, self.arch['mlp_ratio'], qkv_bias,
                           drop_rate, attn_drop_rate, dp, norm_eps, rel_table_size)
            for dp in dpr[sum(stem_depths):])
        self.window_size = window_size
        if window_size is None:
            if global_blocks is not None:
                raise ValueError('global_blocks is only used with window_size')
            self.global_blocks = tuple(range(depth))
        else:
            if window_size < 1:
                raise ValueError(f'window_size must be positive, got {window_size}')
            if use_rel_pos_bias and window_size > min(self.grid):
                raise ValueError(
                    f'window_size {window_size} exceeds the relative table grid '
                    f'{self.grid}; raise img_size')
            gb = quarter_global_blocks(depth) if global_blocks is None else tuple(
                sorted(set(global_blocks)))
            if any(not 0 <= i < depth for i in gb):
                raise ValueError(f'global_blocks {tuple(global_blocks)} out of range '
                                 f'for {depth} main blocks')
            self.global_blocks = gb
        # Consecutive runs of main blocks sharing an attention layout:
        # (start, stop, windowed). Windowed runs are partitioned once per run.
        self._runs = self._block_runs(depth, self.global_blocks)
        # Relative indices shared by every block (global grid, and window grid when
        # windowed); derived, so non-persistent.
        self.register_buffer(
            'rel_pos_index',
            relative_position_index(self.grid) if use_rel_pos_bias else None,
            persistent=False)
        self._rel_index_cache: Dict[tuple, torch.Tensor] = {}  # other grids, by device
        self.register_buffer(
            'win_rel_pos_index',
            relative_position_index((window_size, window_size), self.grid)
            if use_rel_pos_bias and window_size is not None else None,
            persistent=False)

        self.out_norms = nn.ModuleDict({
            str(i): LayerNorm2d(self.channels[i], eps=1e-6)
            for i in self.out_indices
        }) if out_norm else None
        self._freeze_stages()

    # -- construction helpers ----------------------------------------------
    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_zoo:
                raise ValueError(f'unknown HiViT arch {arch!r}; valid names: '
                                 f'{sorted(cls.arch_zoo)} (or a dict with '
                                 'embed_dims, depths, num_heads)')
            arch = cls.arch_zoo[arch]
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or dict, got {type(arch).__name__}')
        required = {'embed_dims', 'depths', 'num_heads'}
        allowed = required | {'stem_mlp_ratio', 'mlp_ratio'}
        if not required <= set(arch) or not set(arch) <= allowed:
            raise ValueError(f'a custom arch needs keys {sorted(required)} and may add '
                             f'{sorted(allowed - required)}; got {sorted(arch)}')
        arch = dict(dict(stem_mlp_ratio=3., mlp_ratio=4.), **arch)
        dim, heads = arch['embed_dims'], arch['num_heads']
        if len(arch['depths']) != 3 or min(arch['depths']) < 1:
            raise ValueError(f'depths must be three positive ints, got {arch["depths"]}')
        if dim % 4 or dim % heads:
            raise ValueError(f'embed_dims {dim} must be divisible by 4 and by '
                             f'num_heads {heads}')
        return arch

    @staticmethod
    def _to_2tuple(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
        return (size, size) if isinstance(size, int) else tuple(size)

    @staticmethod
    def _grid_of(size: Tuple[int, int], what: str) -> Tuple[int, int]:
        h, w = size
        if h % UNIT_SIZE or w % UNIT_SIZE or h <= 0 or w <= 0:
            raise ValueError(f'{what} {h}x{w} is not a multiple of the {UNIT_SIZE}-pixel '
                             'unit; pad or resize the input (e.g. a size_divisor of 32)')
        return h // UNIT_SIZE, w // UNIT_SIZE

    def _parse_out_indices(self, out_indices: Union[int,
                                                    Sequence[int]]) -> Tuple[int, ...]:
        raw = (out_indices, ) if isinstance(out_indices, int) else tuple(out_indices)
        if not raw:
            raise ValueError('out_indices is empty')
        norm = tuple(i % self.num_stages if -self.num_stages <= i < self.num_stages
                     else None for i in raw)
        if None in norm:
            raise ValueError(f'out_indices {raw} out of range: stages are 0..3 '
                             '(strides 4, 8, 16, 32) or -4..-1')
        if len(set(norm)) != len(norm):
            raise ValueError(f'out_indices {raw} repeats a stage')
        return norm

    @staticmethod
    def _block_runs(depth: int, global_blocks: Sequence[int]
                    ) -> Tuple[Tuple[int, int, bool], ...]:
        runs: List[Tuple[int, int, bool]] = []
        for i in range(depth):
            windowed = i not in global_blocks
            if runs and runs[-1][2] == windowed:
                runs[-1] = (runs[-1][0], i + 1, windowed)
            else:
                runs.append((i, i + 1, windowed))
        return tuple(runs)

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
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            if not cfg.get('checkpoint'):
                raise ValueError('init_cfg type Pretrained has no checkpoint; set '
                                 'model.backbone.init_cfg.checkpoint=PATH (or '
                                 'init_cfg=None to train from scratch)')
            state = _load_checkpoint_with_prefix(
                cfg.get('prefix', ''), cfg['checkpoint'], map_location='cpu'
            ) if cfg.get('prefix') else self._load_whole(cfg['checkpoint'])
            self.load_pretrained(state, source=cfg['checkpoint'])
        elif cfg is not None:
            raise ValueError(f'HiViT supports init_cfg=None or type Pretrained, got {cfg}')
        self._is_init = True

    @staticmethod
    def _load_whole(checkpoint: str) -> dict:
        from mmengine.runner.checkpoint import _load_checkpoint
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
        return {k[len('module.'):] if k.startswith('module.') else k: v
                for k, v in state.items()}

    def load_pretrained(self, state_dict: Dict[str, torch.Tensor],
                        source: str = 'state_dict') -> None:
        """Load backbone weights, refusing anything that would stay silently random.

        Position tables of another grid are resized (see :meth:`_resize_tables`).
        Allowed, and logged: relative tables absent from a checkpoint trained without
        them (they keep their ``rel_pos_zero_init`` initialisation, as the official
        fine-tuning does), output norms absent from a checkpoint of a model without
        them (pre-training and classification checkpoints for a detector), and the
        keys of a pre-training encoder that HiViT does not use
        (``pretrain_only_keys``). Any other missing, unexpected or mis-shaped key
        raises, naming the keys.

        Args:
            state_dict (dict[str, torch.Tensor]): Backbone keys, prefix removed.
            source (str): Where it came from, for messages. Defaults to
                ``'state_dict'``.
        """
        logger = MMLogger.get_current_instance()
        state = dict(state_dict)
        ignored = sorted(k for k in state if k.startswith(self.pretrain_only_keys))
        for k in ignored:
            state.pop(k)
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        # Parts a source model may legitimately lack as a whole; they keep their init.
        fresh = []
        for part in ('relative_position_bias_table', 'out_norms.'):
            if not any(part in k for k in state):
                fresh += [k for k in missing if part in k]
        missing = [k for k in missing if k not in fresh]
        state = self._resize_tables(state)
        mismatched = sorted(f'{k}: checkpoint {tuple(state[k].shape)} vs model '
                            f'{tuple(own[k].shape)}' for k in set(state) & set(own)
                            if state[k].shape != own[k].shape)
        if missing or unexpected or mismatched:
            raise KeyError(f'HiViT weights from {source} do not match the model.\n'
                           f'missing keys: {missing}\nunexpected keys: {unexpected}\n'
                           f'shape mismatches: {mismatched}')
        self.load_state_dict(state, strict=False)
        logger.info(f'HiViT: loaded {len(state)} tensors from {source}')
        if ignored:
            logger.info(f'HiViT: ignored pre-training-only keys: {ignored}')
        if fresh:
            logger.warning(f'HiViT: {source} has no {sorted(fresh)} (its model had none); '
                           'they keep their initialisation (relative tables: '
                           f'{"zeros" if self.rel_pos_zero_init else "trunc-normal"})')

    def _resize_tables(self, state: Dict[str, torch.Tensor]
                       ) -> Dict[str, torch.Tensor]:
        """Resize saved position tables of another grid to this model's grid.

        The one place where learned tables change size: used by
        :meth:`load_pretrained` and by every ``load_state_dict`` (resume,
        ``load_from``) through a pre-hook. Saved grids are taken to be square.
        """
        state = dict(state)
        pe = state.get('pos_embed')
        if pe is not None and self.pos_embed is not None and pe.shape != self.pos_embed.shape:
            src = _sq_grid(pe.shape[1], 'pos_embed')
            state['pos_embed'] = resize_pos_embed(
                pe, src, self.grid, mode='bicubic', num_extra_tokens=0)
        size = (2 * self.grid[0] - 1) * (2 * self.grid[1] - 1)
        for k, t in state.items():
            if k.endswith('relative_position_bias_table') and t.shape[0] != size:
                side = _sq_grid(t.shape[0], k)[0]
                state[k] = resize_rel_pos_bias_table(t, ((side + 1) // 2, ) * 2,
                                                     self.grid)
        return state

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        own = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        for k, v in self._resize_tables(own).items():
            state_dict[prefix + k] = v
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- freezing and layer-wise lr decay ------------------------------------
    def _stage_modules(self, stage: int) -> List[nn.Module]:
        if stage == 0:
            mods = [self.patch_embed, *self.stem[0].blocks]
        elif stage == 1:
            mods = [self.stem[0].downsample, *self.stem[1].blocks]
        elif stage == 2:
            mods = [self.stem[1].downsample, *self.blocks]
        else:
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
            if stage == 2 and self.pos_embed is not None:
                self.pos_embed.requires_grad = False

    def train(self, mode: bool = True) -> 'HiViT':
        super().train(mode)
        self._freeze_stages()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter for layer-wise learning-rate decay.

        Convention (the official detection/segmentation one): the patch embedding,
        position embedding and the whole stem (stages 0 and 1, PatchMerges included)
        are layer 0; main-stage block ``k`` is layer ``k + 1``; everything else (output
        norms, and any parameter outside the backbone, i.e. not starting with
        ``prefix``) is the last layer, ``num_layers - 1``, with
        ``num_layers = main depth + 2``.

        Args:
            param_name (str): Parameter name, e.g. ``'backbone.blocks.3.attn.qkv.weight'``.
            prefix (str): Prefix of backbone parameters. Defaults to ``''``.

        Returns:
            tuple[int, int]: ``(layer_id, num_layers)``.
        """
        num_layers = self.depths[2] + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        if name.startswith(('patch_embed.', 'stem.')) or name == 'pos_embed':
            return 0, num_layers
        if name.startswith('blocks.'):
            return int(name.split('.')[1]) + 1, num_layers
        return num_layers - 1, num_layers

    # -- forward ------------------------------------------------------------
    def _block(self, blk: nn.Module, *args) -> torch.Tensor:
        if self.with_cp and self.training and args[0].requires_grad:
            return cp.checkpoint(blk, *args, use_reentrant=False)
        return blk(*args)

    def _pos_embed_for(self, grid: Tuple[int, int]) -> torch.Tensor:
        """``(1, H*W, C)`` absolute embedding for a grid (resized when it differs)."""
        return resize_pos_embed(self.pos_embed, self.grid, grid, mode='bicubic',
                                num_extra_tokens=0)

    def _rel_index_for(self, grid: Tuple[int, int]) -> torch.Tensor:
        """``(N, N)`` relative index for a grid, into tables of ``self.grid``.

        A grid no larger than the tables' is indexed exactly (its offsets are a
        subset); a larger one has offsets the tables never learned, so it is refused
        (resize the tables by building the model with a larger ``img_size``: they are
        resized on load).
        """
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
                      ids_keep: Optional[torch.Tensor] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the network on (optionally a subset of) units; unit-major tokens.

        Args:
            x (torch.Tensor): Images ``(B, 3, H, W)``, sides multiples of 16.
            ids_keep (torch.Tensor, optional): ``(B, L)`` int64 indices of the units to
                keep per sample (row-major over the ``H/16 x W/16`` grid). Masked units
                are dropped right after the patch embedding; the absolute embedding and
                the relative index are gathered to match. Requires global attention.
                Defaults to None (all units, in order).

        Returns:
            tuple[torch.Tensor, torch.Tensor, torch.Tensor]: Stage outputs per kept
            unit: ``(B, L, 4, 4, C/4)``, ``(B, L, 2, 2, C/2)`` and ``(B, L, C)``.
        """
        grid = self._grid_of(tuple(x.shape[-2:]), 'input')
        x = self.patch_embed(x)  # B, N, 4, 4, C/4
        if ids_keep is not None:
            if self.window_size is not None:
                raise ValueError('masked forward (ids_keep) needs global attention; '
                                 'build the model with window_size=None')
            x = torch.gather(x, 1, ids_keep[:, :, None, None, None].expand(
                -1, -1, *x.shape[2:]))  # B, L, 4, 4, C/4
        outs = []
        for stage in self.stem:
            for blk in stage.blocks:
                x = self._block(blk, x)
            outs.append(x)
            x = stage.downsample(x)  # B, L, h/2, w/2, 2C
        x = x.flatten(1, 3)  # B, L, C
        if self.pos_embed is not None:
            pos = self._pos_embed_for(grid)  # 1, N, C
            if ids_keep is not None:
                pos = torch.gather(pos.expand(x.shape[0], -1, -1), 1,
                                   ids_keep[:, :, None].expand(-1, -1,
                                                               x.shape[-1]))  # B, L, C
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
                x = self._windowed_run(x, grid, start, stop)
            else:
                for blk in self.blocks[start:stop]:
                    x = self._block(blk, x, rel_index)
        return x

    def _windowed_run(self, x: torch.Tensor, grid: Tuple[int, int], start: int,
                      stop: int) -> torch.Tensor:
        """Blocks ``start:stop`` with attention inside ``window_size`` windows."""
        B, _, C = x.shape
        (h, w), ws = grid, self.window_size
        ph, pw = -h % ws, -w % ws
        nh, nw = (h + ph) // ws, (w + pw) // ws
        x = F.pad(x.reshape(B, h, w, C), (0, 0, 0, pw, 0, ph))  # B, h+ph, w+pw, C
        x = x.reshape(B, nh, ws, nw, ws, C).transpose(2, 3)  # B, nh, nw, ws, ws, C
        x = x.reshape(B * nh * nw, ws * ws, C)  # B*nW, ws*ws, C
        key_mask = None
        if ph or pw:
            valid = torch.zeros(h + ph, w + pw, dtype=torch.bool, device=x.device)
            valid[:h, :w] = True
            valid = valid.reshape(nh, ws, nw, ws).transpose(1, 2).reshape(
                1, nh * nw, 1, 1, ws * ws)  # 1, nW, 1, 1, ws*ws
            key_mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
            key_mask = key_mask.masked_fill(~valid, float('-inf')).expand(
                B, -1, -1, -1, -1).reshape(B * nh * nw, 1, 1, ws * ws)
        for blk in self.blocks[start:stop]:
            x = self._block(blk, x, self.win_rel_pos_index, key_mask)
        x = x.reshape(B, nh, nw, ws, ws, C).transpose(2, 3)  # B, nh, ws, nw, ws, C
        x = x.reshape(B, nh * ws, nw * ws, C)[:, :h, :w]  # B, h, w, C
        return x.reshape(B, h * w, C)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """
        Args:
            x (torch.Tensor): ``(B, 3, H, W)``, sides multiples of 16.

        Returns:
            tuple[torch.Tensor, ...]: For each of ``out_indices``, an NCHW map:
            stage 0 ``(B, C/4, H/4, W/4)``, 1 ``(B, C/2, H/8, W/8)``,
            2 ``(B, C, H/16, W/16)``, 3 ``(B, C, H/32, W/32)``.
        """
        B = x.shape[0]
        hp, wp = self._grid_of(tuple(x.shape[-2:]), 'input')
        units = self.forward_units(x)
        maps = {}  # only the stages asked for (stage 3 pools stage 2)
        for i in {min(i, 2) for i in self.out_indices}:
            tokens = units[i]
            if i == 2:
                maps[2] = tokens.transpose(1, 2).reshape(B, -1, hp, wp)  # B, C, hp, wp
                continue
            side, c = tokens.shape[2], tokens.shape[-1]
            m = tokens.reshape(B, hp, wp, side, side, c)  # B, hp, wp, s, s, C
            maps[i] = m.permute(0, 5, 1, 3, 2, 4).reshape(B, c, hp * side,
                                                           wp * side)  # B, C, H/s', W/s'
        outs = []
        for i in self.out_indices:
            out = F.max_pool2d(maps[2], 2) if i == 3 else maps[i]
            if self.out_norms is not None:
                out = self.out_norms[str(i)](out)
            outs.append(out.contiguous())
        return tuple(outs)
