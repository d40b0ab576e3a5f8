# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""A small inference API: build a model by config or name, extract features, reconstruct.

* :func:`init_model` builds any hivit_mm config (classifier, MAE, detector, segmentor)
  from a path, a :class:`mmengine.Config` or a model-index name, and loads a checkpoint
  strictly (every key, every shape), verifying the hash of published checkpoints.
* :func:`extract_features` returns the backbone's stage maps by stage.
* :func:`reconstruct` runs an MAE model's masked forward and returns the pictures
  ``tools/visualize_mae.py`` draws.

Images are given as file paths, ``(H, W, 3)`` uint8 arrays as ``mmcv.imread`` returns
them (BGR), or a ``(N, 3, H, W)`` tensor of such pixels (0-255, BGR); they go through the
model's own data preprocessor (normalisation, BGR -> RGB, padding), as in training.
"""
import copy
import difflib
import inspect
import logging
import os.path as osp
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, init_default_scope

from hivit_mm.utils.checkpoint import load_checkpoint_file, load_checkpoint_url

__all__ = ['init_model', 'extract_features', 'reconstruct', 'load_images']

ConfigType = Union[str, Path, Config]
ImagesType = Union[str, Path, np.ndarray, torch.Tensor, Sequence[Union[str, Path,
                                                                       np.ndarray]]]


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------
def _load_config(config: ConfigType) -> Config:
    """A copy of ``config``: a Config, a config file, or a model-index name."""
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if not isinstance(config, (str, Path)):
        raise TypeError(f'config must be a path, a model name or a Config, got '
                        f'{type(config).__name__}')
    if osp.isfile(config):
        return Config.fromfile(str(config))
    from .model_zoo import load_model_index
    models = load_model_index()
    if str(config).lower() in models:
        return Config.fromfile(models[str(config).lower()]['config'])
    close = difflib.get_close_matches(str(config).lower(), list(models), n=3)
    raise FileNotFoundError(
        f'{config!r} is neither a config file nor a model of the hivit_mm model index'
        + (f'; did you mean {close}?' if close else
           ' (hivit_mm.apis.list_models() lists them)'))


def _drop_pretrained_init(cfg: Any) -> None:
    """Set every ``init_cfg=dict(type='Pretrained', ...)`` in a model config to None."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for value in cfg.values():
            _drop_pretrained_init(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _drop_pretrained_init(value)


def _load_weights(model: nn.Module, checkpoint: str) -> dict:
    """Load ``checkpoint`` into ``model`` with every key and shape checked."""
    load = load_checkpoint_url if checkpoint.startswith(('http://', 'https://')) \
        else load_checkpoint_file
    ckpt = load(checkpoint)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'checkpoint {checkpoint} holds no state dict')

    def unwrapped(key: str) -> str:  # DDP's 'module.' prefix removed
        return '' if key == 'module' else key[7:] if key.startswith('module.') else key

    metadata = getattr(state, '_metadata', None)  # e.g. the grid of HiViT's tables
    state = OrderedDict((unwrapped(k), v) for k, v in state.items())
    if metadata is not None:
        state._metadata = OrderedDict((unwrapped(k), v) for k, v in metadata.items())
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(k for k in set(own) & set(state)
                        if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mis_shaped:
        def show(keys: List[str]) -> str:
            return f'{len(keys)} {keys[:8]}' + (' ...' if len(keys) > 8 else '')
        raise ValueError(
            f'checkpoint {checkpoint} does not fit the model built from the config: '
            f'missing keys {show(missing)}, unexpected keys {show(unexpected)}, '
            f'mis-shaped {show(mis_shaped)}. Is it a checkpoint of another config (a '
            'pre-training checkpoint belongs in model.backbone.init_cfg)?')
    model.load_state_dict(state, strict=True)
    return ckpt


def load_images(images: ImagesType, size: Optional[int] = None) -> torch.Tensor:
    """Stack images into a ``(N, 3, H, W)`` float tensor of 0-255 BGR pixels.

    Args:
        images: File path(s), ``(H, W, 3)`` uint8 BGR array(s), or a ``(N, 3, H, W)``
            tensor (returned as float, unchanged otherwise).
        size: If given, each path or array is resized (bicubic) so that its shorter
            side is ``size`` and centre-cropped to ``size x size``.

    Returns:
        torch.Tensor: ``(N, 3, H, W)`` float32.

    Raises:
        ValueError: Images of different sizes without ``size``, or a tensor of
            another shape.
    """
    import mmcv
    if isinstance(images, torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f'an image tensor must be (N, 3, H, W), got '
                             f'{tuple(images.shape)}')
        return images.float()
    if isinstance(images, (str, Path, np.ndarray)):
        images = [images]
    arrays = []
    for img in images:
        array = mmcv.imread(str(img) if isinstance(img, Path) else img)
        if array is None:
            raise ValueError(f'could not read image {img}')
        if size is not None:
            array = mmcv.imrescale(array, (size, 10**6), interpolation='bicubic')
            top, left = (array.shape[0] - size) // 2, (array.shape[1] - size) // 2
            array = array[top:top + size, left:left + size]
        arrays.append(array)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f'images of different sizes {sorted(shapes)}: pass size= or '
                         'resize them')
    batch = np.stack(arrays)  # N, H, W, 3
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float()  # N, 3, H, W


def _preprocess(model: nn.Module, images: ImagesType,
                size: Optional[int] = None) -> torch.Tensor:
    """Images -> the model's normalised input batch ``(N, 3, H, W)``."""
    raw = load_images(images, size)
    pre = model.data_preprocessor
    return pre(dict(inputs=raw.to(pre.device), data_samples=None), False)['inputs']


# ----------------------------------------------------------------------------
# API
# ----------------------------------------------------------------------------
def init_model(config: ConfigType,
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a model from a config and load its weights strictly.

    Args:
        config: A config file, a :class:`mmengine.Config`, or the name of a model of
            the hivit_mm model index (``model-index.yml``; see
            :func:`hivit_mm.apis.list_models`).
        checkpoint: A checkpoint file or http(s) URL. Its ``state_dict`` must fit the
            model exactly (every key, every shape); a file name ``<name>-<8 hex>.pth``
            must match its sha256. None keeps the model's own initialisation
            (``init_weights``, without the config's ``Pretrained`` backbone weights).
        device: Where to put the model. Defaults to ``'cpu'``.
        cfg_options: Config overrides, as ``--cfg-options`` of the tools (e.g.
            ``{'model.backbone.out_indices': (0, 1, 2, 3)}``).

    Returns:
        nn.Module: The model in eval mode, with ``cfg`` (the config) and
        ``dataset_meta`` (the checkpoint's, e.g. class names; None without one).

    Raises:
        FileNotFoundError: ``config`` is neither a file nor a model name.
        ValueError: The checkpoint does not fit the model (the message lists the
            missing, unexpected and mis-shaped keys).
        CheckpointHashError: The checkpoint's content does not match its name.
    """
    cfg = _load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model
    if model_cfg.get('data_preprocessor') is None and cfg.get('data_preprocessor'):
        model_cfg['data_preprocessor'] = cfg.data_preprocessor  # mmpretrain's layout
    _drop_pretrained_init(model_cfg)  # the weights come from `checkpoint`, or none
    model = MODELS.build(model_cfg)
    meta: Dict[str, Any] = {}
    if checkpoint is None:
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # not a line per parameter
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        ckpt = _load_weights(model, str(checkpoint))
        meta = ckpt.get('meta', {}) or {}
    model.cfg = cfg
    model.dataset_meta = meta.get('dataset_meta')
    # what mmpretrain's inferencers read (ImageClassificationInferencer(model=...))
    model._config, model._dataset_meta = cfg, model.dataset_meta or {}
    return model.to(device).eval()


@torch.no_grad()
def extract_features(model: nn.Module, images: ImagesType) -> Dict[str, torch.Tensor]:
    """The backbone's feature maps of a batch of images, by stage.

    For HiViT, stage ``i`` has stride ``(4, 8, 16, 32)[i]`` and ``(C/4, C/2, C, C)[i]``
    channels (``C``: the arch's ``embed_dims``; stage 3 is stage 2 max-pooled); for
    GreenMIM's Swin, stride ``4 * 2**i`` and ``C * 2**i`` channels. The stages are the
    backbone's ``out_indices`` (pass ``cfg_options={'model.backbone.out_indices': (0,
    1, 2, 3)}`` to :func:`init_model` for all four). Masked-image-modelling encoders run
    without masking.

    Args:
        model: A model from :func:`init_model` (any task).
        images: See the module docstring. Sides must be multiples of 16 (HiViT) or 32
            (Swin, HiViT stage 3), unless the preprocessor pads them.

    Returns:
        dict[str, torch.Tensor]: ``'stage{i}'`` -> ``(N, C_i, H / s_i, W / s_i)``.
    """
    inputs = _preprocess(model, images)
    backbone = model.backbone
    if 'mask' in inspect.signature(backbone.forward).parameters:
        outs = backbone(inputs, mask=None)  # the plain forward of a MIM encoder
    else:
        outs = backbone(inputs)
    outs = outs if isinstance(outs, (tuple, list)) else (outs, )
    indices = getattr(backbone, 'out_indices', range(len(outs)))
    return {f'stage{int(i)}': out for i, out in zip(indices, outs)}


@torch.no_grad()
def reconstruct(model: nn.Module,
                images: ImagesType,
                mask_ratio: Optional[float] = None,
                seed: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """Mask images and reconstruct them with an MAE model (HiViT-MAE, GreenMIM).

    The model must be mmpretrain's ``MAE`` (or alike) with a masking backbone that
    returns ``(latent, mask, ids_restore)``, a decoder neck ``neck(latent,
    ids_restore)`` predicting ``patch_size**2 * 3`` pixels per unit, and an
    ``MAEPretrainHead`` (``patchify``/``unpatchify``, ``norm_pix``).

    Args:
        model: A model from :func:`init_model` of an MAE config.
        images: See the module docstring. Paths and arrays are resized (shorter side)
            and centre-cropped to the pre-training input size; a tensor must have it.
        mask_ratio: Fraction of units masked; None keeps the config's.
        seed: Seed of the random masks (the global RNG state is left unchanged);
            None draws from the global RNG.

    Returns:
        dict[str, torch.Tensor]: ``original``, ``masked`` (masked units in the mean
        colour), ``reconstruction`` (every unit predicted; with ``norm_pix`` the
        per-unit mean and variance of the original are put back): ``(N, 3, H, W)``
        pixels 0-255 in the model's input channel order (RGB for hivit_mm's
        configs); ``mask``: ``(N, 1, H, W)``, 1 on masked pixels.
    """
    backbone, head = model.backbone, model.head
    size = int(model.neck.num_patches**.5) * head.patch_size  # pre-training input
    x = _preprocess(model, images, size=size)  # N, 3, H, W normalised
    old_ratio = backbone.mask_ratio
    if mask_ratio is not None:
        if not 0 < mask_ratio < 1:
            raise ValueError(f'mask_ratio must be in (0, 1), got {mask_ratio}')
        backbone.mask_ratio = mask_ratio
    try:
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            if seed is not None:
                torch.manual_seed(seed)
            latent, mask, ids_restore = backbone(x)  # mask: N, L (1 = removed)
    finally:
        backbone.mask_ratio = old_ratio
    pred = model.neck(latent, ids_restore)  # N, L, p*p*3
    if head.norm_pix:  # predictions are per-unit normalised pixels
        target = head.patchify(x)  # N, L, p*p*3
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1e-6)**.5 + mean
    recon = head.unpatchify(pred)  # N, 3, H, W
    pixel_mask = head.unpatchify(mask[..., None].expand_as(pred))[:, :1]  # N, 1, H, W
    pre = model.data_preprocessor
    std, mean = pre.std.view(1, -1, 1, 1), pre.mean.view(1, -1, 1, 1)

    def to_pixels(t: torch.Tensor) -> torch.Tensor:
        return (t * std + mean).clamp(0, 255)

    return dict(
        original=to_pixels(x),
        masked=to_pixels(x * (1 - pixel_mask)),
        reconstruction=to_pixels(recon),
        mask=pixel_mask)
