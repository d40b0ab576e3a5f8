# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Generate the synthetic "shapes" datasets (classification, COCO, ADE20K layouts).

Usage: python tools/misc/make_shapes.py OUT_DIR [--seed N] [--num-cls-train N] ...

Every keyword argument of :func:`hivit_mm.datasets.make_shapes` is an option with the
same default; the sets are always rewritten. Prints each dataset root and its counts.
"""
import argparse
import inspect
import json
import os
import os.path as osp
import sys
from typing import List, Optional

from hivit_mm.datasets import make_shapes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line; options mirror the parameters of ``make_shapes``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='folder for cls/, coco/ and ade/')
    for name, param in inspect.signature(make_shapes).parameters.items():
        if name != 'out_dir':
            parser.add_argument(
                '--' + name.replace('_', '-'), type=int, default=param.default,
                help='Defaults to %(default)s.')
    return parser.parse_args(argv)


def summarize(paths: dict) -> List[str]:
    """One line per dataset root: its path and what it holds, read from disk."""
    cls_counts = []
    for split in ('train', 'val'):
        with open(osp.join(paths['cls'], 'meta', f'{split}.txt')) as f:
            cls_counts.append(f'{split} {sum(1 for _ in f)} images')
    coco_counts = []
    for split in ('train', 'val'):
        ann_file = osp.join(paths['coco'], 'annotations', f'instances_{split}.json')
        with open(ann_file) as f:
            coco = json.load(f)
        coco_counts.append(f'{split} {len(coco["images"])} images '
                           f'({len(coco["annotations"])} instances)')
    ade_counts = []
    for split, folder in (('train', 'training'), ('val', 'validation')):
        files = os.listdir(osp.join(paths['ade'], 'images', folder))
        ade_counts.append(f'{split} {sum(f.endswith(".png") for f in files)} images')
    return [
        f'{name:5s} {paths[name]}: {", ".join(counts)}'
        for name, counts in (('cls', cls_counts), ('coco', coco_counts),
                             ('ade', ade_counts))
    ]


def main(argv: Optional[List[str]] = None) -> None:
    """Generate the sets and print their roots and counts."""
    args = vars(parse_args(argv))
    try:
        paths = make_shapes(args.pop('out_dir'), **args)
    except ValueError as error:  # a bad option value: no traceback
        sys.exit(f'make_shapes.py: error: {error}')
    print('\n'.join(summarize(paths)))


if __name__ == '__main__':
    main()
