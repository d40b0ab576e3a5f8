# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Strict loading of pre-trained backbone weights (``init_cfg=dict(type='Pretrained')``).

mmengine's ``Pretrained`` initialiser loads with ``strict=False`` and only logs what did
not match, so a renamed key leaves a backbone silently random. Here every key must be
accounted for: a missing, unexpected or mis-shaped key raises a ``KeyError`` naming it.
The exceptions are declared by the models, not listed here:

* ``optional_keys`` (class attribute of the model being loaded): parts a source model
  may lack *as a whole* (e.g. HiViT's relative-bias tables in an MAE checkpoint, its
  output norms in a classification checkpoint); they keep their initialisation, with a
  warning. A checkpoint holding some but not all of such a part is refused.
* ``pretraining_keys`` (class attribute of a pre-training subclass, e.g.
  :class:`~hivit_mm.models.MaskedHiViT`): prefixes of the keys that subclass adds to its
  family's state dict (its final norm); a checkpoint of it loads into the plain backbone,
  those keys being dropped and logged.

Position tables saved for another grid are resized by the model's own
``resize_position_tables`` (the same code its ``load_state_dict`` pre-hook runs, as
mmpretrain resizes in a load hook).

The checkpoint converters (:mod:`~hivit_mm.models.convert_hivit`,
:mod:`~hivit_mm.models.convert_greenmim`) share the unwrapping of a checkpoint
(:func:`unwrap_state_dict`) and the renaming of keys by table (:func:`rename_key`,
:func:`rename_indexed_key`) defined here.
"""
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Sequence, Set, Tuple

import torch
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import _load_checkpoint

__all__ = [
    'unwrap_state_dict', 'read_pretrained', 'load_backbone_weights', 'init_pretrained',
    'RenameTable', 'rename_key', 'rename_indexed_key', 'MAE_DECODER_BLOCK'
]

StateDict = Mapping[str, torch.Tensor]
#: How a converter renames the keys of one kind of module: ``(module renames,
#: parameter renames)``. A module rename maps ``<module>.weight`` and
#: ``<module>.bias``; a parameter rename maps one exact name.
RenameTable = Tuple[Mapping[str, str], Mapping[str, str]]
#: timm ``Block`` names of an MAE decoder block (the official HiViT and GreenMIM
#: releases, as MAE's ``models_mae.py``) -> mmpretrain's ``TransformerEncoderLayer``.
MAE_DECODER_BLOCK: RenameTable = ({
    'norm1': 'ln1',
    'attn.qkv': 'attn.qkv',
    'attn.proj': 'attn.proj',
    'norm2': 'ln2',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
}, {})


def unwrap_state_dict(checkpoint: Mapping,
                      wrappers: Sequence[str] = ('state_dict', )) -> StateDict:
    """The state dict inside a checkpoint (the first of ``wrappers`` that holds a
    mapping), or ``checkpoint`` itself."""
    for name in wrappers:
        inner = checkpoint.get(name)
        if isinstance(inner, Mapping):
            return inner
    return checkpoint


def read_pretrained(checkpoint: str, prefix: str = '') -> Dict[str, torch.Tensor]:
    """Read the weights of a checkpoint file (or URL) on the CPU.

    Args:
        checkpoint (str): Path or URL, anything mmengine's loaders accept.
        prefix (str): Keep only keys under this prefix (e.g. ``'backbone.'``), prefix
            removed. Defaults to ``''``: the whole state dict, ``module.`` (DDP) removed.

    Returns:
        OrderedDict[str, torch.Tensor]: With ``_metadata['']``, the saved metadata of the
        module at ``prefix`` (e.g. the ``grid`` HiViT records for its position tables).

    Raises:
        KeyError: If no key starts with ``prefix``.
    """
    state = unwrap_state_dict(_load_checkpoint(checkpoint, map_location='cpu'))
    metadata = getattr(state, '_metadata', None) or {}
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        out = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                          if k.startswith(prefix))
        if not out:
            raise KeyError(f'{prefix} is not in the pretrained model {checkpoint} (no '
                           'key starts with it)')
    else:
        out = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                          for k, v in state.items())
    out._metadata = OrderedDict({'': dict(metadata.get(prefix[:-1], {}))})
    return out


def _pretraining_keys(model_cls: type) -> Set[str]:
    """Prefixes declared by the pre-training subclasses of ``model_cls``'s family."""
    keys: Set[str] = set()
    todo = [c for c in model_cls.__mro__
            if issubclass(c, BaseModule) and c is not BaseModule]
    while todo:
        cls = todo.pop()
        keys.update(cls.__dict__.get('pretraining_keys', ()))
        todo += cls.__subclasses__()
    return keys


def load_backbone_weights(model: torch.nn.Module, state_dict: StateDict,
                          source: str = 'state_dict') -> None:
    """Load backbone weights, refusing anything that would stay silently random.

    Args:
        model (nn.Module): The backbone; may declare ``optional_keys`` and have a
            ``resize_position_tables(state, saved_metadata) -> state`` method (see the
            module docstring).
        state_dict (dict[str, torch.Tensor]): Backbone keys, prefix removed.
        source (str): Where it came from, for messages. Defaults to ``'state_dict'``.

    Raises:
        KeyError: Naming every missing, unexpected and mis-shaped key.
    """
    logger = MMLogger.get_current_instance()
    name = type(model).__name__
    own = model.state_dict()
    state = dict(state_dict)
    dropped = tuple(_pretraining_keys(type(model)))
    ignored = sorted(k for k in state if k.startswith(dropped) and k not in own) \
        if dropped else []
    for k in ignored:
        state.pop(k)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    fresh = []  # optional parts the source lacks as a whole: they keep their init
    for part in getattr(model, 'optional_keys', ()):
        if not any(part in k for k in state):
            fresh += [k for k in missing if part in k]
    missing = [k for k in missing if k not in fresh]
    if hasattr(model, 'resize_position_tables'):  # from the grid saved with them, if any
        saved = (getattr(state_dict, '_metadata', None) or {}).get('', {})
        state = model.resize_position_tables(state, saved)
    mismatched = sorted(f'{k}: checkpoint {tuple(state[k].shape)} vs model '
                        f'{tuple(own[k].shape)}' for k in set(state) & set(own)
                        if state[k].shape != own[k].shape)
    if missing or unexpected or mismatched:
        raise KeyError(f'{name} weights from {source} do not match the model.\n'
                       f'missing keys: {missing}\nunexpected keys: {unexpected}\n'
                       f'shape mismatches: {mismatched}')
    resized = OrderedDict(state)  # now of the model's grids: its own metadata says so
    resized._metadata = getattr(own, '_metadata', None)
    model.load_state_dict(resized, strict=False)
    logger.info(f'{name}: loaded {len(state)} tensors from {source}')
    if ignored:
        logger.info(f'{name}: ignored pre-training-only keys: {ignored}')
    if fresh:
        init = getattr(model, 'rel_pos_zero_init', None)
        logger.warning(f'{name}: {source} has no {sorted(fresh)} (its model had none); '
                       'they keep their initialisation' +
                       ('' if init is None else
                        f' (relative tables: {"zeros" if init else "trunc-normal"})'))


def init_pretrained(model: torch.nn.Module, init_cfg: dict) -> None:
    """Apply ``init_cfg`` (None or ``type='Pretrained'``) with strict loading.

    Args:
        model (nn.Module): The backbone.
        init_cfg (dict): ``dict(type='Pretrained', checkpoint=..., prefix=...)``.

    Raises:
        ValueError: For another ``type`` or an empty ``checkpoint``.
        KeyError: See :func:`load_backbone_weights`.
    """
    name = type(model).__name__
    if not (isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'):
        raise ValueError(f'{name} supports init_cfg=None or type Pretrained, got '
                         f'{init_cfg}')
    if not init_cfg.get('checkpoint'):
        raise ValueError('init_cfg type Pretrained has no checkpoint; set '
                         'model.backbone.init_cfg.checkpoint=PATH (or '
                         'init_cfg=None to train from scratch)')
    state = read_pretrained(init_cfg['checkpoint'], init_cfg.get('prefix', ''))
    load_backbone_weights(model, state, source=init_cfg['checkpoint'])


# ----------------------------------------------------------------------------
# Renaming of checkpoint keys (used by the converters)
# ----------------------------------------------------------------------------
def rename_key(key: str, table: RenameTable) -> Optional[str]:
    """``key`` renamed through ``table``; None when it has no entry."""
    modules, params = table
    if key in params:
        return params[key]
    module, _, param = key.rpartition('.')
    if param in ('weight', 'bias') and module in modules:
        return f'{modules[module]}.{param}'
    return None


def rename_indexed_key(key: str, container: str, target: str,
                       table: RenameTable) -> Optional[str]:
    """``{container}.{i}.{rest}`` renamed to ``{target}.{i}.{renamed rest}``; None when
    ``key`` is not in ``container`` or ``rest`` has no entry in ``table``."""
    head, index, rest = (key.split('.', 2) + ['', ''])[:3]
    if head != container or not index.isdigit():
        return None
    renamed = rename_key(rest, table)
    return None if renamed is None else f'{target}.{index}.{renamed}'
