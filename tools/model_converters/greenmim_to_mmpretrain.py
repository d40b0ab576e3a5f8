# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Convert a GreenMIM Swin checkpoint to mmpretrain's SwinTransformer keys.

A thin shell around :mod:`hivit_mm.models.convert_greenmim`, which documents the key
mapping:

* ``--source ours`` (default): a hivit_mm pre-training checkpoint (mmpretrain ``MAE``
  with ``hivit_mm.GreenSwin``); the encoder is kept, the decoder dropped
  (:func:`~hivit_mm.models.convert_greenmim.convert_hivit_mm_greenmim`).
* ``--source official``: a checkpoint of the authors' release (LayneH/GreenMIM), with
  the PatchMerging channel permutation of ``--patch-merging-order`` (``row_first`` for
  the released 2022 checkpoints, ``swin`` for ones trained with the release's code of
  2023) and bias tables for the target ``--window-size``
  (:func:`~hivit_mm.models.convert_greenmim.convert_official_greenmim`).

The output, ``{'state_dict': ..., 'meta': ...}`` with ``backbone.*`` keys, is the
``checkpoint`` of a fine-tuning config's backbone ``init_cfg=dict(type='Pretrained',
prefix='backbone.')`` (``configs/greenmim/benchmarks/``). With ``--keep-decoder`` an
official checkpoint keeps its decoder as ``neck.*`` and loads into the pre-training
model (``configs/greenmim/``) as ``load_from``.

Examples::

    python tools/model_converters/greenmim_to_mmpretrain.py \\
        work_dirs/greenmim_swin-base-w7/epoch_800.pth work_dirs/greenmim_swin-base-w7.pth
    python tools/model_converters/greenmim_to_mmpretrain.py \\
        greenmim_swin_base_w7.pth greenmim_swin_base_w7_mmpretrain.pth --source official
    python tools/model_converters/greenmim_to_mmpretrain.py \\
        greenmim_swin_large_w14.pth out.pth --source official --window-size 14

Only convert checkpoints you trust: they are unpickled (``weights_only=False``).
"""
import argparse
from functools import partial
from typing import List, Optional

from hivit_mm.models.convert_greenmim import (PATCH_MERGING_ORDERS,
                                              convert_hivit_mm_greenmim,
                                              convert_official_greenmim)
from hivit_mm.utils.checkpoint import convert_checkpoint_file


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (list[str], optional): Arguments without the program name. Defaults to
            ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: ``src``, ``dst``, ``source``, ``patch_merging_order``,
        ``window_size`` and ``keep_decoder``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='GreenMIM checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--source', choices=('ours', 'official'), default='ours',
        help='hivit_mm pre-training (ours) or the authors\' release (official)')
    parser.add_argument(
        '--patch-merging-order', choices=sorted(PATCH_MERGING_ORDERS),
        default='row_first',
        help='official only: PatchMerging sub-token order of the checkpoint '
        '(row_first: the released 2022 checkpoints)')
    parser.add_argument(
        '--window-size', type=int, default=None,
        help='official only: window of the target model (default: the largest '
        'window of the checkpoint)')
    parser.add_argument(
        '--keep-decoder', action='store_true',
        help='official only: keep the decoder as neck.* (for the pre-training model)')
    args = parser.parse_args(argv)
    if args.source == 'ours' and (args.window_size is not None or args.keep_decoder
                                  or args.patch_merging_order != 'row_first'):
        parser.error('--patch-merging-order, --window-size and --keep-decoder apply '
                     'to --source official only')
    return args


def main(argv: Optional[List[str]] = None) -> None:
    """Load, convert, save, and print the key count."""
    args = parse_args(argv)
    if args.source == 'ours':
        convert, options = convert_hivit_mm_greenmim, {}
    else:
        options = dict(patch_merging_order=args.patch_merging_order,
                       window_size=args.window_size, keep_decoder=args.keep_decoder)
        convert = partial(convert_official_greenmim, **options)
    state_dict = convert_checkpoint_file(args.src, args.dst, convert,
                                         source_layout=args.source, **options)
    print(f'converted {len(state_dict)} keys ({args.source}) -> {args.dst}')


if __name__ == '__main__':
    main()
