# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""hivit_mm: hierarchical vision transformers for masked image modelling in OpenMMLab 2.x.

Importing the package checks the versions of the OpenMMLab stack
(:func:`hivit_mm.version.check_dependency_versions`), registers the compatibility fixes
of :mod:`hivit_mm.utils.compat` (the checkpoint loaders) and adds the model index to
mmpretrain's ``ModelHub`` (:func:`hivit_mm.apis.register_model_index`), so that
mmpretrain's ``list_models('*hivit*')``, ``get_model`` and ``inference_model`` know our
models.
Models, datasets and engine parts are registered when their modules are imported, which
the ``hivit_mm`` registries do on the first scoped lookup (``type='hivit_mm.X'``) or
:func:`hivit_mm.utils.register_all_modules`.
"""
from .version import __version__, check_dependency_versions

check_dependency_versions()  # before anything imports mmengine, mmcv or mmpretrain

from .apis.model_zoo import register_model_index  # noqa: E402
from .utils.compat import apply_compat_fixes  # noqa: E402

apply_compat_fixes()
try:
    register_model_index()
except FileNotFoundError as e:  # a copy installed without its package data
    import warnings
    warnings.warn(f'hivit_mm: models are not known by name ({e})')

__all__ = ['__version__']
