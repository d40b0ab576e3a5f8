# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""What ``benchmark_backbone.py`` and ``benchmark_pretrain.py`` share: the options,
precision, synchronised timing, FLOP counting, the GEMM limit and the report format.

Times are in ms, rates in img/s and GFLOP/s.
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import time
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence

import torch
from torch.utils.flop_counter import (FlopCounterMode, sdpa_backward_flop_count,
                                      sdpa_flop_count)

DTYPES = {'fp32': None, 'bf16': torch.bfloat16}  # autocast dtype
CLOCKS = {'wall': time.perf_counter, 'cpu': time.thread_time}


def add_common_args(parser: argparse.ArgumentParser, *, warmup: int, iters: int,
                    batch_size: int = 8) -> None:
    """``--batch-size --warmup --iters --device --threads --dtype --tiny --seed --json``.

    ``--dtype`` takes one or both of ``fp32`` and ``bf16`` (bf16 autocast, fp32
    parameters, gradients and optimiser state, no loss scaler), on every device.
    """
    parser.add_argument('--batch-size', type=int, default=batch_size)
    parser.add_argument('--warmup', type=int, default=warmup,
                        help=f'untimed steps per model and dtype (default {warmup})')
    parser.add_argument('--iters', type=int, default=iters,
                        help=f'timed steps per model and dtype (default {iters})')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else
                        'cpu', help='cpu or cuda[:i] (default: cuda if available)')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch.set_num_threads on CPU (default 2)')
    parser.add_argument('--dtype', nargs='+', default=list(DTYPES), choices=list(DTYPES),
                        help='precisions, each timed for every model (default: both)')
    parser.add_argument('--tiny', action='store_true',
                        help='smoke mode: tiny models and images (for tests; the '
                        'figures mean nothing)')
    parser.add_argument('--clock', default='wall', choices=list(CLOCKS),
                        help="'wall' (default) or 'cpu': the timing thread's CPU time, "
                        'which a loaded machine distorts far less; with --threads 1 '
                        'on a CPU only (the work then runs on that thread)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the results to this file')


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject impossible counts, set the thread count and de-duplicate ``--dtype``."""
    if args.iters < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error('--iters and --batch-size must be >= 1, --warmup >= 0')
    args.dtype = list(dict.fromkeys(args.dtype))
    if args.clock == 'cpu' and (args.device != 'cpu' or args.threads != 1):
        parser.error('--clock cpu needs --device cpu --threads 1')
    if args.device == 'cpu':
        torch.set_num_threads(args.threads)


def autocast(device: torch.device, dtype: str) -> ContextManager:
    """bf16 autocast on ``device`` for ``'bf16'``, nothing for ``'fp32'``."""
    if DTYPES[dtype] is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, clock: str = 'wall') -> float:
    """Time of ``fn()`` in ms by ``clock`` (:data:`CLOCKS`), between two
    synchronisations of ``device``."""
    now = CLOCKS[clock]
    synchronize(device)
    t0 = now()
    fn()
    synchronize(device)
    return 1e3 * (now() - t0)


def summarize(times_ms: Sequence[float], batch: int) -> Dict[str, Any]:
    """img/s at the median step, median / min ms and every time (ms, rounded)."""
    med = statistics.median(times_ms)
    return dict(img_per_s=1e3 * batch / med, ms_median=med, ms_min=min(times_ms),
                ms_all=[round(t, 3) for t in times_ms])


def _cpu_sdpa_flops(query, key, value, *args, out_val=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward_flops(grad_out, query, key, value, *args, out_val=None,
                             **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def count_flops(fn: Callable[[], Any]) -> int:
    """Matmul, convolution and attention FLOPs of ``fn()`` (torch's ``FlopCounterMode``,
    plus its SDPA formulas for the CPU flash kernel, which torch does not count)."""
    aten = torch.ops.aten
    custom = {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
        _cpu_sdpa_backward_flops,
    }
    with FlopCounterMode(display=False, custom_mapping=custom) as counter:
        fn()
    return counter.get_total_flops()


def gemm_limit_gflops(device: torch.device, dtype: str, reps: int = 5,
                      clock: str = 'wall') -> float:
    """The machine's matmul rate in ``dtype`` (bf16 operands for ``'bf16'``), GFLOP/s:
    the best of ``reps`` timed products of each square size (1024 and 2048 on a CPU,
    8192 on CUDA), after two untimed ones.

    On the 2-core AMD EPYC (AVX-512 BF16, no AMX) of the README this gives ~185-195
    fp32 and ~415-440 bf16 on 2 threads, ~95-100 / ~190-220 on one: bf16's
    ``vdpbf16ps`` does twice the work of an fp32 FMA per instruction, so bf16 can reach
    at most about twice the fp32 rate there. Our layers' own shapes (e.g. ``392 x 512
    @ 512 x 1536``, ``1568 x 2048 @ 2048 x 512``, either operand transposed) reach the
    same rates within the noise, so the square product is a fair limit.
    """
    sizes = (8192, ) if device.type == 'cuda' else (1024, 2048)
    best = 0.
    for n in sizes:
        a, b = (torch.randn(n, n, device=device, dtype=DTYPES[dtype] or torch.float32)
                for _ in range(2))
        for _ in range(2):
            a @ b
        ms = min(timed(lambda: a @ b, device, clock) for _ in range(reps))
        best = max(best, 2 * n**3 / ms / 1e6)
    return best


def interleaved(keys: Sequence[Any],
                step: Callable[[Any, Any], Any],
                warmup: int,
                iters: int,
                device: torch.device,
                prepare: Callable[[Any], Any] = lambda key: None,
                clock: str = 'wall') -> Dict[Any, List[float]]:
    """Run ``step(key, prepare(key))`` for ``warmup`` untimed rounds, then ``iters``
    timed rounds (``prepare`` untimed), every round calling each key once in turn, so
    that load changes on a shared machine hit every key alike.

    Returns:
        dict: ``{key: [ms of each timed step]}``.
    """
    times: Dict[Any, List[float]] = {key: [] for key in keys}
    for _ in range(warmup):
        for key in keys:
            step(key, prepare(key))
    for _ in range(iters):
        for key in keys:
            data = prepare(key)
            times[key].append(timed(lambda: step(key, data), device, clock))
    return times


def environment(device: torch.device) -> Dict[str, Any]:
    env = dict(torch=torch.__version__, python=platform.python_version(),
               device=str(device), threads=torch.get_num_threads(),
               cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count())
    if device.type == 'cuda':
        env['device_name'] = torch.cuda.get_device_name(device)
    else:
        from hivit_mm.engine.amp import cpu_supports_bf16
        env['cpu_native_bf16'] = cpu_supports_bf16()
    return env


def markdown_table(head: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table with padded columns (no final newline)."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def line(cells: Sequence[Any]) -> str:
        return '| ' + ' | '.join(str(c).ljust(w) for c, w in zip(cells, widths)) + ' |'

    return '\n'.join([line(head), '|-' + '-|-'.join('-' * w for w in widths) + '-|'] +
                     [line(r) for r in rows])


def save_json(doc: Dict[str, Any], path: Optional[str]) -> Dict[str, Any]:
    if path:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(doc, f, indent=2)
        print(f'results written to {path}')
    return doc


def fmt(value: Optional[float], spec: str) -> str:
    return 'n/a' if value is None else format(value, spec)


__all__: List[str] = [
    'DTYPES', 'CLOCKS', 'add_common_args', 'check_args', 'autocast', 'synchronize',
    'timed', 'summarize', 'count_flops', 'gemm_limit_gflops', 'interleaved',
    'environment', 'markdown_table', 'save_json', 'fmt'
]
