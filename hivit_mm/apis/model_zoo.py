# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The model zoo: ``model-index.yml`` and the metafiles, by name.

The index is in mmpretrain's format (``model-index.yml`` importing one ``metafile.yml``
per config folder; each model has a ``Name``, ``Metadata`` with ``Parameters`` and
``FLOPs``, ``Results``, ``Weights`` and ``Config``). :func:`register_model_index` adds
our classification and self-supervised models to mmpretrain's ``ModelHub``, so that
``mmpretrain.list_models``, ``get_model`` and ``inference_model`` find them by name;
``import hivit_mm`` calls it. Detection and segmentation models are listed by
:func:`list_models` and built by :func:`hivit_mm.apis.init_model`, but not registered
with mmpretrain, whose ``get_model`` can only build its own tasks.

Conventions of the metafiles (checked by ``tests/test_model_zoo.py``): ``Parameters`` is
the whole model's parameter count (decoder included for pre-training models, 1000
classes for ImageNet classifiers), ``FLOPs`` the multiply-accumulates of
``model.extract_feat`` on one image of the size in ``Metadata.Input Size`` (as
mmpretrain's ``get_flops``; for pre-training models the encoder without masking, as it
runs when fine-tuned); see :func:`model_complexity`.
"""
import fnmatch
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

__all__ = [
    'MMPRETRAIN_TASKS', 'model_index_root', 'load_model_index', 'list_models',
    'serves_mmpretrain', 'register_model_index', 'model_complexity'
]

#: Result tasks that mmpretrain's ``get_model`` / ``inference_model`` can serve.
MMPRETRAIN_TASKS = ('Image Classification', )
INDEX_FILE = 'model-index.yml'


def model_index_root() -> str:
    """The folder holding ``model-index.yml`` and ``configs/``.

    The source checkout the package is imported from, else the package data folder
    ``hivit_mm/.mim`` of an installed copy (see ``setup.py``).

    Raises:
        FileNotFoundError: Neither has a ``model-index.yml``.
    """
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for root in (osp.dirname(package), osp.join(package, '.mim')):
        if osp.isfile(osp.join(root, INDEX_FILE)):
            return root
    raise FileNotFoundError(f'no {INDEX_FILE} in {package}/.mim or next to the package')


def _read_yaml(path: str) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


def load_model_index(root: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """Every model of the index by lower-case name.

    Args:
        root: The folder of ``model-index.yml``. Defaults to :func:`model_index_root`.

    Returns:
        dict: name -> the metafile's model entry (``Name``, ``Metadata``, ``Results``,
        ``Weights``, ``In Collection``, ...), with ``config`` (the absolute config
        path), ``metafile`` (its path) and ``collection`` (the collection entry).

    Raises:
        ValueError: Two models share a name.
    """
    root = root or model_index_root()
    models: Dict[str, Dict[str, Any]] = {}
    for rel in _read_yaml(osp.join(root, INDEX_FILE))['Import']:
        metafile = osp.join(root, rel)
        meta = _read_yaml(metafile)
        collections = {c['Name']: c for c in meta.get('Collections') or []}
        for entry in meta['Models']:
            name = entry['Name'].lower()
            if name in models:
                raise ValueError(f'model {name} is defined twice ({metafile}, '
                                 f'{models[name]["metafile"]})')
            models[name] = dict(
                entry,
                config=osp.join(root, entry['Config']),
                metafile=metafile,
                collection=collections.get(entry.get('In Collection'), {}))
    return models


def list_models(pattern: Optional[str] = None) -> List[str]:
    """Names of the models of the hivit_mm index, sorted.

    Args:
        pattern: A shell-style wildcard (``'mae_*'``), matched like mmpretrain's
            ``list_models`` (any suffix). None lists all.
    """
    names = sorted(load_model_index())
    return names if pattern is None else fnmatch.filter(names, pattern.lower() + '*')


def serves_mmpretrain(entry: Dict[str, Any]) -> bool:
    """Classification models and pre-training models (no results) build in mmpretrain."""
    results = entry.get('Results') or []
    return all(r['Task'] in MMPRETRAIN_TASKS for r in results)


def register_model_index() -> List[str]:
    """Add our classification and pre-training models to mmpretrain's ``ModelHub``.

    Idempotent. Mirrors ``ModelHub.register_model_index`` (the model-index file, then
    the config path made absolute), keeping only the models mmpretrain can build.

    Returns:
        list[str]: The names registered (lower case).

    Raises:
        ValueError: A name is already registered for another config (an upstream model
            of the same name).
    """
    from mmpretrain.apis import ModelHub
    from modelindex.load_model_index import load

    root = model_index_root()
    index = load(osp.join(root, INDEX_FILE))
    index.build_models_with_collections()
    ours = {n: e for n, e in load_model_index(root).items() if serves_mmpretrain(e)}
    registered = []
    for metainfo in index.models:
        name = metainfo.name.lower()
        if name not in ours:
            continue
        config = ours[name]['config']
        known = ModelHub._models_dict.get(name)
        if known is not None:
            if getattr(known, 'config', None) != config:
                raise ValueError(f'model name {name} is already registered in '
                                 f'mmpretrain\'s ModelHub for {known.config}')
            continue
        metainfo.config = config
        ModelHub._models_dict[name] = metainfo
        registered.append(name)
    return registered


def model_complexity(config: Any,
                     input_size: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """Parameters and FLOPs of a config, as the metafiles state them.

    Args:
        config: A config file, Config or model name (see :func:`init_model`).
        input_size: ``(H, W)`` of the image. Defaults to the index's ``Metadata.Input
            Size`` for a model name, else 224 x 224.

    Returns:
        tuple[int, int]: The parameter count of the whole model, and the
        multiply-accumulates of ``model.extract_feat`` on one ``(1, 3, H, W)`` image.
    """
    import torch.nn as nn

    from hivit_mm.utils.complexity import count_macs
    from .inference import init_model

    if input_size is None:
        entry = load_model_index().get(str(config).lower(), {})
        input_size = (entry.get('Metadata') or {}).get('Input Size', [224, 224])
    model = init_model(config)
    params = sum(p.numel() for p in model.parameters())

    class ExtractFeat(nn.Module):
        """``model.extract_feat`` as a module's forward, for the FLOP analyzer."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.extract_feat(x)

    return params, count_macs(ExtractFeat().eval(), (1, 3, *input_size))
