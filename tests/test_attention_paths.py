# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Every attention of the models goes through ``hivit_mm.models.attention``: forcing
the math path leaves no SDPA op in a training step, and both paths give equal losses
and gradients (HiViT with relative bias and windows, HiViT-MAE with its decoder,
GreenMIM in both attention modes)."""
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from conftest import windowed_hivit
from hivit_mm.models import attention as attn_mod

REPO_DATA = 'tests/data/'


def _force(monkeypatch, path: str) -> None:
    for key in attn_mod.CPU_MATH_MAX_LEN:
        monkeypatch.setitem(attn_mod.CPU_MATH_MAX_LEN, key,
                            10**9 if path == 'math' else -1)


def _hivit_dense():
    model = windowed_hivit()
    with torch.no_grad():  # non-zero relative tables
        for name, p in model.named_parameters():
            if 'relative_position_bias_table' in name:
                p.normal_(std=0.5)
    images = torch.randn(2, 3, 96, 96)  # 6x6 main grid, windows of 4: padding masked
    return model, lambda m: sum(o.float().square().mean() for o in m(images))


def _mim(config: str, img: int, **backbone):
    cfg = Config.fromfile(REPO_DATA + config).model
    cfg.backbone.update(backbone)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    inputs = torch.randint(0, 256, (2, 3, img, img), dtype=torch.uint8)

    def loss(m):
        torch.manual_seed(1)  # the same masks on both paths
        data = m.data_preprocessor(dict(inputs=inputs,
                                        data_samples=[DataSample() for _ in range(2)]),
                                   True)
        return m(data['inputs'], data['data_samples'], mode='loss')['loss']

    return model, loss


MODELS_UNDER_TEST = {
    'hivit-rpe-windows': _hivit_dense,
    'hivit-mae': lambda: _mim('mae_tiny_hivit.py', 64),
    'greenmim-grouping': lambda: _mim('greenmim_tiny.py', 128, attn_mode='grouping'),
    'greenmim-masking': lambda: _mim('greenmim_tiny.py', 128, attn_mode='masking'),
}


@pytest.mark.parametrize('name', list(MODELS_UNDER_TEST))
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_every_attention_uses_the_function(monkeypatch, name, dtype):
    results = {}
    for path in ('math', 'sdpa'):
        _force(monkeypatch, path)
        model, loss_fn = MODELS_UNDER_TEST[name]()
        model.train()
        with torch.profiler.profile() as prof:
            with torch.autocast('cpu', dtype=torch.bfloat16,
                                enabled=dtype != torch.float32):
                loss = loss_fn(model)
            loss.backward()
        sdpa_ops = [e.key for e in prof.key_averages() if 'scaled_dot_product' in e.key]
        assert bool(sdpa_ops) == (path == 'sdpa'), sdpa_ops
        results[path] = (loss.detach(), [p.grad for p in model.parameters()
                                         if p.grad is not None])
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=0.05,
                                                                         rtol=0.05)
    torch.testing.assert_close(results['math'][0], results['sdpa'][0], **tol)
    assert len(results['math'][1]) == len(results['sdpa'][1]) > 0
    if dtype == torch.float32:  # bf16 rounding differs between the kernels
        for a, b in zip(results['math'][1], results['sdpa'][1]):
            torch.testing.assert_close(a, b, **tol)
