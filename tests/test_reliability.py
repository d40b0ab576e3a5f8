# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Faults injected through the real tools (README, "Reliability").

Each test injects one kind of fault into ``tools/train.py``, ``tools/dist_train.sh`` or a
converter, on the tools' tiny classifier (``tests/data/faulty_cls_config.py``, 32-px
shapes images) or the tiny HiViT-MAE (``tests/data/mae_resume_hivit.py``), and asserts
that the run stops with a message naming the problem, or goes on with the right
result. Runs that fail before training are made in-process (``main()`` of the tool);
whole runs are subprocesses, marked ``e2e``. Faults come from
``tests/data/fault_injection.py``.
"""
import json
import os
import os.path as osp
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator, List

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from conftest import free_port, load_tool
from hivit_mm.datasets import make_classification
from hivit_mm.engine.loops import seed_workers_for_epoch
from hivit_mm.utils.checkpoint import (TEMP_FILE_PATTERN, CheckpointLoadError,
                                       CheckpointMismatchError, is_readable_checkpoint,
                                       load_checkpoint_file, save_checkpoint_atomic)

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'
DATA = REPO / 'tests' / 'data'
CLS = DATA / 'faulty_cls_config.py'
MAE = DATA / 'mae_resume_hivit.py'
TIMEOUT = 300


def _env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1',
        PATH=f'{osp.dirname(sys.executable)}{os.pathsep}{env.get("PATH", "")}',
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO), str(DATA), env.get('PYTHONPATH')) if p))
    env.pop('LOCAL_RANK', None)
    env.update(extra)
    return env


def _run(cmd: List[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=_env(**env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)


def _train(config: Path, work_dir: Path, *options: str,
           args: List[str] = ()) -> subprocess.CompletedProcess:
    return _run([sys.executable, str(TOOLS / 'train.py'), str(config), '--work-dir',
                 str(work_dir), *args, '--cfg-options', *options])


def _data(root: Path) -> List[str]:
    return [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


def _losses(work_dir: Path) -> Dict[int, float]:
    """``step -> loss`` of every ``scalars.json`` of a work directory."""
    out = {}
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record:
                out[record['step']] = record['loss']
    return out


def _state(path: Path) -> Dict[str, torch.Tensor]:
    return load_checkpoint_file(str(path), map_location='cpu')['state_dict']


@pytest.fixture(scope='module')
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('shapes')
    make_classification(root, 8, 4, img_size=32)
    return root


@pytest.fixture(scope='module')
def train_py() -> ModuleType:
    if str(DATA) not in sys.path:  # for custom_imports=['fault_injection']
        sys.path.insert(0, str(DATA))
    return load_tool('train.py')


@pytest.fixture(scope='module')
def trained(tmp_path_factory: pytest.TempPathFactory, shapes: Path) -> Path:
    """A checkpoint of the tiny classifier (2 iterations)."""
    work_dir = tmp_path_factory.mktemp('trained')
    proc = _train(CLS, work_dir, *_data(shapes))
    assert proc.returncode == 0, proc.stdout[-4000:]
    return work_dir / 'iter_2.pth'


def _main(train_py: ModuleType, config: Path, work_dir: Path, shapes: Path,
          *options: str, args: List[str] = (),
          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    train_py.main([str(config), '--work-dir', str(work_dir), *args, '--cfg-options',
                   *_data(shapes), *options])


# ----------------------------------------------------------- 1. non-finite loss
@pytest.mark.e2e
def test_nan_loss_stops_training_without_checkpoint(tmp_path: Path,
                                                    shapes: Path) -> None:
    # 8 images, batch 4: iterations 1-2 are clean, every image from iteration 3 on
    # has a NaN pixel
    proc = _train(CLS, tmp_path, *_data(shapes), 'train_cfg.max_iters=4',
                  'train_dataloader.dataset.pipeline.1.after=8')
    assert proc.returncode != 0
    out = proc.stdout
    assert 'NonFiniteLossError: non-finite loss at iteration 3' in out
    assert 'loss=nan' in out  # the loss terms
    assert 'img_path=' in out and 'sample_idx=' in out  # the batch
    assert 'samples with NaN/Inf in their input: positions [0, 1, 2, 3]' in out
    assert (tmp_path / 'iter_2.pth').is_file()
    assert not (tmp_path / 'iter_4.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_2.pth')
    assert all(v.isfinite().all() for v in _state(tmp_path / 'iter_2.pth').values()
               if v.is_floating_point())


@pytest.mark.e2e
def test_nan_batches_skipped_when_asked(tmp_path: Path, shapes: Path) -> None:
    """Through mmpretrain's own tools/train.py: the guard comes with the config."""
    import mmpretrain
    upstream = Path(mmpretrain.__file__).parent / '.mim' / 'tools' / 'train.py'
    proc = _run([sys.executable, str(upstream), str(CLS), '--work-dir', str(tmp_path),
                 '--cfg-options', *_data(shapes), 'train_cfg.max_iters=4',
                 'train_dataloader.dataset.pipeline.1.after=8',
                 'reliability.non_finite=skip'])
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'non-finite loss at iteration 3' in proc.stdout
    assert 'batch skipped (1 so far)' in proc.stdout
    assert 'batch skipped (2 so far)' in proc.stdout
    # both batches skipped: weights (and SGD momentum) exactly as after iteration 2
    before = load_checkpoint_file(str(tmp_path / 'iter_2.pth'))
    after = load_checkpoint_file(str(tmp_path / 'iter_4.pth'))
    assert before['state_dict'].keys() == after['state_dict'].keys()
    for k, v in before['state_dict'].items():
        assert torch.equal(v, after['state_dict'][k]), k
    assert after['message_hub']['runtime_info']['non_finite_skipped'] == 2


@pytest.mark.e2e
@pytest.mark.parametrize('action', ['raise', 'skip'])
def test_nan_on_one_rank_stops_or_skips_on_every_rank(action: str, tmp_path: Path,
                                                      shapes: Path) -> None:
    """2 CPU processes; only rank 1's second batch (its images 5-8) holds NaN."""
    start = time.monotonic()
    proc = _run(['bash', str(TOOLS / 'dist_train.sh'), str(CLS), '2', '--work-dir',
                 str(tmp_path), '--cfg-options', *_data(shapes), 'train_cfg.max_iters=3',
                 'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=1',
                 'env_cfg.dist_cfg.timeout=30',
                 'train_dataloader.dataset.pipeline.1.after=4',
                 'train_dataloader.dataset.pipeline.1.count=4',
                 'train_dataloader.dataset.pipeline.1.rank=1',
                 f'reliability.non_finite={action}'], PORT=str(free_port()))
    assert time.monotonic() - start < 120  # no rank waits for the configured timeout
    out = proc.stdout
    assert 'timed out' not in out.lower(), out[-4000:]
    message = 'non-finite loss at iteration 2 (epoch 1) on rank(s) [1] of 2'
    if action == 'raise':
        assert proc.returncode != 0
        # each rank stops with the message; rank 1 names its batch's NaN images
        for rank in (0, 1):
            assert (f'NonFiniteLossError: {message}; loss terms of rank {rank}: '
                    f'loss={"nan" if rank else ""}') in out, out[-4000:]
        assert 'samples with NaN/Inf in their input: positions [0, 1, 2, 3]' in out
        assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_1.pth']
        return
    assert proc.returncode == 0, out[-4000:]
    assert f'{message}; loss terms of rank 0: loss=' in out
    assert 'batch skipped (1 so far)' in out
    # the step was skipped by both ranks in lockstep (or DDP would have hung), and
    # iteration 3 trained again on both
    states = [_state(tmp_path / f'iter_{i}.pth') for i in (1, 2, 3)]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[1][k], states[2][k]) for k in states[1])
    assert all(v.isfinite().all() for v in states[2].values() if v.is_floating_point())
    last = load_checkpoint_file(str(tmp_path / 'iter_3.pth'))
    assert last['message_hub']['runtime_info']['non_finite_skipped'] == 1


@pytest.mark.parametrize('action', ['raise', 'skip'])
def test_non_finite_gradient_norm_caught_before_the_step(action: str) -> None:
    """A finite loss with an infinite gradient (sqrt at 0), under norm clipping."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub, MMLogger
    from mmengine.optim import OptimWrapper

    from hivit_mm.engine import NonFiniteLossError, NonFiniteLossHook
    weight = torch.nn.Parameter(torch.ones(3))
    model = torch.nn.Module()
    model.weight = weight
    model.parse_losses = lambda losses: (losses, dict(loss=losses))
    runner = SimpleNamespace(
        optim_wrapper=OptimWrapper(torch.optim.SGD([weight], lr=1.),
                                   clip_grad=dict(max_norm=1.)),
        model=model, message_hub=MessageHub.get_instance(f'grad-norm-{action}'),
        logger=MMLogger.get_instance(f'grad-norm-{action}'), iter=6, epoch=0)
    hook = NonFiniteLossHook(action=action)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0, dict(inputs=[], data_samples=[]))
    loss, _ = model.parse_losses(torch.sqrt(weight - 1).sum())
    assert torch.isfinite(loss)
    if action == 'raise':
        with pytest.raises(NonFiniteLossError,
                           match='non-finite gradient norm .* at iteration 7'):
            runner.optim_wrapper.update_params(loss)
    else:
        runner.optim_wrapper.update_params(loss)
        assert runner.message_hub.get_info('non_finite_skipped') == 1
        assert weight.grad is None  # dropped
    assert torch.equal(weight.detach(), torch.ones(3))  # no optimizer step


# ----------------------------------------------------------- 2. strict load_from
def _edited(src: Path, dst: Path, edit) -> Path:
    ckpt = load_checkpoint_file(str(src))
    ckpt['state_dict'] = edit(dict(ckpt['state_dict']))
    torch.save(ckpt, dst)
    return dst


def test_load_from_refuses_another_layout(train_py: ModuleType, trained: Path,
                                          shapes: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the official layout (no 'backbone.' prefix) and an empty state dict
    bare = _edited(trained, tmp_path / 'bare.pth',
                   lambda s: {k.replace('backbone.', ''): v for k, v in s.items()})
    with pytest.raises(CheckpointMismatchError) as exc:
        _main(train_py, CLS, tmp_path / 'w1', shapes, f'load_from={bare}',
              monkeypatch=monkeypatch)
    message = str(exc.value)
    assert str(bare) in message
    assert "'backbone.patch_embed.proj.weight'" in message  # missing
    assert "'patch_embed.proj.weight'" in message  # unexpected
    assert not list((tmp_path / 'w1').glob('*.pth'))  # stopped before training
    empty = _edited(trained, tmp_path / 'empty.pth', lambda s: {})
    with pytest.raises(CheckpointMismatchError, match=r'missing keys \(\d+\)'):
        _main(train_py, CLS, tmp_path / 'w2', shapes, f'load_from={empty}',
              monkeypatch=monkeypatch)


@pytest.mark.e2e
def test_load_from_partial_when_explicit(trained: Path, shapes: Path,
                                         tmp_path: Path) -> None:
    # a classifier of 3 classes: the head does not fit and is left out on purpose
    wrong_head = _edited(trained, tmp_path / 'head3.pth', lambda s: {
        **s, 'head.fc.weight': s['head.fc.weight'][:3],
        'head.fc.bias': s['head.fc.bias'][:3]})
    proc = _train(CLS, tmp_path / 'w', *_data(shapes), f'load_from={wrong_head}',
                  'train_cfg.max_iters=1', 'reliability.load_from_ignore_keys=[^head\\.]')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "left out ['head.fc.weight', 'head.fc.bias']" in proc.stdout


# --------------------------------------------------- 3. atomic checkpoint saving
def _save_every_iter(shapes: Path) -> List[str]:
    """3 iterations saving a checkpoint after each, keeping one."""
    return [*_data(shapes), 'train_cfg.max_iters=3', 'train_cfg.val_interval=3',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=1']


@pytest.mark.e2e
def test_kill_during_save_leaves_a_resumable_checkpoint(tmp_path: Path,
                                                        shapes: Path) -> None:
    work_dir = tmp_path / 'w'
    options = _save_every_iter(shapes)
    proc = _train(CLS, work_dir, *options, 'custom_hooks.0.where=kill_before_save',
                  'custom_hooks.0.iter=2')
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-4000:]
    # mmengine deletes iter_1.pth before saving iter_2.pth: nothing would be left
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_1.pth']
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_1.pth')

    # a truncated newer checkpoint named by last_checkpoint: resume falls back
    blob = (work_dir / 'iter_1.pth').read_bytes()
    (work_dir / 'iter_2.pth').write_bytes(blob[:len(blob) // 2])
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_2.pth'))
    proc = _train(CLS, work_dir, *options, args=['--resume'])
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert f'cannot resume from {work_dir / "iter_2.pth"}' in proc.stdout
    assert 'resumed epoch: 0, iter: 1' in proc.stdout
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_3.pth']


@pytest.mark.e2e
def test_kill_while_writing_leaves_a_resumable_checkpoint(tmp_path: Path,
                                                          shapes: Path) -> None:
    options = _save_every_iter(shapes)
    proc = _train(CLS, tmp_path, *options, 'custom_hooks.0.where=kill_during_save',
                  'custom_hooks.0.iter=2')
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-4000:]
    # killed with half of iter_2.pth written (to its temporary file)
    partial = [p for p in tmp_path.iterdir() if TEMP_FILE_PATTERN.match(p.name)]
    assert [TEMP_FILE_PATTERN.match(p.name)['name'] for p in partial] == ['iter_2.pth']
    assert is_readable_checkpoint(str(partial[0])) is not None
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_1.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_1.pth')
    assert is_readable_checkpoint(str(tmp_path / 'iter_1.pth')) is None
    proc = _train(CLS, tmp_path, *options, args=['--resume'])
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'resumed epoch: 0, iter: 1' in proc.stdout
    assert f'removed {partial[0]}, the partial file of a save' in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        'faulty_cls_config.py', 'iter_3.pth', 'last_checkpoint']


@contextmanager
def _tmpfs(mount_point: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` at ``mount_point`` (a small disk that fills up);
    skips the test unless it can be mounted (as root); always unmounted."""
    if os.geteuid() != 0:
        pytest.skip('mounting a small tmpfs needs root')
    mount_point.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_bytes}', 'tmpfs',
                           str(mount_point)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs: {proc.stdout.strip()}')
    try:
        yield mount_point
    finally:
        if subprocess.run(['umount', str(mount_point)]).returncode != 0:
            subprocess.run(['umount', '-l', str(mount_point)])


@pytest.mark.e2e
def test_full_disk_during_save_keeps_the_last_checkpoint(
        tmp_path: Path, shapes: Path, trained: Path) -> None:
    options = _save_every_iter(shapes)
    straight = tmp_path / 'straight'
    proc = _train(CLS, straight, *options)
    assert proc.returncode == 0, proc.stdout[-4000:]
    # room for the logs and one checkpoint, not two: the save of iter_2 runs out
    size = (trained.stat().st_size * 3 // 2) // 4096 * 4096
    with _tmpfs(tmp_path / 'disk', size) as disk:
        work_dir = disk / 'w'
        proc = _train(CLS, work_dir, *options)
        assert proc.returncode == 1, proc.stdout[-4000:]
        out = proc.stdout
        assert ('CheckpointSaveError: [Errno 28] could not write '
                f'{work_dir}/iter_2.pth') in out
        assert 'No space left on device' in out
        assert f'on the file system of {work_dir}' in out
        assert not [p for p in os.listdir(work_dir) if TEMP_FILE_PATTERN.match(p)]
        assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_1.pth']
        assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_1.pth')
        assert is_readable_checkpoint(str(work_dir / 'iter_1.pth')) is None
        # more room (the contents stay), then resume: the run of an uninterrupted one
        subprocess.run(['mount', '-o', f'remount,size={4 * size}', str(disk)], check=True)
        proc = _train(CLS, work_dir, *options, args=['--resume'])
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert 'resumed epoch: 0, iter: 1' in proc.stdout
        a, b = _state(straight / 'iter_3.pth'), _state(work_dir / 'iter_3.pth')
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_auto_resume_choice(tmp_path: Path) -> None:
    import logging

    from hivit_mm.engine.runner import find_resumable_checkpoint
    logger = logging.getLogger('test_auto_resume_choice')
    assert find_resumable_checkpoint(str(tmp_path), logger) is None
    save_checkpoint_atomic({'state_dict': {}}, str(tmp_path / 'iter_4.pth'))
    save_checkpoint_atomic({'state_dict': {}}, str(tmp_path / 'iter_12.pth'))
    (tmp_path / 'iter_16.pth').write_bytes(b'')  # 0 bytes
    (tmp_path / 'last_checkpoint').write_text('')  # empty pointer
    found = find_resumable_checkpoint(str(tmp_path), logger)
    assert found == str(tmp_path / 'iter_12.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    found = find_resumable_checkpoint(str(tmp_path), logger)
    assert found == str(tmp_path / 'iter_4.pth')
    for name in ('iter_4.pth', 'iter_12.pth'):
        (tmp_path / name).write_bytes(b'garbage')
    with pytest.raises(RuntimeError, match='no readable checkpoint'):
        find_resumable_checkpoint(str(tmp_path), logger)


def test_atomic_save_keeps_old_file_on_full_disk(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / 'out.pth'
    save_checkpoint_atomic({'v': torch.ones(3)}, str(target))

    def full_disk(obj, f, *args, **kwargs):
        with open(f, 'wb') as out:
            out.write(b'PK\x03\x04 partial')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OSError, match='No space left'):
        save_checkpoint_atomic({'v': torch.zeros(3)}, str(target))
    monkeypatch.undo()
    assert torch.equal(load_checkpoint_file(str(target))['v'], torch.ones(3))
    assert os.listdir(tmp_path) == ['out.pth']  # no temporary file left
    assert is_readable_checkpoint(str(target)) is None


# ------------------------------------------------------- 4. bit-exact resumption
@pytest.mark.e2e
@pytest.mark.parametrize('persistent', [False, True])
def test_resume_mid_epoch_is_bit_exact(persistent: bool,
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp('mae_shapes')
    make_classification(root, 12, 0, img_size=64)
    data = [f'train_dataloader.dataset.data_root={root}',
            f'train_dataloader.persistent_workers={persistent}']
    straight = tmp_path_factory.mktemp('straight')
    broken = tmp_path_factory.mktemp('broken')
    proc = _train(MAE, straight, *data)
    assert proc.returncode == 0, proc.stdout[-4000:]
    # persistent workers would run their random streams on across epochs, which a
    # resumed run cannot continue: the runner restarts them each epoch
    assert persistent == ('persistent_workers=True -> False' in proc.stdout)
    proc = _train(MAE, broken, *data, 'custom_hooks.0.where=kill_after_iter',
                  'custom_hooks.0.iter=4')
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-4000:]
    assert not (broken / 'iter_6.pth').exists()
    proc = _train(MAE, broken, *data, args=['--resume'])
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'resumed epoch: 1, iter: 4' in proc.stdout
    expected, got = _losses(straight), _losses(broken)
    assert sorted(expected) == [1, 2, 3, 4, 5, 6]
    assert got == expected  # steps 1-4 of the killed run, 5-6 of the resumed one
    a, b = _state(straight / 'iter_6.pth'), _state(broken / 'iter_6.pth')
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------ 5. resume refuses another model
def test_resume_refuses_another_width(train_py: ModuleType, trained: Path,
                                      shapes: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CheckpointMismatchError) as exc:
        _main(train_py, CLS, tmp_path, shapes, 'model.backbone.arch.embed_dims=48',
              'model.neck.in_channels=48', 'model.head.in_channels=48',
              args=['--resume', str(trained)], monkeypatch=monkeypatch)
    message = str(exc.value)
    assert f'{trained} (resume from)' in message
    assert 'size mismatch for backbone.patch_embed.proj.weight' in message
    assert not list(tmp_path.glob('*.pth'))


# --------------------------------------------------- 6. distributed time-outs
@pytest.mark.e2e
def test_hung_rank_stops_the_job_after_the_configured_timeout(
        tmp_path: Path, shapes: Path) -> None:
    start = time.monotonic()
    proc = _run(['bash', str(TOOLS / 'dist_train.sh'), str(CLS), '2', '--work-dir',
                 str(tmp_path), '--cfg-options', *_data(shapes),
                 'env_cfg.dist_cfg.timeout=5', 'custom_hooks.0.where=hang',
                 'custom_hooks.0.iter=2'], PORT=str(free_port()))
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 120, elapsed  # torch's default would be 30 minutes
    assert 'timed out' in proc.stdout.lower() or 'timeout' in proc.stdout.lower()


# --------------------------------------------------------- 7. safe converters
def test_converters_never_destroy_their_input(tmp_path: Path, trained: Path) -> None:
    tool = load_tool('model_converters/mmpretrain_hivit_to_hivit_mm.py')
    src = tmp_path / 'src.pth'
    shutil.copy(trained, src)
    blob = src.read_bytes()
    for dst in (src, tmp_path / '.' / 'src.pth'):
        with pytest.raises(ValueError, match='would destroy the input'):
            tool.main([str(src), str(dst), '--depths', '1', '1', '2'])
    os.link(src, tmp_path / 'hard.pth')
    with pytest.raises(ValueError, match='would destroy the input'):
        tool.main([str(src), str(tmp_path / 'hard.pth'), '--depths', '1', '1', '2'])
    assert src.read_bytes() == blob

    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    for name in ('mmpretrain_hivit_to_hivit_mm.py', 'hivit_official_to_hivit_mm.py',
                 'greenmim_to_mmpretrain.py'):
        tool = load_tool(f'model_converters/{name}')
        extra = [] if name.startswith('greenmim') else ['--depths', '1', '1', '2']
        with pytest.raises(CheckpointLoadError, match=str(text)):
            tool.main([str(text), str(tmp_path / 'out.pth'), *extra])
        assert not (tmp_path / 'out.pth').exists()


def test_unreadable_checkpoint_named_by_init_cfg_and_load_from(
        train_py: ModuleType, shapes: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    with pytest.raises(CheckpointLoadError, match=f'{text} is not a readable'):
        _main(train_py, CLS, tmp_path / 'w1', shapes, f'load_from={text}',
              monkeypatch=monkeypatch)
    from hivit_mm.models import HiViT
    backbone = HiViT(arch=dict(embed_dims=32, depths=(1, 1, 2), num_heads=2), img_size=32,
                     init_cfg=dict(type='Pretrained', checkpoint=str(text)))
    with pytest.raises(CheckpointLoadError, match=f'{text} is not a readable'):
        backbone.init_weights()


# ------------------------------------------------------ 9. data errors name files
def test_data_errors_name_the_file(train_py: ModuleType, shapes: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / 'shapes'
    shutil.copytree(shapes, broken)
    images = sorted((broken / 'train').rglob('*.png'))
    for image in images:
        image.write_bytes(b'')  # every image: whichever is drawn first fails
    with pytest.raises(Exception) as exc:
        _main(train_py, CLS, tmp_path / 'w1', broken, monkeypatch=monkeypatch)
    notes = ' '.join(getattr(exc.value, '__notes__', []))
    assert 'while loading sample' in notes and 'img_path=' in notes
    assert any(str(image) in notes for image in images)

    # an empty annotation file: mmpretrain fails deep inside NumPy
    (broken / 'meta' / 'train.txt').write_text('')
    with pytest.raises(ValueError) as exc:
        _main(train_py, CLS, tmp_path / 'w2', broken, monkeypatch=monkeypatch)
    notes = ' '.join(getattr(exc.value, '__notes__', []))
    assert "while building the dataset (type='CustomDataset'" in notes
    assert "ann_file='meta/train.txt'" in notes


def test_empty_dataset_refused() -> None:
    from hivit_mm.engine import ReliableRunner

    # mmengine would train zero iterations (or spin forever with InfiniteSampler)
    with pytest.raises(ValueError, match=r'the dataset \(list\) is empty'):
        ReliableRunner.build_dataloader(
            dict(dataset=[], sampler=dict(type='DefaultSampler', shuffle=False),
                 batch_size=1))


# ------------------------------------------------------ 8. geometry never guessed
def test_sincos_tables_follow_rows_and_columns_of_any_grid() -> None:
    from mmpretrain.models.utils import build_2d_sincos_position_embedding

    from hivit_mm.models import ClsFreeMAEDecoder, MaskedHiViT
    encoder = MaskedHiViT(arch=dict(embed_dims=32, depths=(1, 1, 2), num_heads=2),
                          img_size=(64, 128))  # 4 x 8 units
    encoder.init_weights()
    decoder = ClsFreeMAEDecoder(num_patches=(4, 8), embed_dim=32, decoder_embed_dim=16,
                                decoder_depth=1, decoder_num_heads=2)
    decoder.init_weights()
    for table, dim in ((encoder.pos_embed, 32), (decoder.decoder_pos_embed, 16)):
        # token (r, c) of the 4x8 grid has the code of token (r, c) of an 8x8 grid
        square = build_2d_sincos_position_embedding(8, dim)[0].reshape(8, 8, dim)
        assert torch.equal(table[0].reshape(4, 8, dim), square[:4])
        # mmpretrain's own 4x8 table gives 28 of the 32 tokens another one's code
        theirs = build_2d_sincos_position_embedding((4, 8), dim)[0]
        assert (theirs != table[0]).any(dim=1).sum() == 28
    # square grids: mmpretrain's table exactly (checkpoints unchanged)
    square = MaskedHiViT(arch=dict(embed_dims=32, depths=(1, 1, 2), num_heads=2),
                         img_size=64)
    square.init_weights()
    assert torch.equal(square.pos_embed, build_2d_sincos_position_embedding(4, 32))
    with pytest.raises(ValueError, match='num_patches=32 is not a square grid'):
        ClsFreeMAEDecoder(num_patches=32, embed_dim=32, decoder_embed_dim=16,
                          decoder_depth=1, decoder_num_heads=2)


def test_frozen_main_stage_is_deterministic() -> None:
    from hivit_mm.models import HiViT
    torch.manual_seed(0)
    model = HiViT(arch=dict(embed_dims=32, depths=(1, 1, 2), num_heads=2), img_size=32,
                  drop_rate=0.5, frozen_stages=2)
    model.init_weights()
    model.train()
    x = torch.randn(2, 3, 32, 32)
    first, second = model(x)[-1], model(x)[-1]
    assert torch.equal(first, second)
    assert not model.pos_drop.training


def test_position_tables_are_resized_from_the_grid_they_were_saved_for(
        tmp_path: Path) -> None:
    from mmpretrain.models.utils import resize_pos_embed

    from hivit_mm.models import HiViT
    from hivit_mm.models.geometry import resize_rel_pos_bias_table
    arch = dict(embed_dims=32, depths=(1, 1, 2), num_heads=2)
    source = HiViT(arch=arch, img_size=(64, 256), use_rel_pos_bias=True)  # 4 x 16 units
    source.init_weights()
    saved = source.state_dict()
    assert saved._metadata['']['grid'] == [4, 16]
    table = 'blocks.0.attn.relative_position_bias_table'
    torch.save(dict(state_dict=OrderedDict(
        (f'backbone.{k}', v) for k, v in saved.items())), tmp_path / 'plain.pth')
    ckpt = dict(state_dict=OrderedDict((f'backbone.{k}', v) for k, v in saved.items()))
    ckpt['state_dict']._metadata = OrderedDict(
        (f'backbone.{k}' if k else 'backbone', v) for k, v in saved._metadata.items())
    torch.save(ckpt, tmp_path / 'recorded.pth')
    # 4x16 into 8x8 (the same 64 tokens, read as 8x8 before) and into 16x4 (the same
    # shapes, loaded unchanged before): resized from 4x16, by load_state_dict (resume,
    # load_from) and by init_cfg alike
    for img_size, grid in ((128, (8, 8)), ((256, 64), (16, 4))):
        expected_pe = resize_pos_embed(saved['pos_embed'], (4, 16), grid, mode='bicubic',
                                       num_extra_tokens=0)
        expected_table = resize_rel_pos_bias_table(saved[table], (4, 16), grid)
        target = HiViT(arch=arch, img_size=img_size, use_rel_pos_bias=True,
                       rel_pos_resize='bicubic')  # 'geometric' needs square grids
        target.load_state_dict(saved)
        assert torch.equal(target.pos_embed.data, expected_pe)
        assert torch.equal(target.state_dict()[table], expected_table)
        target = HiViT(arch=arch, img_size=img_size, use_rel_pos_bias=True,
                       rel_pos_resize='bicubic',
                       init_cfg=dict(type='Pretrained', prefix='backbone.',
                                     checkpoint=str(tmp_path / 'recorded.pth')))
        target.init_weights()
        assert torch.equal(target.pos_embed.data, expected_pe)
    # without the record the sizes alone never tell 4x16 from 16x4 (nor 64 tokens
    # from 8x8): refused, naming the tables, even where the shapes fit
    for img_size in ((64, 256), (256, 64), 128):
        target = HiViT(arch=arch, img_size=img_size, use_rel_pos_bias=True,
                       rel_pos_resize='bicubic',
                       init_cfg=dict(type='Pretrained', prefix='backbone.',
                                     checkpoint=str(tmp_path / 'plain.pth')))
        with pytest.raises(ValueError, match=r'saved without the grid .*: pos_embed '
                           rf'\(64 tokens\), {table} \(217 rows\).*checkpoint_img_size'):
            target.init_weights()
    unrecorded = OrderedDict(saved)  # as a plain copy of a state dict: no record
    target = HiViT(arch=arch, img_size=(256, 64), use_rel_pos_bias=True,
                   rel_pos_resize='bicubic')
    with pytest.raises(ValueError, match='saved without the grid'):
        target.load_state_dict(unrecorded)
    # ... unless the grid is given explicitly
    target = HiViT(arch=arch, img_size=(256, 64), use_rel_pos_bias=True,
                   rel_pos_resize='bicubic', checkpoint_img_size=(64, 256))
    target.load_state_dict(unrecorded)
    assert torch.equal(target.pos_embed.data, resize_pos_embed(
        saved['pos_embed'], (4, 16), (16, 4), mode='bicubic', num_extra_tokens=0))
    # a square grid is told by its sizes together (n*n tokens, (2n-1)**2 rows)
    square = HiViT(arch=arch, img_size=128, use_rel_pos_bias=True)
    square.init_weights()
    target = HiViT(arch=arch, img_size=128, use_rel_pos_bias=True)
    target.load_state_dict(OrderedDict(square.state_dict()))
    assert torch.equal(target.pos_embed, square.pos_embed)
    no_rel = HiViT(arch=arch, img_size=128)  # 64 tokens alone: refused
    with pytest.raises(ValueError, match=r'pos_embed \(64 tokens\)\. Their sizes'):
        no_rel.load_state_dict(OrderedDict(
            (k, v) for k, v in square.state_dict().items() if 'relative' not in k))


class _RandomDraws(torch.utils.data.Dataset):
    """Each item is what the worker's Python, NumPy and torch generators draw next."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([random.random(), np.random.rand(), torch.rand(()).item()])


def test_workers_restarted_each_epoch_draw_anew_and_repeat_on_resume() -> None:
    """mmengine's worker seeding alone makes every epoch of non-persistent workers draw
    what the first drew; seed_workers_for_epoch gives each epoch its own draws, the same
    whenever that epoch's loader is started (as in a resumed run)."""
    loader = Runner.build_dataloader(
        dict(dataset=_RandomDraws(), batch_size=4, num_workers=2,
             persistent_workers=False,
             sampler=dict(type='DefaultSampler', shuffle=False)), seed=7)

    def epoch(e: int, reseed: bool = True) -> torch.Tensor:
        if reseed:
            seed_workers_for_epoch(loader, e)
        return torch.stack([item for batch in loader for item in batch])  # 8, 3

    first, second = epoch(0), epoch(1)
    assert not torch.equal(first, second)  # each epoch draws anew
    assert torch.equal(epoch(1), second)  # a resumed epoch 1 draws the same
    assert torch.equal(epoch(0), first)  # epoch 0 keeps mmengine's seeds
    # without it, the workers restarted for epoch 1 repeat epoch 0 exactly
    assert torch.equal(epoch(1, reseed=False), first)
