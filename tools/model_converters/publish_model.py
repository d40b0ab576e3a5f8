# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Publish a checkpoint: keep what inference needs, put its hash in the file name.

A thin shell around :func:`hivit_mm.utils.checkpoint.publish_checkpoint`. Writes
``OUT-<first 8 hex of sha256>.pth`` (the OpenMMLab convention) with the state dict and
meta (class names, config, versions) only; the optimizer, schedulers and message hub
are dropped. Every hivit_mm loading path (``init_cfg``, ``load_from``, the converters,
``hivit_mm.apis.init_model``, mmpretrain's ``get_model(..., pretrained=...)``) then
verifies the hash, so a corrupted download stops with an error naming the file.

Example::

    python tools/model_converters/publish_model.py \\
        work_dirs/mae_hivit-base/epoch_1600.pth mae_hivit-base-p16_1600e_in1k.pth
    # -> mae_hivit-base-p16_1600e_in1k-1a2b3c4d.pth
"""
import argparse
from typing import List, Optional

from hivit_mm.utils.checkpoint import publish_checkpoint


def main(argv: Optional[List[str]] = None) -> None:
    """Publish ``IN`` as ``OUT-<hash>.pth`` and print the path written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', metavar='IN', help='training checkpoint (.pth)')
    parser.add_argument('dst', metavar='OUT', help='output name (.pth optional)')
    args = parser.parse_args(argv)
    print(publish_checkpoint(args.src, args.dst))


if __name__ == '__main__':
    main()
