# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The speed benchmarks of ``tools/analysis_tools`` run in fp32 and bf16 (tiny models,
one timed step; subprocess runs are ``e2e``) and report what they promise. Timings are
never asserted."""
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
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools' / 'analysis_tools'
BACKBONE = TOOLS / 'benchmark_backbone.py'
PRETRAIN = TOOLS / 'benchmark_pretrain.py'
TIMEOUT = 900  # seconds per subprocess; the tiny runs take 20-200 s on 2 busy cores
DEVICES = [
    'cpu',
    pytest.param('cuda', marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device'))
]


def _run(script: Path, *args: str) -> str:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(REPO), env.get('PYTHONPATH')) if p)
    proc = subprocess.run([sys.executable, str(script), *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def _load(script: Path):
    sys.path.insert(0, str(TOOLS))  # the scripts import their _common.py
    try:
        spec = importlib.util.spec_from_file_location(script.stem, script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(TOOLS))


def _table_rows(out: str) -> List[List[str]]:
    """Cells of the markdown table rows printed by a benchmark (headers excluded)."""
    rows = [[c.strip() for c in ln.strip('|').split('|')] for ln in out.splitlines()
            if ln.startswith('| ')]
    return [r for r in rows if r[0] not in ('model', 'claim')]


def _check_timing(row: dict, iters: int) -> None:
    assert row['img_per_s'] > 0 and row['ms_median'] > 0 and row['ms_min'] > 0
    assert len(row['ms_all']) == iters and row['params_m'] > 0


@pytest.mark.e2e
@pytest.mark.parametrize('device', DEVICES)
def test_benchmark_backbone_both_dtypes(tmp_path, device):
    out_json = tmp_path / 'backbone.json'
    out = _run(BACKBONE, '--tiny', '--device', device, '--json', str(out_json))
    assert [r[:2] for r in _table_rows(out)] == [
        ['ours', 'fp32'], ['ours', 'bf16'], ['mmpretrain', 'fp32'],
        ['mmpretrain', 'bf16']]
    doc = json.loads(out_json.read_text())
    assert doc['arch'] == 'smoke' and doc['rpe'] is True
    assert doc['dtypes'] == ['fp32', 'bf16']
    assert doc['batch_size'] == 2 and doc['img_size'] == 64 and doc['iters'] == 1
    assert doc['env']['device'].startswith(device)
    for r in doc['results']:
        _check_timing(r, 1)
        assert r['out_shape'] == [2, 64, 4, 4]
    by = {(r['name'], r['dtype']): r for r in doc['results']}
    for dtype in ('fp32', 'bf16'):
        assert doc['ratio_ours_over_mmpretrain'][dtype] == pytest.approx(
            by['ours', dtype]['img_per_s'] / by['mmpretrain', dtype]['img_per_s'])
        assert f'ours / mmpretrain ({dtype}): speed x' in out


@pytest.mark.e2e
def test_benchmark_backbone_one_model_one_dtype(tmp_path):
    out_json = tmp_path / 'backbone.json'
    out = _run(BACKBONE, '--tiny', '--device', 'cpu', '--no-rpe', '--models', 'ours',
               '--dtype', 'bf16', '--clock', 'cpu', '--threads', '1', '--json',
               str(out_json))
    assert [r[:2] for r in _table_rows(out)] == [['ours', 'bf16']]
    doc = json.loads(out_json.read_text())
    assert doc['rpe'] is False and doc['ratio_ours_over_mmpretrain'] == {}


def _check_pretrain(doc: dict, names: List[str], iters: int) -> None:
    assert doc['benchmark'] == 'mim_pretrain_step' and doc['tiny'] is True
    assert doc['dtypes'] == ['fp32', 'bf16'] and doc['batch_size'] == 2
    assert [(r['name'], r['dtype']) for r in doc['results']] == [
        (n, d) for n in names for d in ('fp32', 'bf16')]
    assert set(doc['gemm_limit_gflops']) == {'fp32', 'bf16'}
    assert doc['adamw'] == 'fused'
    for r in doc['results']:
        _check_timing(r, iters)
        assert math.isfinite(r['loss']) and r['flops'] > 0
        assert r['gflop_per_s'] == pytest.approx(r['flops'] / r['ms_median'] / 1e6)
        assert r['gemm_limit_share'] == pytest.approx(
            r['gflop_per_s'] / doc['gemm_limit_gflops'][r['dtype']])
        if r['name'] == 'hivit-mae':
            assert r['speed_vs_ours'] == 1.
        if r['name'].startswith('hivit-mae') and r['dtype'] == 'bf16':
            assert r['attention_ops'] == {}  # bf16 on a CPU: our math path, no SDPA
        if r['name'].startswith('hivit-mae') and r['dtype'] == 'fp32':
            assert r['attention_ops']  # fp32, no bias: SDPA's CPU kernel


@pytest.mark.e2e
def test_benchmark_pretrain_both_dtypes(tmp_path):
    names = ['hivit-mae', 'hivit-mae-nofuse', 'mmpretrain-maehivit']
    out_json = tmp_path / 'pretrain.json'
    out = _run(PRETRAIN, '--tiny', '--device', 'cpu', '--models', *names, '--json',
               str(out_json))
    doc = json.loads(out_json.read_text())
    _check_pretrain(doc, names, 1)
    assert 'fp32 (GEMM limit' in out and 'bf16 (GEMM limit' in out
    titles = [r['model'] for r in doc['results']]
    assert [r[0] for r in _table_rows(out)][:2 * len(names)] == titles[::2] + titles[1::2]
    claims = {(c['claim'], c['dtype']) for c in doc['claims']}  # those of models run
    assert claims == {
        ('HiViT-MAE-B vs mmpretrain MAEHiViT-B [2,2,20], equal work', 'fp32'),
        ('HiViT-MAE-B vs mmpretrain MAEHiViT-B [2,2,20], equal work', 'bf16'),
        ('shipped recipe (fused stem) vs mmpretrain MAEHiViT-B [2,2,20]', 'bf16')}
    by = {(r['name'], r['dtype']): r for r in doc['results']}
    claim = next(c for c in doc['claims']
                 if c['dtype'] == 'bf16' and 'equal' in c['claim'])
    assert claim['value'] == pytest.approx(by['hivit-mae-nofuse', 'bf16']['img_per_s'] /
                                           by['mmpretrain-maehivit', 'bf16']['img_per_s'])
    assert claim['met'] == (claim['value'] >= 1.3)


@pytest.mark.e2e
@pytest.mark.parametrize('device', DEVICES)
def test_benchmark_pretrain_all_models_memory_of_two(tmp_path, device):
    bench = _load(PRETRAIN)
    out_json = tmp_path / 'pretrain.json'
    memory = ['greenmim-swin', 'mmpretrain-simmim-swin']  # those of the memory claim
    _run(PRETRAIN, '--tiny', '--device', device, '--memory', *memory, '--json',
         str(out_json))
    doc = json.loads(out_json.read_text())
    _check_pretrain(doc, list(bench.SPECS), 1)
    for r in doc['results']:
        for key in ('peak_mem_mib', 'step_mem_mib'):
            assert (r[key] is not None) == (r['name'] in memory)
        if r['name'] in memory:  # a step's own peak is part of the whole run's
            assert 0 < r['step_mem_mib'] <= r['peak_mem_mib']
    assert len(doc['claims']) == sum(len(c[4]) for c in bench.CLAIMS)  # all evaluated


def test_update_readme_rewrites_only_the_speed_section(tmp_path):
    bench = _load(PRETRAIN)
    readme = tmp_path / 'README.md'
    readme.write_text('# title\n<!-- speed table: begin -->\nold figures\n'
                      '<!-- speed table: end -->\n## next\n')
    row = dict(name='hivit-mae', model='ours', dtype='bf16', params_m=87., img_per_s=9.,
               ms_median=888., flops=2e12, gflop_per_s=450., gemm_limit_share=.5,
               peak_mem_mib=None, speed_vs_ours=1., attention_ops={})
    doc = dict(env=dict(device='cpu', cpu='x86_64', threads=2, torch='2.x'),
               batch_size=8, img_size=224, iters=4, warmup=1, dtypes=['bf16'],
               gemm_limit_gflops=dict(bf16=900.), results=[row], claims=[],
               note='A quiet machine.')
    bench.update_readme(doc, ['--device', 'cpu', '--note', 'A quiet machine.'],
                        path=str(readme))
    text = readme.read_text()
    assert text.startswith('# title\n<!-- speed table: begin (written by benchmark_')
    assert text.endswith('<!-- speed table: end -->\n## next\n')
    assert 'old figures' not in text and 'A quiet machine.' in text
    assert "--note 'A quiet machine.'" in text  # the command, quoted
    assert '| ours  | 87.0       | 9.00  | 888' in text
    bench.update_readme(doc, [], path=str(readme))  # the markers survive a rewrite
    text = readme.read_text()
    assert text.count('speed table: begin') == text.count('speed table: end') == 1
    readme.write_text('# no markers\n')
    with pytest.raises(RuntimeError, match='no speed section markers'):
        bench.update_readme(doc, [], path=str(readme))


def test_maehivit_b24_is_mmpretrain_base():
    """Full size: mmpretrain's own ``arch='base'`` ([2, 2, 24]), a fresh out_indices."""
    from mmpretrain.registry import MODELS
    bench = _load(PRETRAIN)
    make_cfg = bench.SPECS['mmpretrain-maehivit-b24'].make_cfg
    cfg, again = make_cfg(False), make_cfg(False)
    assert cfg.backbone.type == 'MAEHiViT' and cfg.backbone.arch == 'base'
    assert cfg.backbone.out_indices == [23]
    assert cfg.backbone.out_indices is not again.backbone.out_indices
    same_depth = bench.SPECS['mmpretrain-maehivit'].make_cfg(False).backbone
    assert same_depth.arch == dict(embed_dims=512, depths=[2, 2, 20], num_heads=8)
    assert same_depth.out_indices == [19]
    backbone = MODELS.build(cfg.backbone)
    assert list(backbone.depths) == [2, 2, 24] and backbone.out_indices == [23]
    assert 78 < sum(p.numel() for p in backbone.parameters()) / 1e6 < 80


def test_equal_work_rows_differ_only_in_stem_fusion():
    bench = _load(PRETRAIN)
    fused, plain = (bench.SPECS[n].make_cfg(False)
                    for n in ('hivit-mae', 'hivit-mae-nofuse'))
    assert fused.backbone.fuse_stem_features and not plain.backbone.fuse_stem_features
    assert (fused.neck.embed_dim, plain.neck.embed_dim) == (7 * 512, 512)
    fused.backbone.fuse_stem_features, fused.neck.embed_dim = False, 512
    assert fused == plain


def test_common_helpers():
    common = _load(TOOLS / '_common.py')
    stats = common.summarize([30., 10., 20.], batch=4)
    assert stats == dict(img_per_s=200., ms_median=20., ms_min=10.,
                         ms_all=[30., 10., 20.])
    assert common.markdown_table(['a', 'bb'], [['xyz', 1]]).splitlines() == [
        '| a   | bb |', '|-----|----|', '| xyz | 1  |']
    assert common.fmt(None, '.0f') == 'n/a' and common.fmt(2.5, '.2f') == '2.50'
    a, b = torch.randn(3, 5), torch.randn(5, 7)
    assert common.count_flops(lambda: a @ b) == 2 * 3 * 5 * 7
    q = torch.randn(2, 3, 10, 8)  # SDPA's CPU kernel, counted as torch counts the others
    assert common.count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == \
        4 * 2 * 3 * 10 * 10 * 8
    assert common.gemm_limit_gflops(torch.device('cpu'), 'bf16', reps=1) > 0
    calls = []
    times = common.interleaved(['a', 'b'], lambda key, data: calls.append((key, data)),
                               warmup=1, iters=2, device=torch.device('cpu'),
                               prepare=str.upper)
    assert calls == [('a', 'A'), ('b', 'B')] * 3  # one warm-up round, two timed
    assert list(times) == ['a', 'b'] and all(len(t) == 2 for t in times.values())
    assert all(t >= 0 for ts in times.values() for t in ts)
    busy = common.timed(lambda: sum(range(10**6)), torch.device('cpu'), clock='cpu')
    assert busy > 0 and common.timed(lambda: None, torch.device('cpu'), 'cpu') < busy
    with common.autocast(torch.device('cpu'), 'bf16'):
        assert (a @ b).dtype == torch.bfloat16
    with common.autocast(torch.device('cpu'), 'fp32'):
        assert (a @ b).dtype == torch.float32


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
