# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Tests of the standard tools: ``tools/{train,test}.py``, the ``dist_*``/``slurm_*``
launchers and ``collect_env``.

End-to-end tests (marker ``e2e``) run the tools as subprocesses on a tiny mmpretrain
classifier (``tests/data/tiny_cls_config.py``) and a few 32x32 images of the shapes
world, with ``CUDA_VISIBLE_DEVICES=''``; the argument handling is also tested in-process.
"""
import importlib.metadata
import importlib.util
import json
import math
import os
import os.path as osp
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional

import pytest
from mmengine.config import Config

from conftest import free_port, load_tool, run_tool, tool_env
from hivit_mm.datasets import SHAPE_CLASSES, make_classification

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / 'tools'
CONFIG = REPO / 'tests' / 'data' / 'tiny_cls_config.py'
NUM_TRAIN, NUM_VAL = 8, 4


def _ok(proc: subprocess.CompletedProcess) -> str:
    """Assert a zero exit status (showing the output tail otherwise)."""
    assert proc.returncode == 0, proc.stdout[-5000:]
    return proc.stdout


def _data_options(root: Path) -> List[str]:
    return [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


def _scalars(work_dir: Path) -> List[dict]:
    """The records of the (only) ``scalars.json`` of a run."""
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def _test_accuracy(output: str) -> float:
    """The top-1 accuracy printed by ``runner.test()``."""
    found = re.findall(r'accuracy/top1: ([0-9.]+)', output)
    assert found, output[-3000:]
    return float(found[-1])


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('shapes')
    make_classification(root, NUM_TRAIN, NUM_VAL, img_size=32)
    return root


@pytest.fixture(scope='module')
def trained(tmp_path_factory: pytest.TempPathFactory,
            shapes_root: Path) -> Dict[str, object]:
    """Two iterations of ``tools/train.py``; its work dir and output."""
    work_dir = tmp_path_factory.mktemp('train')
    proc = run_tool([
        sys.executable,
        str(TOOLS / 'train.py'),
        str(CONFIG), '--work-dir',
        str(work_dir), '--cfg-options', *_data_options(shapes_root),
        'optim_wrapper.optimizer.lr=0.0123'
    ])
    return dict(work_dir=work_dir, shapes_root=shapes_root, output=_ok(proc))


@pytest.mark.e2e
def test_train_end_to_end(trained: Dict[str, object]) -> None:
    work_dir = trained['work_dir']
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    assert not (work_dir / 'iter_4.pth').exists()  # max_iters=2 is honoured
    last = (work_dir / 'last_checkpoint').read_text().strip()
    assert Path(last) == ckpt
    records = _scalars(work_dir)
    train = [r for r in records if 'loss' in r]
    assert [r['step'] for r in train] == [1, 2]
    assert all(math.isfinite(r['loss']) and r['loss'] > 0 for r in train)
    # --cfg-options took effect
    assert all(r['lr'] == pytest.approx(0.0123) for r in train)
    val = [r for r in records if 'accuracy/top1' in r]
    assert len(val) == 1 and val[0]['step'] == 2
    assert 'Distributed training: False' in trained['output']


@pytest.mark.e2e
def test_test_reports_accuracy_dumps_and_paints(trained: Dict[str, object],
                                                tmp_path: Path) -> None:
    work_dir = trained['work_dir']
    out, show_dir = tmp_path / 'preds.pkl', tmp_path / 'vis'
    output = _ok(
        run_tool([
            sys.executable,
            str(TOOLS / 'test.py'),
            str(CONFIG),
            str(work_dir / 'iter_2.pth'), '--work-dir',
            str(tmp_path / 'test'), '--out',
            str(out), '--show-dir',
            str(show_dir), '--cfg-options',
            *_data_options(trained['shapes_root'])
        ]))
    # the mmengine checkpoint loaded (torch>=2.6 weights_only fix) and the
    # metric equals the validation at the same iteration
    assert 'Load checkpoint from' in output
    val = [r for r in _scalars(work_dir) if 'accuracy/top1' in r][0]
    assert _test_accuracy(output) == pytest.approx(val['accuracy/top1'])
    # --out: one prediction per test image
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == NUM_VAL
    for pred in preds:
        assert tuple(pred['pred_score'].shape) == (len(SHAPE_CLASSES), )
        assert 0 <= int(pred['pred_label']) < len(SHAPE_CLASSES)
    # --show-dir: every test image painted (mmpretrain's hook draws 1 in 5000
    # unless told otherwise)
    assert len(list(show_dir.glob('*.png'))) == NUM_VAL


@pytest.mark.e2e
def test_resume_continues_iterations(trained: Dict[str, object],
                                     tmp_path: Path) -> None:
    work_dir = tmp_path / 'resume'
    shutil.copytree(trained['work_dir'], work_dir)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_2.pth'))
    for old in work_dir.iterdir():  # keep the checkpoint, drop the old logs
        if old.is_dir():
            shutil.rmtree(old)
    output = _ok(
        run_tool([
            sys.executable,
            str(TOOLS / 'train.py'),
            str(CONFIG), '--work-dir',
            str(work_dir), '--resume', '--cfg-options',
            *_data_options(trained['shapes_root']), 'train_cfg.max_iters=4'
        ]))
    assert 'resumed epoch: 0, iter: 2' in output
    assert (work_dir / 'iter_4.pth').is_file()
    import torch
    ckpt = torch.load(
        work_dir / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 4
    steps = [r['step'] for r in _scalars(work_dir) if 'loss' in r]
    assert steps == [3, 4]


@pytest.mark.e2e
def test_dist_train_and_test_two_cpu_processes(trained: Dict[str, object],
                                               tmp_path: Path) -> None:
    work_dir = tmp_path / 'dist'
    output = _ok(
        run_tool([
            'bash',
            str(TOOLS / 'dist_train.sh'),
            str(CONFIG), '2', '--work-dir',
            str(work_dir), '--cfg-options',
            *_data_options(trained['shapes_root'])
        ],
             PORT=str(free_port())))
    assert 'Distributed launcher: pytorch' in output
    assert 'Distributed training: True' in output
    assert 'GPU number: 2' in output  # mmengine's name for the world size
    assert (work_dir / 'iter_2.pth').is_file()
    assert all(math.isfinite(r['loss']) for r in _scalars(work_dir) if 'loss' in r)

    # distributed test of the single-process checkpoint: results gathered over gloo
    single = [r for r in _scalars(trained['work_dir']) if 'accuracy/top1' in r][0]
    output = _ok(
        run_tool([
            'bash',
            str(TOOLS / 'dist_test.sh'),
            str(CONFIG),
            str(trained['work_dir'] / 'iter_2.pth'), '2', '--work-dir',
            str(tmp_path / 'dist_test'), '--cfg-options',
            *_data_options(trained['shapes_root'])
        ],
             PORT=str(free_port())))
    assert 'GPU number: 2' in output
    assert _test_accuracy(output) == pytest.approx(single['accuracy/top1'])


@pytest.fixture
def srun_stub(tmp_path: Path) -> Dict[str, object]:
    """A fake ``srun`` on PATH that records its arguments, one per line."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    record = tmp_path / 'srun_args.txt'
    srun = bin_dir / 'srun'
    srun.write_text('#!/usr/bin/env bash\n'
                    f'printf "%s\\n" "$@" > "{record}"\n'
                    f'printf "%s\\n" "$PYTHONPATH" > "{record}.pythonpath"\n')
    srun.chmod(0o755)
    path = f'{bin_dir}{os.pathsep}{os.environ.get("PATH", "")}'
    return dict(path=path, record=record)


def _run_slurm(stub: Dict[str, object], args: List[str], **env: str) -> List[str]:
    """Run a slurm script with the stub ``srun``; return the arguments it got."""
    full_env = {
        k: v
        for k, v in tool_env().items()
        if k not in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS')
    }
    full_env.update(env, PATH=stub['path'])
    proc = subprocess.run(['bash', *args],
                          cwd=REPO,
                          env=full_env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=60)
    _ok(proc)
    return stub['record'].read_text().splitlines()


SRUN_HEAD = [
    '-p', 'part', '--job-name=job', '--gres=gpu:2', '--ntasks=4',
    '--ntasks-per-node=2', '--cpus-per-task=3', '--kill-on-bad-exit=1',
    '--qos=x', '--exclusive', 'python', '-u'
]
SLURM_ENV = dict(
    GPUS='4', GPUS_PER_NODE='2', CPUS_PER_TASK='3', SRUN_ARGS='--qos=x --exclusive')


def test_slurm_train_sh_arguments(srun_stub: Dict[str, object]) -> None:
    argv = _run_slurm(
        srun_stub, [
            'tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'work dir', '--amp',
            '--cfg-options', 'a=1'
        ], **SLURM_ENV)
    assert argv == SRUN_HEAD + [
        'tools/train.py', 'cfg.py', '--work-dir=work dir', '--launcher=slurm',
        '--amp', '--cfg-options', 'a=1'
    ]
    pythonpath = Path(f'{srun_stub["record"]}.pythonpath').read_text()
    assert pythonpath.startswith('tools/..')


def test_slurm_test_sh_arguments(srun_stub: Dict[str, object]) -> None:
    argv = _run_slurm(
        srun_stub,
        ['tools/slurm_test.sh', 'part', 'job', 'cfg.py', 'ckpt.pth', '--out', 'r.pkl'],
        **SLURM_ENV)
    assert argv == SRUN_HEAD + [
        'tools/test.py', 'cfg.py', 'ckpt.pth', '--launcher=slurm', '--out', 'r.pkl'
    ]


@pytest.mark.parametrize('gpus,expected', [(None, ('8', '8')), ('2', ('2', '2')),
                                           ('16', ('16', '8'))])
def test_slurm_defaults(srun_stub: Dict[str, object], gpus: Optional[str],
                        expected: tuple) -> None:
    env = {} if gpus is None else dict(GPUS=gpus)
    argv = _run_slurm(srun_stub,
                      ['tools/slurm_train.sh', 'p', 'j', 'cfg.py', 'wd'], **env)
    assert argv[:8] == [
        '-p', 'p', '--job-name=j', f'--gres=gpu:{expected[1]}',
        f'--ntasks={expected[0]}', f'--ntasks-per-node={expected[1]}',
        '--cpus-per-task=5', '--kill-on-bad-exit=1'
    ]
    assert argv[8:] == [
        'python', '-u', 'tools/train.py', 'cfg.py', '--work-dir=wd',
        '--launcher=slurm'
    ]


@pytest.mark.parametrize('script,args', [
    ('slurm_train.sh', ['p', 'j', 'cfg.py']),
    ('slurm_test.sh', ['p', 'j', 'cfg.py']),
    ('dist_train.sh', ['cfg.py']),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth']),
])
def test_launchers_reject_missing_arguments(script: str, args: List[str]) -> None:
    proc = run_tool(['bash', f'tools/{script}', *args])
    assert proc.returncode == 1
    assert 'Usage: bash' in proc.stdout


def test_collect_env_prints_versions() -> None:
    output = _ok(run_tool([sys.executable, str(TOOLS / 'misc' / 'collect_env.py')]))
    info = dict(
        line.split(': ', 1) for line in output.splitlines() if ': ' in line)
    for name, dist in [('MMCV', 'mmcv'), ('MMPreTrain', 'mmpretrain'),
                       ('MMDetection', 'mmdet'),
                       ('MMSegmentation', 'mmsegmentation'),
                       ('MMEngine', 'mmengine')]:
        try:
            expected = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            expected = 'not installed'
        assert info[name].startswith(expected), (name, info[name])
    import hivit_mm
    assert info['hivit_mm'] == hivit_mm.__version__
    repo = osp.dirname(osp.dirname(osp.abspath(hivit_mm.__file__)))
    head = subprocess.run(['git', '-C', repo, 'rev-parse', 'HEAD'], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert info['hivit_mm git hash'].split(' ')[0] == head
    assert info['PyTorch'] == __import__('torch').__version__
    try:
        import mmcv.ops  # noqa: F401
        assert info['MMCV compiled ops'] == 'available'
    except ImportError:
        assert info['MMCV compiled ops'].startswith('unavailable')


# ----------------------------------------------------------------- in-process


@pytest.fixture(scope='module')
def train_py() -> ModuleType:
    return load_tool('train.py')


@pytest.fixture(scope='module')
def test_py() -> ModuleType:
    return load_tool('test.py')


def _merge(tool: ModuleType, argv: List[str],
           monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv('LOCAL_RANK', '0')
    args = tool.parse_args(argv)
    return tool.merge_args(Config.fromfile(args.config), args)


def test_train_resume_and_work_dir_semantics(
        train_py: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _merge(train_py, [str(CONFIG)], monkeypatch)
    assert cfg.resume is False and cfg.load_from is None
    assert cfg.work_dir == osp.join('./work_dirs', 'tiny_cls_config')
    assert cfg.launcher == 'none'

    cfg = _merge(train_py, [str(CONFIG), '--resume'], monkeypatch)
    assert cfg.resume is True and cfg.load_from is None

    cfg = _merge(train_py, [str(CONFIG), '--resume', 'a/iter_2.pth'], monkeypatch)
    assert cfg.resume is True and cfg.load_from == 'a/iter_2.pth'

    cfg = _merge(train_py, [str(CONFIG), '--no-validate', '--work-dir', 'w'],
                 monkeypatch)
    assert cfg.work_dir == 'w'
    assert cfg.val_cfg is None and cfg.val_dataloader is None


def test_train_local_rank_sets_env(train_py: ModuleType,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    train_py.parse_args([str(CONFIG), '--local-rank', '3'])
    assert os.environ['LOCAL_RANK'] == '3'
    monkeypatch.setenv('LOCAL_RANK', '1')  # torchrun's value wins
    train_py.parse_args([str(CONFIG), '--local_rank', '5'])
    assert os.environ['LOCAL_RANK'] == '1'


def test_train_auto_scale_lr(train_py: ModuleType,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _merge(train_py, [str(CONFIG), '--auto-scale-lr'], monkeypatch)
    assert cfg.auto_scale_lr.enable is True
    args = train_py.parse_args([str(CONFIG), '--auto-scale-lr'])
    cfg = Config.fromfile(str(CONFIG))
    cfg.pop('auto_scale_lr')
    with pytest.raises(RuntimeError, match='auto_scale_lr'):
        train_py.merge_args(cfg, args)


def test_train_amp_on_cpu_is_bf16(train_py: ModuleType,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_py, 'get_device', lambda: 'cpu')
    monkeypatch.setattr(train_py, 'cpu_supports_bf16', lambda: True)
    cfg = _merge(train_py, [str(CONFIG), '--amp'], monkeypatch)
    assert cfg.optim_wrapper.type == 'hivit_mm.BF16OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper  # bf16 needs no loss scaler
    # a config made for GPUs (AmpOptimWrapper) also runs bf16 on the CPU
    args = train_py.parse_args([str(CONFIG), '--amp'])
    cfg = Config.fromfile(str(CONFIG))
    cfg.optim_wrapper.update(type='AmpOptimWrapper', loss_scale=512.)
    cfg = train_py.merge_args(cfg, args)
    assert cfg.optim_wrapper.type == 'hivit_mm.BF16OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper


def test_train_amp_on_cpu_without_bf16_fails_clearly(
        train_py: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(train_py, 'get_device', lambda: 'cpu')
    monkeypatch.setattr(train_py, 'cpu_supports_bf16', lambda: False)
    with pytest.raises(RuntimeError, match='this CPU has no bf16 instructions'):
        train_py.main([str(CONFIG), '--amp', '--work-dir', str(tmp_path / 'w')])
    assert not (tmp_path / 'w').exists()  # failed before building anything


def test_unknown_launcher_rejected(train_py: ModuleType,
                                   capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        train_py.parse_args([str(CONFIG), '--launcher', 'k8s'])
    assert exc.value.code == 2
    assert "argument --launcher: invalid choice: 'k8s'" in capsys.readouterr().err


def test_train_amp_with_accelerator(train_py: ModuleType,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_py, 'get_device', lambda: 'cuda')
    cfg = _merge(train_py, [str(CONFIG), '--amp'], monkeypatch)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    args = train_py.parse_args([str(CONFIG), '--amp'])
    cfg = Config.fromfile(str(CONFIG))
    cfg.optim_wrapper.type = 'MyOptimWrapper'
    with pytest.raises(RuntimeError, match='MyOptimWrapper'):
        train_py.merge_args(cfg, args)


def test_train_dataloader_flags(train_py: ModuleType,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    # persistent_workers with num_workers=0 would raise in torch's DataLoader
    cfg = _merge(train_py, [
        str(CONFIG), '--cfg-options', 'train_dataloader.persistent_workers=True'
    ], monkeypatch)
    assert cfg.train_dataloader.persistent_workers is False
    cfg = _merge(train_py, [
        str(CONFIG), '--no-pin-memory', '--cfg-options',
        'val_dataloader.num_workers=2', 'val_dataloader.persistent_workers=True'
    ], monkeypatch)
    assert cfg.val_dataloader.persistent_workers is True
    assert cfg.train_dataloader.pin_memory is False
    assert 'collate_fn' not in cfg.train_dataloader  # no mmpretrain default injected


def test_test_merge_args(test_py: ModuleType,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _merge(test_py, [str(CONFIG), 'ckpt.pth', '--show-dir', 'vis'],
                 monkeypatch)
    assert cfg.load_from == 'ckpt.pth' and cfg.resume is False
    assert cfg.default_hooks.visualization.enable is True
    assert cfg.default_hooks.visualization.out_dir == osp.abspath('vis')
    assert cfg.default_hooks.visualization.interval == 1
    with pytest.raises(SystemExit):
        test_py.parse_args([str(CONFIG), 'ckpt.pth', '--out', 'preds.json'])
    with pytest.raises(RuntimeError, match='visualization hook'):
        _merge(test_py, [
            str(CONFIG), 'ckpt.pth', '--show-dir', 'vis', '--cfg-options',
            'default_hooks.visualization=None'
        ], monkeypatch)


def test_test_never_builds_the_training_set(test_py: ModuleType, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """mmseg's SegVisualizationHook reads ``runner.iter``; with training parts left in
    the config, mmengine would then build the training loop and its dataset."""
    from mmengine.runner import Runner
    seg = REPO / 'tests' / 'data' / 'seg_tiny_upernet_hivit.py'
    cfg = _merge(test_py, [
        str(seg), 'ckpt.pth', '--work-dir', str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/missing'
    ], monkeypatch)
    assert cfg.train_dataloader is None and cfg.train_cfg is None
    assert cfg.optim_wrapper is None and cfg.param_scheduler is None
    runner = Runner.from_cfg(cfg)
    assert runner.iter == 0  # the old config raised FileNotFoundError here


@pytest.mark.parametrize('scope,hook,expected', [
    ('mmdet', 'DetVisualizationHook', dict(draw=True, test_out_dir='vis')),
    ('mmseg', 'SegVisualizationHook', dict(draw=True)),
])
def test_show_dir_hooks_of_other_libraries(test_py: ModuleType, scope: str,
                                          hook: str, expected: dict) -> None:
    pytest.importorskip(f'{scope}.engine')
    # a hivit_mm config inheriting the library's runtime: the hook keeps its scope
    cfg = Config(
        dict(
            default_scope='hivit_mm',
            default_hooks=dict(
                visualization=dict(type=hook, _scope_=scope)),
            visualizer=dict(type='Visualizer', name='visualizer')))
    test_py.trigger_visualization_hook(cfg, 'vis', interval=3)
    if 'test_out_dir' in expected:
        expected['test_out_dir'] = osp.abspath('vis')
    assert cfg.default_hooks.visualization == dict(
        type=hook, _scope_=scope, interval=3, **expected)
    if scope == 'mmseg':  # it saves through the visualizer's backends
        assert cfg.visualizer.save_dir == osp.abspath('vis')


def test_collect_env_reports_missing_library() -> None:
    from hivit_mm.utils.collect_env import library_version
    assert library_version('hivit_mm_no_such_module').startswith('not installed')


def test_collate_fn_of_an_upstream_base_builds() -> None:
    """``_scope_`` (added to every typed dict inherited from ``mmpretrain::``) is not
    passed on to the collate function (hivit_mm.utils.compat, fix 6)."""
    import torch
    from mmengine.runner import Runner

    import hivit_mm  # noqa: F401  (applies the fixes)
    loader = Runner.build_dataloader(
        dict(batch_size=2, dataset=[torch.full((3, ), float(i)) for i in range(4)],
             sampler=dict(type='DefaultSampler', shuffle=False),
             collate_fn=dict(type='default_collate', _scope_='mmpretrain')))
    batch = next(iter(loader))
    assert torch.equal(batch, torch.tensor([[0.] * 3, [1.] * 3]))


@pytest.mark.parametrize('env_cfg', [None, dict(cudnn_benchmark=False)])
def test_setup_cpu_distributed_edits_config(monkeypatch: pytest.MonkeyPatch,
                                            env_cfg: Optional[dict]) -> None:
    from hivit_mm.utils import compat
    started = []
    monkeypatch.setattr(compat.torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(compat.torch_dist, 'is_initialized', lambda: bool(started))
    monkeypatch.setattr(compat.torch_dist, 'init_process_group',
                        lambda backend: started.append(backend))
    cfg = Config(
        dict(
            model=dict(type='M', norm_cfg=dict(type='SyncBN')),
            find_unused_parameters=True,
            sync_bn='torch'))
    if env_cfg is not None:
        cfg.env_cfg = env_cfg
    assert compat.setup_cpu_distributed(cfg, 'none') is False
    assert not started
    assert compat.setup_cpu_distributed(cfg, 'pytorch') is True
    assert started == ['gloo']
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    if env_cfg is not None:
        assert cfg.env_cfg.cudnn_benchmark is False
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=True)
    assert cfg.model.norm_cfg.type == 'BN'
    assert cfg.sync_bn is None
