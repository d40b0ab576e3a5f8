# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Time forward + backward of our ``HiViT`` against mmpretrain's ``HiViT``, in fp32
and bf16.

Both backbones are built from the same architecture (``--arch base`` is the paper's
HiViT-B: 512 wide, depths ``[2, 2, 20]``, 8 heads; mmpretrain gets it as an arch dict,
since its own ``'base'`` is ``[2, 2, 24]``), with the same switches (absolute position
embedding on, relative position bias on unless ``--no-rpe``, no drop-path), and do the
same work: one image batch through every stem and main block, the last main-stage map
``(B, C, H/16, W/16)`` returned, then ``out.float().mean().backward()``. ``bf16`` runs
the forward under bf16 autocast (fp32 parameters and gradients), on every device.
mmpretrain's LayerNorm eps (1e-5) differs from ours (1e-6); this does not affect speed.

Every timed iteration of each (model, dtype) pair runs in turn (interleaved), so load
changes on a shared machine hit all pairs alike; img/s is taken at the median.

Examples::

    python tools/analysis_tools/benchmark_backbone.py --device cpu --batch-size 8
    python tools/analysis_tools/benchmark_backbone.py --device cuda --batch-size 128
"""
import argparse
from typing import List, Optional

import _common as bm
import torch
import torch.nn as nn

ARCHS = {
    # name: (arch dict, image size)
    'tiny': (dict(embed_dims=384, depths=[1, 1, 10], num_heads=6), 224),
    'small': (dict(embed_dims=384, depths=[2, 2, 20], num_heads=6), 224),
    'base': (dict(embed_dims=512, depths=[2, 2, 20], num_heads=8), 224),
    'base24': (dict(embed_dims=512, depths=[2, 2, 24], num_heads=8), 224),
    # --tiny only. mmpretrain tests its out index in the stem loop too (stem modules
    # 0..5 here), so the main stage needs more than 6 blocks.
    'smoke': (dict(embed_dims=64, depths=[1, 1, 7], num_heads=2), 64),
}
MODELS = {'ours': 'hivit_mm.models.HiViT',
          'mmpretrain': 'mmpretrain.models.backbones.HiViT'}


def build(name: str, arch: dict, img_size: int, rpe: bool) -> nn.Module:
    """Our HiViT (``out_indices=(2,)``) or mmpretrain's (its last main block)."""
    if name == 'ours':
        from hivit_mm.models import HiViT
        model = HiViT(arch=dict(arch, depths=tuple(arch['depths'])), img_size=img_size,
                      use_abs_pos_embed=True, use_rel_pos_bias=rpe, out_indices=(2, ))
        model.init_weights()
        return model
    from mmpretrain.models.backbones import HiViT

    # a fresh out_indices list: mmpretrain writes the last block's index into it
    return HiViT(arch=dict(arch, depths=list(arch['depths'])), img_size=img_size,
                 ape=True, rpe=rpe, out_indices=[arch['depths'][-1] - 1])


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='base', choices=sorted(ARCHS))
    parser.add_argument('--no-rpe', action='store_true',
                        help='turn the relative position bias off in both models')
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    bm.add_common_args(parser, warmup=1, iters=5)
    args = parser.parse_args(argv)
    if args.tiny:
        args.arch, args.batch_size, args.iters = 'smoke', 2, 1
    bm.check_args(parser, args)
    args.models = list(dict.fromkeys(args.models))
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmengine.logging import MMLogger
    MMLogger.get_instance('benchmark_backbone', log_level='WARNING')
    device = torch.device(args.device)
    arch, img_size = ARCHS[args.arch]
    rpe = not args.no_rpe
    torch.manual_seed(args.seed)
    images = torch.randn(args.batch_size, 3, img_size, img_size, device=device)
    print(f'HiViT backbone forward+backward: arch {args.arch} {arch}, rpe {rpe}, img '
          f'{img_size}, batch {args.batch_size}, device {device}, threads '
          f'{torch.get_num_threads()}, dtypes {", ".join(args.dtype)}', flush=True)
    models = {}
    for name in args.models:
        torch.manual_seed(args.seed)
        models[name] = build(name, arch, img_size, rpe).to(device)
        models[name].train()  # (mmpretrain's HiViT.train returns None)
    shapes = {}

    def step(key: tuple, _) -> None:
        name, dtype = key
        model = models[name]
        model.zero_grad(set_to_none=True)
        with bm.autocast(device, dtype):
            out = model(images)[-1]
        shapes[name] = tuple(out.shape)
        out.float().mean().backward()

    times = bm.interleaved([(n, d) for n in models for d in args.dtype], step,
                           args.warmup, args.iters, device, clock=args.clock)
    if len(set(shapes.values())) > 1:
        raise RuntimeError(f'the models returned different output shapes: {shapes}')
    rows = [dict(name=name, model=MODELS[name], dtype=dtype, out_shape=list(shapes[name]),
                 params_m=sum(p.numel() for p in models[name].parameters()) / 1e6,
                 **bm.summarize(ts, args.batch_size))
            for (name, dtype), ts in times.items()]
    ratios = {}
    for dtype in args.dtype:
        by_name = {r['name']: r for r in rows if r['dtype'] == dtype}
        if len(by_name) == 2:
            ours, ref = by_name['ours'], by_name['mmpretrain']
            ratios[dtype] = ours['img_per_s'] / ref['img_per_s']
    print('\n' + bm.markdown_table(
        ['model', 'dtype', 'params (M)', 'img/s', 'ms/iter (median)', 'min'],
        [[r['name'], r['dtype'], f'{r["params_m"]:.2f}', f'{r["img_per_s"]:.2f}',
          f'{r["ms_median"]:.1f}', f'{r["ms_min"]:.1f}'] for r in rows]))
    for dtype, ratio in ratios.items():
        print(f'ours / mmpretrain ({dtype}): speed x{ratio:.2f} (img/s ratio)')
    return bm.save_json(dict(
        benchmark='backbone_forward_backward', arch=args.arch, arch_cfg=arch, rpe=rpe,
        img_size=img_size, batch_size=args.batch_size, warmup=args.warmup,
        iters=args.iters, dtypes=args.dtype, env=bm.environment(device), results=rows,
        ratio_ours_over_mmpretrain=ratios), args.json)


if __name__ == '__main__':
    main()
