# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Datasets of ``hivit_mm``: the built-in synthetic "shapes" world.

The generated sets are read by the upstream dataset classes unchanged (mmpretrain
``CustomDataset``, mmdet ``CocoDataset``, mmseg ``BaseSegDataset``), so nothing is
registered here; see :mod:`hivit_mm.datasets.shapes` for layouts and configs.
"""
from .shapes import (GENERATOR_VERSION, SEG_CLASSES, SHAPE_CLASSES, ensure_shapes,
                     make_classification, make_detection, make_segmentation, make_shapes)

__all__ = [
    'SHAPE_CLASSES', 'SEG_CLASSES', 'GENERATOR_VERSION', 'make_classification',
    'make_detection', 'make_segmentation', 'make_shapes', 'ensure_shapes'
]
