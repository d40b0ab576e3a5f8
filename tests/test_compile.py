# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""``torch.compile`` (mmengine's ``compile`` config key): HiViT, the masked HiViT-MAE
and GreenSwin compile and give the outputs and gradients of eager mode.

The unit tests trace with the ``aot_eager`` backend (Dynamo and AOTAutograd, eager
kernels: fast, and exact, since the same kernels and random draws run); the e2e test
trains through ``tools/train.py --cfg-options compile=True`` with the default Inductor
backend."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch._dynamo
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from conftest import windowed_hivit
from hivit_mm.datasets import make_classification

REPO = Path(__file__).resolve().parents[1]


def _mim(config: str, img: int, **backbone):
    cfg = Config.fromfile(str(REPO / 'tests/data' / config)).model
    cfg.backbone.update(backbone)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    inputs = torch.randint(0, 256, (2, 3, img, img), dtype=torch.uint8)
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=[DataSample() for _ in range(2)]), True)

    def loss(m, seed):
        torch.manual_seed(seed)  # the masks
        return m(data['inputs'], data['data_samples'], mode='loss')['loss']

    return model, loss


def _check_equal(model, loss_fn, steps=3, **compile_kwargs):
    """Eager and compiled losses and gradients agree over a few masks; returns the
    Dynamo counters of the compiled steps."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = torch.compile(model, backend='aot_eager', **compile_kwargs)
    for seed in range(steps):
        grads = []
        for m in (model, compiled):
            model.zero_grad()
            loss = loss_fn(m, seed)
            loss.backward()
            grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()
                                          if p.grad is not None]))
        torch.testing.assert_close(grads[0][0], grads[1][0])
        for a, b in zip(grads[0][1], grads[1][1]):
            torch.testing.assert_close(a, b)
    return torch._dynamo.utils.counters


def test_hivit_with_bias_and_windows_compiles_as_one_graph():
    model = windowed_hivit()
    images = torch.randn(2, 3, 96, 96)
    counters = _check_equal(
        model, lambda m, seed: sum(o.square().mean() for o in m(images)), steps=1,
        fullgraph=True)
    assert counters['stats']['unique_graphs'] == 1


def test_masked_hivit_mae_compiles_as_one_graph():
    model, loss = _mim('mae_tiny_hivit.py', 64)
    counters = _check_equal(model, loss, fullgraph=True)  # masking included
    assert counters['stats']['unique_graphs'] == 1  # new masks, no recompilation


@pytest.mark.parametrize('mode', ['grouping', 'masking'])
def test_greenswin_plans_on_the_host_and_compiles_the_encoder(mode):
    model, loss = _mim('greenmim_tiny.py', 128, attn_mode=mode)
    counters = _check_equal(model, loss)
    # the host part (masking, grouping plan) is the one graph break, never traced
    assert counters['graph_break'] and all(
        'torch.compiler.disable' in k for k in counters['graph_break'])
    assert counters['stats']['unique_graphs'] <= 4  # masks change, graphs stay


@pytest.mark.e2e
def test_train_with_compile_and_bf16(tmp_path):
    """``tools/train.py --amp --cfg-options compile=True``: Inductor-compiled bf16 steps
    on the CPU train (finite, falling loss)."""
    data = tmp_path / 'cls'
    make_classification(data, num_train=64, num_val=8, img_size=64, seed=0)
    work = tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', 'tests/data/mae_tiny_hivit.py', '--amp',
         '--work-dir', str(work), '--cfg-options',
         f'train_dataloader.dataset.data_root={data}/', 'train_cfg.max_iters=20',
         'compile=True'], cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'hivit_mm.BF16OptimWrapper' in log and 'compiled' in log
    scalars = next(work.glob('*/vis_data/scalars.json'))
    losses = [json.loads(ln)['loss'] for ln in scalars.read_text().splitlines()
              if '"loss"' in ln]
    assert len(losses) == 20 and all(map(lambda x: x == x, losses))
    assert sum(losses[-5:]) < sum(losses[:5])
