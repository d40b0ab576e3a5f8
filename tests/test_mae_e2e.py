# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""HiViT-MAE end to end: tools/train.py learns to reconstruct, visualize_mae draws it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hivit_mm.datasets import make_classification

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e  # runs the tools end to end


def test_mae_pretraining_loss_falls_and_reconstructions_are_drawn(tmp_path):
    data = tmp_path / 'cls'
    make_classification(data, num_train=256, num_val=8, img_size=64, seed=0)
    work = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='2', CUDA_VISIBLE_DEVICES='')
    config = 'tests/data/mae_tiny_hivit.py'
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', config, '--work-dir', str(work),
         '--cfg-options', f'train_dataloader.dataset.data_root={data}/'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    scalars = next(work.glob('*/vis_data/scalars.json'))
    losses = [json.loads(line)['loss'] for line in scalars.read_text().splitlines()
              if '"loss"' in line]
    assert len(losses) == 120
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert last < 0.8 * first, (first, last)

    checkpoint = (work / 'last_checkpoint').read_text().strip()
    out = tmp_path / 'pictures'
    proc = subprocess.run(
        [sys.executable, 'tools/visualize_mae.py', config, checkpoint,
         str(data / 'val'), '--out-dir', str(out), '--max-images', '2'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pngs = sorted(out.glob('*_mae.png'))
    assert len(pngs) == 2
    img = np.asarray(Image.open(pngs[0]))
    # four panels side by side, upscaled to at least 192 px
    assert img.shape[0] >= 192 and img.shape[1] > 4 * img.shape[0]
