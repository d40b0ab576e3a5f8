# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Convert weights of mmpretrain's HiViT (bare backbone or full model) to hivit_mm.

A thin shell around :func:`hivit_mm.models.convert_hivit.convert_mmpretrain_hivit`, which
documents the key mapping. The output, ``{'state_dict': ..., 'meta': ...}``, has
``backbone.`` keys (plus the ``neck.``/``head.`` keys of a full model, unchanged).

``--arch`` uses mmpretrain's names, whose ``base`` is depths ``2 2 24`` (iTPN's
HiViT-B), not the paper's ``2 2 20``; build the hivit_mm model with the printed
depths.

Examples::

    python tools/model_converters/mmpretrain_hivit_to_hivit_mm.py SRC DST --arch base
    python tools/model_converters/mmpretrain_hivit_to_hivit_mm.py SRC DST \\
        --depths 1 1 10

Only convert checkpoints you trust: they are unpickled (``weights_only=False``).
"""
import argparse
import os.path as osp
from typing import List, Optional

from mmpretrain.models.backbones import HiViT as MMPretrainHiViT

from hivit_mm.models.convert_hivit import convert_mmpretrain_hivit
from hivit_mm.utils.checkpoint import (check_output_path, load_checkpoint_file,
                                       save_checkpoint_atomic)
from hivit_mm.version import __version__

ARCHS = ('tiny', 'small', 'base', 'large')  # mmpretrain's long names


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments without the program name. Defaults to
            ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: ``src``, ``dst`` and ``depths`` (a tuple of three ints).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='mmpretrain checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        '--arch', choices=ARCHS,
        help="mmpretrain arch name (its 'base' is depths 2 2 24)")
    group.add_argument(
        '--depths', type=int, nargs=3, metavar=('D0', 'D1', 'D2'),
        help='depths of a custom arch')
    args = parser.parse_args(argv)
    args.depths = tuple(MMPretrainHiViT.arch_zoo[args.arch]['depths']
                        if args.arch else args.depths)
    return args


def main(argv: Optional[List[str]] = None) -> None:
    """Load, convert, save, and print the key count."""
    args = parse_args(argv)
    check_output_path(args.src, args.dst)
    checkpoint = load_checkpoint_file(args.src)  # verifies a -<8 hex>.pth name's hash
    state_dict = convert_mmpretrain_hivit(checkpoint, args.depths)
    meta = dict(source=osp.abspath(args.src), source_layout='mmpretrain',
                depths=list(args.depths), hivit_mm_version=__version__)
    save_checkpoint_atomic(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'converted {len(state_dict)} keys (depths {args.depths}) -> {args.dst}')


if __name__ == '__main__':
    main()
