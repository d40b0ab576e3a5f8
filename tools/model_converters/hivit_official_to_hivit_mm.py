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

``--img-size`` is the input size (pixels) the position tables were made for, recorded in
the output (default 224: every released checkpoint).

Only convert checkpoints you trust: they are unpickled (``weights_only=False``).
"""
from typing import List, Optional

from hivit_mm.models import HiViT
from hivit_mm.models.convert_hivit import convert_official_hivit
from hivit_mm.utils.cli import parse_hivit_converter_args, run_hivit_converter


def parse_args(argv: Optional[List[str]] = None):
    """``src``, ``dst`` and ``depths`` from ``argv`` (default ``sys.argv[1:]``)."""
    return parse_hivit_converter_args(
        argv, __doc__.splitlines()[0], 'official',
        {name: arch['depths'] for name, arch in HiViT.arch_zoo.items()},
        'official arch name (base = depths 2 2 20, the released weights)')


def main(argv: Optional[List[str]] = None) -> None:
    """Load, convert, save, and print the key count."""
    run_hivit_converter(parse_args(argv), convert_official_hivit, 'official')


if __name__ == '__main__':
    main()
