# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Time one masked-image-modelling pre-training step of our models and the upstream
ones, in fp32 and bf16, in one run; the README's speed section comes from here.

A step is mmengine's ``BaseModel.train_step``: the data preprocessor (uint8 ->
normalised float), the algorithm's loss (masking, encoder, decoder, loss), backward, an
AdamW step and ``zero_grad``. ``fp32`` runs it through an ``OptimWrapper``, ``bf16``
through ``hivit_mm.BF16OptimWrapper`` (bf16 autocast around preprocessor and forward,
fp32 parameters, gradients and AdamW state, no loss scaler): the same precision for
every model, on every device. No gradient clipping. AdamW is PyTorch's fused kernel
(``fused=True``, one pass per parameter tensor; ``--adamw`` picks another, the same for
every model): its default on a CPU is the per-tensor loop, which costs ~3x more (0.45
vs 0.15 s of CPU time per step for 85 M parameters, one thread) and is most of a
GreenMIM step's time beyond its matmuls. Training with our configs gets the same by
``optim_wrapper.optimizer.fused=True``.

Models, batch 8 at 224 px unless told otherwise, each built from a config file:

* ``hivit-mae``: ours as shipped,
  ``configs/_base_/models/mae_hivit-base-p16-hifeat.py`` (HiViT-B ``[2, 2, 20]``, stem
  features fused into the decoder input).
* ``hivit-mae-nofuse``: the same without stem fusion: the work of mmpretrain's model.
* ``mmpretrain-maehivit``: mmpretrain ``MAEHiViT`` from its
  ``mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py``, arch ``[2, 2, 20]``.
* ``mmpretrain-maehivit-b24``: the same as shipped (its ``'base'`` is ``[2, 2, 24]``).
* ``mmpretrain-mae-vit``: ``mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py``.
* ``mmpretrain-simmim-swin``: ``simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-
  192px.py`` at 224 px, window 7; masks as ``SimMIMMaskGenerator`` makes them.
* ``greenmim-swin``: ours, ``configs/_base_/models/greenmim_swin-base-w7.py``.

``--tiny`` (for tests) builds ours from ``tests/data/mae_tiny_hivit.py`` and
``tests/data/greenmim_tiny.py`` and shrinks the upstream models to the same width.

Measurements:

* **img/s** at the median of ``--iters`` timed steps after ``--warmup`` untimed ones.
  The steps are interleaved: every round times each (model, dtype) pair once, so load
  changes on a shared machine hit all pairs alike. ``--clock cpu --threads 1`` times
  by the thread's CPU time instead of the wall clock: on a loaded machine the wall
  time of a step grows with the load (10-40x here with four other jobs on 2 cores),
  its CPU time far less (cache and memory-bandwidth contention remain).
* **GFLOP/s**: the FLOPs of one step as ``torch.utils.flop_counter`` counts them
  (matmuls, convolutions, attention; forward and backward) over the median step
  time, and its share of the machine's GEMM limit for that dtype (the best rate of a
  square matmul, measured before and after the timings).
* **attention kernels**: the ``aten::_scaled_dot_product_*`` ops one step calls
  (``..._for_cpu`` is SDPA's CPU flash kernel, ``_efficient`` / ``_flash`` /
  ``_cudnn`` the CUDA ones, ``_math`` its slow fallback; attention computed by
  ``hivit_mm``'s math path shows no such op).
* **peak memory** (``--memory``): each (model, dtype) pair runs alone in a fresh
  process: CUDA ``max_memory_allocated`` since before the model was built, or on a CPU
  the peak resident-set growth over the same span (5 ms sampling; glibc set to map
  every block of 64 KiB or more on its own, :data:`CPU_MALLOC_ENV`, so freed
  activations leave the resident set). **step peak**: the peak of one training step
  above the memory held between steps (parameters and AdamW state; ``zero_grad``
  frees the gradients): activations, temporaries and gradients. At batch 8 the held
  state (12 bytes per parameter, ~1 GiB for ~90 M parameters) is most of the total
  of GreenMIM Swin-B, and GreenMIM's saving, which is in the activations, shows in
  the step peak.
* **claims**: the ratios the README states (:data:`CLAIMS`), with their targets.

``--update-readme`` rewrites the README's speed section from the run.

Examples::

    # the README's figures (CPU, 2 threads): about 10 minutes on 2 cores
    python tools/analysis_tools/benchmark_pretrain.py --device cpu --iters 4 \\
        --memory --update-readme --json work_dirs/bench/pretrain_cpu.json
    # a GPU, batch 64
    python tools/analysis_tools/benchmark_pretrain.py --device cuda --batch-size 64 \\
        --memory --json work_dirs/bench/pretrain_cuda.json
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import tempfile
import threading
from typing import Callable, Dict, List, NamedTuple, Optional

import _common as bm
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
README = osp.join(REPO, 'README.md')
OURS = 'hivit-mae'
SELFSUP_PREPROCESSOR = dict(type='SelfSupDataPreprocessor',
                            mean=[123.675, 116.28, 103.53],
                            std=[58.395, 57.12, 57.375], to_rgb=True)
SIMMIM_MASK = dict(mask_patch_size=32, model_patch_size=4, mask_ratio=0.6)
HIVIT_B = dict(embed_dims=512, depths=[2, 2, 20], num_heads=8)
IMG_SIZE, TINY_IMG_SIZE = 224, 64
MMPRETRAIN_CONFIGS = {
    'maehivit': 'mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py',
    'maevit': 'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    'simmim': 'simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py',
}
#: (statement, numerator, denominator, metric, {dtype: target}); ``speed`` is an img/s
#: ratio (at least the target), ``memory`` a peak-memory ratio (at most the target).
CLAIMS = [
    ('HiViT-MAE-B vs mmpretrain MAEHiViT-B [2,2,20], equal work', 'hivit-mae-nofuse',
     'mmpretrain-maehivit', 'speed', {'fp32': 1.1, 'bf16': 1.3}),
    ('shipped recipe (fused stem) vs mmpretrain MAEHiViT-B [2,2,20]', 'hivit-mae',
     'mmpretrain-maehivit', 'speed', {'bf16': 1.15}),
    ('HiViT-MAE-B vs SimMIM Swin-B', 'hivit-mae-nofuse', 'mmpretrain-simmim-swin',
     'speed', {'fp32': 3., 'bf16': 3.}),
    ('GreenMIM Swin-B vs SimMIM Swin-B', 'greenmim-swin', 'mmpretrain-simmim-swin',
     'speed', {'fp32': 4., 'bf16': 4.}),
    ('GreenMIM Swin-B peak memory / SimMIM Swin-B', 'greenmim-swin',
     'mmpretrain-simmim-swin', 'memory', {'fp32': .4, 'bf16': .4}),
    ('GreenMIM Swin-B step memory / SimMIM Swin-B', 'greenmim-swin',
     'mmpretrain-simmim-swin', 'step_memory', {'fp32': .4, 'bf16': .4}),
]


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------
def _config_model(path: str):
    from mmengine.config import Config
    return copy.deepcopy(Config.fromfile(path).model)


def _mmpretrain_model(key: str):
    """``model`` of an mmpretrain config, with the config's data preprocessor."""
    import mmpretrain
    model = _config_model(osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs',
                                   MMPRETRAIN_CONFIGS[key]))
    if 'data_preprocessor' not in model:  # the Runner merges it the same way
        model.data_preprocessor = copy.deepcopy(SELFSUP_PREPROCESSOR)
    return model


def hivit_mae(tiny: bool, fuse: bool = True):
    model = _config_model(osp.join(
        REPO, 'tests/data/mae_tiny_hivit.py' if tiny else
        'configs/_base_/models/mae_hivit-base-p16-hifeat.py'))
    if not fuse:  # the decoder input is the main-stage token alone: C instead of 7C
        model.backbone.fuse_stem_features = False
        model.neck.embed_dim //= 7
    return model


def _tiny_hivit():
    """Width, depths, heads and decoder of our tiny HiViT-MAE, for the upstream ones."""
    model = hivit_mae(True, fuse=False)
    return model.backbone.arch, model.neck


def mmpretrain_maehivit(tiny: bool, arch='custom'):
    """mmpretrain's MAEHiViT at ``[2, 2, 20]``, or with one of its archs by name."""
    from mmpretrain.models.selfsup.mae import MAEHiViT
    model = _mmpretrain_model('maehivit')
    bb, neck = model.backbone, model.neck
    arch = copy.deepcopy(HIVIT_B) if arch == 'custom' else arch
    if tiny:
        arch, ours = _tiny_hivit()
        arch = dict(arch, depths=list(arch['depths']))
        neck.update({k: ours[k] for k in (
            'num_patches', 'embed_dim', 'decoder_embed_dim', 'decoder_depth',
            'decoder_num_heads')})
        bb.img_size = TINY_IMG_SIZE
    depths = (MAEHiViT.arch_zoo[arch] if isinstance(arch, str) else arch)['depths']
    # a fresh out_indices list: mmpretrain writes into it
    bb.update(arch=arch, out_indices=[depths[-1] - 1])
    return model


def mmpretrain_maevit(tiny: bool):
    model = _mmpretrain_model('maevit')
    if tiny:
        arch, ours = _tiny_hivit()
        width = arch['embed_dims']
        model.backbone.update(img_size=TINY_IMG_SIZE, arch=dict(
            embed_dims=width, num_layers=2, num_heads=arch['num_heads'],
            feedforward_channels=4 * width))
        model.neck.update({k: ours[k] for k in (
            'num_patches', 'decoder_embed_dim', 'decoder_depth', 'decoder_num_heads')},
            embed_dim=width)
    return model


def mmpretrain_simmim(tiny: bool):
    model = _mmpretrain_model('simmim')
    bb = model.backbone
    if tiny:  # stages 16, 8, 4, 2 tokens: window 2 divides them all
        bb.update(arch=dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
                  img_size=TINY_IMG_SIZE)
        bb.stage_cfgs.block_cfgs.window_size = 2
        model.neck.in_channels = 32 * 2**3
    else:  # 224 px, window 7: stages 56, 28, 14, 7 tokens
        bb.img_size = IMG_SIZE
        bb.stage_cfgs.block_cfgs.window_size = 7
    return model


def greenmim_swin(tiny: bool):
    return _config_model(osp.join(
        REPO, 'tests/data/greenmim_tiny.py' if tiny else
        'configs/_base_/models/greenmim_swin-base-w7.py'))


class Spec(NamedTuple):
    title: str
    make_cfg: Callable[[bool], dict]
    simmim_mask: bool = False


SPECS: Dict[str, Spec] = {
    'hivit-mae': Spec('ours HiViT-MAE-B [2,2,20], fused stem features', hivit_mae),
    'hivit-mae-nofuse': Spec('ours HiViT-MAE-B [2,2,20], no stem fusion',
                             lambda tiny: hivit_mae(tiny, fuse=False)),
    'mmpretrain-maehivit': Spec('mmpretrain MAEHiViT-B [2,2,20]', mmpretrain_maehivit),
    'mmpretrain-maehivit-b24': Spec('mmpretrain MAEHiViT-B as shipped ([2,2,24])',
                                    lambda tiny: mmpretrain_maehivit(tiny, 'base')),
    'mmpretrain-mae-vit': Spec('mmpretrain MAE ViT-B/16', mmpretrain_maevit),
    'mmpretrain-simmim-swin': Spec('mmpretrain SimMIM Swin-B, window 7',
                                   mmpretrain_simmim, simmim_mask=True),
    'greenmim-swin': Spec('ours GreenMIM Swin-B, window 7', greenmim_swin),
}


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------
def simmim_masks(batch: int, img_size: int, mask_patch_size: int = 32,
                 model_patch_size: int = 4, mask_ratio: float = 0.6,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Masks as mmpretrain's ``SimMIMMaskGenerator`` makes them, for a batch:
    ``ceil(units * mask_ratio)`` random units, repeated to the token grid.

    Returns:
        torch.Tensor: ``(B, H/p, W/p)`` int64, 1 = masked (p = ``model_patch_size``).
    """
    assert img_size % mask_patch_size == 0 and mask_patch_size % model_patch_size == 0
    side = img_size // mask_patch_size
    scale = mask_patch_size // model_patch_size
    count = int(math.ceil(side * side * mask_ratio))
    masks = torch.zeros(batch, side * side, dtype=torch.int64)
    for i in range(batch):
        masks[i, torch.randperm(side * side, generator=generator)[:count]] = 1
    masks = masks.view(batch, side, side)  # B, units, units
    return masks.repeat_interleave(scale, 1).repeat_interleave(scale, 2)  # B, H/p, W/p


# ----------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------
class Job:
    """One model with its AdamW, a wrapper per dtype, and the timings so far."""

    def __init__(self, name: str, args: argparse.Namespace, device: torch.device):
        from mmengine.optim import OptimWrapper
        from mmpretrain.registry import MODELS

        from hivit_mm.engine import BF16OptimWrapper
        self.name, self.spec, self.device = name, SPECS[name], device
        self.batch_size = args.batch_size
        self.gen = torch.Generator().manual_seed(args.seed)
        torch.manual_seed(args.seed)
        cfg = self.spec.make_cfg(args.tiny)
        self.img_size = cfg.backbone.get('img_size', IMG_SIZE)
        self.model = MODELS.build(cfg)
        self.model.init_weights()
        self.model.to(device).train()
        self.params_m = sum(p.numel() for p in self.model.parameters()) / 1e6
        impl = {'fused': dict(fused=True), 'foreach': dict(foreach=True),
                'loop': dict(foreach=False)}[args.adamw]
        optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad], lr=1.5e-4,
            betas=(0.9, 0.95), weight_decay=0.05, **impl)
        self.wrappers = dict(fp32=OptimWrapper(optimizer),
                             bf16=BF16OptimWrapper(optimizer))
        self.loss: Dict[str, float] = {}

    def batch(self) -> dict:
        from mmpretrain.structures import DataSample
        b, s = self.batch_size, self.img_size
        inputs = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8,
                               generator=self.gen).to(self.device)
        samples = [DataSample() for _ in range(b)]
        if self.spec.simmim_mask:
            for sample, m in zip(samples, simmim_masks(b, s, generator=self.gen,
                                                       **SIMMIM_MASK)):
                sample.set_mask(m.to(self.device))
        return dict(inputs=inputs, data_samples=samples)

    def step(self, dtype: str, data: Optional[dict] = None) -> None:
        log_vars = self.model.train_step(data or self.batch(), self.wrappers[dtype])
        loss = float(torch.as_tensor(log_vars['loss']).detach())
        if not math.isfinite(loss):
            raise FloatingPointError(f'{self.name} ({dtype}): loss is {loss}')
        self.loss[dtype] = loss

    def profile(self, dtype: str) -> Dict:
        """FLOPs of one step and the SDPA ops it calls (``{op name: calls}``)."""
        cpu = torch.profiler.ProfilerActivity.CPU
        with torch.profiler.profile(activities=[cpu]) as p:
            flops = bm.count_flops(lambda: self.step(dtype))
        ops = {e.key: e.count for e in p.key_averages()
               if e.key.startswith('aten::_scaled_dot_product')}
        return dict(flops=flops, attention_ops=ops)


class PeakMemory:
    """Peak memory of a span: CUDA allocated, or CPU resident-set growth (sampled)."""

    def __init__(self, device: torch.device, interval: float = 0.005) -> None:
        import psutil
        self.device, self.interval = device, interval
        self.rss = psutil.Process().memory_info
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss().rss)

    def __enter__(self) -> 'PeakMemory':
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = self.peak = self.rss().rss
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.rss().rss)

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


#: glibc ``malloc`` settings of a CPU memory run: every block of 64 KiB or more is
#: mapped and unmapped on its own and freed heap is returned at once, so the resident
#: set follows the live tensors rather than what the allocator keeps cached (glibc's
#: adaptive mmap threshold otherwise rises to 32 MiB and keeps freed activations).
CPU_MALLOC_ENV = dict(MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0',
                      MALLOC_TOP_PAD_='0')


def measure_memory(name: str, dtype: str, args: argparse.Namespace,
                   device: torch.device) -> Dict[str, float]:
    """Peak memory (MiB) of ``name`` in ``dtype``, in this process (run it in a fresh
    one).

    Returns:
        dict: ``peak_mem_mib``: from before the model is built to the end of
        ``warmup + 2`` training steps (parameters, gradients, AdamW state and
        activations); ``step_mem_mib``: the peak of the last step above what is held
        before it (activations and temporaries: what grows with the batch).
    """
    with PeakMemory(device) as total:
        job = Job(name, args, device)
        for _ in range(args.warmup + 1):
            job.step(dtype)
    data = job.batch()
    with PeakMemory(device) as step:
        job.step(dtype, data)
    peak = max(total.peak, step.peak) - total.base
    return dict(peak_mem_mib=peak / 2**20, step_mem_mib=step.mib)


def memory_in_fresh_process(name: str, dtype: str,
                            args: argparse.Namespace) -> Dict[str, float]:
    env = dict(os.environ, **(CPU_MALLOC_ENV if args.device == 'cpu' else {}))
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'memory.json')
        cmd = [sys.executable, osp.abspath(__file__), '--memory-child', '--json', out,
               '--models', name, '--dtype', dtype, '--device', args.device,
               '--batch-size', str(args.batch_size), '--warmup', str(args.warmup),
               '--threads', str(args.threads), '--seed', str(args.seed),
               '--adamw', args.adamw]
        cmd += ['--tiny'] if args.tiny else []
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env)
        if proc.returncode:
            raise RuntimeError(f'memory run of {name} ({dtype}) failed:\n'
                               f'{proc.stdout[-4000:]}')
        with open(out) as f:
            return json.load(f)


def run(args: argparse.Namespace, device: torch.device) -> List[dict]:
    """Time every (model, dtype) pair interleaved; profile each once; optional memory."""
    jobs = [Job(name, args, device) for name in args.models]
    pairs = [(job, dtype) for job in jobs for dtype in args.dtype]
    times = bm.interleaved(pairs, lambda pair, data: pair[0].step(pair[1], data),
                           args.warmup, args.iters, device,
                           prepare=lambda pair: pair[0].batch(), clock=args.clock)
    rows = []
    for job, dtype in pairs:
        row = dict(name=job.name, model=job.spec.title, dtype=dtype,
                   params_m=round(job.params_m, 3), img_size=job.img_size,
                   **bm.summarize(times[job, dtype], args.batch_size),
                   **job.profile(dtype),
                   loss=job.loss[dtype], peak_mem_mib=None, step_mem_mib=None)
        row['gflop_per_s'] = row['flops'] / row['ms_median'] / 1e6
        rows.append(row)
        print(f'  {job.name} {dtype}: {row["img_per_s"]:.2f} img/s, '
              f'{row["gflop_per_s"]:.0f} GFLOP/s, loss {row["loss"]:.4f}', flush=True)
    del jobs, pairs
    if args.memory is not None:
        for row in rows:
            if args.memory and row['name'] not in args.memory:
                continue
            row.update(memory_in_fresh_process(row['name'], row['dtype'], args))
            print(f'  {row["name"]} {row["dtype"]}: peak memory '
                  f'{row["peak_mem_mib"]:.0f} MiB, of a step '
                  f'{row["step_mem_mib"]:.0f} MiB', flush=True)
    return rows


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def add_ratios(rows: List[dict], gemm: Dict[str, float]) -> None:
    for r in rows:
        same = {x['name']: x for x in rows if x['dtype'] == r['dtype']}
        ref = same.get(OURS, next(iter(same.values())))
        r['speed_vs_ours'] = r['img_per_s'] / ref['img_per_s']
        r['gemm_limit_share'] = r['gflop_per_s'] / gemm[r['dtype']]


def evaluate_claims(rows: List[dict]) -> List[dict]:
    """Each claim of :data:`CLAIMS` whose two models ran: measured ratio, target, met."""
    by_key = {(r['name'], r['dtype']): r for r in rows}
    out = []
    for text, num, den, metric, targets in CLAIMS:
        for dtype, target in targets.items():
            a, b = by_key.get((num, dtype)), by_key.get((den, dtype))
            if a is None or b is None:
                continue
            if metric == 'speed':
                value = a['img_per_s'] / b['img_per_s']
                met = value >= target
            else:
                key = 'peak_mem_mib' if metric == 'memory' else 'step_mem_mib'
                if not (a.get(key) and b.get(key)):
                    continue
                value = a[key] / b[key]
                met = value <= target
            out.append(dict(claim=text, dtype=dtype, metric=metric, value=value,
                            target=target, met=met))
    return out


def format_tables(doc: dict) -> str:
    mem = 'alloc' if doc['env']['device'].startswith('cuda') else 'RSS +'
    parts = []
    for dtype in doc['dtypes']:
        rows = [r for r in doc['results'] if r['dtype'] == dtype]
        gemm = doc['gemm_limit_gflops'][dtype]
        parts.append(f'{dtype} (GEMM limit {gemm:.0f} GFLOP/s):\n\n' + bm.markdown_table(
            ['model', 'params (M)', 'img/s', 'ms/step', 'GFLOP/step', 'GFLOP/s',
             '% of GEMM', f'peak {mem} (MiB)', f'step peak {mem} (MiB)', 'vs ours'],
            [[r['model'], f'{r["params_m"]:.1f}', f'{r["img_per_s"]:.2f}',
              f'{r["ms_median"]:.0f}', f'{r["flops"] / 1e9:.0f}',
              f'{r["gflop_per_s"]:.0f}', f'{100 * r["gemm_limit_share"]:.0f}',
              bm.fmt(r['peak_mem_mib'], '.0f'), bm.fmt(r.get('step_mem_mib'), '.0f'),
              f'{r["speed_vs_ours"]:.2f}']
             for r in rows]))
    if doc['claims']:
        parts.append(bm.markdown_table(
            ['claim', 'dtype', 'measured', 'target', 'met'],
            [[c['claim'], c['dtype'], f'{c["value"]:.2f}x',
              ('>= ' if c['metric'] == 'speed' else '<= ') + f'{c["target"]:.2f}x',
              'yes' if c['met'] else 'NO'] for c in doc['claims']]))
    return '\n\n'.join(parts)


def update_readme(doc: dict, argv: List[str], path: str = README) -> None:
    """Replace the README's speed section (between its markers) with this run."""
    begin = ('<!-- speed table: begin (written by benchmark_pretrain.py '
             '--update-readme) -->')
    end = '<!-- speed table: end -->'
    with open(path) as f:
        text = f.read()
    pattern = re.compile(r'<!-- speed table: begin[^\n]*-->\n.*?' + re.escape(end), re.S)
    if not pattern.search(text):
        raise RuntimeError(f'{path} has no speed section markers')
    env, kernels = doc['env'], {}
    for r in doc['results']:
        kernels.setdefault(', '.join(sorted(r['attention_ops'])) or
                           'none (math path)', []).append(f'{r["name"]} {r["dtype"]}')
    cmd = shlex.join(['python', 'tools/analysis_tools/benchmark_pretrain.py'] + argv)
    body = '\n'.join([
        f'{env["device"]}: {env.get("device_name") or env["cpu"]}, '
        f'{env["threads"]} threads, torch {env["torch"]}; batch {doc["batch_size"]}, '
        f'{doc["img_size"]} px; {doc.get("adamw", "fused")} AdamW; '
        f'{"CPU" if doc.get("clock") == "cpu" else "wall"} time; {doc["iters"]} '
        f'timed steps after {doc["warmup"]} warm-up, every (model, dtype) pair timed '
        'in turn.' +
        (f' {doc["note"]}' if doc.get('note') else ''), '', '```bash', cmd, '```', '',
        format_tables(doc), '', 'SDPA ops per step: ' + '; '.join(
            f'{k}: {", ".join(v)}' for k, v in kernels.items()) + '.', ''])
    text = pattern.sub(lambda _: f'{begin}\n{body}{end}', text)
    with open(path, 'w') as f:
        f.write(text)
    print(f'speed section of {path} rewritten')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=list(SPECS), choices=list(SPECS),
                        help='subset to run (default: all)')
    parser.add_argument('--memory', nargs='*', choices=list(SPECS), default=None,
                        help='also measure peak memory of these models (all if none '
                        'named), each (model, dtype) pair in a fresh process')
    parser.add_argument('--update-readme', action='store_true',
                        help="rewrite the README's speed section from this run")
    parser.add_argument('--note', help='a sentence about the conditions, for the README')
    parser.add_argument('--adamw', default='fused', choices=['fused', 'foreach', 'loop'],
                        help="AdamW's implementation, the same for every model "
                        '(default: fused)')
    parser.add_argument('--memory-child', action='store_true', help=argparse.SUPPRESS)
    bm.add_common_args(parser, warmup=1, iters=4)
    args = parser.parse_args(argv)
    if args.tiny:  # only where not given
        given = set(argv if argv is not None else sys.argv[1:])
        args.batch_size = args.batch_size if '--batch-size' in given else 2
        args.warmup = args.warmup if '--warmup' in given else 0
        args.iters = args.iters if '--iters' in given else 1
    bm.check_args(parser, args)
    args.models = list(dict.fromkeys(args.models))
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmengine.logging import MMLogger
    MMLogger.get_instance('benchmark_pretrain', log_level='WARNING')
    device = torch.device(args.device)
    if args.memory_child:
        return bm.save_json(measure_memory(args.models[0], args.dtype[0], args, device),
                            args.json)
    print(f'MIM pre-training step: batch {args.batch_size}, device {device}, threads '
          f'{torch.get_num_threads()}, dtypes {", ".join(args.dtype)}, warmup '
          f'{args.warmup}, iters {args.iters}{", tiny models" if args.tiny else ""}',
          flush=True)
    gemm = {d: bm.gemm_limit_gflops(device, d, clock=args.clock) for d in args.dtype}
    rows = run(args, device)
    gemm = {d: max(g, bm.gemm_limit_gflops(device, d, clock=args.clock))
            for d, g in gemm.items()}
    add_ratios(rows, gemm)
    doc = dict(benchmark='mim_pretrain_step', batch_size=args.batch_size,
               img_size=rows[0]['img_size'], warmup=args.warmup,
               iters=args.iters, dtypes=args.dtype, tiny=args.tiny, note=args.note,
               adamw=args.adamw, clock=args.clock,
               gemm_limit_gflops=gemm, env=bm.environment(device), results=rows)
    doc['claims'] = evaluate_claims(rows)
    print('\n' + format_tables(doc))
    if args.update_readme:
        update_readme(doc, [a for a in (argv if argv is not None else sys.argv[1:])
                            if a != '--update-readme'])
    return bm.save_json(doc, args.json)


if __name__ == '__main__':
    main()
