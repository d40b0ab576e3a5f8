# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Multiply-accumulate counts (what papers report as "FLOPs"), by mmengine's analyzer."""
from typing import Any, List, Sequence

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape

__all__ = ['count_macs']


def _sdpa_macs(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``scaled_dot_product_attention``: ``q @ k^T`` and ``attn @ v``.

    mmengine's analyzer has no handle for this op and would count it as zero.
    """
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= d
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Count the MACs of one forward pass on a random input of ``input_shape``."""
    inputs = (torch.randn(*input_shape), )
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_macs)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analyzer.total()
