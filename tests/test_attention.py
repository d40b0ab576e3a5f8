# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""``hivit_mm.models.attention``: both paths equal the plain formula, values and
gradients, with and without biases and masks, in fp32 and bf16; the path choice."""
import pytest
import torch

from hivit_mm.models import attention as attn_mod
from hivit_mm.models.attention import attention, use_math_path

PATHS = {'math': 10**9, 'sdpa': -1}  # CPU_MATH_MAX_LEN value forcing each path
TOL = {torch.float32: dict(atol=2e-5, rtol=1e-4),
       torch.bfloat16: dict(atol=3e-2, rtol=3e-2)}


def reference(q, k, v, bias=None, scale=None):
    """The formula in float64: softmax(q k^T * scale + bias) v."""
    q, k, v = q.double(), k.double(), v.double()
    scale = q.shape[-1]**-0.5 if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if bias is not None:
        scores = scores + bias.to(q.dtype).double()  # rounded as the paths round it
    return scores.softmax(-1) @ v


def inputs(kind, dtype, B=2, heads=3, N=49, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, heads, N, d, generator=g).to(dtype) for _ in range(3))
    bias = None
    if kind in ('shared', 'sample'):  # a relative-position-like bias
        shape = (heads, N, N) if kind == 'shared' else (B, heads, N, N)
        bias = torch.randn(shape, generator=g)
    if kind in ('key_mask', 'sample'):  # -inf on the last keys of sample 0 (padding)
        mask = torch.zeros(B, 1, 1, N)
        mask[0, ..., N - 5:] = float('-inf')
        bias = mask if bias is None else bias + mask
    return q, k, v, bias


@pytest.fixture
def force_path(monkeypatch):

    def force(path):
        for key in attn_mod.CPU_MATH_MAX_LEN:
            monkeypatch.setitem(attn_mod.CPU_MATH_MAX_LEN, key, PATHS[path])

    return force


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('kind', ['none', 'shared', 'key_mask', 'sample'])
@pytest.mark.parametrize('path', ['math', 'sdpa'])
def test_paths_equal_the_formula(force_path, path, kind, dtype):
    force_path(path)
    q, k, v, bias = inputs(kind, dtype)
    assert use_math_path(q, k, bias) == (path == 'math')
    out = attention(q, k, v, bias)
    assert out.dtype == dtype and out.shape == q.shape
    torch.testing.assert_close(out.double(), reference(q, k, v, bias), **TOL[dtype])


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_paths_have_equal_gradients(force_path, dtype):
    grads = {}
    for path in PATHS:
        force_path(path)
        q, k, v, bias = (t.float().requires_grad_() for t in inputs('sample', dtype))
        out = attention(q.to(dtype), k.to(dtype), v.to(dtype), bias, scale=0.3)
        (out.float() * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        grads[path] = [t.grad for t in (q, k, v, bias)]
    for a, b in zip(grads['math'], grads['sdpa']):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, **TOL[dtype])


def test_scale_and_broadcast_leading_dims(force_path):
    q, k, v, _ = inputs('none', torch.float32)
    bias = torch.randn(49, 49)  # broadcast over batch and heads
    for path in PATHS:
        force_path(path)
        torch.testing.assert_close(
            attention(q, k, v, bias, scale=0.1).double(),
            reference(q, k, v, bias, scale=0.1), **TOL[torch.float32])


@pytest.mark.parametrize('path', ['math', 'sdpa'])
def test_dropout_all_drops_everything(force_path, path):
    force_path(path)
    q, k, v, bias = inputs('shared', torch.float32)
    assert torch.equal(attention(q, k, v, bias, dropout_p=1.), torch.zeros_like(q))


def test_boolean_mask_is_refused():
    q, k, v, _ = inputs('none', torch.float32)
    with pytest.raises(TypeError, match='additive float bias'):
        attention(q, k, v, torch.ones(49, 49, dtype=torch.bool))


@pytest.mark.parametrize('device, dtype, n, with_bias, math', [
    ('cpu', torch.float32, 49, False, False),  # SDPA's CPU kernel is faster in fp32
    ('cpu', torch.float32, 49, True, True),
    ('cpu', torch.float32, 392, True, False),
    ('cpu', torch.bfloat16, 49, False, True),
    ('cpu', torch.bfloat16, 196, True, True),
    ('cpu', torch.bfloat16, 3136, False, False),
    ('cpu', torch.bfloat16, 3136, True, True),
    ('meta', torch.bfloat16, 49, True, False),  # any other device: SDPA
    ('meta', torch.float32, 49, False, False),
])
def test_path_choice(device, dtype, n, with_bias, math):
    q = torch.empty(1, 1, n, 8, dtype=dtype, device=device)
    bias = torch.empty(n, n, device=device) if with_bias else None
    assert use_math_path(q, q, bias) is math
