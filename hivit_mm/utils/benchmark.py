# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Pieces shared by the speed benchmarks in ``tools/analysis_tools``.

``benchmark_backbone.py`` and ``benchmark_pretrain.py`` time training steps of several
models in the same way, and this module holds what they have in common: the command-line
options both accept, the run setup (threads, device, bf16 autocast), synchronised timing
and its statistics (img/s at the median, median / mean / min ms), CUDA peak memory, the
environment record and the markdown table. What each script measures (its models, its
step, its memory figure) stays in the script.

Times are in milliseconds throughout. The module imports only torch when loaded;
mmengine is imported by :func:`setup_run`.
"""
import argparse
import gc
import json
import os
import os.path as osp
import platform
import statistics
import time
from contextlib import nullcontext
from typing import (Any, Callable, ContextManager, Dict, List, Optional, Sequence,
                    Tuple, TypeVar)

import torch
import torch.nn as nn

__all__ = [
    'add_common_args', 'resolve_common_args', 'setup_run', 'autocast_context',
    'dtype_name', 'settings_text', 'run_settings', 'synchronize', 'timed_call',
    'time_steps', 'summarize', 'count_params_m', 'free_memory', 'reset_peak_memory',
    'peak_memory_mib', 'environment', 'format_or_na', 'speed_cells', 'markdown_table',
    'save_result'
]

T = TypeVar('T')
#: Per-device defaults: ``(on CPU, on CUDA)``.
Defaults = Tuple[int, int]


# ----------------------------------------------------------------------------
# Command line and setup
# ----------------------------------------------------------------------------
def add_common_args(parser: argparse.ArgumentParser,
                    *,
                    unit: str,
                    warmup: Defaults,
                    iters: Defaults,
                    tiny_help: str,
                    batch_size: Optional[int] = 8,
                    batch_size_help: Optional[str] = None) -> None:
    """Add the options every benchmark accepts.

    They are ``--batch-size``, ``--warmup``, ``--iters``, ``--device``, ``--threads``,
    ``--fp32``, ``--interleave``, ``--tiny``, ``--seed`` and ``--json``. ``--warmup``,
    ``--iters``, ``--device`` and ``--threads`` default to None, to be filled in by
    :func:`resolve_common_args`.

    Args:
        parser: The parser to add to.
        unit: What one timed call is, in the plural (``'iterations'``, ``'steps'``);
            used in the help texts.
        warmup: Default untimed calls per model, ``(on CPU, on CUDA)`` (help text only).
        iters: Default timed calls per model, ``(on CPU, on CUDA)`` (help text only).
        tiny_help: Help text of ``--tiny`` (what the smoke mode shrinks).
        batch_size: Default of ``--batch-size`` (None: resolved by the caller).
        batch_size_help: Help text of ``--batch-size``.
    """
    parser.add_argument('--batch-size', type=int, default=batch_size,
                        help=batch_size_help)
    parser.add_argument('--warmup', type=int, default=None,
                        help=f'untimed {unit} per model (default: {warmup[0]} on CPU, '
                        f'{warmup[1]} on CUDA)')
    parser.add_argument('--iters', type=int, default=None,
                        help=f'timed {unit} per model (default: {iters[0]} on CPU, '
                        f'{iters[1]} on CUDA)')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda[:i] (default: cuda if available)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: 2 on CPU, unchanged on '
                        'CUDA)')
    parser.add_argument('--fp32', action='store_true', help='no bf16 autocast on CUDA')
    parser.add_argument('--interleave', action='store_true',
                        help=f'build all models first and time their {unit} in turn '
                        '(fairer timings on a shared machine; no memory figures)')
    parser.add_argument('--tiny', action='store_true', help=tiny_help)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', default=None, help='write the results to this file')


def resolve_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace,
                        *, warmup: Defaults, iters: Defaults) -> bool:
    """Fill in the device-dependent defaults of the common options and check them.

    ``--device`` becomes ``cuda`` if available, else ``cpu``; ``--warmup`` and
    ``--iters`` take their per-device defaults where still None; ``--threads`` becomes 2
    on CPU. Calls ``parser.error`` unless ``iters >= 1``, ``batch_size >= 1`` and
    ``warmup >= 0``.

    Args:
        parser: The parser (for its error exit).
        args: The parsed options, changed in place.
        warmup: Default untimed calls per model, ``(on CPU, on CUDA)``.
        iters: Default timed calls per model, ``(on CPU, on CUDA)``.

    Returns:
        bool: Whether the device is a CUDA device.
    """
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    cuda = args.device.startswith('cuda')
    if args.warmup is None:
        args.warmup = warmup[cuda]
    if args.iters is None:
        args.iters = iters[cuda]
    if args.iters < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error('--iters and --batch-size must be >= 1, --warmup >= 0')
    if args.threads is None and not cuda:
        args.threads = 2
    return cuda


def setup_run(args: argparse.Namespace, logger_name: str) -> Tuple[torch.device, bool]:
    """Quiet mmengine's logging, set the thread count and pick the device.

    Args:
        args: Options resolved by :func:`resolve_common_args`.
        logger_name: Name of the (warning-level) mmengine logger to create; it becomes
            the current one, so that ``init_weights`` does not log every parameter.

    Returns:
        tuple: The ``torch.device``, and whether to run under bf16 autocast (CUDA
        without ``--fp32``).
    """
    from mmengine.logging import MMLogger
    MMLogger.get_instance(logger_name, log_level='WARNING')
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    return device, device.type == 'cuda' and not args.fp32


def autocast_context(enabled: bool) -> ContextManager:
    """bf16 autocast on CUDA if ``enabled``, else a context that does nothing."""
    return torch.autocast('cuda', dtype=torch.bfloat16) if enabled else nullcontext()


def dtype_name(autocast: bool) -> str:
    """The precision as recorded in the JSON: ``'bf16-autocast'`` or ``'fp32'``."""
    return 'bf16-autocast' if autocast else 'fp32'


def settings_text(args: argparse.Namespace, device: torch.device,
                  autocast: bool) -> str:
    """The run settings for a benchmark's first line.

    Args:
        args: Options resolved by :func:`resolve_common_args`.
        device: The device of the run.
        autocast: Whether the run uses bf16 autocast.

    Returns:
        str: e.g. ``'device cpu, dtype fp32, threads 2, warmup 1, iters 5'``.
    """
    return (f'device {device}, dtype {dtype_name(autocast).replace("-", " ")}, '
            f'threads {torch.get_num_threads()}, warmup {args.warmup}, '
            f'iters {args.iters}')


def run_settings(args: argparse.Namespace, autocast: bool,
                 **extra: Any) -> Dict[str, Any]:
    """The run settings as recorded in a benchmark's JSON document.

    Args:
        args: Options resolved by :func:`resolve_common_args`.
        autocast: Whether the run uses bf16 autocast.
        **extra: Further settings of the benchmark, recorded after ``iters``.

    Returns:
        dict: ``batch_size``, ``warmup``, ``iters``, the ``extra`` ones,
        ``interleaved`` and ``dtype`` (:func:`dtype_name`), in that order.
    """
    return dict(
        batch_size=args.batch_size,
        warmup=args.warmup,
        iters=args.iters,
        **extra,
        interleaved=args.interleave,
        dtype=dtype_name(autocast))


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    """Wait for the queued work of ``device`` (CUDA only; a no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed_call(fn: Callable[[], T], device: torch.device) -> Tuple[T, float]:
    """Call ``fn`` between two synchronisations of ``device``.

    Args:
        fn: What to time, without arguments.
        device: The device ``fn`` runs on.

    Returns:
        tuple: What ``fn`` returned, and the wall time of the call in ms.
    """
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, 1e3 * (time.perf_counter() - t0)


def time_steps(step_fn: Callable[[], Any],
               warmup: int,
               iters: int,
               device: torch.device,
               before_timed: Optional[Callable[[], Any]] = None) -> List[float]:
    """``warmup`` untimed calls of ``step_fn``, then ``iters`` timed ones.

    Args:
        step_fn: One step, without arguments.
        warmup: Untimed calls first.
        iters: Timed calls, each one synchronised (:func:`timed_call`).
        device: The device ``step_fn`` runs on.
        before_timed: Called once after the warm-up has finished on the device and
            before the first timed call (e.g. :func:`reset_peak_memory`).

    Returns:
        list: The ``iters`` step times in ms.
    """
    for _ in range(warmup):
        step_fn()
    synchronize(device)
    if before_timed is not None:
        before_timed()
    return [timed_call(step_fn, device)[1] for _ in range(iters)]


def summarize(times_ms: Sequence[float], batch: int) -> Dict[str, Any]:
    """Statistics of a model's step times, as the benchmarks report them.

    Args:
        times_ms: Step times in ms (at least one).
        batch: Images per step.

    Returns:
        dict: ``img_per_s`` (at the median step time), ``ms_median``, ``ms_mean``,
        ``ms_min`` and ``ms_all`` (every time, rounded to the µs), in that order.
    """
    med = statistics.median(times_ms)
    return dict(
        img_per_s=1e3 * batch / med,
        ms_median=med,
        ms_mean=statistics.fmean(times_ms),
        ms_min=min(times_ms),
        ms_all=[round(t, 3) for t in times_ms],
    )


def count_params_m(model: nn.Module) -> float:
    """Parameters of ``model`` in millions, rounded to 3 decimals."""
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 3)


# ----------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------
def free_memory(device: torch.device) -> None:
    """Collect garbage and, on CUDA, return the allocator's cached blocks."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def reset_peak_memory(device: torch.device) -> int:
    """Start a new CUDA peak-memory span.

    Returns:
        int: The bytes allocated on ``device`` now (the span's base); 0 on CPU.
    """
    if device.type != 'cuda':
        return 0
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def peak_memory_mib(device: torch.device, base: int = 0) -> Optional[float]:
    """CUDA ``max_memory_allocated`` since the last reset, minus ``base``, in MiB.

    Returns:
        float, optional: The peak, or None on CPU.
    """
    if device.type != 'cuda':
        return None
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def environment(device: torch.device) -> Dict[str, Any]:
    """Versions, device and CPU of this run (the JSON's ``env``).

    Returns:
        dict: ``torch``, ``python``, ``device``, ``threads``, ``cpu``, ``cpu_count``
        and, on CUDA, ``device_name``.
    """
    env = dict(
        torch=torch.__version__,
        python=platform.python_version(),
        device=str(device),
        threads=torch.get_num_threads(),
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
    )
    if device.type == 'cuda':
        env['device_name'] = torch.cuda.get_device_name(device)
    return env


def format_or_na(value: Optional[float], spec: str) -> str:
    """``format(value, spec)``, or ``'n/a'`` if ``value`` is None."""
    return 'n/a' if value is None else format(value, spec)


def speed_cells(row: Dict[str, Any]) -> List[str]:
    """The first cells of a table row: name, params (M), img/s, median, mean and min ms.

    Args:
        row: A result with ``name``, ``params_m`` and the fields of :func:`summarize`.
    """
    return [
        row['name'], f'{row["params_m"]:.2f}', f'{row["img_per_s"]:.2f}',
        f'{row["ms_median"]:.1f}', f'{row["ms_mean"]:.1f}', f'{row["ms_min"]:.1f}'
    ]


def markdown_table(head: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table with padded columns.

    Args:
        head: The header cells.
        rows: The body rows, as many cells each as ``head``.

    Returns:
        str: The header line, the separator line and a line per row, without a final
        newline.
    """
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def line(cells: Sequence[Any]) -> str:
        return '| ' + ' | '.join(str(c).ljust(w) for c, w in zip(cells, widths)) + ' |'

    sep = '|-' + '-|-'.join('-' * w for w in widths) + '-|'
    return '\n'.join([line(head), sep] + [line(r) for r in rows])


def save_result(result: Dict[str, Any], path: Optional[str]) -> Dict[str, Any]:
    """Write ``result`` to ``path`` as indented JSON, if a path is given, and say so.

    Args:
        result: The benchmark's result document.
        path: The file to write (its folder is created if needed), or None.

    Returns:
        dict: ``result`` itself.
    """
    if path:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'results written to {path}')
    return result
