# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Train a model from a config of any OpenMMLab 2.x library.

Shaped like ``tools/train.py`` of mmpretrain, mmdet and mmseg, and accepts their
configs (``default_scope`` ``mmpretrain``, ``mmdet``, ``mmseg`` or ``hivit_mm``) as
well as ours. On top of the upstream script it applies the fixes of
:mod:`hivit_mm.utils.compat`: mmengine checkpoints load on torch >= 2.6 (``--resume``,
``load_from``) and ``--launcher pytorch|slurm|mpi`` also works on machines without a GPU
(a ``gloo`` process group, e.g. ``bash tools/dist_train.sh CONFIG 2`` on CPUs).

Examples::

    python tools/train.py configs/xxx.py --work-dir work_dirs/xxx
    python tools/train.py configs/xxx.py --resume                  # latest checkpoint
    python tools/train.py configs/xxx.py --resume work_dirs/xxx/iter_2.pth
    python tools/train.py configs/xxx.py --cfg-options train_cfg.max_iters=10
    bash tools/dist_train.sh configs/xxx.py 8 --amp
"""
import argparse
from typing import List, Optional

import torch
from mmengine.config import Config
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

# Importing hivit_mm applies its fixes for the pinned stack (hivit_mm.utils.compat).
# Our modules register when a config first looks up a `hivit_mm.X` type (the scope's
# registries import them; see hivit_mm/registry.py); no import here is needed for that.
from hivit_mm.engine.amp import cpu_supports_bf16
from hivit_mm.utils.cli import build_runner, merge_common_args, parse_tool_args
from hivit_mm.utils.compat import finish_cpu_distributed, setup_cpu_distributed

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
AMP_DEVICES = ('cuda', 'npu', 'mlu', 'musa')  # asserted by AmpOptimWrapper


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The tool's arguments, then the common ones
    (:func:`hivit_mm.utils.cli.parse_tool_args`), parsed from ``argv`` (without the
    program name; defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training (fp16 with a loss scaler '
        'on a GPU, bf16 autocast without one on a CPU with bf16 instructions)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='whether not to evaluate the checkpoint during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='whether to auto scale the learning rate according to the '
        'actual batch size and the original batch size (the config needs '
        '`auto_scale_lr = dict(base_batch_size=...)`).')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='whether to disable the pin_memory option in dataloaders.')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='whether to disable the persistent_workers option in '
        'dataloaders.')
    return parse_tool_args(parser, argv)


def _fix_dataloaders(cfg: Config, args: argparse.Namespace) -> None:
    """Apply ``--no-pin-memory``/``--no-persistent-workers`` to the dataloaders.

    Unlike mmpretrain's script this injects no defaults (mmdet and mmseg configs
    rely on mmengine's ``pseudo_collate``). It also drops ``persistent_workers``
    from a dataloader with ``num_workers=0``, which ``torch.utils.data.DataLoader``
    rejects (e.g. after ``--cfg-options train_dataloader.num_workers=0``).
    """
    for field in DATALOADERS:
        loader = cfg.get(field)
        if not loader:
            continue
        if args.no_pin_memory:
            loader['pin_memory'] = False
        if args.no_persistent_workers:
            loader['persistent_workers'] = False
        if loader.get('persistent_workers') and not loader.get('num_workers', 0):
            print_log(
                f'{field}: persistent_workers=True needs num_workers > 0; '
                'disabling persistent_workers.',
                logger='current')
            loader['persistent_workers'] = False


def _enable_amp(cfg: Config) -> None:
    """``--amp``: mmengine's ``AmpOptimWrapper`` on an accelerator, our
    ``BF16OptimWrapper`` (bf16 autocast, no loss scaler) on a CPU with bf16
    instructions.

    Raises:
        RuntimeError: A CPU without bf16 instructions, or a config whose optimizer
            wrapper is neither ``OptimWrapper`` nor an AMP wrapper.
    """
    device = get_device()
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in ('OptimWrapper', 'AmpOptimWrapper', 'hivit_mm.BF16OptimWrapper'):
        raise RuntimeError('--amp only supports the optimizer wrapper type '
                           f'`OptimWrapper`, but the config uses `{wrapper}`.')
    if device in AMP_DEVICES:
        if wrapper == 'OptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
        return
    if not cpu_supports_bf16():
        raise RuntimeError(
            '--amp on a CPU runs bf16 autocast, but this CPU has no bf16 '
            'instructions (AVX512-BF16, AMX-BF16 or Arm BF16), so bf16 would be '
            'slower than fp32; drop --amp to train in full precision.')
    cfg.optim_wrapper.type = 'hivit_mm.BF16OptimWrapper'
    for key in ('loss_scale', 'dtype', 'use_fsdp'):  # AmpOptimWrapper-only arguments
        cfg.optim_wrapper.pop(key, None)
    print_log('--amp on the CPU: bf16 autocast without a loss scaler '
              '(hivit_mm.BF16OptimWrapper).', logger='current')


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command-line arguments into the config.

    Args:
        cfg (Config): The config loaded from ``args.config``; edited in place.
        args (argparse.Namespace): The output of :func:`parse_args`.

    Returns:
        Config: ``cfg``.

    Raises:
        RuntimeError: ``--amp`` on a machine without a GPU (mmengine's
            ``AmpOptimWrapper`` needs one), ``--amp`` with a custom optimizer
            wrapper, or ``--auto-scale-lr`` with a config that has no
            ``auto_scale_lr.base_batch_size``.
    """
    merge_common_args(cfg, args)

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    # enable automatic-mixed-precision training
    if args.amp:
        _enable_amp(cfg)

    # enable automatically scaling LR
    if args.auto_scale_lr:
        auto_scale_lr = cfg.get('auto_scale_lr')
        if not auto_scale_lr or 'base_batch_size' not in auto_scale_lr:
            raise RuntimeError(
                '--auto-scale-lr needs `auto_scale_lr = dict('
                'base_batch_size=...)` in the config (the total batch size the '
                'learning rate was tuned for); this config has none.')
        cfg.auto_scale_lr.enable = True

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    _fix_dataloaders(cfg, args)
    return cfg


def main(argv: Optional[List[str]] = None) -> None:
    """Train the model described by the config (``argv`` as for :func:`parse_args`)."""
    args = parse_args(argv)
    cfg = merge_args(Config.fromfile(args.config), args)

    cpu_dist = setup_cpu_distributed(cfg, args.launcher)
    # mmengine's `compile` compiles `model.train_step`, optimiser step included, where
    # Dynamo fails on the optimiser's param groups (torch 2.13, mmengine 0.10.7): compile
    # the model's forward instead, with the same options (its backward comes with it).
    compile_cfg = cfg.pop('compile', None)

    runner = build_runner(cfg)
    if compile_cfg:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.forward = torch.compile(
            model.forward, **({} if compile_cfg is True else compile_cfg))
        print_log('The model forward is compiled: the first steps are slow.',
                  logger='current')

    runner.train()
    finish_cpu_distributed(cpu_dist)


if __name__ == '__main__':
    main()
