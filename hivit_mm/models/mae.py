# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Masked-autoencoder pre-training parts for encoders without a class token.

He et al., "Masked Autoencoders Are Scalable Vision Learners" (arXiv 2111.06377), on
HiViT as in Zhang et al., ICLR 2023 (arXiv 2205.14949). Written from the papers; the
algorithm, reconstruction head, loss and data preprocessor are mmpretrain's ``MAE``,
``MAEPretrainHead``, ``PixelReconstructionLoss`` and ``SelfSupDataPreprocessor``, used
unchanged through configs. This module adds only what they lack:

* :func:`random_unit_masking`: per-sample random masking of mask units;
* :class:`MaskedHiViT`: HiViT that drops masked units right after the patch embedding
  (through the whole encoder, relative position bias included), with a fixed 2-D sin-cos
  absolute embedding, a final LayerNorm, and optional fusion of the stem features of
  each kept unit (the official release's ``hifeat``);
* :class:`ClsFreeMAEDecoder`: mmpretrain's ``MAEPretrainDecoder`` without the class-token
  slot. The stock decoder treats the first visible token as a class token, so with a
  class-free encoder every visible token lands one position off.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.necks import MAEPretrainDecoder
from mmpretrain.models.utils import build_2d_sincos_position_embedding

from hivit_mm.registry import MODELS
from .hivit import HiViT

__all__ = ['random_unit_masking', 'MaskedHiViT', 'ClsFreeMAEDecoder']


def random_unit_masking(
    batch_size: int,
    num_units: int,
    mask_ratio: float,
    device: Union[str, torch.device] = 'cpu',
    generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw an independent random mask for each sample.

    Keeps ``int(num_units * (1 - mask_ratio))`` units per sample (at least one).

    Args:
        batch_size (int): ``B``.
        num_units (int): ``L``, units per image.
        mask_ratio (float): Fraction of units removed, in (0, 1).
        device (str | torch.device): Defaults to ``'cpu'``.
        generator (torch.Generator, optional): For reproducible masks. Defaults to None.

    Returns:
        tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ``ids_keep (B, L_keep)`` kept
        unit indices (in random order), ``mask (B, L)`` with 1 for removed units, and
        ``ids_restore (B, L)`` mapping the kept-then-removed order back to the image.
    """
    if not 0 < mask_ratio < 1:
        raise ValueError(f'mask_ratio must be in (0, 1), got {mask_ratio}')
    num_keep = max(1, int(num_units * (1 - mask_ratio)))
    noise = torch.rand(batch_size, num_units, device=device, generator=generator)
    ids_shuffle = noise.argsort(dim=1)  # B, L: ascending noise is kept
    ids_restore = ids_shuffle.argsort(dim=1)  # B, L
    mask = torch.ones(batch_size, num_units, device=device)
    mask[:, :num_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # B, L in image order
    return ids_shuffle[:, :num_keep], mask, ids_restore


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
        **Other arguments: those of :class:`HiViT` (``arch``, ``img_size``, ...). The
            absolute embedding is a frozen 2-D sin-cos table.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: int = 224,
                 mask_ratio: float = 0.75,
                 fuse_stem_features: bool = False,
                 in_channels: int = 3,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 use_rel_pos_bias: bool = False,
                 rel_pos_zero_init: bool = False,
                 out_indices: Union[int, Tuple[int, ...]] = (2, ),
                 norm_eps: float = 1e-6,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            arch=arch,
            img_size=img_size,
            in_channels=in_channels,
            qkv_bias=qkv_bias,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            use_abs_pos_embed=True,
            use_rel_pos_bias=use_rel_pos_bias,
            rel_pos_zero_init=rel_pos_zero_init,
            out_indices=out_indices,
            norm_eps=norm_eps,
            with_cp=with_cp,
            init_cfg=init_cfg)
        if not 0 < mask_ratio < 1:
            raise ValueError(f'mask_ratio must be in (0, 1), got {mask_ratio}')
        self.mask_ratio = mask_ratio
        self.fuse_stem_features = fuse_stem_features
        self.pos_embed = nn.Parameter(self.pos_embed.detach(), requires_grad=False)
        self.out_channels = 7 * self.embed_dims if fuse_stem_features else self.embed_dims
        self.norm = nn.LayerNorm(self.out_channels, eps=norm_eps)

    def init_weights(self) -> None:
        """Official initialisation, then the fixed sin-cos absolute embedding."""
        super().init_weights()
        self.pos_embed.data.copy_(
            build_2d_sincos_position_embedding(self.grid, self.embed_dims))

    def forward(self,
                x: torch.Tensor,
                mask: Optional[bool] = True
                ) -> Union[Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                           Tuple[torch.Tensor, ...]]:
        """
        Args:
            x (torch.Tensor): Images ``(B, 3, H, W)`` on the ``img_size`` grid.
            mask (bool, optional): Mask units (pre-training) or not. Defaults to True.

        Returns:
            With ``mask``: ``latent (B, L_keep, C_out)`` (``C_out`` is ``7C`` with
            ``fuse_stem_features``, else ``C``), ``mask (B, L)`` (1 = removed) and
            ``ids_restore (B, L)``. Without: the :class:`HiViT` stage maps.
        """
        if not mask:
            return super().forward(x)
        grid = self._grid_of(tuple(x.shape[-2:]), 'input')
        if grid != self.grid:
            raise ValueError(f'MAE pre-training runs at img_size {self.grid[0] * 16}x'
                             f'{self.grid[1] * 16}, got {tuple(x.shape[-2:])}')
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
    except that the fixed sin-cos ``decoder_pos_embed`` has no class-token slot.

    Args:
        num_patches (int): Units per image ``L`` (a square grid). Defaults to 196.
        patch_size (int): Unit side in pixels. Defaults to 16.
        in_chans (int): Defaults to 3.
        embed_dim (int): Encoder output channels. Defaults to 1024.
        decoder_embed_dim (int): Defaults to 512.
        decoder_depth (int): Defaults to 8.
        decoder_num_heads (int): Defaults to 16.
        mlp_ratio (float): Defaults to 4.
        norm_cfg (dict, optional): Defaults to LayerNorm with eps 1e-6.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 num_patches: int = 196,
                 patch_size: int = 16,
                 in_chans: int = 3,
                 embed_dim: int = 1024,
                 decoder_embed_dim: int = 512,
                 decoder_depth: int = 8,
                 decoder_num_heads: int = 16,
                 mlp_ratio: float = 4.,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            num_patches=num_patches,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio,
            norm_cfg=norm_cfg or dict(type='LN', eps=1e-6),
            init_cfg=init_cfg)
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, num_patches, decoder_embed_dim), requires_grad=False)

    def init_weights(self) -> None:
        """Sin-cos embedding without a class-token slot; mask token N(0, 0.02)."""
        super(MAEPretrainDecoder, self).init_weights()
        side = int(self.num_patches**.5)
        self.decoder_pos_embed.data.copy_(
            build_2d_sincos_position_embedding(side, self.decoder_pos_embed.shape[-1]))
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
        B, num_keep, D = x.shape
        mask_tokens = self.mask_token.expand(B, ids_restore.shape[1] - num_keep, -1)
        x = torch.cat([x, mask_tokens], dim=1)  # B, L, D (kept first)
        x = torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, D))  # B, L, D
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))  # B, L, p*p*3
