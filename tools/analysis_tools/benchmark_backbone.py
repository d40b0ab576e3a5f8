# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Time forward + backward of our ``HiViT`` against mmpretrain's ``HiViT``.

Both backbones are built from the same architecture (``--arch base`` is the paper's
HiViT-B: 512 wide, depths ``[2, 2, 20]``, 8 heads; mmpretrain gets it as an arch *dict*,
since its own ``'base'`` is ``[2, 2, 24]``), with the same switches (absolute position
embedding on, relative position bias on unless ``--no-rpe``, no drop-path), and do the
same work: one image batch through every stem and main block, the last main-stage map
returned as ``(B, C, H/16, W/16)`` (ours with ``out_indices=(2,)``, mmpretrain with its
last main-block index), then ``out.float().mean().backward()``.

Precision: fp32 on CPU, bf16 autocast on CUDA (parameters and gradients stay fp32).
mmpretrain's LayerNorm eps (1e-5) differs from ours (1e-6); this does not affect speed.

Each model runs ``--warmup`` untimed iterations, then ``--iters`` timed ones (each one
synchronised on CUDA); the table gives img/s at the median iteration time, the median,
mean and min ms/iter (the min is the steadiest figure on a shared machine) and, on
CUDA, the peak allocated memory (``max_memory_allocated`` after a reset; parameters and
gradients included), then the ratio ours / mmpretrain. ``--interleave`` builds both
models first and alternates their timed iterations, so that a load change on a shared
machine hits both alike (peak memory is then not measured).

Examples::

    # CPU, 2 threads, batch 8 (the project's baseline setting)
    python tools/analysis_tools/benchmark_backbone.py --device cpu --batch-size 8 \\
        --threads 2 --json work_dirs/bench_backbone_cpu.json
    # GPU (bf16 autocast), larger batch
    python tools/analysis_tools/benchmark_backbone.py --batch-size 128
"""
import argparse
import os.path as osp
import sys
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, REPO)

from hivit_mm.utils import benchmark as bm  # noqa: E402

ARCHS = {
    # name: (arch dict, image size)
    'tiny': (dict(embed_dims=384, depths=[1, 1, 10], num_heads=6), 224),
    'small': (dict(embed_dims=384, depths=[2, 2, 20], num_heads=6), 224),
    'base': (dict(embed_dims=512, depths=[2, 2, 20], num_heads=8), 224),
    'base24': (dict(embed_dims=512, depths=[2, 2, 24], num_heads=8), 224),
    # smoke test only (--tiny): a few seconds on a CPU. mmpretrain tests its out index
    # in the stem loop too (stem modules 0..5 here), so the main stage needs more than
    # 6 blocks or its last-block index selects a stem module.
    'smoke': (dict(embed_dims=64, depths=[1, 1, 7], num_heads=2), 64),
}
WARMUP, ITERS = (1, 10), (5, 50)  # default iterations per model: (CPU, CUDA)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Forward+backward speed of hivit_mm HiViT vs mmpretrain HiViT '
        'at equal architecture')
    parser.add_argument('--arch', default='base', choices=sorted(ARCHS),
                        help='architecture for both models (default: base = '
                        '512, [2, 2, 20], 8 heads, the paper\'s HiViT-B)')
    parser.add_argument('--img-size', type=int, default=None,
                        help='input side in pixels, a multiple of 16 (default: 224; '
                        '64 with --tiny)')
    parser.add_argument('--no-rpe', action='store_true',
                        help='turn the relative position bias off in both models')
    parser.add_argument('--models', nargs='+', default=['ours', 'mmpretrain'],
                        choices=['ours', 'mmpretrain'], help='subset to run')
    bm.add_common_args(
        parser, unit='iterations', warmup=WARMUP, iters=ITERS,
        tiny_help='smoke mode: tiny arch, 64 px, batch 2, 1 warm-up and 1 timed '
        'iteration (for tests; figures are meaningless)')
    args = parser.parse_args(argv)
    if args.tiny:
        args.arch = 'smoke'
        args.img_size = args.img_size or ARCHS['smoke'][1]
        args.batch_size = 2
        args.warmup = 1 if args.warmup is None else args.warmup
        args.iters = 1 if args.iters is None else args.iters
    if args.img_size is None:
        args.img_size = ARCHS[args.arch][1]
    if args.img_size % 16:
        parser.error(f'--img-size must be a multiple of 16, got {args.img_size}')
    bm.resolve_common_args(parser, args, warmup=WARMUP, iters=ITERS)
    args.models = list(dict.fromkeys(args.models))
    return args


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------
def build_ours(arch: dict, img_size: int, rpe: bool) -> nn.Module:
    from hivit_mm.models import HiViT
    model = HiViT(
        arch=dict(arch, depths=tuple(arch['depths'])),
        img_size=img_size,
        use_abs_pos_embed=True,
        use_rel_pos_bias=rpe,
        out_indices=(2, ))
    model.init_weights()
    return model


def build_mmpretrain(arch: dict, img_size: int, rpe: bool) -> nn.Module:
    from mmpretrain.models.backbones import HiViT as MMPretrainHiViT
    # A fresh list: mmpretrain overwrites out_indices[-1] in place with the last main
    # block (its default is a shared mutable list), so the forward returns that map.
    model = MMPretrainHiViT(
        arch=dict(embed_dims=arch['embed_dims'], depths=list(arch['depths']),
                  num_heads=arch['num_heads']),
        img_size=img_size,
        ape=True,
        rpe=rpe,
        out_indices=[arch['depths'][-1] - 1])
    return model  # initialised in its constructor


MODELS: Dict[str, Callable[[dict, int, bool], nn.Module]] = {
    'ours': build_ours,
    'mmpretrain': build_mmpretrain,
}
DESCRIPTIONS = {
    'ours': 'hivit_mm.models.HiViT',
    'mmpretrain': 'mmpretrain.models.backbones.HiViT',
}


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------
class Runner:
    """One model's training-mode forward + backward on a fixed batch."""

    def __init__(self, model: nn.Module, images: torch.Tensor, autocast: bool) -> None:
        self.model = model
        model.train()  # (some backbones' train() returns None)
        self.images = images
        self.autocast = autocast
        self.out_shape = None
        self.times: List[float] = []  # ms

    def step(self) -> None:
        self.model.zero_grad(set_to_none=True)
        with bm.autocast_context(self.autocast):
            out = self.model(self.images)[-1]
        self.out_shape = tuple(out.shape)
        out.float().mean().backward()

    def timed_step(self) -> None:
        self.times.append(bm.timed_call(self.step, self.images.device)[1])


def time_model(runner: Runner, warmup: int, iters: int) -> Optional[float]:
    """``warmup`` untimed then ``iters`` timed steps; returns the CUDA peak (MiB)."""
    device = runner.images.device
    runner.times += bm.time_steps(runner.step, warmup, iters, device,
                                  before_timed=lambda: bm.reset_peak_memory(device))
    runner.model.zero_grad(set_to_none=True)
    return bm.peak_memory_mib(device)


def summarise(name: str, runner: Runner, peak: Optional[float], batch: int) -> dict:
    return dict(
        name=name,
        model=DESCRIPTIONS[name],
        params_m=bm.count_params_m(runner.model),
        **bm.summarize(runner.times, batch),
        peak_mem_mib=peak,
        out_shape=list(runner.out_shape),
    )


def format_table(rows: List[dict], mem_label: str) -> str:
    head = ['model', 'params (M)', 'img/s', 'ms/iter (median)', 'mean', 'min',
            mem_label]
    body = [
        bm.speed_cells(r) + [bm.format_or_na(r['peak_mem_mib'], '.0f')] for r in rows
    ]
    return bm.markdown_table(head, body)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    device, autocast = bm.setup_run(args, 'benchmark_backbone')
    arch = ARCHS[args.arch][0]
    rpe = not args.no_rpe
    torch.manual_seed(args.seed)
    images = torch.randn(args.batch_size, 3, args.img_size, args.img_size,
                         device=device)

    print(f'HiViT backbone forward+backward: arch {args.arch} {arch}, rpe {rpe}, '
          f'img {args.img_size}, batch {args.batch_size}, '
          f'{bm.settings_text(args, device, autocast)}'
          f'{", iterations interleaved" if args.interleave else ""}', flush=True)

    def build(name: str) -> Runner:
        torch.manual_seed(args.seed)
        return Runner(MODELS[name](arch, args.img_size, rpe).to(device), images,
                      autocast)

    rows = []
    if args.interleave:  # all models at once, timed steps in turn
        runners = {name: build(name) for name in args.models}
        for runner in runners.values():
            for _ in range(args.warmup):
                runner.step()
        for _ in range(args.iters):
            for runner in runners.values():
                runner.timed_step()
        for name, runner in runners.items():
            rows.append(summarise(name, runner, None, args.batch_size))
            print(f'  {name}: {rows[-1]["img_per_s"]:.2f} img/s, output '
                  f'{runner.out_shape}', flush=True)
        del runners
    else:
        for name in args.models:
            runner = build(name)
            peak = time_model(runner, args.warmup, args.iters)
            rows.append(summarise(name, runner, peak, args.batch_size))
            print(f'  {name}: {rows[-1]["img_per_s"]:.2f} img/s, output '
                  f'{runner.out_shape}', flush=True)
            del runner
            bm.free_memory(device)

    by_name = {r['name']: r for r in rows}
    if len({tuple(r['out_shape']) for r in rows}) > 1:
        raise RuntimeError('the models returned different output shapes: '
                           f'{[(r["name"], r["out_shape"]) for r in rows]}')
    if len({r['params_m'] for r in rows}) > 1:
        print('WARNING: parameter counts differ: '
              f'{[(r["name"], r["params_m"]) for r in rows]}')
    mem_label = 'peak mem (MiB)' if device.type == 'cuda' else 'peak mem'
    print()
    print(format_table(rows, mem_label))
    ratio = None
    if 'ours' in by_name and 'mmpretrain' in by_name:
        ours, ref = by_name['ours'], by_name['mmpretrain']
        ratio = dict(speed=ours['img_per_s'] / ref['img_per_s'])
        if ours['peak_mem_mib'] and ref['peak_mem_mib']:
            ratio['memory'] = ours['peak_mem_mib'] / ref['peak_mem_mib']
        msg = f'ours / mmpretrain: speed x{ratio["speed"]:.2f} (img/s ratio)'
        if 'memory' in ratio:
            msg += f', peak memory x{ratio["memory"]:.2f}'
        print(msg)
    result = dict(
        benchmark='backbone_forward_backward',
        arch=args.arch,
        arch_cfg=arch,
        rpe=rpe,
        img_size=args.img_size,
        **bm.run_settings(args, autocast),
        env=bm.environment(device),
        results=rows,
        ratio_ours_over_mmpretrain=ratio,
    )
    return bm.save_result(result, args.json)


if __name__ == '__main__':
    main()
