# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Inference by config or name, and the model zoo (see the README, "Model zoo")."""
from .inference import extract_features, init_model, load_images, reconstruct
from .model_zoo import (list_models, load_model_index, model_complexity,
                        register_model_index)

__all__ = [
    'init_model', 'extract_features', 'reconstruct', 'load_images', 'list_models',
    'load_model_index', 'register_model_index', 'model_complexity'
]
