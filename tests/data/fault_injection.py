# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Faults that tests/test_reliability.py injects into runs of the real tools.

Imported by the test configs through ``custom_imports=dict(imports=['fault_injection'])``
(the tests put ``tests/data`` on ``PYTHONPATH``); registered in mmengine's root
registries, so configs of any scope find them.
"""
import os
import signal
import time
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dist import get_rank
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, TRANSFORMS


@TRANSFORMS.register_module()
class NaNPixelAfter(BaseTransform):
    """Set one pixel to NaN in every image after the first ``after`` (per process).

    Args:
        after (int): Images left intact.
        count (int, optional): How many images get a NaN (then intact again).
            Defaults to None (all).
        rank (int, optional): The only rank whose images get NaN. Defaults to None
            (every rank).
    """

    def __init__(self, after: int, count: Optional[int] = None,
                 rank: Optional[int] = None) -> None:
        self.after = after
        self.count = count
        self.rank = rank
        self.calls = 0

    def transform(self, results: dict) -> dict:
        self.calls += 1
        last = None if self.count is None else self.after + self.count
        if (self.after < self.calls and (last is None or self.calls <= last)
                and self.rank in (None, get_rank())):
            img = results['img'].astype(np.float32)
            img[0, 0, 0] = np.nan
            results['img'] = img
        return results


@HOOKS.register_module()
class FaultAt(Hook):
    """Kill the process with SIGKILL, or hang it, at a given iteration.

    Args:
        iter (int): 1-based iteration.
        where (str): ``'kill_before_save'``: when the checkpoint of ``iter`` starts
            being saved; ``'kill_during_save'``: once half of that checkpoint's bytes
            are on disk; ``'kill_after_iter'``: after iteration ``iter`` (after its
            checkpoint); ``'hang'``: before iteration ``iter``, on rank ``rank`` only,
            for 10 minutes; ``'never'``.
        rank (int): The rank that hangs. Defaults to 1.
    """

    priority = 'LOWEST'

    def __init__(self, iter: int = 0, where: str = 'never', rank: int = 1) -> None:
        self.iter = iter
        self.where = where
        self.rank = rank

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if checkpoint['meta']['iter'] != self.iter:
            return
        if self.where == 'kill_before_save':
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.where == 'kill_during_save':

            def put_half_then_die(backend, obj: bytes, filepath) -> None:
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)

            LocalBackend.put = put_half_then_die

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if (self.where == 'hang' and runner.iter + 1 == self.iter
                and get_rank() == self.rank):
            time.sleep(600)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.where == 'kill_after_iter' and runner.iter + 1 == self.iter:
            os.kill(os.getpid(), signal.SIGKILL)
