# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""What the end-to-end test configs shrink the demo configs to, as variables a config
takes with ``_base_.tiny_*``: the tiny HiViT (the demo HiViT of
configs/demo/_base_/hivit-demo.py at embed 32: stage widths 8 / 16 / 32, depths
(1, 1, 2), 2 heads; ``tests/conftest.py`` reads it as ``HIVIT_TINY`` for tests that build
models in Python) and loaders without worker processes."""
tiny_arch = dict(embed_dims=32, depths=(1, 1, 2), num_heads=2)
tiny_loader = dict(num_workers=0, persistent_workers=False)
