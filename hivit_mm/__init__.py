# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""hivit_mm: hierarchical vision transformers for masked image modelling in OpenMMLab 2.x.

Importing the package only registers things: the compatibility fixes of
:mod:`hivit_mm.utils.compat` (a checkpoint loader). Models, datasets and engine parts are
registered when their modules are imported, which the ``hivit_mm`` registries do on the
first scoped lookup (``type='hivit_mm.X'``) or :func:`hivit_mm.utils.register_all_modules`.
"""
from .utils.compat import apply_compat_fixes
from .version import __version__

apply_compat_fixes()

__all__ = ['__version__']
