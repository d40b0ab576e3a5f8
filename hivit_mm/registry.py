# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Registries of the ``hivit_mm`` scope.

Every registry is a direct child of the mmengine root registry, so a config of any
OpenMMLab library (``default_scope`` ``mmpretrain``, ``mmdet`` or ``mmseg``) reaches our
modules as ``type='hivit_mm.X'``, and a config with ``default_scope='hivit_mm'`` reaches
them as ``type='X'``. A lookup in any of them first imports ``_LOCATIONS``, the modules
whose import fills the registries, so a scoped type resolves without ``custom_imports``
(our configs still list it, so that the upstream libraries' own tools run them too).
"""
import mmengine.registry as root
from mmengine.registry import Registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'TASK_UTILS', 'METRICS',
    'EVALUATOR', 'VISUALIZERS', 'VISBACKENDS'
]

_LOCATIONS = ['hivit_mm.models', 'hivit_mm.engine', 'hivit_mm.datasets']


def _child(parent: Registry) -> Registry:
    """The ``hivit_mm`` child of an mmengine root registry (same name)."""
    return Registry(parent.name, parent=parent, locations=_LOCATIONS)


RUNNERS = _child(root.RUNNERS)
RUNNER_CONSTRUCTORS = _child(root.RUNNER_CONSTRUCTORS)
LOOPS = _child(root.LOOPS)
HOOKS = _child(root.HOOKS)
LOG_PROCESSORS = _child(root.LOG_PROCESSORS)
OPTIMIZERS = _child(root.OPTIMIZERS)
OPTIM_WRAPPERS = _child(root.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child(root.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(root.PARAM_SCHEDULERS)
DATASETS = _child(root.DATASETS)
DATA_SAMPLERS = _child(root.DATA_SAMPLERS)
TRANSFORMS = _child(root.TRANSFORMS)
MODELS = _child(root.MODELS)
MODEL_WRAPPERS = _child(root.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(root.WEIGHT_INITIALIZERS)
TASK_UTILS = _child(root.TASK_UTILS)
METRICS = _child(root.METRICS)
EVALUATOR = _child(root.EVALUATOR)
VISUALIZERS = _child(root.VISUALIZERS)
VISBACKENDS = _child(root.VISBACKENDS)
