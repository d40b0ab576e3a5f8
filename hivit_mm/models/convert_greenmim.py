# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Convert GreenMIM checkpoints to the key layout of mmpretrain's Swin Transformer.

Huang et al., "Green Hierarchical Vision Transformer for Masked Image Modeling",
NeurIPS 2022 (https://arxiv.org/abs/2205.13515). Pure functions on state dicts; the CLI
``tools/model_converters/greenmim_to_mmpretrain.py`` only loads, calls and saves.

* :func:`convert_hivit_mm_greenmim`: a checkpoint of our pre-training (mmpretrain
  ``MAE`` with backbone :class:`~hivit_mm.models.GreenSwin`). GreenSwin's state dict
  *is* mmpretrain's ``SwinTransformer``'s (persistent ``relative_position_index``
  buffers and the final LayerNorm ``norm3`` included), so the ``backbone.*`` keys are
  kept unchanged and the decoder (``neck.*``) and head are dropped.
* :func:`convert_official_greenmim`: the authors' release (LayneH/GreenMIM, read as a
  specification of the key layout only). Its checkpoints are ``{'model': state_dict}``
  of ``MaskedAutoencoder``: the encoder under ``encoder.`` with timm/Swin names, the MAE
  decoder at the top level. ``util/extract_backbone.py`` of the release writes the bare
  encoder (no ``encoder.``, no ``relative_position_index``); both forms are accepted.

  The names below were read from the release's model code, ``models_swin.py``
  (June 2022, commit ``4beb99e``: ``MaskedAutoencoderSwin``, timm-style Swin without
  absolute embedding or classification head) and ``modeling/base_green_models.py``
  (2023, ``b981012``: the same names), not from a downloaded ``.pth`` (there is no
  network here). Assumed: a file holds ``{'model': state_dict, ...}`` as MAE's
  ``misc.save_model`` writes it; this function also takes ``'state_dict'`` or a bare
  state dict.

Encoder keys, official (``encoder.`` optional) to mmpretrain ``SwinTransformer``, with
``L = layers.{i}.blocks.{j}`` and ``S = backbone.stages.{i}.blocks.{j}``:

=========================================== ==========================================
official                                    mmpretrain
=========================================== ==========================================
``patch_embed.proj.*``                      ``backbone.patch_embed.projection.*``
``patch_embed.norm.*``                      ``backbone.patch_embed.norm.*``
``L.norm1.*``, ``L.norm2.*``                ``S.norm1.*``, ``S.norm2.*``
``L.attn.qkv.*``, ``L.attn.proj.*``         ``S.attn.w_msa.qkv.*``,
                                            ``S.attn.w_msa.proj.*``
``L.attn.relative_position_bias_table``     ``S.attn.w_msa.relative_position_bias_table``
                                            (see *Windows*) and ``S.attn.w_msa.``
                                            ``relative_position_index`` (regenerated)
``L.mlp.fc1.*``, ``L.mlp.fc2.*``            ``S.ffn.layers.0.0.*``, ``S.ffn.layers.1.*``
``layers.{i}.downsample.reduction.weight``  ``backbone.stages.{i}.downsample.``
                                            ``reduction.weight`` (channels permuted)
``layers.{i}.downsample.norm.*``            ``backbone.stages.{i}.downsample.norm.*``
                                            (channels permuted)
``norm.*``                                  ``backbone.norm{n-1}.*`` (``n`` stages)
``L.attn.relative_position_index``          dropped (derived from the window)
``L.attn_mask``                             dropped (derived from the window)
=========================================== ==========================================

The decoder keys (``decoder_embed``, ``mask_token``, ``decoder_pos_embed``,
``decoder_blocks.{i}.*`` as timm ``Block``, ``decoder_norm``, ``decoder_pred``) are
dropped, or with ``keep_decoder=True`` renamed as in :mod:`hivit_mm.models.convert_hivit`
(the official HiViT and GreenMIM releases share MAE's decoder) to ``neck.*`` of
:class:`~hivit_mm.models.ClsFreeMAEDecoder`, so that the whole official model loads into
mmpretrain's ``MAE`` with ``GreenSwin`` (``num_patches=49``, ``patch_size=32``).

**PatchMerging channels.** mmcv's ``PatchMerging`` (``nn.Unfold``) orders its ``4C``
input channels ``c * 4 + 2 * dh + dw`` (channel-major, then the 2x2 sub-token
``(dh, dw)`` row-first). The release concatenates sub-tokens, ``k * C + c``:

* ``'row_first'``: ``k`` = (0,0), (0,1), (1,0), (1,1). The code of June 2022, with which
  the released checkpoints were trained (its ``PatchMerging`` reshapes each unit to
  ``(i, dh, j, dw)`` and moves ``(dh, dw)`` before the channels). The default.
* ``'swin'``: ``k`` = (0,0), (1,0), (0,1), (1,1), Swin's ``x0, x1, x2, x3``; the
  release's code since 2023-01-16 ("fix misalignment in PatchMerging"), and any
  checkpoint trained with it.

**Windows.** mmpretrain keeps the configured window ``M`` in every stage, the release
shrinks the window of a stage at most ``M`` tokens wide to its side (window 14 at 224 px:
the 7x7 last stage gets a 13x13 table, not 27x27). A smaller table is placed at the
centre of a zero ``(2M-1)**2`` table: its entries are the offsets within ``+-(m-1)``,
which are all a stage of side ``m`` can use, so :class:`~hivit_mm.models.GreenSwin`
computes exactly the official function. (mmpretrain's own load hook would instead
*interpolate* the small table to the large one, which moves every offset.) ``M`` is the
largest table in the checkpoint unless given.

Every key must be known: any other key raises a ``ValueError`` naming it, since the
result is meant for ``load_state_dict(strict=True)``.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from .geometry import check_choice, relative_position_index, table_window
from .loading import MAE_DECODER_BLOCK, rename_indexed_key, rename_key, unwrap_state_dict

__all__ = [
    'PATCH_MERGING_ORDERS', 'merging_channels_to_mmcv',
    'centre_bias_table', 'convert_hivit_mm_greenmim', 'convert_official_greenmim'
]

StateDict = Mapping[str, torch.Tensor]

#: For each official sub-token order, the official slot ``k`` of mmcv's sub-tokens
#: ``(dh, dw)`` = (0,0), (0,1), (1,0), (1,1).
PATCH_MERGING_ORDERS: Dict[str, Tuple[int, int, int, int]] = {
    'row_first': (0, 1, 2, 3),
    'swin': (0, 2, 1, 3),
}

# Official Swin block -> mmpretrain SwinBlock (module renames; weight and bias).
_BLOCK_MODULES: Mapping[str, str] = {
    'norm1': 'norm1',
    'attn.qkv': 'attn.w_msa.qkv',
    'attn.proj': 'attn.w_msa.proj',
    'norm2': 'norm2',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
}
_TABLE = 'attn.relative_position_bias_table'
_DERIVED_BLOCK_KEYS = ('attn.relative_position_index', 'attn_mask')
_OFFICIAL_DECODER_TOP: Mapping[str, str] = {
    'mask_token': 'neck.mask_token',
    'decoder_pos_embed': 'neck.decoder_pos_embed',
    'decoder_embed.weight': 'neck.decoder_embed.weight',
    'decoder_embed.bias': 'neck.decoder_embed.bias',
    'decoder_norm.weight': 'neck.ln1.weight',
    'decoder_norm.bias': 'neck.ln1.bias',
    'decoder_pred.weight': 'neck.decoder_pred.weight',
    'decoder_pred.bias': 'neck.decoder_pred.bias',
}
_OFFICIAL_BLOCK = re.compile(r'layers\.(\d+)\.blocks\.(\d+)\.(.+)')
_OFFICIAL_DOWNSAMPLE = re.compile(
    r'layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)')
# Every key of an mmpretrain SwinTransformer (no absolute position embedding).
_SWIN_KEY = re.compile(
    r'patch_embed\.(projection|norm)\.(weight|bias)'
    r'|stages\.\d+\.blocks\.\d+\.(norm1|norm2|attn\.w_msa\.(qkv|proj)|ffn\.layers\.0\.0'
    r'|ffn\.layers\.1)\.(weight|bias)'
    r'|stages\.\d+\.blocks\.\d+\.attn\.w_msa\.relative_position_(bias_table|index)'
    r'|stages\.\d+\.downsample\.(norm\.weight|norm\.bias|reduction\.weight)'
    r'|norm\d+\.(weight|bias)')


# ----------------------------------------------------------------------------
# Tensor helpers
# ----------------------------------------------------------------------------
def merging_channels_to_mmcv(x: torch.Tensor, order: str) -> torch.Tensor:
    """Reorder the ``4C`` PatchMerging input channels of an official tensor to mmcv's.

    Args:
        x (torch.Tensor): ``(..., 4C)``: ``downsample.reduction.weight (2C, 4C)`` or
            ``downsample.norm.weight``/``bias`` ``(4C,)``, official channel order
            ``k * C + c``.
        order (str): Official sub-token order, a key of :data:`PATCH_MERGING_ORDERS`.

    Returns:
        torch.Tensor: ``(..., 4C)`` in mmcv's ``c * 4 + 2 * dh + dw`` order (a copy).

    Raises:
        ValueError: If ``order`` is unknown or the last dimension is not a multiple
            of 4.
    """
    check_choice('patch_merging_order', order, sorted(PATCH_MERGING_ORDERS))
    *lead, channels = x.shape
    if channels % 4:
        raise ValueError(f'PatchMerging tensors have 4C input channels, got shape '
                         f'{tuple(x.shape)}')
    x = x.reshape(*lead, 4, channels // 4)  # ..., k, C
    x = x[..., list(PATCH_MERGING_ORDERS[order]), :]  # ..., (dh, dw), C
    return x.transpose(-1, -2).reshape(*lead, channels)  # ..., C*4


def _table_window(table: torch.Tensor, key: str) -> int:
    """Window ``m`` of a ``((2m-1)**2, heads)`` bias table."""
    if table.dim() != 2:
        raise ValueError(f'{key}: a relative position bias table is (rows, heads), got '
                         f'shape {tuple(table.shape)}')
    return table_window(table.shape[0], key)


def centre_bias_table(table: torch.Tensor, window: int) -> torch.Tensor:
    """Place a ``(2m-1)**2`` bias table at the centre of a zero ``(2M-1)**2`` table.

    Offset ``(dh, dw)`` keeps its value for ``|dh|, |dw| < m``, so a stage whose window
    shrank to ``m`` attends exactly as with the small table.

    Args:
        table (torch.Tensor): ``((2m-1)**2, heads)``, ``m <= window``.
        window (int): ``M``.

    Returns:
        torch.Tensor: ``((2M-1)**2, heads)``; ``table`` itself when ``m == M``.

    Raises:
        ValueError: If ``table`` is not a square table or ``m > M``.
    """
    small = _table_window(table, 'table')
    if small > window:
        raise ValueError(f'a window-{small} bias table does not fit window {window}')
    if small == window:
        return table
    span, pad = 2 * window - 1, window - small
    out = table.new_zeros(span, span, table.shape[1])
    out[pad:span - pad, pad:span - pad] = table.view(2 * small - 1, 2 * small - 1, -1)
    return out.view(span * span, -1)


def _raise_unmapped(unmapped: List[str], source: str) -> None:
    if unmapped:
        raise ValueError(f'not a {source} checkpoint: {len(unmapped)} keys do not map: '
                         f'{unmapped}')


# ----------------------------------------------------------------------------
# Our pre-training
# ----------------------------------------------------------------------------
def convert_hivit_mm_greenmim(checkpoint: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """Keep the Swin encoder of a hivit_mm GreenMIM pre-training checkpoint.

    The result loads with ``strict=True`` into an mmpretrain ``ImageClassifier``'s
    ``SwinTransformer`` backbone (through ``init_cfg=dict(type='Pretrained',
    checkpoint=..., prefix='backbone.')``) of the same arch, window and
    ``out_indices=(3, )``; the LayerNorm eps is not stored.

    Args:
        checkpoint (Mapping): The saved file (a dict with ``'state_dict'``) or the state
            dict of the ``MAE`` model. Not modified.

    Returns:
        OrderedDict[str, torch.Tensor]: The ``backbone.*`` keys (same tensors).

    Raises:
        ValueError: Naming the keys that are neither Swin backbone keys nor decoder or
            head keys (e.g. a HiViT checkpoint), or if there is no backbone.
    """
    state = unwrap_state_dict(checkpoint, ('state_dict', ))
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unmapped = []
    for key, value in state.items():
        if key.startswith(('neck.', 'head.')):
            continue
        if key.startswith('backbone.') and _SWIN_KEY.fullmatch(key[len('backbone.'):]):
            out[key] = value
        else:
            unmapped.append(key)
    _raise_unmapped(unmapped, 'hivit_mm GreenMIM (MAE with GreenSwin)')
    if not out:
        raise ValueError('no backbone.* keys: not a hivit_mm GreenMIM checkpoint')
    return out


# ----------------------------------------------------------------------------
# Official release
# ----------------------------------------------------------------------------
def _rename_official_decoder(key: str) -> Optional[str]:
    """Official decoder key -> ``neck.*`` of ``ClsFreeMAEDecoder``; None otherwise."""
    if key in _OFFICIAL_DECODER_TOP:
        return _OFFICIAL_DECODER_TOP[key]
    return rename_indexed_key(key, 'decoder_blocks', 'neck.decoder_blocks',
                           MAE_DECODER_BLOCK)


def _convert_official_encoder_key(name: str, value: torch.Tensor, order: str,
                                  window: int,
                                  last_norm: Optional[str]) -> Optional[StateDict]:
    """Converted entries of one official encoder key (none for a derived one); None
    if it does not map."""
    block = _OFFICIAL_BLOCK.fullmatch(name)
    if block:
        stage, index, rest = block.groups()
        prefix = f'backbone.stages.{stage}.blocks.{index}.'
        if rest in _DERIVED_BLOCK_KEYS:
            return {}
        if rest == _TABLE:
            try:
                table = centre_bias_table(value, window)
            except ValueError as err:
                raise ValueError(f"{name}: {err}; pass the model's window_size") from err
            return {
                prefix + 'attn.w_msa.relative_position_bias_table': table,
                prefix + 'attn.w_msa.relative_position_index':
                relative_position_index((window, window)),
            }
        new = rename_key(rest, (_BLOCK_MODULES, {}))
        return None if new is None else {prefix + new: value}
    downsample = _OFFICIAL_DOWNSAMPLE.fullmatch(name)
    if downsample:
        stage, param = downsample.groups()
        return {
            f'backbone.stages.{stage}.downsample.{param}':
            merging_channels_to_mmcv(value, order)
        }
    module, _, param = name.rpartition('.')
    if param not in ('weight', 'bias'):
        return None
    if module == 'patch_embed.proj':
        return {f'backbone.patch_embed.projection.{param}': value}
    if module == 'patch_embed.norm':
        return {f'backbone.patch_embed.norm.{param}': value}
    if module == 'norm' and last_norm is not None:
        return {f'backbone.{last_norm}.{param}': value}
    return None


def convert_official_greenmim(
        checkpoint: Mapping,
        patch_merging_order: str = 'row_first',
        window_size: Optional[int] = None,
        keep_decoder: bool = False) -> 'OrderedDict[str, torch.Tensor]':
    """Convert an official GreenMIM Swin checkpoint (LayneH/GreenMIM) to mmpretrain keys.

    See the module docstring for the key table. The result loads with ``strict=True``
    into mmpretrain's ``SwinTransformer`` (keys without ``backbone.``, or through
    ``init_cfg=dict(type='Pretrained', prefix='backbone.')``) and into
    :class:`~hivit_mm.models.GreenSwin`, built with the checkpoint's arch, window
    ``window_size`` and ``out_indices`` ending at the last stage.

    Args:
        checkpoint (Mapping): The loaded file (a dict with ``'model'``) or the state
            dict itself, encoder keys with or without ``encoder.``. Not modified.
        patch_merging_order (str): Sub-token order of the checkpoint's PatchMerging,
            ``'row_first'`` (the released 2022 checkpoints) or ``'swin'`` (trained with
            the release's code of 2023). Defaults to ``'row_first'``.
        window_size (int, optional): ``M`` of the target model. Defaults to None: the
            largest window among the checkpoint's bias tables.
        keep_decoder (bool): Also convert the decoder, to ``neck.*`` of
            :class:`~hivit_mm.models.ClsFreeMAEDecoder` (for mmpretrain's ``MAE``).
            Defaults to False: decoder keys are dropped.

    Returns:
        OrderedDict[str, torch.Tensor]: ``backbone.*`` keys, with mmpretrain's
        ``relative_position_index`` of window ``M`` for every block (plus ``neck.*``
        with ``keep_decoder``). Unchanged tensors are the checkpoint's.

    Raises:
        ValueError: If ``patch_merging_order`` is unknown, a bias table is larger than
            ``window_size`` or malformed, there is no encoder, or naming the keys that
            do not map.
    """
    check_choice('patch_merging_order', patch_merging_order, sorted(PATCH_MERGING_ORDERS))
    state = unwrap_state_dict(checkpoint, ('model', 'state_dict'))
    encoder: Dict[str, Tuple[str, torch.Tensor]] = OrderedDict()  # name: (key, value)
    decoder: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in state.items():
        name = key[len('encoder.'):] if key.startswith('encoder.') else key
        new = _rename_official_decoder(name)
        if new is not None:
            decoder[new] = value
        else:
            encoder[name] = (key, value)
    if not encoder:
        raise ValueError('no encoder keys: not an official GreenMIM checkpoint')

    stages = {int(m.group(1)) for m in map(_OFFICIAL_BLOCK.fullmatch, encoder) if m}
    last_norm = f'norm{max(stages)}' if stages else None
    if window_size is None:
        window_size = max((_table_window(value, key)
                           for name, (key, value) in encoder.items()
                           if name.endswith(_TABLE)), default=1)

    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unmapped = []
    for name, (key, value) in encoder.items():
        converted = _convert_official_encoder_key(name, value, patch_merging_order,
                                                  window_size, last_norm)
        if converted is None:
            unmapped.append(key)
        else:
            out.update(converted)
    _raise_unmapped(unmapped, 'official GreenMIM Swin')
    if keep_decoder:
        out.update(decoder)
    return out
