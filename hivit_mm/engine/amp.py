# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""bf16 mixed precision without a loss scaler, on any device (CPUs included)."""
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from hivit_mm.registry import OPTIM_WRAPPERS

__all__ = ['BF16OptimWrapper', 'cpu_supports_bf16']


def cpu_supports_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (x86 AVX512-BF16 or AMX-BF16,
    Arm BF16 or SVE-BF16), without which bf16 matmuls are emulated and slower than
    fp32 (``torch.cpu.get_capabilities``)."""
    caps = torch.cpu.get_capabilities()
    return any(caps.get(k, False)
               for k in ('avx512_bf16', 'amx_bf16', 'bf16', 'sve_bf16'))


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose forward runs under bf16 autocast, with no loss scaler.

    bf16 keeps fp32's exponent range, so gradients do not underflow and need no
    scaling (Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019);
    parameters, gradients and the optimiser state stay fp32. Unlike mmengine's
    ``AmpOptimWrapper`` (CUDA/NPU/MLU/MUSA only, with a ``GradScaler``) it runs on a
    CPU, which is where ``tools/train.py --amp`` uses it. The autocast device is the
    model's. Same arguments and state dict as ``OptimWrapper``, so a run resumes across
    fp32 and bf16.
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        """``OptimWrapper.optim_context`` plus bf16 autocast on the model's device."""
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device, dtype=torch.bfloat16):
            yield
