# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Smoke tests of the speed benchmarks in ``tools/analysis_tools``.

Both scripts run as subprocesses in ``--tiny`` mode (tiny archs, 64-px images, one
timed iteration). Only the structure of the output is checked: the table rows and the
JSON fields. Timings are never asserted. The shared helpers of
``hivit_mm.utils.benchmark`` are tested directly.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools' / 'analysis_tools'
BACKBONE = TOOLS / 'benchmark_backbone.py'
PRETRAIN = TOOLS / 'benchmark_pretrain.py'
TIMEOUT = 600  # seconds per subprocess; a tiny run takes ~20 s on 2 busy cores
PRETRAIN_MODELS = [
    'hivit-mae', 'hivit-mae-nofuse', 'mmpretrain-maehivit', 'mmpretrain-maehivit-b24',
    'mmpretrain-mae-vit', 'mmpretrain-simmim-swin', 'greenmim-swin'
]
OPTIONAL = {'greenmim-swin'}
DEVICES = [
    'cpu',
    pytest.param('cuda', marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device'))
]


def _run(script: Path, *args: str) -> str:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(REPO), env.get('PYTHONPATH')) if p)
    proc = subprocess.run([sys.executable, str(script), *args],
                          cwd=REPO,
                          env=env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def _table_rows(out: str) -> List[List[str]]:
    """Cells of the markdown table rows printed by a benchmark (header excluded)."""
    lines = [ln for ln in out.splitlines() if ln.startswith('| ')]
    assert lines, out
    return [[c.strip() for c in ln.strip('|').split('|')] for ln in lines[1:]]


def _load(script: Path):
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_timing_fields(row: dict, iters: int) -> None:
    assert row['img_per_s'] > 0
    assert row['ms_median'] > 0 and row['ms_mean'] > 0 and row['ms_min'] > 0
    assert len(row['ms_all']) == iters
    assert row['params_m'] > 0


@pytest.mark.e2e
@pytest.mark.parametrize('device', DEVICES)
def test_benchmark_backbone_tiny(tmp_path, device):
    out_json = tmp_path / 'backbone.json'
    out = _run(BACKBONE, '--tiny', '--device', device, '--json', str(out_json))
    rows = _table_rows(out)
    assert [r[0] for r in rows] == ['ours', 'mmpretrain']
    assert len(rows[0]) == 7  # model, params, img/s, median, mean, min, memory
    assert 'ours / mmpretrain: speed x' in out

    doc = json.loads(out_json.read_text())
    assert doc['benchmark'] == 'backbone_forward_backward'
    assert doc['arch'] == 'smoke' and doc['rpe'] is True
    assert doc['batch_size'] == 2 and doc['img_size'] == 64 and doc['iters'] == 1
    assert doc['dtype'] == ('bf16-autocast' if device == 'cuda' else 'fp32')
    assert doc['env']['device'].startswith(device)
    if device == 'cpu':
        assert doc['env']['threads'] == 2
    res = {r['name']: r for r in doc['results']}
    assert set(res) == {'ours', 'mmpretrain'}
    for r in res.values():
        _check_timing_fields(r, doc['iters'])
        assert (r['peak_mem_mib'] is None) == (device == 'cpu')
    # equal work: same architecture, same output map (B, C, H/16, W/16)
    assert res['ours']['params_m'] == res['mmpretrain']['params_m']
    assert res['ours']['out_shape'] == res['mmpretrain']['out_shape'] == [2, 64, 4, 4]
    assert doc['ratio_ours_over_mmpretrain']['speed'] == pytest.approx(
        res['ours']['img_per_s'] / res['mmpretrain']['img_per_s'])


@pytest.mark.e2e
def test_benchmark_backbone_subset_no_rpe(tmp_path):
    out_json = tmp_path / 'backbone.json'
    out = _run(BACKBONE, '--tiny', '--device', 'cpu', '--no-rpe', '--models', 'ours',
               '--json', str(out_json))
    assert [r[0] for r in _table_rows(out)] == ['ours']
    doc = json.loads(out_json.read_text())
    assert doc['rpe'] is False and doc['ratio_ours_over_mmpretrain'] is None


@pytest.mark.e2e
def test_benchmark_backbone_interleaved(tmp_path):
    out_json = tmp_path / 'backbone.json'
    out = _run(BACKBONE, '--tiny', '--device', 'cpu', '--interleave', '--iters', '2',
               '--json', str(out_json))
    assert [r[0] for r in _table_rows(out)] == ['ours', 'mmpretrain']
    doc = json.loads(out_json.read_text())
    assert doc['interleaved'] is True and doc['iters'] == 2
    for r in doc['results']:
        _check_timing_fields(r, 2)
        assert r['peak_mem_mib'] is None


def _check_pretrain_doc(doc: dict, names: List[str], device: str) -> None:
    assert doc['benchmark'] == 'mim_pretrain_step'
    assert doc['tiny'] is True and doc['img_size'] == 64 and doc['batch_size'] == 2
    assert doc['dtype'] == ('bf16-autocast' if device == 'cuda' else 'fp32')
    got = [r['name'] for r in doc['results']]
    skipped = {s['name']: s['reason'] for s in doc['skipped']}
    for name in names:  # each model ran, or is optional and was skipped with a reason
        assert (name in got) != (name in skipped), (name, got, skipped)
        assert name in got or (name in OPTIONAL and skipped[name])
    assert doc['reference'] == ('hivit-mae' if 'hivit-mae' in got else got[0])
    for r in doc['results']:
        _check_timing_fields(r, doc['iters'])
        assert math.isfinite(r['loss'])
        assert r['peak_mem_mib'] is None or r['peak_mem_mib'] >= 0
        assert r['speed_ratio_vs_ours'] > 0
        if r['name'] == doc['reference']:
            assert r['speed_ratio_vs_ours'] == 1.0
        if r['name'] == 'greenmim-swin' and 'timings_ms_per_step' in r:
            assert all(v >= 0 for v in r['timings_ms_per_step'].values())


@pytest.mark.e2e
@pytest.mark.parametrize('device', DEVICES)
def test_benchmark_pretrain_tiny(tmp_path, device):
    out_json = tmp_path / 'pretrain.json'
    out = _run(PRETRAIN, '--tiny', '--device', device, '--json', str(out_json))
    doc = json.loads(out_json.read_text())
    _check_pretrain_doc(doc, PRETRAIN_MODELS, device)
    rows = _table_rows(out)
    assert [r[0] for r in rows] == [r['name'] for r in doc['results']]
    assert all(len(r) == 9 for r in rows)
    assert rows[0][0] == 'hivit-mae' and rows[0][7] == '1.00'  # ours = 1.00
    # mmpretrain's MAEHiViT-B as shipped ([2, 2, 24]) runs next to the [2, 2, 20] one
    assert [r[0] for r in rows][2:4] == [
        'mmpretrain-maehivit', 'mmpretrain-maehivit-b24'
    ]
    b24 = next(r for r in doc['results'] if r['name'] == 'mmpretrain-maehivit-b24')
    assert b24['model'] == 'mmpretrain MAEHiViT-B as shipped ([2,2,24])'
    for s in doc['skipped']:
        assert f'skipped {s["name"]}' in out
    if device == 'cuda':
        assert all(r['peak_mem_mib'] > 0 for r in doc['results'])


@pytest.mark.e2e
def test_benchmark_pretrain_isolated_subset(tmp_path):
    out_json = tmp_path / 'pretrain.json'
    names = ['mmpretrain-simmim-swin']
    out = _run(PRETRAIN, '--tiny', '--device', 'cpu', '--isolate', '--models', *names,
               '--json', str(out_json))
    doc = json.loads(out_json.read_text())
    assert doc['isolated'] is True
    _check_pretrain_doc(doc, names, 'cpu')
    assert [r[0] for r in _table_rows(out)] == names


@pytest.mark.e2e
def test_benchmark_pretrain_interleaved_subset(tmp_path):
    out_json = tmp_path / 'pretrain.json'
    names = ['mmpretrain-mae-vit', 'hivit-mae']  # ours is the reference wherever listed
    out = _run(PRETRAIN, '--tiny', '--device', 'cpu', '--interleave', '--models',
               *names, '--json', str(out_json))
    doc = json.loads(out_json.read_text())
    assert doc['interleaved'] is True and doc['reference'] == 'hivit-mae'
    assert [r['name'] for r in doc['results']] == names
    assert all(r['peak_mem_mib'] is None for r in doc['results'])
    assert [r[0] for r in _table_rows(out)] == names
    ours = next(r for r in doc['results'] if r['name'] == 'hivit-mae')
    assert ours['speed_ratio_vs_ours'] == 1.0


def test_maehivit_b24_is_mmpretrain_base():
    """Full size: mmpretrain's own ``arch='base'`` ([2, 2, 24]), a fresh out_indices."""
    from mmpretrain.registry import MODELS
    bench = _load(PRETRAIN)
    make_cfg = bench.SPECS['mmpretrain-maehivit-b24'].make_cfg
    cfg, again = make_cfg(False), make_cfg(False)
    assert cfg.backbone.type == 'MAEHiViT' and cfg.backbone.arch == 'base'
    assert cfg.backbone.out_indices == [23]
    assert cfg.backbone.out_indices is not again.backbone.out_indices
    assert cfg.neck.embed_dim == 512
    ours_size = bench.SPECS['mmpretrain-maehivit'].make_cfg(False).backbone
    assert ours_size.arch == dict(embed_dims=512, depths=[2, 2, 20], num_heads=8)
    assert ours_size.out_indices == [19]
    backbone = MODELS.build(cfg.backbone)
    assert list(backbone.depths) == [2, 2, 24] and backbone.out_indices == [23]
    params_m = sum(p.numel() for p in backbone.parameters()) / 1e6
    assert 78 < params_m < 80


def test_shared_helpers():
    from hivit_mm.utils import benchmark as bm
    cpu = torch.device('cpu')
    stats = bm.summarize([30., 10., 20.], batch=4)
    assert list(stats) == ['img_per_s', 'ms_median', 'ms_mean', 'ms_min', 'ms_all']
    assert stats['img_per_s'] == pytest.approx(200.)  # 4 images in 20 ms
    assert (stats['ms_median'], stats['ms_mean'], stats['ms_min']) == (20., 20., 10.)
    assert stats['ms_all'] == [30., 10., 20.]
    calls = []
    times = bm.time_steps(lambda: calls.append('step'), 2, 3, cpu,
                          before_timed=lambda: calls.append('reset'))
    assert calls == ['step'] * 2 + ['reset'] + ['step'] * 3
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert bm.timed_call(lambda: 7, cpu)[0] == 7
    assert bm.peak_memory_mib(cpu) is None and bm.reset_peak_memory(cpu) == 0
    assert bm.format_or_na(None, '.0f') == 'n/a'
    assert bm.format_or_na(2.5, '.2f') == '2.50'
    assert bm.markdown_table(['a', 'bb'], [['xyz', 1]]).splitlines() == [
        '| a   | bb |', '|-----|----|', '| xyz | 1  |']
    assert bm.environment(cpu)['device'] == 'cpu'


def test_simmim_masks_match_mmpretrain_generator():
    from mmpretrain.datasets.transforms import SimMIMMaskGenerator
    bench = _load(PRETRAIN)
    masks = bench.simmim_masks(3, 224, **bench.SIMMIM_MASK)
    ref = SimMIMMaskGenerator(input_size=224, **bench.SIMMIM_MASK).transform({})['mask']
    assert masks.shape == (3, ) + ref.shape == (3, 56, 56)
    assert masks.dtype == torch.from_numpy(ref).dtype
    for m in masks.numpy():
        assert m.sum() == ref.sum()  # same number of masked 32-px units
        units = m[::8, ::8]  # one value per unit, constant inside it
        assert np.array_equal(np.kron(units, np.ones((8, 8), dtype=m.dtype)), m)
