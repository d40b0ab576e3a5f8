# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Scaled dot-product attention with the fastest kernel for the device, dtype and length.

Every attention of the project (HiViT's main-stage and windowed blocks, GreenSwin's
window groups, the MAE decoder) calls :func:`attention`, which computes

    ``softmax(q @ k.T * scale + bias) @ v``

with one of two implementations that give the same numbers (up to rounding):

* **math**: two batched matmuls and a softmax in eager PyTorch. On a CPU it beats
  ``F.scaled_dot_product_attention`` (SDPA), whose CPU kernel is a flash-attention
  loop, for the short sequences of this project (HiViT's 49 visible units, 98-196
  token window groups, the 196-token MAE decoder), most of all in bf16.
* **SDPA**: ``F.scaled_dot_product_attention``. Everywhere on CUDA, and on a CPU where
  the math path is not faster (:data:`CPU_MATH_MAX_LEN`).

On CUDA, SDPA's dispatcher (PyTorch's ``sdp_utils.cpp``, ``select_sdp_backend``) tries
cuDNN attention (first on sm90/sm100 with cuDNN > 9.15), then flash attention, then the
memory-efficient kernel, then the math kernel. Flash attention takes no ``attn_mask``,
so with a bias (relative position bias, window or padding masks) the call goes to
cuDNN attention (fp16/bf16, head dim a multiple of 8) or to the memory-efficient
kernel, which takes an additive float bias in fp32, fp16 and bf16 (head dim a multiple
of 4 in fp32, 8 in half precision on sm80+, storage offsets aligned likewise) and
returns its gradient. Every attention here qualifies (head dims 32 and 64, q/k/v
strided views of one ``qkv`` projection), so no bias sends a CUDA step to the math
kernel. GPU timings are pending (no GPU was available to this project yet);
``tools/analysis_tools/benchmark_pretrain.py --device cuda`` records the kernel each
attention of a step uses.

The CPU crossover (:data:`CPU_MATH_MAX_LEN`) was measured with forward + backward
microbenchmarks on 2 threads of an AMD EPYC with AVX-512 BF16, the two paths timed
alternately on the same inputs, a shared and loaded machine (ratios within ~10% are
noise). SDPA time / math time, batch 8 (2 at 392 keys, 1 at 784), head dims 32-64;
"bias" covers a shared ``(heads, N, N)`` and a per-sample ``(B, heads, N, N)`` bias
gathered from a table, as HiViT and GreenSwin make them:

================  ==========  ==========  ==========  ==========  ==========
key length N          49          98         196         392         784
================  ==========  ==========  ==========  ==========  ==========
fp32, no bias        0.81        0.79      0.54-1.01      0.58        0.74
fp32, bias         1.04-1.06   1.08-1.11   0.95-1.29   0.86-1.05   0.76-1.06
bf16, no bias        7.1         4.0       1.6-1.9        1.8         1.1
bf16, bias         1.20-1.21   1.45-1.61   1.59-1.93   1.46-1.57   1.48-2.07
================  ==========  ==========  ==========  ==========  ==========

In bf16 with a bias the math path stayed about 2x faster up to 3136 keys; without one
the two were even from 1568 keys. The math path stores the ``(..., L, S)`` attention
probabilities for the backward pass, which bounds its length.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ['attention', 'use_math_path', 'CPU_MATH_MAX_LEN']

#: Longest key sequence for which a CPU runs the math path, by
#: ``(half precision, with bias)``; SDPA beyond it (see the module docstring).
#: fp32 without a bias: SDPA at every length.
CPU_MATH_MAX_LEN: Dict[Tuple[bool, bool], int] = {
    (False, False): 0,
    (False, True): 256,
    (True, False): 1024,
    (True, True): 4096,
}
_HALF = (torch.bfloat16, torch.float16)


def use_math_path(q: torch.Tensor, k: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    """Whether :func:`attention` runs the math path for these inputs.

    Decided from the device, the dtype of ``q``, the key length and whether a bias is
    given (static properties, so ``torch.compile`` guards on them rather than breaking
    the graph).

    Args:
        q (torch.Tensor): ``(..., L, d)`` queries.
        k (torch.Tensor): ``(..., S, d)`` keys.
        bias (torch.Tensor, optional): The additive bias, or None.

    Returns:
        bool: True on a CPU when ``S <= CPU_MATH_MAX_LEN[(half, bias is not None)]``;
        False on every other device.
    """
    if q.device.type != 'cpu':
        return False
    return k.shape[-2] <= CPU_MATH_MAX_LEN[(q.dtype in _HALF, bias is not None)]


def attention(q: torch.Tensor,
              k: torch.Tensor,
              v: torch.Tensor,
              bias: Optional[torch.Tensor] = None,
              dropout_p: float = 0.,
              scale: Optional[float] = None) -> torch.Tensor:
    """``softmax(q @ k.T * scale + bias) @ v``, dropout on the probabilities.

    The formula of ``F.scaled_dot_product_attention`` (Vaswani et al. 2017, Eq. 1, with
    an additive bias), computed by the math path or SDPA (:func:`use_math_path`).

    Args:
        q (torch.Tensor): ``(..., L, d)`` queries, e.g. ``(B, heads, L, d)``.
        k (torch.Tensor): ``(..., S, d)`` keys.
        v (torch.Tensor): ``(..., S, d_v)`` values.
        bias (torch.Tensor, optional): Float tensor broadcastable to ``(..., L, S)``,
            added to the scaled scores: relative position bias, ``-inf`` for keys a
            query must not see. Cast to ``q.dtype`` (bf16 under autocast). Every query
            must see at least one key: a fully masked row gives NaN on the math path
            (SDPA's CPU kernel gives zeros).
        dropout_p (float): Dropout probability on the attention probabilities; pass
            0 outside training. Defaults to 0.
        scale (float, optional): Defaults to ``d ** -0.5``.

    Returns:
        torch.Tensor: ``(..., L, d_v)`` in ``q``'s dtype.

    Raises:
        TypeError: ``bias`` is a boolean mask (pass an additive float mask).
    """
    if bias is not None:
        if bias.dtype == torch.bool:
            raise TypeError('attention() takes an additive float bias (0 / -inf), '
                            'not a boolean mask')
        bias = bias.to(q.dtype)
    if not use_math_path(q, k, bias):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    scale = q.shape[-1]**-0.5 if scale is None else scale
    attn = (q * scale) @ k.transpose(-2, -1)  # ..., L, S
    if bias is not None:
        attn = attn + bias
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v  # ..., L, d_v
