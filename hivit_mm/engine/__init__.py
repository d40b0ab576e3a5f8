# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Training-engine parts of hivit_mm; importing this module registers them."""
from .amp import BF16OptimWrapper
from .hooks import AtomicCheckpointHook, NonFiniteLossError, NonFiniteLossHook
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .optimizers import LayerDecayOptimWrapperConstructor
from .runner import ReliableRunner

__all__ = [
    'BF16OptimWrapper', 'LayerDecayOptimWrapperConstructor', 'ReliableRunner',
    'NonFiniteLossHook', 'NonFiniteLossError', 'AtomicCheckpointHook',
    'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop'
]
