# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Training-engine parts of hivit_mm; importing this module registers them."""
from .amp import BF16OptimWrapper
from .optimizers import HiViTLayerDecayOptimWrapperConstructor

__all__ = ['BF16OptimWrapper', 'HiViTLayerDecayOptimWrapperConstructor']
