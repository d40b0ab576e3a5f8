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

``--img-size`` is the input size (pixels) the position tables were made for, recorded in
the output (default 224, mmpretrain's default).

Only convert checkpoints you trust: they are unpickled (``weights_only=False``).
"""
from typing import List, Optional

from mmpretrain.models.backbones import HiViT as MMPretrainHiViT

from hivit_mm.models.convert_hivit import convert_mmpretrain_hivit
from hivit_mm.utils.cli import parse_hivit_converter_args, run_hivit_converter

ARCHS = ('tiny', 'small', 'base', 'large')  # mmpretrain's long names


def parse_args(argv: Optional[List[str]] = None):
    """``src``, ``dst`` and ``depths`` from ``argv`` (default ``sys.argv[1:]``)."""
    return parse_hivit_converter_args(
        argv, __doc__.splitlines()[0], 'mmpretrain',
        {name: MMPretrainHiViT.arch_zoo[name]['depths'] for name in ARCHS},
        "mmpretrain arch name (its 'base' is depths 2 2 24)")


def main(argv: Optional[List[str]] = None) -> None:
    """Load, convert, save, and print the key count."""
    run_hivit_converter(parse_args(argv), convert_mmpretrain_hivit, 'mmpretrain')


if __name__ == '__main__':
    main()
