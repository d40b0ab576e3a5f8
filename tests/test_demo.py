# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The demo chain, shortened (``--quick``: a handful of iterations per stage), on the
real Fashion-MNIST files (fetched by ``tools/misc/get_fashion_mnist.sh``) and the
built-in shapes data; seeding; the data script."""
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'tools' / 'misc' / 'get_fashion_mnist.sh'
FMNIST_ROOT = ROOT / 'data' / 'fashion_mnist'  # the demo's default
PKG_DIR = Path('/usr/share/datasets/fashion-mnist')  # package dataset-fashion-mnist
FT_10PCT = (ROOT / 'configs' / 'demo' /
            'hivit-demo-p16_1xb128-coslr-6e_fashion-mnist-10pct-64px.py')


def _env(**extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='2', CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


@pytest.mark.e2e  # runs the whole demo, briefly
def test_quick_demo_chain_writes_every_artifact(tmp_path):
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', '--work-dir', str(tmp_path), '--quick'],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [s for s in proc.stdout.splitlines() if s.startswith('[demo ')]
    assert len(lines) == 2 * 7  # a start and an end line per stage

    results = json.loads((tmp_path / 'results.json').read_text())
    stages = results['stages']
    assert list(stages) == ['mae', 'ft_mae', 'ft_scratch', 'linear', 'ft_full', 'det',
                            'seg']
    top1 = {'top-1 (%)'}
    expected = {
        'mae': {'reconstruction loss (first log)', 'reconstruction loss (last log)'},
        'ft_mae': top1, 'ft_scratch': top1, 'linear': top1, 'ft_full': top1,
        'det': {'bbox mAP', 'bbox mAP@50', 'segm mAP'},
        'seg': {'mIoU (%)', 'pixel acc. (%)'},
    }
    for name, stage in stages.items():
        assert set(stage['metrics']) == expected[name], name
        assert all(math.isfinite(v) for v in stage['metrics'].values()), name
        assert Path(stage['checkpoint']).is_file(), name
    # the chain hands checkpoints on: from MAE, except the scratch run and UperNet (from
    # the 10%-labels classifier)
    for stage, source in (('ft_mae', 'mae'), ('linear', 'mae'), ('ft_full', 'mae'),
                          ('det', 'mae'), ('seg', 'ft_mae')):
        log = (tmp_path / stage / 'demo.log').read_text()
        assert f'model.backbone.init_cfg.checkpoint={stages[source]["checkpoint"]}' in log
    scratch_log = (tmp_path / 'ft_scratch' / 'demo.log').read_text()
    assert 'model.backbone.init_cfg=None' in scratch_log
    # bf16 autocast (tools/train.py --amp) where the CPU has bf16 instructions, except
    # for Mask R-CNN (no bf16 RoIAlign on a CPU); the table says which
    from hivit_mm.engine.amp import cpu_supports_bf16
    for name, stage in stages.items():
        bf16 = cpu_supports_bf16() and name != 'det'
        assert stage['precision'] == ('bf16' if bf16 else 'fp32'), name
        train_cmd = next(line for line in (tmp_path / name / 'demo.log').open()
                         if line.startswith('$ ') and 'tools/train.py' in line)
        assert (' --amp ' in train_cmd) == bf16, name

    # the classifiers are tested on the first 200 Fashion-MNIST test images (--quick),
    # all ten classes among them; the demo's top-1 is the one of the dumped predictions
    for name in ('ft_mae', 'ft_scratch', 'linear', 'ft_full'):
        with open(stages[name]['predictions'], 'rb') as f:
            preds = pickle.load(f)
        assert len(preds) == 200, name
        assert {int(p['gt_label']) for p in preds} == set(range(10)), name
        correct = sum(int(p['pred_label']) == int(p['gt_label']) for p in preds)
        assert stages[name]['metrics']['top-1 (%)'] == pytest.approx(100 * correct / 200)
    # the linear probe changed only the classifier: its backbone is the MAE encoder's
    import torch
    mae = torch.load(stages['mae']['checkpoint'], map_location='cpu',
                     weights_only=False)['state_dict']
    probe = torch.load(stages['linear']['checkpoint'], map_location='cpu',
                       weights_only=False)['state_dict']
    for key in ('patch_embed.proj.weight', 'blocks.0.attn.qkv.weight', 'pos_embed'):
        assert torch.equal(probe[f'backbone.{key}'], mae[f'backbone.{key}']), key

    pictures = [Path(p) for p in results['pictures'].values()]
    assert {p.name for p in pictures} == {
        'mae_reconstructions.png', 'confusion_matrix.png', 'det.png', 'seg.png',
        'loss_curves.png'}
    assert all(p.stat().st_size > 1000 for p in pictures)
    # reconstructions of one held-out test image per class
    recon = sorted(p.name for p in (tmp_path / 'pictures' / 'mae').iterdir())
    assert len(recon) == 10 and all('-test' in n for n in recon)
    assert [r['top1'] for r in results['published']][2] == 89.7  # SVC, Xiao et al.
    table = (tmp_path / 'results.md').read_text()
    assert table.startswith('Fashion-MNIST, top-1 on the 10,000 test images')
    assert 'SVC, RBF kernel, C=10' in table
    assert '| **ours: demo HiViT, MAE' in table and '| 0.90M |' in table
    stage_rows = table.split('| stage | metric | value | precision | wall time |')[1]
    # a row a metric
    assert stage_rows.count('\n| ') == sum(len(m) for m in expected.values())

    # resumable: a second run skips every stage; --update-readme writes the report and
    # the pictures between the markers of a README (here a copy) and beside it
    readme = tmp_path / 'doc' / 'README.md'
    readme.parent.mkdir()
    readme.write_text('# Title\n<!-- demo results: begin (written by tools/demo.py '
                      '--update-readme) -->\nold\n<!-- demo results: end -->\ntail\n')
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', '--work-dir', str(tmp_path), '--quick',
         '--update-readme', '--readme', str(readme)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('done earlier, skipped') == 7
    text = readme.read_text()
    assert text.startswith('# Title\n')
    assert text.endswith('<!-- demo results: end -->\ntail\n')
    assert 'old' not in text and (tmp_path / 'results.md').read_text() in text
    for p in pictures:
        assert f'](docs/demo/{p.name})' in text
        assert (readme.parent / 'docs' / 'demo' / p.name).is_file()


def test_selected_stages_add_the_stages_they_start_from():
    sys.path.insert(0, str(ROOT / 'tools'))
    from demo import STAGES, selected_stages
    assert [s.name for s in selected_stages(None)] == [s.name for s in STAGES]
    assert [s.name for s in selected_stages(['ft_full'])] == ['mae', 'ft_full']
    assert [s.name for s in selected_stages(['seg', 'ft_scratch'])] == [
        'mae', 'ft_mae', 'ft_scratch', 'seg']


def _train_losses(work_dir: Path, *options: str) -> list:
    """Losses logged by a short fine-tuning run (64 Fashion-MNIST images, 2 steps)."""
    cmd = [sys.executable, 'tools/train.py', str(FT_10PCT), '--work-dir', str(work_dir),
           '--no-validate', '--cfg-options', 'model.backbone.init_cfg=None',
           f'train_dataloader.dataset.data_root={FMNIST_ROOT}/',
           'train_dataloader.dataset.indices=64', 'train_dataloader.batch_size=32',
           'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1', *options]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    scalars = next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()
    return [json.loads(line)['loss'] for line in scalars]


@pytest.mark.e2e  # runs tools/train.py three times
def test_demo_fine_tuning_is_seeded(tmp_path):
    """Same config, same machine: the same losses, bit for bit; another seed differs
    (random initialisation, crops, flips and drop path all follow the seed)."""
    subprocess.run(['bash', str(SCRIPT), str(FMNIST_ROOT)], check=True, timeout=600)
    first = _train_losses(tmp_path / 'a')
    assert len(first) == 2 and all(math.isfinite(v) for v in first)
    assert _train_losses(tmp_path / 'b') == first
    assert _train_losses(tmp_path / 'c', 'randomness.seed=1') != first


def _script(dest: Path, pkg_dir: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', str(SCRIPT), str(dest)], capture_output=True,
                          text=True, timeout=600,
                          env=_env(FASHION_MNIST_PKG_DIR=str(pkg_dir), **env))


@pytest.mark.skipif(not PKG_DIR.is_dir(),
                    reason='needs the Debian package dataset-fashion-mnist')
def test_get_fashion_mnist_unpacks_the_package_and_reuses_a_copy(tmp_path):
    proc = _script(tmp_path / 'fm', PKG_DIR)
    assert proc.returncode == 0, proc.stderr
    assert 'unpacked the Debian package' in proc.stderr
    sizes = {p.name: p.stat().st_size for p in (tmp_path / 'fm').iterdir()}
    assert sizes == {'train-images-idx3-ubyte': 16 + 60000 * 28 * 28,
                     'train-labels-idx1-ubyte': 8 + 60000,
                     't10k-images-idx3-ubyte': 16 + 10000 * 28 * 28,
                     't10k-labels-idx1-ubyte': 8 + 10000}
    proc = _script(tmp_path / 'fm', tmp_path / 'no-package')
    assert proc.returncode == 0 and 'using the copy' in proc.stderr


def test_get_fashion_mnist_refuses_wrong_files_and_says_what_to_install(tmp_path):
    """A package directory whose files are not the published ones is not used; with no
    download possible (no Python with mmpretrain) the script stops with the remedies."""
    import gzip
    pkg = tmp_path / 'pkg'
    pkg.mkdir()
    for name in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'):
        with gzip.open(pkg / f'{name}.gz', 'wb') as f:
            f.write(b'\0' * 64)
    proc = _script(tmp_path / 'fm', pkg, HIVIT_MM_VENV=str(tmp_path / 'no-venv'))
    assert proc.returncode == 1
    assert 'does not hold the published file' in proc.stderr
    assert 'apt-get install dataset-fashion-mnist' in proc.stderr
    assert not list((tmp_path / 'fm').glob('*-ubyte'))  # nothing half-written is kept
