# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Test (and evaluate) a checkpoint with a config of any OpenMMLab 2.x library.

Shaped like ``tools/test.py`` of mmpretrain, mmdet and mmseg. Checkpoints saved by
mmengine 0.10.7 load on torch >= 2.6 thanks to :mod:`hivit_mm.utils.compat`, and
``--launcher`` also works on machines without a GPU.

Examples::

    python tools/test.py configs/xxx.py work_dirs/xxx/iter_2.pth
    python tools/test.py configs/xxx.py ckpt.pth --out preds.pkl --show-dir vis
    python tools/test.py \
        configs/upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py ckpt.pth \
        --tta  # multi-scale + flip (the config's tta_pipeline)
    bash tools/dist_test.sh configs/xxx.py ckpt.pth 8
"""
import argparse
import inspect
import os.path as osp
from typing import List, Optional

from mmengine.config import Config
from mmengine.evaluator import DumpResults
from mmengine.registry import HOOKS

# Importing hivit_mm applies its fixes for the pinned stack (hivit_mm.utils.compat).
# Our modules register when a config first looks up a `hivit_mm.X` type (the scope's
# registries import them; see hivit_mm/registry.py); no import here is needed for that.
from hivit_mm.utils.cli import build_runner, merge_common_args, parse_tool_args
from hivit_mm.utils.compat import finish_cpu_distributed, setup_cpu_distributed


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The tool's arguments, then the common ones
    (:func:`hivit_mm.utils.cli.parse_tool_args`), parsed from ``argv`` (without the
    program name; defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description='Test (and eval) a model with a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump the predictions to a pickle file (.pkl or .pickle) for '
        'offline evaluation')
    parser.add_argument(
        '--show-dir',
        help='directory (relative to the current one) where painted images '
        "will be saved; enables the visualization hook of the config's "
        'library')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='with --show-dir, paint every `interval`-th sample (mmpretrain) '
        'or batch (mmseg); mmdet paints every test image')
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's `tta_pipeline` becomes the test "
        "pipeline and its `tta_model` wraps the model (e.g. the ADE20K 640 config's "
        'multi-scale + flip protocol)')
    args = parse_tool_args(parser, argv)
    if args.interval < 1:
        parser.error(f'--interval must be >= 1, got {args.interval}')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must name a .pkl or .pickle file, got {args.out!r}')
    return args


def trigger_visualization_hook(cfg: Config,
                               show_dir: str,
                               interval: int = 1) -> Config:
    """Make the config's visualization hook save painted test images.

    Works for the hooks of mmdet (``DetVisualizationHook``: ``draw``,
    ``test_out_dir``), mmpretrain (``VisualizationHook``: ``enable``, ``out_dir``)
    and mmseg (``SegVisualizationHook``: ``draw``; it saves through the visualizer,
    whose ``save_dir`` is set instead), or any hook with these arguments. The
    images go to ``show_dir`` relative to the current directory for all of them
    (mmdet's own script puts them under ``work_dir/timestamp/``, and its hook nests
    that path again on every iteration for a relative ``test_out_dir``).

    Args:
        cfg (Config): The config; edited in place.
        show_dir (str): Where the images go.
        interval (int): Paint every ``interval``-th sample or batch, for hooks that
            take an ``interval``. Defaults to 1.

    Returns:
        Config: ``cfg``.

    Raises:
        RuntimeError: The config has no ``default_hooks.visualization``, or its
            type cannot be resolved.
    """
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    if not hook:
        raise RuntimeError(
            '--show-dir needs a visualization hook in `default_hooks` of the '
            "config, e.g. visualization=dict(type='DetVisualizationHook') "
            "(mmdet), dict(type='SegVisualizationHook') (mmseg) or "
            "dict(type='VisualizationHook') (mmpretrain).")
    hook_type = hook.get('type')
    # an inherited base config (`mmdet::...`) tags its entries with `_scope_`
    scope = hook.get('_scope_') or cfg.get('default_scope')
    if inspect.isclass(hook_type):
        hook_cls = hook_type
    else:
        with HOOKS.switch_scope_and_registry(scope) as registry:
            hook_cls = registry.get(hook_type)
    if hook_cls is None:
        raise RuntimeError(
            f'--show-dir: cannot find the visualization hook {hook_type!r} '
            f'(scope {scope!r}).')
    params = inspect.signature(hook_cls.__init__).parameters
    show_dir = osp.abspath(show_dir)
    if 'draw' in params:
        hook['draw'] = True
    if 'enable' in params:
        hook['enable'] = True
    if 'interval' in params:
        hook['interval'] = interval
    if 'test_out_dir' in params:
        hook['test_out_dir'] = show_dir
    elif 'out_dir' in params:
        hook['out_dir'] = show_dir
    else:  # e.g. mmseg: the visualizer's backends save the images
        visualizer = cfg.get('visualizer')
        if not visualizer:
            raise RuntimeError(
                f'--show-dir: {hook_cls.__name__} saves through the visualizer, '
                'but the config has no `visualizer`.')
        visualizer['save_dir'] = show_dir
        visualizer.setdefault('vis_backends', [dict(type='LocalVisBackend')])
    return cfg


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the :func:`parse_args` output into ``cfg`` (loaded from ``args.config``,
    edited in place and returned): the common arguments, the checkpoint, and no
    training parts."""
    merge_common_args(cfg, args)

    cfg.load_from = args.checkpoint
    cfg.resume = False
    # A test never trains. Without the training parts, hooks that read `runner.iter`
    # (mmseg's SegVisualizationHook) no longer make mmengine build the training loop and
    # its dataset, which need not exist where the model is tested.
    cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = cfg.param_scheduler = None

    if args.show_dir is not None:
        trigger_visualization_hook(cfg, args.show_dir, args.interval)
    if args.tta:
        use_tta(cfg)
    return cfg


def use_tta(cfg: Config) -> Config:
    """Switch the test to the config's test-time augmentation, as the ``--tta`` of
    mmpretrain's, mmdet's and mmseg's ``tools/test.py``.

    The test dataset's pipeline becomes ``cfg.tta_pipeline`` (typically a
    ``TestTimeAug`` of resizes x flips), and ``cfg.tta_model`` (e.g. mmseg's
    ``SegTTAModel``, which averages the class probabilities of the augmented views)
    wraps ``cfg.model`` as its ``module``.

    Args:
        cfg (Config): The config; edited in place.

    Returns:
        Config: ``cfg``.

    Raises:
        RuntimeError: The config has no ``tta_pipeline`` or no ``tta_model``.
    """
    missing = [key for key in ('tta_pipeline', 'tta_model') if not cfg.get(key)]
    if missing:
        raise RuntimeError(
            f'--tta needs {" and ".join(missing)} in the config (e.g. '
            'configs/upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py '
            'defines both)')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    return cfg


def main(argv: Optional[List[str]] = None) -> None:
    """Evaluate the checkpoint on the config's test set (``argv`` as for
    :func:`parse_args`)."""
    args = parse_args(argv)
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = merge_args(Config.fromfile(args.config), args)

    cpu_dist = setup_cpu_distributed(cfg, args.launcher)

    runner = build_runner(cfg)

    # add `DumpResults` dummy metric
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))

    runner.test()
    finish_cpu_distributed(cpu_dist)


if __name__ == '__main__':
    main()
