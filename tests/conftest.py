# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""What several test modules share: the tiny archs and models built from them, the
optimizer-group reader, the check that a loss trains every parameter, the mmpretrain
Swin that GreenSwin must equal, and the loader and runner of tools.

Test modules import the constants and helpers (``from conftest import HIVIT_TINY``;
pytest puts this folder on ``sys.path``). Tiers: tests that run a tool end to end in a
subprocess carry the ``e2e`` marker (registered in ``pytest.ini``), so
``pytest -m "not e2e"`` is the unit tier.
"""
import copy
import importlib.util
import os
import os.path as osp
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.models import SwinTransformer
from mmpretrain.registry import MODELS

from hivit_mm.models import HiViT

REPO = Path(__file__).resolve().parents[1]

#: Tiny HiViT: 32 wide, depths (1, 1, 2) (2 + 2 stem MLP blocks, 2 main blocks), 2 heads.
#: Read from the end-to-end test configs' base, so the arch is written once.
HIVIT_TINY = runpy.run_path(str(REPO / 'tests/data/_base_/tiny-hivit.py'))['tiny_arch']
#: Tiny Swin/GreenSwin: 32 wide, four stages of two blocks; its 32-px units at 128 px
#: give stage sides 32, 16, 8, 4.
SWIN_TINY = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
#: LayerNorm of the GreenMIM recipe (every norm of the Swin).
LN = dict(type='LN', eps=1e-6)

#: Tiny HiViT for windowed attention: 3 main blocks, the last global.
HIVIT_WINDOWED = dict(arch=dict(embed_dims=32, depths=(1, 1, 3), num_heads=2),
                      img_size=96, use_rel_pos_bias=True, window_size=4,
                      global_blocks=(2, ), out_indices=(0, 1, 2, 3))

TOOL_TIMEOUT = 300  # seconds per subprocess: generous, a tiny run takes ~10 s on 2 cores


def build_mmpretrain_model(cfg: dict) -> nn.Module:
    """An mmpretrain model from a config dict, seeded (0) and initialised."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def tiny_mae(backbone: dict, num_patches: int, patch_size: int, embed_dim: int,
             decoder_dims: int = 32) -> nn.Module:
    """mmpretrain ``MAE`` with ``backbone``, a one-block ``ClsFreeMAEDecoder`` and the
    normalised-pixel L2 head, pixels taken as they are (mean 0, std 1)."""
    return build_mmpretrain_model(
        dict(
            type='MAE',
            backbone=backbone,
            neck=dict(type='hivit_mm.ClsFreeMAEDecoder', num_patches=num_patches,
                      patch_size=patch_size, embed_dim=embed_dim,
                      decoder_embed_dim=decoder_dims, decoder_depth=1,
                      decoder_num_heads=2),
            head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=patch_size,
                      loss=dict(type='PixelReconstructionLoss', criterion='L2')),
            data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0.] * 3,
                                   std=[1.] * 3)))


def tiny_hivit_mae(fuse: bool = False, rpe: bool = False, img: int = 64,
                   decoder_dims: int = 32) -> nn.Module:
    """:func:`tiny_mae` on a :data:`HIVIT_TINY` ``MaskedHiViT`` (mask ratio 0.75)."""
    backbone = dict(type='hivit_mm.MaskedHiViT', arch=dict(HIVIT_TINY), img_size=img,
                    mask_ratio=0.75, fuse_stem_features=fuse, use_rel_pos_bias=rpe)
    return tiny_mae(backbone, (img // 16)**2, 16, (7 if fuse else 1) * 32, decoder_dims)


def windowed_hivit() -> HiViT:
    """:data:`HIVIT_WINDOWED`, seeded (0) and initialised."""
    torch.manual_seed(0)
    model = HiViT(**HIVIT_WINDOWED)
    model.init_weights()
    return model


def backward_reaches_every_parameter(model: nn.Module, data: dict) -> torch.Tensor:
    """The loss of ``data``, after checking that it is finite and that its backward
    gives every trainable parameter a non-zero gradient."""
    loss = model(**data, mode='loss')['loss']
    assert torch.isfinite(loss)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not no_grad
    return loss


#: What :func:`resolve` returns for a key the config does not set.
ABSENT = object()


def resolve(cfg, key: str):
    """The value at a dotted key of a parsed config (list items by index), or
    :data:`ABSENT` (for recipe tables: ``{key: value}`` checked against a config)."""
    value = cfg
    for part in key.split('.'):
        if isinstance(value, (list, tuple)):
            value = value[int(part)]
        elif part in value:
            value = value[part]
        else:
            return ABSENT
    return value


def at(prefix: str, **values) -> dict:
    """Table entries ``{'prefix.key': value}``."""
    return {f'{prefix}.{key}': value for key, value in values.items()}


def warmup_then_cosine(warmup: int, **cosine) -> dict:
    """Table entries of a per-iteration linear warmup over epochs ``[0, warmup)`` then
    a cosine (``cosine``: its other keys, ``ABSENT`` for unset ones)."""
    return {**at('param_scheduler.0', type='LinearLR', begin=0, end=warmup,
                 convert_to_iter_based=True),
            **at('param_scheduler.1', type='CosineAnnealingLR',
                 convert_to_iter_based=True, **cosine)}


def param_settings(optim_wrapper: OptimWrapper, model: nn.Module,
                   named_groups: bool = False) -> Dict[str, Tuple[float, float]]:
    """``name -> (lr, weight_decay)`` of every parameter in the optimizer.

    Checks that no parameter is in two groups; with ``named_groups`` also that each
    group lists ``param_names`` matching its tensors (as hivit_mm's layer-decay
    constructor writes them).
    """
    names = {p: n for n, p in model.named_parameters()}
    out = {}
    for group in optim_wrapper.optimizer.param_groups:
        if named_groups:
            assert group['param_names'] == [names[p] for p in group['params']]
            assert group['params'], 'empty group'
        for p in group['params']:
            assert names[p] not in out, f'{names[p]} is in two groups'
            out[names[p]] = (group['lr'], group['weight_decay'])
    return out


def cpu_optim_wrapper(cfg, model: nn.Module) -> OptimWrapper:
    """The config's optimizer wrapper, ``AmpOptimWrapper`` (GPU only) swapped for
    ``OptimWrapper``."""
    ow_cfg = copy.deepcopy(cfg.optim_wrapper)
    if ow_cfg.get('type') == 'AmpOptimWrapper':
        ow_cfg.type = 'OptimWrapper'
        ow_cfg.pop('loss_scale', None)
    return build_optim_wrapper(model, ow_cfg)


def mmpretrain_swin(window: int, **kwargs) -> SwinTransformer:
    """mmpretrain's ``SwinTransformer`` with :data:`SWIN_TINY` as GreenSwin builds it
    (every LayerNorm eps 1e-6, no padding of small maps), in eval mode."""
    model = SwinTransformer(
        **dict(dict(arch=dict(SWIN_TINY), window_size=window, drop_path_rate=0.,
                    pad_small_map=False, norm_cfg=LN,
                    stage_cfgs=dict(block_cfgs=dict(norm_cfg=LN),
                                    downsample_cfg=dict(norm_cfg=LN)),
                    patch_cfg=dict(norm_cfg=LN)), **kwargs))
    model.eval()  # returns None in mmpretrain's Swin
    return model


def tool_env(**extra: str) -> Dict[str, str]:
    """Environment of a tool run: CPU only, one thread, this interpreter and this
    checkout first, no inherited rank or checkpoint-loading override."""
    env = dict(os.environ)
    env.update(
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1',
        PATH=f'{osp.dirname(sys.executable)}{os.pathsep}{env.get("PATH", "")}',
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get('PYTHONPATH')) if p))
    for key in ('LOCAL_RANK', 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        env.pop(key, None)  # our custom_imports must make checkpoints load
    env.update(extra)
    return env


def load_tool(relpath: str) -> ModuleType:
    """Import ``tools/<relpath>`` (a script) as a module."""
    path = REPO / 'tools' / relpath
    name = '_hivit_tools_' + relpath.replace('/', '_').replace('.', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(cmd: List[str], timeout: int = TOOL_TIMEOUT,
             **env: str) -> subprocess.CompletedProcess:
    """Run a command from the repository root (stdout and stderr merged)."""
    return subprocess.run(cmd, cwd=REPO, env=tool_env(**env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def run_ok(cmd: List[str], timeout: int = TOOL_TIMEOUT, **env: str) -> str:
    """:func:`run_tool`, asserting a zero exit status; returns the output."""
    proc = run_tool(cmd, timeout=timeout, **env)
    assert proc.returncode == 0, proc.stdout[-5000:]
    return proc.stdout


def free_port() -> int:
    """A free local TCP port (for a distributed run's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
