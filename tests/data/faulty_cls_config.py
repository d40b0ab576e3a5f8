# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The tools' tiny classifier (``tiny_cls_config.py``) with switchable faults for
``tests/test_reliability.py``: ``NaNPixelAfter`` in the training pipeline (off: after
10**9 images) and a ``FaultAt`` hook (off), both set with ``--cfg-options``, e.g.
``train_dataloader.dataset.pipeline.1.after=8 custom_hooks.0.where=kill_before_save
custom_hooks.0.iter=2``. Needs ``tests/data`` on ``PYTHONPATH``."""
_base_ = './tiny_cls_config.py'

custom_imports = dict(imports=['fault_injection'], allow_failed_imports=False)
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='NaNPixelAfter', after=10**9),
        dict(type='PackInputs')
    ]))
custom_hooks = [dict(type='FaultAt', where='never')]
