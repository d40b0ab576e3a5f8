# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""What the command-line tools share.

``tools/train.py`` and ``tools/test.py`` are shaped like those of mmpretrain, mmdet and
mmseg; the parts those scripts have in common are defined once here: the arguments
``--cfg-options``, ``--launcher`` and ``--local_rank`` (:func:`parse_tool_args`), their
merge into the config with the work directory (:func:`merge_common_args`), and the
runner (:func:`build_runner`). The two HiViT converters of ``tools/model_converters/``
share their command line (:func:`parse_hivit_converter_args`) and run
(:func:`run_hivit_converter`).
"""
import argparse
import os
import os.path as osp
from functools import partial
from typing import Callable, List, Mapping, Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from hivit_mm.utils.checkpoint import convert_checkpoint_file

__all__ = [
    'LAUNCHERS', 'parse_tool_args', 'merge_common_args', 'build_runner',
    'parse_hivit_converter_args', 'run_hivit_converter'
]

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def parse_tool_args(parser: argparse.ArgumentParser,
                    argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Add the common arguments to a tool's parser, parse, and export ``LOCAL_RANK``.

    Args:
        parser (argparse.ArgumentParser): The tool's own arguments.
        argv (list[str], optional): Arguments without the program name. Defaults to
            ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch of torch >= 2.0 passes `--local-rank`, older
    # versions `--local_rank`; torchrun passes neither and sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_common_args(cfg: Config, args: argparse.Namespace) -> None:
    """Merge ``--cfg-options``, ``--launcher`` and ``--work-dir`` into ``cfg`` (in
    place). The work directory is, by priority, ``--work-dir``, the config's
    ``work_dir``, or ``./work_dirs/<config name>``."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def build_runner(cfg: Config) -> Runner:
    """mmengine's ``Runner``, or the registered ``runner_type`` of the config (ours:
    ``hivit_mm.ReliableRunner``)."""
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def parse_hivit_converter_args(argv: Optional[List[str]], description: str, source: str,
                               arch_depths: Mapping[str, Sequence[int]],
                               arch_help: str) -> argparse.Namespace:
    """The command line of a HiViT checkpoint converter: ``src dst``, either
    ``--arch NAME`` or ``--depths D0 D1 D2``, and ``--img-size H [W]`` (pixels the
    position tables were made for, recorded in the output; default 224, the
    release's).

    Args:
        argv (list[str], optional): Arguments without the program name; None:
            ``sys.argv[1:]``.
        description (str): The converter's description.
        source (str): What ``src`` is, for the help.
        arch_depths (Mapping[str, Sequence[int]]): The source's arch names and their
            depths.
        arch_help (str): Help of ``--arch``.

    Returns:
        argparse.Namespace: ``src``, ``dst``, ``depths`` (a tuple of three ints) and
        ``img_size`` (``(H, W)``).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help=f'{source} checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--arch', choices=sorted(arch_depths), help=arch_help)
    group.add_argument(
        '--depths', type=int, nargs=3, metavar=('D0', 'D1', 'D2'),
        help='depths of a custom arch')
    parser.add_argument(
        '--img-size', type=int, nargs='+', default=[224], metavar='PX',
        help='input size (H [W], pixels) the position tables were made for; recorded '
        'in the output so that loading never guesses the grid (default: 224)')
    args = parser.parse_args(argv)
    if len(args.img_size) > 2:
        parser.error('--img-size takes H or H W')
    args.img_size = tuple(args.img_size * (3 - len(args.img_size)))[:2]  # (H, W)
    args.depths = tuple(arch_depths[args.arch] if args.arch else args.depths)
    return args


def run_hivit_converter(args: argparse.Namespace, convert: Callable,
                        source_layout: str) -> None:
    """Convert ``args.src`` to ``args.dst`` with ``convert(checkpoint, depths,
    img_size)`` (:func:`~hivit_mm.utils.checkpoint.convert_checkpoint_file`), print the
    key count.
    """
    state_dict = convert_checkpoint_file(
        args.src, args.dst, partial(convert, depths=args.depths, img_size=args.img_size),
        source_layout=source_layout, depths=list(args.depths),
        img_size=list(args.img_size))
    print(f'converted {len(state_dict)} keys (depths {args.depths}) -> {args.dst}')
