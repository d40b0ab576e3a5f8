# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Masked-autoencoder pre-training parts for encoders without a class token.

He et al., "Masked Autoencoders Are Scalable Vision Learners" (arXiv 2111.06377), on
HiViT as in Zhang et al., ICLR 2023 (arXiv 2205.14949). Written from the papers; the
algorithm, reconstruction head, loss and data preprocessor are mmpretrain's ``MAE``,
``MAEPretrainHead``, ``PixelReconstructionLoss`` and ``SelfSupDataPreprocessor``, used
unchanged through configs. This module adds only what they lack:

* :class:`MaskedHiViT`: HiViT that drops masked units right after the patch embedding
  (through the whole encoder, relative position bias included), with a fixed 2-D sin-cos
  absolute embedding, a final LayerNorm, and optional fusion of the stem features of
  each kept unit (the official release's ``hifeat``);
* :class:`ClsFreeMAEDecoder`: mmpretrain's ``MAEPretrainDecoder`` without the class-token
  slot. The stock decoder treats the first visible token as a class token, so with a
  class-free encoder every visible token lands one position off.

The masking itself (:func:`~hivit_mm.models.geometry.random_unit_masking`) is shared with
GreenMIM and lives in :mod:`hivit_mm.models.geometry`.
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.necks import MAEPretrainDecoder

from hivit_mm.registry import MODELS
from .attention import attention
from .geometry import (MaskedForward, check_mask_ratio, random_unit_masking,
                       sincos_position_embedding, take_units, unit_grid, use_masking)
from .hivit import UNIT_SIZE, HiViT

__all__ = ['MaskedHiViT', 'ClsFreeMAEDecoder']


@MODELS.register_module()
class MaskedHiViT(HiViT):
    """HiViT encoder for MAE: masked units are dropped through the whole network.

    ``forward(x)`` (``mask=True``) returns what mmpretrain's ``MAE`` algorithm expects;
    ``forward(x, mask=None)`` is the plain :class:`HiViT` forward (feature extraction).

    Args:
        mask_ratio (float): Fraction of 16x16 units removed per sample, in (0, 1).
            Defaults to 0.75.
        fuse_stem_features (bool): Concatenate, per kept unit, its 4x4 stage-0 tokens,
            2x2 stage-1 tokens and main token (``4C + 2C + C = 7C`` channels) before the
            final LayerNorm, as the official base recipe (``hifeat``). Defaults to False.
        freeze_pos_embed (bool): Keep the 2-D sin-cos absolute embedding fixed, as
            MAE's ViT (and mmpretrain) do. The official HiViT release trains it:
            ``nn.Parameter(torch.zeros(..., requires_grad=False))`` puts the flag on
            the inner tensor, which ``nn.Parameter`` (``requires_grad=True`` by
            default) overrides, so the table starts as sin-cos and is trained (and
            weight-decayed by its optimizer rule); the official-recipe configs set
            False. Defaults to True.
        norm_eps (float): LayerNorm eps, also of the final norm. Defaults to 1e-6.
        **kwargs: The other arguments of :class:`HiViT` (``drop_path_rate``,
            ``use_rel_pos_bias``, ``out_indices`` of the dense forward, ...); the
            absolute embedding is always on, and masking needs global attention (no
            ``window_size``).
    """
    # Keys this class adds to HiViT's state dict; a checkpoint of it still loads into a
    # plain HiViT, these being dropped (read by hivit_mm.models.loading).
    pretraining_keys: Tuple[str, ...] = ('norm.', )

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 mask_ratio: float = 0.75,
                 fuse_stem_features: bool = False,
                 freeze_pos_embed: bool = True,
                 *,
                 norm_eps: float = 1e-6,
                 **kwargs) -> None:
        if kwargs.get('window_size') is not None:
            raise ValueError('MaskedHiViT drops masked units, which needs global '
                             'attention; build it with window_size=None')
        if not kwargs.pop('use_abs_pos_embed', True):
            raise ValueError('MaskedHiViT adds a sin-cos absolute embedding; '
                             'use_abs_pos_embed=False is not supported')
        super().__init__(arch=arch, img_size=img_size, norm_eps=norm_eps,
                         use_abs_pos_embed=True, **kwargs)
        self.mask_ratio = check_mask_ratio(mask_ratio)
        self.fuse_stem_features = fuse_stem_features
        self.pos_embed.requires_grad_(not freeze_pos_embed)
        self.out_channels = 7 * self.embed_dims if fuse_stem_features else self.embed_dims
        self.norm = nn.LayerNorm(self.out_channels, eps=norm_eps)

    def init_weights(self) -> None:
        """Official initialisation, then the fixed sin-cos absolute embedding."""
        super().init_weights()
        self.pos_embed.data.copy_(sincos_position_embedding(self.grid, self.embed_dims))

    def forward(self, x: torch.Tensor, mask: Optional[bool] = True) -> MaskedForward:
        """
        Args:
            x (torch.Tensor): Images ``(B, 3, H, W)`` on the ``img_size`` grid.
            mask (bool, optional): True: mask units (pre-training); None or False: the
                dense :class:`HiViT` forward. Defaults to True.

        Returns:
            With ``mask``: ``latent (B, L_keep, C_out)`` (``C_out`` is ``7C`` with
            ``fuse_stem_features``, else ``C``), ``mask (B, L)`` (1 = removed) and
            ``ids_restore (B, L)``. Without: the :class:`HiViT` stage maps.
        """
        if not use_masking(mask):
            return super().forward(x)
        grid = unit_grid(x.shape[-2:], UNIT_SIZE)
        if grid != self.grid:
            h, w = (n * UNIT_SIZE for n in self.grid)
            raise ValueError(f'MAE pre-training runs at img_size {h}x{w}, got '
                             f'{tuple(x.shape[-2:])}')
        ids_keep, unit_mask, ids_restore = random_unit_masking(
            x.shape[0], grid[0] * grid[1], self.mask_ratio, x.device)
        stage0, stage1, main = self.forward_units(x, ids_keep)
        if self.fuse_stem_features:
            main = torch.cat([stage0.flatten(2), stage1.flatten(2), main],
                             dim=-1)  # B, L, 4C + 2C + C
        return self.norm(main), unit_mask, ids_restore


@MODELS.register_module()
class ClsFreeMAEDecoder(MAEPretrainDecoder):
    """MAE decoder for encoders without a class token.

    Same modules, names and initialisation as mmpretrain's ``MAEPretrainDecoder``
    (``decoder_embed``, ``mask_token``, ``decoder_blocks``, ``ln1``, ``decoder_pred``),
    except that the fixed sin-cos ``decoder_pos_embed`` has no class-token slot, and
    that attention runs through :func:`~hivit_mm.models.attention.attention`.

    Args:
        num_patches (int | tuple[int, int]): Units per image ``L`` of a square grid,
            or the grid ``(h, w)`` itself (needed for any other grid: the sin-cos
            table is built per row and column). Defaults to 196.
        **kwargs: The other arguments of ``MAEPretrainDecoder``, with its defaults
            (``embed_dim`` 1024, ``decoder_embed_dim`` 512, ``decoder_depth`` 8,
            ``decoder_num_heads`` 16, ``mlp_ratio`` 4, LayerNorm eps 1e-6, ...).

    Raises:
        ValueError: If ``num_patches`` is an int that is not a square.
    """

    def __init__(self, num_patches: Union[int, Tuple[int, int]] = 196, **kwargs) -> None:
        if isinstance(num_patches, int):
            side = math.isqrt(num_patches)
            if side * side != num_patches:
                raise ValueError(
                    f'num_patches={num_patches} is not a square grid; give the grid '
                    'as num_patches=(h, w) so the sin-cos table is built for it')
            num_patches = (side, side)
        grid = tuple(num_patches)
        super().__init__(num_patches=grid[0] * grid[1], **kwargs)
        self.grid = grid  # (h, w) units
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, self.num_patches, self.decoder_embed.out_features),
            requires_grad=False)
        for block in self.decoder_blocks:  # mmpretrain's MultiheadAttention calls the
            # kernel it holds in this attribute (SDPA); give it ours, same signature
            block.attn.scaled_dot_product_attention = attention

    def init_weights(self) -> None:
        """Sin-cos embedding without a class-token slot; mask token N(0, 0.02)."""
        super(MAEPretrainDecoder, self).init_weights()
        self.decoder_pos_embed.data.copy_(
            sincos_position_embedding(self.grid, self.decoder_pos_embed.shape[-1]))
        nn.init.normal_(self.mask_token, std=.02)

    def forward(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x (torch.Tensor): Visible tokens ``(B, L_keep, embed_dim)`` in the order of
                ``ids_restore``'s kept part.
            ids_restore (torch.Tensor): ``(B, L)``.

        Returns:
            torch.Tensor: ``(B, L, patch_size**2 * in_chans)`` pixel predictions in image
            order.
        """
        x = self.decoder_embed(x)  # B, L_keep, D
        B, num_keep, _ = x.shape
        mask_tokens = self.mask_token.expand(B, ids_restore.shape[1] - num_keep, -1)
        x = torch.cat([x, mask_tokens], dim=1)  # B, L, D (kept first)
        x = take_units(x, ids_restore)  # B, L, D
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))  # B, L, p*p*3
