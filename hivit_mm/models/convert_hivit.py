# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Convert HiViT checkpoints of other codebases to the key layout of hivit_mm.

Two sources are supported, both as pure functions on state dicts (the CLIs in
``tools/model_converters/`` only load, call and save):

* :func:`convert_official_hivit`: the authors' release (zhangxiaosong18/hivit, MIT),
  classification (``fc_norm``, ``head``) and MAE pre-training (``norm`` and the
  ``decoder_*`` keys) checkpoints;
* :func:`convert_mmpretrain_hivit`: mmpretrain's ``HiViT`` backbone, bare or inside a
  full mmpretrain model (``backbone.``, ``neck.``, ``head.``).

Both sources keep every block of the network in one flat ``blocks`` list; hivit_mm's
:class:`~hivit_mm.models.HiViT` is staged. For ``depths = (d0, d1, d2)``
(:func:`flat_block_layout`):

=========================== ============================ ==========================
flat index                  hivit_mm module              renamed parameters
=========================== ============================ ==========================
``0 .. 2*d0-1``             ``stem.0.blocks.{j}``        ``norm2`` -> ``norm``
``2*d0``                    ``stem.0.downsample``        (same names)
``2*d0+1 .. 2*d0+2*d1``     ``stem.1.blocks.{j}``        ``norm2`` -> ``norm``
``2*d0+2*d1+1``             ``stem.1.downsample``        (same names)
``2*d0+2*d1+2 ..`` (d2)     ``blocks.{k}``               (same names)
=========================== ============================ ==========================

The other keys of an official checkpoint:

============================== ===========================================
official                       hivit_mm (full mmpretrain model)
============================== ===========================================
``patch_embed.{proj,norm}.*``  ``backbone.patch_embed.{proj,norm}.*``
``absolute_pos_embed``         ``backbone.pos_embed``
``fc_norm.*``                  ``neck.norm.*`` (:class:`MeanPoolLayerNorm`)
``head.*``                     ``head.fc.*`` (mmpretrain ``LinearClsHead``)
``norm.*`` (MAE)               ``backbone.norm.*`` (:class:`MaskedHiViT`)
``decoder_embed.*``            ``neck.decoder_embed.*``
``mask_token``                 ``neck.mask_token``
``decoder_pos_embed``          ``neck.decoder_pos_embed`` (no class slot)
``decoder_blocks.{i}.norm1``   ``neck.decoder_blocks.{i}.ln1``
``decoder_blocks.{i}.attn.*``  ``neck.decoder_blocks.{i}.attn.*``
``decoder_blocks.{i}.norm2``   ``neck.decoder_blocks.{i}.ln2``
``decoder_blocks.{i}.mlp.fc1`` ``neck.decoder_blocks.{i}.ffn.layers.0.0``
``decoder_blocks.{i}.mlp.fc2`` ``neck.decoder_blocks.{i}.ffn.layers.1``
``decoder_norm.*``             ``neck.ln1.*``
``decoder_pred.*``             ``neck.decoder_pred.*``
============================== ===========================================

Relative position indices (``relative_position_index`` at any depth) are derived from
sizes, so they are dropped. Neither source records the grid its position tables were
made for; the converters take it as ``img_size`` (224 px by default: the release's
models are built and trained at 224, ``--input_size`` defaulting to 224 in
``self_supervised/main_pretrain.py`` and ``main_finetune.py``, whose commands in
``self_supervised/get_started.md`` keep it, and ``supervised/configs/hivit_*_224.yaml``;
mmpretrain's ``HiViT`` defaults to ``img_size=224`` too), check that the tables' sizes
fit it, and record it in the output's metadata (``grid``/``pos_grid`` of the
``backbone`` module, as :class:`~hivit_mm.models.HiViT` records its own), so that
loading resizes from that grid rather than guess it.

Any other key that does not map, and any flat block the depths expect but the checkpoint
lacks, raises a ``ValueError`` that names them: the result is meant for
``load_state_dict(strict=True)``.
"""
from collections import OrderedDict
from functools import partial
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from .geometry import unit_grid
from .hivit import UNIT_SIZE
from .loading import (MAE_DECODER_BLOCK, RenameTable, rename_indexed_key, rename_key,
                      unwrap_state_dict)

__all__ = [
    'flat_block_layout', 'rename_flat_block_key', 'convert_official_hivit',
    'convert_mmpretrain_hivit'
]

StateDict = Mapping[str, torch.Tensor]

_NO_PARAMS: Mapping[str, str] = {}
_STEM_BLOCK: RenameTable = ({
    'norm2': 'norm',
    'mlp.fc1': 'mlp.fc1',
    'mlp.fc2': 'mlp.fc2'
}, _NO_PARAMS)
_PATCH_MERGE: RenameTable = ({'norm': 'norm', 'reduction': 'reduction'}, _NO_PARAMS)
_ATTENTION_BLOCK: RenameTable = ({
    name: name
    for name in ('norm1', 'attn.qkv', 'attn.proj', 'norm2', 'mlp.fc1', 'mlp.fc2')
}, {
    'attn.relative_position_bias_table': 'attn.relative_position_bias_table'
})
_BLOCK_TABLES: Dict[str, RenameTable] = {
    'stem': _STEM_BLOCK,
    'merge': _PATCH_MERGE,
    'attention': _ATTENTION_BLOCK,
}

_OFFICIAL_TOP: RenameTable = ({
    'patch_embed.proj': 'backbone.patch_embed.proj',
    'patch_embed.norm': 'backbone.patch_embed.norm',
    'norm': 'backbone.norm',
    'fc_norm': 'neck.norm',
    'head': 'head.fc',
    'decoder_embed': 'neck.decoder_embed',
    'decoder_norm': 'neck.ln1',
    'decoder_pred': 'neck.decoder_pred',
}, {
    'absolute_pos_embed': 'backbone.pos_embed',
    'mask_token': 'neck.mask_token',
    'decoder_pos_embed': 'neck.decoder_pos_embed',
})
_MMPRETRAIN_TOP: RenameTable = ({
    'patch_embed.proj': 'patch_embed.proj',
    'patch_embed.norm': 'patch_embed.norm',
}, {
    'pos_embed': 'pos_embed'
})
_MMPRETRAIN_PASSTHROUGH = ('neck.', 'head.')


# ----------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------
def _check_depths(depths: Sequence[int]) -> Tuple[int, int, int]:
    """Return ``depths`` as a tuple of three positive ints, or raise ``ValueError``."""
    depths = tuple(depths)
    if len(depths) != 3 or not all(isinstance(d, int) and d > 0 for d in depths):
        raise ValueError('depths must be three positive ints (stem stage 0, stem stage '
                         f'1, main stage), got {depths}')
    return depths


def _is_derived(key: str) -> bool:
    """Whether a key is a buffer derived from sizes (relative position indices)."""
    return key.rpartition('.')[2] == 'relative_position_index'


def flat_block_layout(depths: Sequence[int]) -> Tuple[Tuple[str, str], ...]:
    """Where each module of a flat HiViT ``blocks`` list lives in hivit_mm's HiViT.

    The flat list (official release and mmpretrain alike) holds ``2*d0`` MLP-only stem
    blocks, a PatchMerge, ``2*d1`` stem blocks, a PatchMerge, then ``d2`` attention
    blocks.

    Args:
        depths (Sequence[int]): ``(d0, d1, d2)``, as in the arch (a stem stage of
            depth ``d`` has ``2*d`` blocks).

    Returns:
        tuple[tuple[str, str], ...]: For each flat index, its kind (``'stem'``,
        ``'merge'`` or ``'attention'``) and its hivit_mm module path (e.g.
        ``'stem.1.downsample'``, ``'blocks.3'``).

    Raises:
        ValueError: If ``depths`` is not three positive ints.
    """
    d0, d1, d2 = _check_depths(depths)
    layout: List[Tuple[str, str]] = []
    for stage, depth in enumerate((d0, d1)):
        layout += [('stem', f'stem.{stage}.blocks.{j}') for j in range(2 * depth)]
        layout.append(('merge', f'stem.{stage}.downsample'))
    layout += [('attention', f'blocks.{k}') for k in range(d2)]
    return tuple(layout)


def rename_flat_block_key(key: str,
                          layout: Sequence[Tuple[str, str]]) -> Optional[str]:
    """Rename one ``blocks.{N}.*`` key of a flat list to hivit_mm's backbone names.

    Args:
        key (str): E.g. ``'blocks.0.norm2.weight'``, without any model prefix.
        layout (Sequence[tuple[str, str]]): From :func:`flat_block_layout`.

    Returns:
        str | None: E.g. ``'stem.0.blocks.0.norm.weight'``; None when the key does not
        fit the layout (index out of range, or a name the block kind does not have,
        such as ``norm1`` on a stem block).
    """
    head, index, rest = (key.split('.', 2) + ['', ''])[:3]
    if head != 'blocks' or not index.isdigit() or int(index) >= len(layout):
        return None
    kind, target = layout[int(index)]
    renamed = rename_key(rest, _BLOCK_TABLES[kind])
    return None if renamed is None else f'{target}.{renamed}'


def _convert(state: StateDict, rename: Callable[[str], Optional[str]],
             depths: Tuple[int, int, int],
             source: str) -> OrderedDict[str, torch.Tensor]:
    """Rename every key, drop derived ones, and check the result covers the layout.

    Args:
        state (Mapping[str, torch.Tensor]): Source keys.
        rename (Callable[[str], str | None]): Source key to target key, None if it
            does not map.
        depths (tuple[int, int, int]): Checked against the flat blocks.
        source (str): Name of the source layout, for messages.

    Returns:
        OrderedDict[str, torch.Tensor]: Target keys in source order (same tensors).

    Raises:
        ValueError: Naming every key that does not map and every flat block of the
            layout that has no key.
    """
    layout = flat_block_layout(depths)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    unmapped = []
    for key, value in state.items():
        if _is_derived(key):
            continue
        new = rename(key)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = value
    backbone_keys = [k[len('backbone.'):] for k in out if k.startswith('backbone.')]
    missing = [f'blocks.{i}' for i, (_, target) in enumerate(layout)
               if not any(k.startswith(target + '.') for k in backbone_keys)]
    if unmapped or missing:
        problems = []
        if unmapped:
            problems.append(f'{len(unmapped)} keys do not map: {unmapped}')
        if missing:
            problems.append(f'flat blocks expected by the depths but absent: {missing}')
        raise ValueError(f'not a {source} HiViT checkpoint of depths {depths} '
                         f'(flat blocks: {len(layout)}); ' + '; '.join(problems))
    return out


def _record_grid(state: OrderedDict, img_size: Union[int, Sequence[int]],
                 source: str) -> OrderedDict:
    """Record the grid of ``img_size`` for the ``backbone.`` position tables.

    Raises:
        ValueError: If a table's size does not fit that grid, naming it.
    """
    h, w = unit_grid(img_size, UNIT_SIZE, 'img_size')
    sizes = {'backbone.pos_embed': (1, h * w)}
    for k in state:
        if k.startswith('backbone.') and k.endswith('relative_position_bias_table'):
            sizes[k] = (0, (2 * h - 1) * (2 * w - 1))
    for k, (dim, size) in sizes.items():
        if k in state and state[k].shape[dim] != size:
            raise ValueError(f'{k} of the {source} checkpoint has {state[k].shape[dim]} '
                             f'entries, not the {size} of a {h}x{w} grid (img_size '
                             f'{img_size}): give the input size its tables were made for '
                             '(--img-size H W)')
    state._metadata = OrderedDict(backbone=dict(grid=[h, w], pos_grid=[h, w]))
    return state


# ----------------------------------------------------------------------------
# Official release
# ----------------------------------------------------------------------------
def _rename_official(key: str, layout: Sequence[Tuple[str, str]]) -> Optional[str]:
    """Official key -> key of the full mmpretrain model; None if it does not map."""
    if key.startswith('blocks.'):
        new = rename_flat_block_key(key, layout)
        return None if new is None else f'backbone.{new}'
    if key.startswith('decoder_blocks.'):
        return rename_indexed_key(key, 'decoder_blocks', 'neck.decoder_blocks',
                               MAE_DECODER_BLOCK)
    return rename_key(key, _OFFICIAL_TOP)


def convert_official_hivit(checkpoint: Mapping,
                           depths: Sequence[int],
                           img_size: Union[int, Sequence[int]] = 224
                           ) -> OrderedDict[str, torch.Tensor]:
    """Convert an official HiViT checkpoint (zhangxiaosong18/hivit) to hivit_mm.

    Classification checkpoints load with ``strict=True`` into an mmpretrain
    ``ImageClassifier`` with backbone ``hivit_mm.HiViT`` (``use_rel_pos_bias`` as the
    checkpoint), neck ``hivit_mm.MeanPoolLayerNorm`` and head ``LinearClsHead``; MAE
    checkpoints into an mmpretrain ``MAE`` with backbone ``hivit_mm.MaskedHiViT``
    (``fuse_stem_features=True`` for the released ``hifeat`` base model) and neck
    ``hivit_mm.ClsFreeMAEDecoder``. See the module docstring for the key tables.

    Args:
        checkpoint (Mapping): The loaded file (a dict with a ``'model'`` entry) or the
            state dict itself. Not modified.
        depths (Sequence[int]): ``(d0, d1, d2)`` of the checkpoint's arch, e.g.
            ``(2, 2, 20)`` for the released HiViT-B.
        img_size (int | Sequence[int]): Input size (pixels) the checkpoint's position
            tables were made for, recorded in the output. Defaults to 224 (every
            released checkpoint; module docstring).

    Returns:
        OrderedDict[str, torch.Tensor]: Keys with ``backbone.``, ``neck.`` and
        ``head.`` prefixes; the tensors are the checkpoint's (not copied).
        ``_metadata['backbone']`` records the grid (``grid``, ``pos_grid``).

    Raises:
        ValueError: If ``depths`` is malformed, naming the keys that do not map
            and the flat blocks that are missing (wrong depths, or another layout),
            or a position table that does not fit ``img_size``.
    """
    depths = _check_depths(depths)
    state = unwrap_state_dict(checkpoint, ('model', 'state_dict'))
    rename = partial(_rename_official, layout=flat_block_layout(depths))
    return _record_grid(_convert(state, rename, depths, 'official'), img_size,
                        'official')


# ----------------------------------------------------------------------------
# mmpretrain
# ----------------------------------------------------------------------------
def _rename_mmpretrain(key: str, layout: Sequence[Tuple[str, str]],
                       full_model: bool) -> Optional[str]:
    """mmpretrain key -> hivit_mm key; None if it does not map."""
    if full_model:
        if key.startswith(_MMPRETRAIN_PASSTHROUGH):
            return key
        if not key.startswith('backbone.'):
            return None
        key = key[len('backbone.'):]
    if key.startswith('blocks.'):
        new = rename_flat_block_key(key, layout)
    else:
        new = rename_key(key, _MMPRETRAIN_TOP)
    return None if new is None else f'backbone.{new}'


def convert_mmpretrain_hivit(checkpoint: Mapping,
                             depths: Sequence[int],
                             img_size: Union[int, Sequence[int]] = 224
                             ) -> OrderedDict[str, torch.Tensor]:
    """Convert weights of mmpretrain's ``HiViT`` backbone to hivit_mm.

    A bare backbone state dict gives ``backbone.*`` keys. In a full mmpretrain model
    (keys prefixed ``backbone.``), the backbone keys are converted and ``neck.*`` and
    ``head.*`` keys are kept as they are (an mmpretrain ``LinearClsHead`` is
    ``head.fc.*`` in both), so an mmpretrain ``ImageClassifier`` checkpoint loads with
    ``strict=True`` into the same classifier with backbone ``hivit_mm.HiViT``.
    mmpretrain's persistent ``relative_position_index`` buffers (model-level and one
    per attention block) are dropped; its layer-scale ``gamma_1``/``gamma_2`` have no
    counterpart and raise.

    Args:
        checkpoint (Mapping): The loaded file (a dict with a ``'state_dict'`` entry)
            or the state dict itself. Not modified.
        depths (Sequence[int]): ``(d0, d1, d2)`` of the checkpoint's arch (mmpretrain's
            ``'base'`` is ``(2, 2, 24)``, not the paper's ``(2, 2, 20)``).
        img_size (int | Sequence[int]): Input size (pixels) of the position tables,
            recorded in the output. Defaults to 224 (mmpretrain's default).

    Returns:
        OrderedDict[str, torch.Tensor]: Keys with the ``backbone.`` prefix (plus the
        ``neck.``/``head.`` keys of a full model); the tensors are the checkpoint's.
        ``_metadata['backbone']`` records the grid (``grid``, ``pos_grid``).

    Raises:
        ValueError: If ``depths`` is malformed, naming the keys that do not map
            and the flat blocks that are missing, or a position table that does not
            fit ``img_size``.
    """
    depths = _check_depths(depths)
    state = unwrap_state_dict(checkpoint, ('state_dict', ))
    full_model = any(k.startswith('backbone.') for k in state)
    rename = partial(
        _rename_mmpretrain, layout=flat_block_layout(depths), full_model=full_model)
    return _record_grid(_convert(state, rename, depths, 'mmpretrain'), img_size,
                        'mmpretrain')
