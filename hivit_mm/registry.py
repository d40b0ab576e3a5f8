# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Registries of the ``hivit_mm`` scope.

Every registry is a direct child of the mmengine root registry, so a config of any
OpenMMLab library (``default_scope`` ``mmpretrain``, ``mmdet`` or ``mmseg``) reaches our
modules as ``type='hivit_mm.X'``, and a config with ``default_scope='hivit_mm'`` reaches
them as ``type='X'``. A lookup in any of them first imports ``_LOCATIONS``, the modules
whose import fills the registries, so a scoped type resolves without ``custom_imports``
(our configs still list it, so that the upstream libraries' own tools run them too).
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'TASK_UTILS', 'METRICS',
    'EVALUATOR', 'VISUALIZERS', 'VISBACKENDS'
]

_LOCATIONS = ['hivit_mm.models', 'hivit_mm.engine', 'hivit_mm.datasets']

RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=_LOCATIONS)
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor', parent=MMENGINE_RUNNER_CONSTRUCTORS, locations=_LOCATIONS)
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=_LOCATIONS)
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=_LOCATIONS)
LOG_PROCESSORS = Registry(
    'log processor', parent=MMENGINE_LOG_PROCESSORS, locations=_LOCATIONS)
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=_LOCATIONS)
OPTIM_WRAPPERS = Registry(
    'optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=_LOCATIONS)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=_LOCATIONS)
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, locations=_LOCATIONS)

DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=_LOCATIONS)
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=_LOCATIONS)
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, locations=_LOCATIONS)

MODELS = Registry('model', parent=MMENGINE_MODELS, locations=_LOCATIONS)
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=_LOCATIONS)
WEIGHT_INITIALIZERS = Registry(
    'weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, locations=_LOCATIONS)
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, locations=_LOCATIONS)

METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=_LOCATIONS)
EVALUATOR = Registry(
    'evaluator', parent=MMENGINE_EVALUATOR, locations=_LOCATIONS)

VISUALIZERS = Registry(
    'visualizer', parent=MMENGINE_VISUALIZERS, locations=_LOCATIONS)
VISBACKENDS = Registry(
    'vis_backend', parent=MMENGINE_VISBACKENDS, locations=_LOCATIONS)
