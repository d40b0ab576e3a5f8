# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Time one full masked-image-modelling pre-training step of several models.

A step is what mmengine's ``BaseModel.train_step`` does: the data preprocessor
(uint8 -> normalised float), the algorithm's ``loss`` (masking, encoder, decoder, loss),
``backward``, an AdamW step and ``zero_grad`` (through an mmengine ``OptimWrapper``; no
gradient clipping for any model). Precision: fp32 on CPU; bf16 autocast around the
preprocessor and the forward on CUDA (fp32 parameters, gradients and optimiser state,
no loss scaler: bf16 needs none).

Models, all at the same batch and 224 px, built through mmpretrain's registry:

* ``hivit-mae``: ours, ``configs/_base_/models/mae_hivit-base-p16-hifeat.py`` (HiViT-B
  ``[2, 2, 20]``, stem features fused into the decoder input).
* ``hivit-mae-nofuse``: the same without stem fusion (decoder input 512-d).
* ``mmpretrain-maehivit``: mmpretrain ``MAEHiViT`` from its config
  ``mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py``, arch overridden to
  ``[2, 2, 20]`` (mmpretrain's ``'base'`` is ``[2, 2, 24]``).
* ``mmpretrain-maehivit-b24``: the same config as shipped, with mmpretrain's own
  ``arch='base'`` (``[2, 2, 24]``, 79M; the project's stated baseline). With ``--tiny``
  it has the tiny arch of ``mmpretrain-maehivit``.
* ``mmpretrain-mae-vit``: mmpretrain MAE ViT-B/16,
  ``mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py``.
* ``mmpretrain-simmim-swin``: mmpretrain SimMIM Swin-B from
  ``simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py`` at 224 px with
  window 7 (the project's baseline). The mask is made here as ``SimMIMMaskGenerator``
  makes it (32-px units, ratio 0.6, repeated to the 4-px token grid: ``(B, 56, 56)``).
* ``greenmim-swin`` (optional): ``hivit_mm.models.green_swin.GreenSwin`` (Swin-B,
  window 7) + mmpretrain ``MAE`` + ``ClsFreeMAEDecoder`` (32-px units, 49 of them,
  decoder 512-d x 1 block x 16 heads) + ``MAEPretrainHead(patch_size=32)``. Skipped
  with a note when the module cannot be imported, or fails (it is work in progress).

Measurements per model: ``--warmup`` untimed steps, then ``--iters`` timed steps (each
synchronised on CUDA); img/s at the median step time, median, mean and min ms/step, and
the peak memory of training that model: on CUDA ``torch.cuda.max_memory_allocated``
since just before the model was built (parameters, gradients, AdamW state and
activations); on CPU the peak resident-set growth over the same span, sampled every 5 ms
(psutil or ``/proc/self/statm``; ``n/a`` elsewhere). On CPU, freed memory kept by the
allocator from an earlier model can hide part of a later model's growth: ``--isolate``
runs each model in a fresh process and is the setting to report memory with.
``--interleave`` builds all models first and runs their timed steps in turn, so that
load changes on a shared machine hit every model alike (no memory figures then).
Ratios are relative to ours (``hivit-mae`` = 1.00, or the first model run when it is
not selected): ``speed`` is img/s over ours' img/s (below 1 = slower than ours),
``mem`` is peak memory over ours'.

Hook for GreenMIM's grouping cost: if the backbone has a method ``pop_timings()``
returning ``{name: seconds}`` accumulated since its last call, it is called after every
timed step and the per-step means are reported. Without it, the host time of
``GreenSwin._plan_layouts`` (the per-step window grouping plan) is measured by wrapping
that method on the instance.

Examples::

    # CPU, 2 threads, batch 8, each model in its own process
    python tools/analysis_tools/benchmark_pretrain.py --device cpu --threads 2 \\
        --batch-size 8 --warmup 1 --iters 3 --isolate --json work_dirs/pretrain_cpu.json
    # GPU (bf16 autocast)
    python tools/analysis_tools/benchmark_pretrain.py --batch-size 128 --isolate
"""
import argparse
import copy
import importlib
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Callable, Dict, List, NamedTuple, Optional, Union

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, REPO)

from hivit_mm.utils import benchmark as bm  # noqa: E402

OURS = 'hivit-mae'
IMG_SIZE, TINY_IMG_SIZE = 224, 64
OUR_CONFIG = osp.join(REPO, 'configs', '_base_', 'models',
                      'mae_hivit-base-p16-hifeat.py')
MMPRETRAIN_CONFIGS = {
    'maehivit': 'mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py',
    'maevit': 'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    'simmim': 'simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py',
}
HIVIT_B = dict(embed_dims=512, depths=[2, 2, 20], num_heads=8)
WARMUP, ITERS = (1, 5), (3, 20)  # default steps per model: (CPU, CUDA)
SELFSUP_PREPROCESSOR = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
# SimMIM's mask (SimMIMMaskGenerator in mmpretrain's config): 32-px units, 4-px tokens.
SIMMIM_MASK = dict(mask_patch_size=32, model_patch_size=4, mask_ratio=0.6)


# ----------------------------------------------------------------------------
# Model configs
# ----------------------------------------------------------------------------
def _mmpretrain_config(key: str):
    """``model`` of an mmpretrain config, with the config's data preprocessor."""
    import mmpretrain
    from mmengine.config import Config
    path = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs',
                    MMPRETRAIN_CONFIGS[key])
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmpretrain config not found: {path}')
    cfg = Config.fromfile(path)
    model = copy.deepcopy(cfg.model)
    if 'data_preprocessor' not in model:  # the Runner merges it the same way
        model.data_preprocessor = copy.deepcopy(cfg.get('data_preprocessor',
                                                        SELFSUP_PREPROCESSOR))
    return model


def cfg_hivit_mae(tiny: bool, fuse: bool = True):
    from mmengine.config import Config
    model = copy.deepcopy(Config.fromfile(OUR_CONFIG).model)
    bb, neck = model.backbone, model.neck
    if tiny:
        bb.arch = dict(embed_dims=64, depths=[1, 1, 2], num_heads=2)
        bb.img_size = TINY_IMG_SIZE
        neck.update(num_patches=(TINY_IMG_SIZE // 16)**2, decoder_embed_dim=64,
                    decoder_depth=1, decoder_num_heads=2)
        neck.embed_dim = 7 * 64  # fused: 4x4 x C/4 + 2x2 x C/2 + C
    if not fuse:
        bb.fuse_stem_features = False
        neck.embed_dim = bb.arch['embed_dims'] if isinstance(bb.arch, dict) else 512
    return model


def cfg_mmpretrain_maehivit(tiny: bool, arch: Union[str, dict] = HIVIT_B):
    """mmpretrain's MAEHiViT config with ``arch``: a dict, or the name of one of
    mmpretrain's own archs (its ``'base'`` is ``[2, 2, 24]``). ``tiny`` overrides it."""
    from mmpretrain.models.selfsup.mae import MAEHiViT
    model = _mmpretrain_config('maehivit')
    bb, neck = model.backbone, model.neck
    if tiny:
        arch = dict(embed_dims=64, depths=[1, 1, 2], num_heads=2)
    depths = (MAEHiViT.arch_zoo[arch] if isinstance(arch, str) else arch)['depths']
    # A fresh out_indices list: mmpretrain writes the last main-block index into it.
    bb.update(arch=copy.deepcopy(arch), out_indices=[depths[-1] - 1])
    if tiny:
        bb.img_size = TINY_IMG_SIZE
        neck.update(num_patches=(TINY_IMG_SIZE // 16)**2, embed_dim=64,
                    decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=2)
    return model


def cfg_mmpretrain_maevit(tiny: bool):
    model = _mmpretrain_config('maevit')
    if tiny:
        model.backbone.update(
            arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                      feedforward_channels=256),
            img_size=TINY_IMG_SIZE)
        model.neck.update(num_patches=(TINY_IMG_SIZE // 16)**2, embed_dim=64,
                          decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=2)
    return model


def cfg_mmpretrain_simmim(tiny: bool):
    model = _mmpretrain_config('simmim')
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


def _green_swin_class():
    return importlib.import_module('hivit_mm.models.green_swin').GreenSwin


def cfg_greenmim_swin(tiny: bool):
    green_swin = _green_swin_class()
    img = TINY_IMG_SIZE if tiny else IMG_SIZE
    if tiny:
        arch = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
        window, out_dims, dec = 2, 256, dict(decoder_embed_dim=64, decoder_num_heads=2)
    else:
        arch, window, out_dims = 'base', 7, 1024
        dec = dict(decoder_embed_dim=512, decoder_num_heads=16)
    return dict(
        type='MAE',
        data_preprocessor=copy.deepcopy(SELFSUP_PREPROCESSOR),
        backbone=dict(
            type=green_swin,
            arch=arch,
            img_size=img,
            window_size=window,
            mask_ratio=0.75),
        neck=dict(
            type='hivit_mm.ClsFreeMAEDecoder',
            num_patches=(img // 32)**2,
            patch_size=32,
            in_chans=3,
            embed_dim=out_dims,
            decoder_depth=1,
            mlp_ratio=4.,
            **dec),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=32,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        init_cfg=[
            dict(type='Xavier', layer='Linear', distribution='uniform'),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
        ])


class Spec(NamedTuple):
    title: str
    make_cfg: Callable[[bool], dict]
    simmim_mask: bool = False
    optional: bool = False


SPECS: Dict[str, Spec] = {
    'hivit-mae': Spec('ours HiViT-MAE-B [2,2,20], fused stem features', cfg_hivit_mae),
    'hivit-mae-nofuse': Spec('ours HiViT-MAE-B [2,2,20], no stem fusion',
                             lambda tiny: cfg_hivit_mae(tiny, fuse=False)),
    'mmpretrain-maehivit': Spec('mmpretrain MAEHiViT-B [2,2,20]',
                                cfg_mmpretrain_maehivit),
    'mmpretrain-maehivit-b24': Spec(
        'mmpretrain MAEHiViT-B as shipped ([2,2,24])',
        lambda tiny: cfg_mmpretrain_maehivit(tiny, arch='base')),
    'mmpretrain-mae-vit': Spec('mmpretrain MAE ViT-B/16', cfg_mmpretrain_maevit),
    'mmpretrain-simmim-swin': Spec('mmpretrain SimMIM Swin-B, window 7, 224 px',
                                   cfg_mmpretrain_simmim, simmim_mask=True),
    'greenmim-swin': Spec('GreenMIM Swin-B, window 7 (hivit_mm GreenSwin)',
                          cfg_greenmim_swin, optional=True),
}


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------
def simmim_masks(batch: int, img_size: int, mask_patch_size: int = 32,
                 model_patch_size: int = 4, mask_ratio: float = 0.6,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Masks as mmpretrain's ``SimMIMMaskGenerator`` makes them, for a batch.

    ``ceil(units * mask_ratio)`` random ``mask_patch_size`` units per image are masked,
    then the unit mask is repeated to the ``model_patch_size`` token grid.

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
    masks = masks.view(batch, side, side)
    return masks.repeat_interleave(scale, 1).repeat_interleave(scale, 2)


def make_batch(spec: Spec, batch: int, img_size: int, device: torch.device,
               generator: torch.Generator) -> dict:
    """A collated batch as the dataloader gives it: uint8 images and data samples."""
    from mmpretrain.structures import DataSample
    inputs = torch.randint(0, 256, (batch, 3, img_size, img_size), dtype=torch.uint8,
                           generator=generator).to(device)
    samples = [DataSample() for _ in range(batch)]
    if spec.simmim_mask:
        masks = simmim_masks(batch, img_size, generator=generator, **SIMMIM_MASK)
        for s, m in zip(samples, masks.to(device)):
            s.set_mask(m)
    return dict(inputs=inputs, data_samples=samples)


# ----------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------
def _rss_reader() -> Optional[Callable[[], int]]:
    try:
        import psutil
        proc = psutil.Process()
        return lambda: proc.memory_info().rss
    except ImportError:
        pass
    if osp.exists('/proc/self/statm'):
        page = os.sysconf('SC_PAGE_SIZE')

        def read() -> int:
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * page

        return read
    return None


class PeakMemory:
    """Peak memory of a span: CUDA allocated, or CPU resident-set growth (sampled)."""

    def __init__(self, device: torch.device, interval: float = 0.005) -> None:
        self.device = device
        self.interval = interval
        self.read = None if device.type == 'cuda' else _rss_reader()
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.read())

    def __enter__(self) -> 'PeakMemory':
        bm.free_memory(self.device)
        if self.device.type == 'cuda':
            self.base = bm.reset_peak_memory(self.device)
        elif self.read is not None:
            self.base = self.peak = self.read()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.read())

    @property
    def mib(self) -> Optional[float]:
        """Peak above the start of the span, in MiB (None if unmeasurable)."""
        if self.device.type == 'cuda':
            return bm.peak_memory_mib(self.device, self.base)
        if self.read is None:
            return None
        return (self.peak - self.base) / 2**20


def _step_timer(backbone) -> Optional[Callable[[], Dict[str, float]]]:
    """A function returning ``{name: seconds}`` spent in the backbone since its last
    call, if the backbone can tell (see the module docstring), else None."""
    pop = getattr(backbone, 'pop_timings', None)
    if callable(pop):
        return pop
    plan = getattr(backbone, '_plan_layouts', None)
    if not callable(plan):
        return None
    acc = {'plan_layouts_host': 0.}

    def timed_plan(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return plan(*args, **kwargs)
        finally:
            acc['plan_layouts_host'] += time.perf_counter() - t0

    backbone._plan_layouts = timed_plan  # instance attribute shadows the method

    def pop_timings() -> Dict[str, float]:
        out = dict(acc)
        acc['plan_layouts_host'] = 0.
        return out

    return pop_timings


class Job:
    """One model's training step: model, AdamW, data and the timings so far."""

    def __init__(self, name: str, args: argparse.Namespace,
                 device: torch.device) -> None:
        from mmengine.optim import OptimWrapper
        from mmpretrain.registry import MODELS
        self.name, self.spec, self.device = name, SPECS[name], device
        self.batch_size = args.batch_size
        self.img_size = TINY_IMG_SIZE if args.tiny else IMG_SIZE
        self.autocast = device.type == 'cuda' and not args.fp32
        self.gen = torch.Generator().manual_seed(args.seed)
        torch.manual_seed(args.seed)
        self.model = MODELS.build(self.spec.make_cfg(args.tiny))
        self.model.init_weights()
        self.model.to(device).train()
        self.params_m = bm.count_params_m(self.model)
        self.optim_wrapper = OptimWrapper(torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05))
        self.timer = _step_timer(self.model.backbone)
        self.times: List[float] = []  # ms
        self.timings: Dict[str, List[float]] = {}
        self.loss = float('nan')

    def batch(self) -> dict:
        return make_batch(self.spec, self.batch_size, self.img_size, self.device,
                          self.gen)

    def step(self, data: dict) -> dict:
        """``BaseModel.train_step`` with bf16 autocast (CUDA) and no loss scaler."""
        model = self.model
        with bm.autocast_context(self.autocast):
            data = model.data_preprocessor(data, True)
            losses = model._run_forward(data, mode='loss')
        loss, log_vars = model.parse_losses(losses)
        self.optim_wrapper.update_params(loss)
        return log_vars

    def timed_step(self) -> None:
        data = self.batch()
        if self.timer is not None:
            self.timer()  # drop what the batch making or warm-up left
        log_vars, ms = bm.timed_call(lambda: self.step(data), self.device)
        self.times.append(ms)
        if self.timer is not None:
            for k, v in self.timer().items():
                self.timings.setdefault(k, []).append(v)
        self.loss = float(torch.as_tensor(log_vars['loss']).detach())

    def row(self, peak: Optional[float]) -> dict:
        row = dict(
            name=self.name,
            model=self.spec.title,
            params_m=self.params_m,
            **bm.summarize(self.times, self.batch_size),
            peak_mem_mib=peak,
            loss=self.loss,
        )
        if self.timings:
            row['timings_ms_per_step'] = {
                k: 1e3 * statistics.fmean(v) for k, v in self.timings.items()}
        return row

    def close(self) -> None:
        del self.model, self.optim_wrapper, self.timer
        bm.free_memory(self.device)


def run_model(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Build one model and time its training step; returns a result row."""
    with PeakMemory(device) as mem:
        job = Job(name, args, device)
        for _ in range(args.warmup):
            job.step(job.batch())
        for _ in range(args.iters):
            job.timed_step()
    row = job.row(mem.mib)
    job.close()
    return row


def run_interleaved(names: List[str], args: argparse.Namespace, device: torch.device,
                    skipped: List[dict]) -> List[dict]:
    """Build every model, then time their steps in turn (no memory figures)."""
    jobs = []
    for name in names:
        jobs.append(_guard(name, skipped, lambda: Job(name, args, device)))
    jobs = [j for j in jobs if j is not None]
    for _ in range(args.warmup):
        for j in jobs:
            if _guard(j.name, skipped, lambda: j.step(j.batch()) or True) is None:
                jobs.remove(j)
    for _ in range(args.iters):
        for j in list(jobs):
            if _guard(j.name, skipped, lambda: j.timed_step() or True) is None:
                jobs.remove(j)
    rows = [j.row(None) for j in jobs]
    for j in jobs:
        j.close()
    return rows


def _guard(name: str, skipped: List[dict], fn: Callable):
    """``fn()``; an optional model's failure is recorded in ``skipped`` (-> None)."""
    try:
        return fn()
    except Exception as e:
        if not SPECS[name].optional:
            raise
        traceback.print_exc()
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else ''
        skipped.append(dict(name=name, reason=f'failed: {type(e).__name__}: {reason}'))
        print(f'  {name}: skipped ({skipped[-1]["reason"]})', flush=True)
        return None


def run_isolated(name: str, args: argparse.Namespace) -> dict:
    """Run one model in a fresh interpreter; returns its JSON document."""
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'result.json')
        cmd = [sys.executable, osp.abspath(__file__), '--models', name, '--json', out,
               '--batch-size', str(args.batch_size), '--warmup', str(args.warmup),
               '--iters', str(args.iters), '--device', args.device, '--seed',
               str(args.seed)]
        if args.threads is not None:
            cmd += ['--threads', str(args.threads)]
        for flag in ('tiny', 'fp32'):
            if getattr(args, flag):
                cmd.append(f'--{flag}')
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        if proc.returncode or not osp.isfile(out):
            raise RuntimeError(f'{name} failed in its own process (exit '
                               f'{proc.returncode}):\n{proc.stdout[-4000:]}')
        with open(out) as f:
            return json.load(f)


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def add_ratios(rows: List[dict]) -> Optional[str]:
    if not rows:
        return None
    ref = next((r for r in rows if r['name'] == OURS), rows[0])
    for r in rows:
        r['speed_ratio_vs_ours'] = r['img_per_s'] / ref['img_per_s']
        r['mem_ratio_vs_ours'] = (r['peak_mem_mib'] / ref['peak_mem_mib'] if
                                  r['peak_mem_mib'] and ref['peak_mem_mib'] else None)
    return ref['name']


def format_table(rows: List[dict], mem_label: str) -> str:
    head = ['model', 'params (M)', 'img/s', 'ms/step (median)', 'mean', 'min',
            mem_label, 'speed vs ours', 'mem vs ours']
    body = [
        bm.speed_cells(r) + [
            bm.format_or_na(r['peak_mem_mib'], '.0f'),
            f'{r["speed_ratio_vs_ours"]:.2f}',
            bm.format_or_na(r['mem_ratio_vs_ours'], '.2f'),
        ] for r in rows
    ]
    return bm.markdown_table(head, body)


def report_results(rows: List[dict], skipped: List[dict], args: argparse.Namespace,
                   device: torch.device, autocast: bool) -> dict:
    """Add the ratios to ``rows`` and print the table and notes.

    Returns:
        dict: The JSON document of the run.
    """
    ref = add_ratios(rows)
    mem_label = ('peak alloc (MiB)' if device.type == 'cuda' else 'peak RSS +(MiB)')
    print()
    if rows:
        print(format_table(rows, mem_label))
        print(f'ratios: img/s and peak memory relative to {ref} (= 1.00)')
    for r in rows:
        for k, v in (r.get('timings_ms_per_step') or {}).items():
            print(f'{r["name"]}: {k} {v:.1f} ms per step (included in the step time)')
    for s in skipped:
        print(f'skipped {s["name"]}: {s["reason"]}')
    return dict(
        benchmark='mim_pretrain_step',
        img_size=TINY_IMG_SIZE if args.tiny else IMG_SIZE,
        **bm.run_settings(args, autocast, tiny=args.tiny, isolated=args.isolate),
        optimizer='AdamW(lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05), no clipping',
        memory=('torch.cuda.max_memory_allocated above the allocation before the model '
                'was built' if device.type == 'cuda' else
                'peak RSS growth from before the model was built (5 ms sampling)'),
        reference=ref,
        env=bm.environment(device),
        results=rows,
        skipped=skipped,
    )


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Speed and memory of one MIM pre-training step (forward, backward, '
        'AdamW) for our HiViT-MAE and mmpretrain baselines')
    parser.add_argument('--models', nargs='+', default=list(SPECS),
                        choices=list(SPECS), help='subset to run (default: all)')
    parser.add_argument('--isolate', action='store_true',
                        help='run each model in a fresh process (clean memory figures)')
    bm.add_common_args(
        parser, unit='steps', warmup=WARMUP, iters=ITERS, batch_size=None,
        batch_size_help='default 8 (2 with --tiny)',
        tiny_help='smoke mode: tiny archs, 64 px images, batch 2, 0 warm-up and 1 '
        'timed step (for tests; figures are meaningless)')
    args = parser.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 2 if args.tiny else 8
    if args.tiny:
        args.warmup = 0 if args.warmup is None else args.warmup
        args.iters = 1 if args.iters is None else args.iters
    bm.resolve_common_args(parser, args, warmup=WARMUP, iters=ITERS)
    if args.isolate and args.interleave:
        parser.error('--isolate and --interleave exclude each other')
    args.models = list(dict.fromkeys(args.models))
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    device, autocast = bm.setup_run(args, 'benchmark_pretrain')
    img_size = TINY_IMG_SIZE if args.tiny else IMG_SIZE
    print(f'MIM pre-training step: batch {args.batch_size}, img {img_size}, '
          f'{bm.settings_text(args, device, autocast)}'
          f'{", tiny archs" if args.tiny else ""}'
          f'{", one process per model" if args.isolate else ""}'
          f'{", steps interleaved" if args.interleave else ""}', flush=True)

    def report(r: dict) -> None:
        extra = ''.join(f', {k} {v:.1f} ms/step'
                        for k, v in (r.get('timings_ms_per_step') or {}).items())
        print(f'  {r["name"]}: {r["img_per_s"]:.2f} img/s, loss {r["loss"]:.4f}{extra}',
              flush=True)

    rows, skipped, names = [], [], []
    for name in args.models:
        if name == 'greenmim-swin':
            try:
                _green_swin_class()
            except Exception as e:  # not written yet, or broken: skip, say why
                skipped.append(dict(name=name, reason=f'not importable: '
                                    f'{type(e).__name__}: {e}'))
                print(f'  {name}: skipped ({skipped[-1]["reason"]})', flush=True)
                continue
        names.append(name)
    if args.interleave:
        rows = run_interleaved(names, args, device, skipped)
        for r in rows:
            report(r)
    for name in names if not args.interleave else ():
        if args.isolate:
            doc = _guard(name, skipped, lambda: run_isolated(name, args))
            if doc is None:
                continue
            skipped += doc['skipped']
            new_rows = doc['results']
        else:
            row = _guard(name, skipped, lambda: run_model(name, args, device))
            new_rows = [] if row is None else [row]
        rows += new_rows
        for r in new_rows:
            report(r)

    return bm.save_result(report_results(rows, skipped, args, device, autocast),
                          args.json)


if __name__ == '__main__':
    main()
