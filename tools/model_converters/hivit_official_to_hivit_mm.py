# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Convert an official HiViT checkpoint (zhangxiaosong18/hivit) to hivit_mm.

A thin shell around :func:`hivit_mm.models.convert_hivit.convert_official_hivit`, which
documents the key mapping. The output, ``{'state_dict': ..., 'meta': ...}``, loads with
``strict=True`` into an mmpretrain ``ImageClassifier`` (classification checkpoints) or
``MAE`` (pre-training checkpoints) built from hivit_mm modules, and serves as
``load_from`` or, with ``prefix='backbone.'``, as a backbone ``init_cfg``.

Examples::

    python tools/model_converters/hivit_official_to_hivit_mm.py \\
        mae_hivit_base_1600ep.pth work_dirs/mae_hivit_base_hivit_mm.pth --arch base
    python tools/model_converters/hivit_official_to_hivit_mm.py SRC DST --depths 1 1 10

Only convert checkpoints you trust: they are unpickled (``weights_only=False``).
"""
import argparse
import os.path as osp
from typing import List, Optional

from hivit_mm.models import HiViT
from hivit_mm.models.convert_hivit import convert_official_hivit
from hivit_mm.utils.checkpoint import (check_output_path, load_checkpoint_file,
                                       save_checkpoint_atomic)
from hivit_mm.version import __version__


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments without the program name. Defaults to
            ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: ``src``, ``dst`` and ``depths`` (a tuple of three ints).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        '--arch',
        choices=sorted(HiViT.arch_zoo),
        help='official arch name (base = depths 2 2 20, the released weights)')
    group.add_argument(
        '--depths', type=int, nargs=3, metavar=('D0', 'D1', 'D2'),
        help='depths of a custom arch')
    args = parser.parse_args(argv)
    args.depths = tuple(
        HiViT.arch_zoo[args.arch]['depths'] if args.arch else args.depths)
    return args


def main(argv: Optional[List[str]] = None) -> None:
    """Load, convert, save, and print the key count."""
    args = parse_args(argv)
    check_output_path(args.src, args.dst)
    checkpoint = load_checkpoint_file(args.src)  # verifies a -<8 hex>.pth name's hash
    state_dict = convert_official_hivit(checkpoint, args.depths)
    meta = dict(source=osp.abspath(args.src), source_layout='official',
                depths=list(args.depths), hivit_mm_version=__version__)
    save_checkpoint_atomic(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'converted {len(state_dict)} keys (depths {args.depths}) -> {args.dst}')


if __name__ == '__main__':
    main()
