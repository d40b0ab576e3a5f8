# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The demo chain, shortened (``--quick``: a handful of iterations per stage)."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e  # runs the tools end to end


def test_quick_demo_chain_writes_every_artifact(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='2', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', '--work-dir', str(tmp_path), '--quick'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [l for l in proc.stdout.splitlines() if l.startswith('[demo ')]
    assert len(lines) == 2 * 5  # a start and an end line per stage

    results = json.loads((tmp_path / 'results.json').read_text())
    stages = results['stages']
    assert list(stages) == ['mae', 'ft_mae', 'ft_scratch', 'det', 'seg']
    expected = {
        'mae': {'reconstruction loss (first log)', 'reconstruction loss (last log)'},
        'ft_mae': {'top-1 (%)'},
        'ft_scratch': {'top-1 (%)'},
        'det': {'bbox mAP', 'bbox mAP@50', 'segm mAP'},
        'seg': {'mIoU (%)', 'pixel acc. (%)'},
    }
    for name, stage in stages.items():
        assert set(stage['metrics']) == expected[name], name
        assert all(math.isfinite(v) for v in stage['metrics'].values()), name
        assert Path(stage['checkpoint']).is_file(), name
    # the chain hands checkpoints on: fine-tuning and detection start from MAE,
    # segmentation from the fine-tuned classifier
    for stage, source in (('ft_mae', 'mae'), ('det', 'mae'), ('seg', 'ft_mae')):
        log = (tmp_path / stage / 'demo.log').read_text()
        assert f'model.backbone.init_cfg.checkpoint={stages[source]["checkpoint"]}' in log
    assert 'model.backbone.init_cfg=None' in (tmp_path / 'ft_scratch' / 'demo.log').read_text()

    pictures = [Path(p) for p in results['pictures'].values()]
    assert {p.name for p in pictures} == {'mae_reconstructions.png', 'det.png',
                                          'seg.png', 'loss_curves.png'}
    assert all(p.stat().st_size > 1000 for p in pictures)
    table = (tmp_path / 'results.md').read_text()
    assert table.startswith('| stage | metric | value | wall time |')
    assert table.count('\n| ') == sum(len(m) for m in expected.values())  # a row a metric

    # resumable: a second run skips every stage
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', '--work-dir', str(tmp_path), '--quick'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('done earlier, skipped') == 5
