# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Models of hivit_mm; importing this module registers them in ``hivit_mm.registry``."""
from .geometry import random_unit_masking
from .green_swin import GreenSwin
from .hivit import HiViT
from .mae import ClsFreeMAEDecoder, MaskedHiViT
from .necks import MeanPoolBatchNorm, MeanPoolLayerNorm

__all__ = [
    'HiViT', 'MaskedHiViT', 'GreenSwin', 'ClsFreeMAEDecoder', 'MeanPoolLayerNorm',
    'MeanPoolBatchNorm', 'random_unit_masking'
]
