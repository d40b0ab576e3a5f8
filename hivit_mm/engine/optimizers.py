# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Layer-wise learning-rate decay for models with any depth-aware backbone (HiViT, Swin).

One optimizer-wrapper constructor serves every task. It asks the model's *backbone* for
the depth of each parameter, ``model.backbone.get_layer_depth(name, prefix='backbone.')``,
so mmpretrain classifiers and self-supervisors (``ImageClassifier``, ``MAE``), mmdet
detectors (``MaskRCNN``) and mmseg segmentors (``EncoderDecoder``) are handled alike;
parameters outside the backbone (necks, heads, decoders) are the backbone's last layer.

Select it in a config with::

    optim_wrapper = dict(
        optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
        constructor='hivit_mm.LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.85))
"""
import logging
from collections import defaultdict
from functools import partial
from typing import Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor

from hivit_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = [
    'LayerDecayOptimWrapperConstructor', 'HiViTLayerDecayOptimWrapperConstructor',
    'NO_DECAY_SUFFIXES'
]

#: A parameter whose own name (the part after the last ``.``) ends with one of these gets
#: no weight decay, whatever its shape: absolute position embeddings (``pos_embed``,
#: ``decoder_pos_embed``, ``absolute_pos_embed``), relative position tables, and learned
#: tokens (``mask_token``, ``cls_token``).
NO_DECAY_SUFFIXES: Tuple[str, ...] = ('pos_embed', 'relative_position_bias_table',
                                      'mask_token', 'cls_token')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optimizer-wrapper constructor with layer-wise learning-rate decay.

    The backbone numbers its layers: ``get_layer_depth(name, prefix)`` returns
    ``(layer_id, num_layers)`` for any parameter name of the whole model (for
    :class:`~hivit_mm.models.HiViT`: patch embedding, position embedding and stem are
    layer 0, main block ``k`` is layer ``k + 1``, everything else is layer
    ``num_layers - 1``). Then, for every parameter that requires a gradient
    (frozen ones are left out of the optimizer):

    * ``lr = base_lr * layer_decay_rate ** (num_layers - 1 - layer_id)``, so necks and
      heads train at ``base_lr``;
    * ``weight_decay = 0`` if the parameter has at most one dimension (norm weights, all
      biases) or its name ends with one of :data:`NO_DECAY_SUFFIXES` (position
      embeddings, relative position tables, mask/class tokens); else ``base_wd``
      (the optimizer's ``weight_decay``; its default when that is not set).

    Parameters are grouped by ``(layer_id, decay or not)``; each group is a dict with
    ``params``, ``param_names`` (as in PyTorch's named parameter groups), ``lr``,
    ``weight_decay``, ``lr_scale``, ``layer_id`` and ``group_name``
    (``'layer_{i}_decay'`` or ``'layer_{i}_no_decay'``). The groups are logged at INFO
    level, one line per layer.

    ``paramwise_cfg`` keys:

    * ``layer_decay_rate`` (float, required): in ``(0, 1]``; 1 disables the decay but
      keeps the weight-decay rule.
    * ``layer_numbering`` (str, optional): passed to the backbone as
      ``get_layer_depth(name, prefix, numbering=...)``, for backbones with more than one
      numbering rule (:meth:`hivit_mm.models.HiViT.get_layer_depth`: ``'stem_as_one'``,
      its default, or ``'per_block'``, the official ImageNet fine-tuning's rule).
      Without it the backbone's default applies.
    * ``custom_keys`` (dict, optional):
      ``{substring: dict(lr_mult=..., decay_mult=...)}``. A parameter whose full name
      contains a key takes the longest such key (ties: alphabetical, as mmengine).
      ``lr_mult`` multiplies its layer-decayed lr; ``decay_mult``, when given, sets its
      weight decay to ``base_wd * decay_mult``, overriding the rule above. Such
      parameters get their own groups, ``'layer_{i}_{decay|no_decay}_{key}'``.

    Args:
        optim_wrapper_cfg (dict): Config of the optimizer wrapper, with ``optimizer``
            (which must set ``lr``).
        paramwise_cfg (dict): See above.

    Raises:
        ValueError: On an unknown ``paramwise_cfg`` key or ``custom_keys`` field, a
            negative multiplier, a ``layer_decay_rate`` missing or outside ``(0, 1]``,
            or an optimizer without ``lr``.
        TypeError: If a ``custom_keys`` value is not a dict.
    """
    valid_paramwise_keys: Tuple[str, ...] = ('layer_decay_rate', 'layer_numbering',
                                             'custom_keys')
    valid_custom_key_fields: Tuple[str, ...] = ('lr_mult', 'decay_mult')

    # -- validation ------------------------------------------------------------
    def _validate_cfg(self) -> None:
        """Check ``paramwise_cfg`` and the base lr; called by ``__init__``."""
        super()._validate_cfg()
        cfg = self.paramwise_cfg
        name = type(self).__name__
        unknown = sorted(set(cfg) - set(self.valid_paramwise_keys))
        if unknown:
            raise ValueError(f'{name}: unknown paramwise_cfg keys {unknown}; valid keys '
                             f'are {list(self.valid_paramwise_keys)} (norms, biases, '
                             'position tables and tokens never get weight decay)')
        if 'layer_decay_rate' not in cfg:
            raise ValueError(f'{name} needs paramwise_cfg=dict(layer_decay_rate=...), '
                             f'got paramwise_cfg={cfg}')
        rate = cfg['layer_decay_rate']
        if (isinstance(rate, bool) or not isinstance(rate, (int, float))
                or not 0 < rate <= 1):
            raise ValueError(f'{name}: layer_decay_rate must be a number in (0, 1], '
                             f'got {rate!r}')
        for key, fields in cfg.get('custom_keys', {}).items():
            if not isinstance(fields, dict):
                raise TypeError(f'{name}: custom_keys[{key!r}] must be a dict, got '
                                f'{type(fields).__name__}')
            bad = sorted(set(fields) - set(self.valid_custom_key_fields))
            if bad:
                raise ValueError(f'{name}: custom_keys[{key!r}] has unknown fields '
                                 f'{bad}; valid fields are '
                                 f'{list(self.valid_custom_key_fields)}')
            for field, value in fields.items():
                if (isinstance(value, bool) or not isinstance(value, (int, float))
                        or value < 0):
                    raise ValueError(f'{name}: custom_keys[{key!r}][{field!r}] must be '
                                     f'a non-negative number, got {value!r}')
        if self.base_lr is None:
            raise ValueError(f'{name}: the optimizer config must set lr, got '
                             f'{self.optimizer_cfg}')

    # -- parameter groups ------------------------------------------------------
    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '') -> None:
        """Append the layer-decay parameter groups of a whole model to ``params``.

        Args:
            params (list[dict]): Parameter groups, extended in place.
            module (nn.Module): The whole model (a model wrapper such as DDP is
                unwrapped). It must have ``backbone.get_layer_depth``.
            prefix (str): Must be ``''``: the backbone needs the model's full
                parameter names. Kept for the signature of the base class.

        Raises:
            ValueError: If ``prefix`` is not empty, or the backbone returns a layer id
                outside ``[0, num_layers)``.
            TypeError: If the model has no ``backbone.get_layer_depth``.
        """
        if prefix:
            raise ValueError(f'{type(self).__name__}.add_params works on the whole '
                             f'model, got prefix={prefix!r}')
        model = module.module if is_model_wrapper(module) else module
        backbone = getattr(model, 'backbone', None)
        get_layer_depth = getattr(backbone, 'get_layer_depth', None)
        if not callable(get_layer_depth):
            raise TypeError(
                f'{type(self).__name__} needs a model whose backbone has '
                '`get_layer_depth(param_name, prefix)`; got model '
                f'{type(model).__name__} with backbone '
                f'{type(backbone).__name__ if backbone is not None else None}')

        rate = self.paramwise_cfg['layer_decay_rate']
        if 'layer_numbering' in self.paramwise_cfg:
            get_layer_depth = partial(get_layer_depth,
                                      numbering=self.paramwise_cfg['layer_numbering'])
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        # longest key first, then alphabetical (mmengine's rule)
        sorted_keys = sorted(sorted(custom_keys), key=len, reverse=True)
        groups: Dict[Tuple[int, bool, str], dict] = {}
        num_layers = None
        frozen = 0
        for name, param in model.named_parameters():
            if not param.requires_grad:
                frozen += 1
                continue
            layer_id, n = get_layer_depth(name, prefix='backbone.')
            if num_layers is None:
                num_layers = n
            if n != num_layers or not 0 <= layer_id < n:
                raise ValueError(f'{type(backbone).__name__}.get_layer_depth'
                                 f'({name!r}) returned ({layer_id}, {n}); expected a '
                                 f'layer id in [0, {num_layers}) and {num_layers} '
                                 'layers')
            decay = param.ndim > 1 and not name.rsplit('.', 1)[-1].endswith(
                NO_DECAY_SUFFIXES)
            key = next((k for k in sorted_keys if k in name), '')
            group = groups.get((layer_id, decay, key))
            if group is None:
                scale = rate**(num_layers - 1 - layer_id)
                group_name = f'layer_{layer_id}_{"decay" if decay else "no_decay"}'
                group = dict(
                    params=[], param_names=[], lr_scale=scale, layer_id=layer_id,
                    group_name=f'{group_name}_{key}' if key else group_name,
                    lr=self.base_lr * scale * custom_keys.get(key, {}).get('lr_mult', 1.))
                if key and 'decay_mult' in custom_keys[key]:
                    group['weight_decay'] = self.base_wd * custom_keys[key]['decay_mult']
                elif not decay:
                    group['weight_decay'] = 0.
                elif self.base_wd is not None:
                    group['weight_decay'] = self.base_wd
                groups[(layer_id, decay, key)] = group
            group['params'].append(param)
            group['param_names'].append(name)

        keys = sorted(groups, key=lambda k: (k[0], not k[1], k[2]))
        params.extend(groups[k] for k in keys)
        self._log_groups({k: groups[k] for k in keys}, num_layers, frozen)

    def _log_groups(self, groups: Dict[Tuple[int, bool, str], dict],
                    num_layers: Optional[int], frozen: int) -> None:
        """Log a summary line, then one line per layer id, at INFO level."""
        print_log(
            f'{type(self).__name__}: layer_decay_rate='
            f'{self.paramwise_cfg["layer_decay_rate"]}, {num_layers} layers, base '
            f'lr={self.base_lr:g}, base weight_decay={self.base_wd}, {len(groups)} '
            f'groups, {frozen} frozen parameters left out',
            logger='current', level=logging.INFO)
        by_layer: Dict[int, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for (layer_id, decay, key), group in groups.items():
            kind = 'decay' if decay else 'no-decay'
            by_layer[layer_id][f'{kind} ({key})' if key else kind] += len(
                group['params'])
        for layer_id, counts in by_layer.items():
            scale = self.paramwise_cfg['layer_decay_rate']**(num_layers - 1 - layer_id)
            desc = ', '.join(f'{n} {kind}' for kind, n in counts.items())
            print_log(f'  layer {layer_id}: lr scale {scale:.4g}, params: {desc}',
                      logger='current', level=logging.INFO)


# Its earlier name, kept so that configs written with it still load.
HiViTLayerDecayOptimWrapperConstructor = LayerDecayOptimWrapperConstructor
OPTIM_WRAPPER_CONSTRUCTORS.register_module(
    name='HiViTLayerDecayOptimWrapperConstructor',
    module=LayerDecayOptimWrapperConstructor)
