# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The official-recipe configs against the official releases' recipes (CPU, seconds).

Each expectation is written here from the release's definition (zhangxiaosong18/hivit,
MIT; the Swin and SimMIM codebases' timm schedulers; LayneH/GreenMIM's README),
independently of the code under test:

* layer-wise lr decay of the ImageNet fine-tuning (``self_supervised/util/lr_decay.py``,
  ``param_groups_lrd``): every stem MLP block is a layer, a PatchMerge shares the id of
  the block before it, embeddings are layer 0, the head the last;
* the lr curves: timm's ``CosineLRScheduler`` without a warmup prefix (one cosine over
  the whole run, the linear warmup overlapping its start), evaluated in closed form and
  compared with mmengine's schedulers stepped as the runner steps them;
* the ADE20K multi-scale + flip test protocol (``segmentation/configs/
  upernet_hivit_base_80k_ade20k.py`` with ``SETR_Resize(setr_multi_scale=True)``): the
  views' sizes for a given image, and ``tools/test.py --tta`` on the shapes data;
* no config file name equal to one of mmpretrain, mmdet or mmseg (whose tools fall back
  to their own file of that name).
"""
import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import resolve

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'
ADE640 = CONFIGS / 'upernet' / 'upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py'
TTA_CONFIG = REPO / 'tests' / 'data' / 'seg_tiny_upernet_hivit_tta.py'
MAE_1600 = CONFIGS / 'mae' / 'mae_hivit-base-p16-hifeat_8xb512-amp-coslr-1600e_in1k.py'
CLS_FINETUNE = CONFIGS / 'hivit' / 'benchmarks' / \
    'hivit-base-p16_8xb128-amp-coslr-100e_in1k.py'


# ----------------------------------------------------------------------------
# References (the releases' definitions)
# ----------------------------------------------------------------------------
def timm_cosine(t: float, total: float, warmup: float, peak: float, warmup_init: float,
                lr_min: float) -> float:
    """timm ``CosineLRScheduler`` (t_mul 1, one cycle, ``warmup_prefix=False``) at step
    ``t``: linear from ``warmup_init`` towards ``peak`` for ``t < warmup``, else the
    cosine of ``t / total`` from ``peak`` to ``lr_min``."""
    if t < warmup:
        return warmup_init + t * (peak - warmup_init) / warmup
    return lr_min + 0.5 * (peak - lr_min) * (1 + math.cos(math.pi * t / total))


def official_finetune_layer_scale(name: str, depths=(2, 2, 20), rate=0.85) -> float:
    """lr scale of a parameter of the full hivit_mm classifier under the official
    fine-tuning rule (``param_groups_lrd``), for stem depths ``2 * depths[i]``."""
    s0, s1, main = 2 * depths[0], 2 * depths[1], depths[2]
    max_layer = s0 + s1 + main + 1  # every non-PatchMerge block, plus one
    if name.startswith(('backbone.patch_embed.', 'backbone.pos_embed')):
        layer = 0
    elif name.startswith('backbone.stem.0.blocks.'):
        layer = 1 + int(name.split('.')[4])
    elif name.startswith('backbone.stem.0.downsample.'):
        layer = s0  # the id of the block before it
    elif name.startswith('backbone.stem.1.blocks.'):
        layer = s0 + 1 + int(name.split('.')[4])
    elif name.startswith('backbone.stem.1.downsample.'):
        layer = s0 + s1
    elif name.startswith('backbone.blocks.'):
        layer = s0 + s1 + 1 + int(name.split('.')[2])
    else:  # neck (fc_norm) and head
        layer = max_layer
    return rate**(max_layer - layer)


def simulate(schedulers_cfg: List[dict], peak: float, epoch_length: int,
             max_epochs: int) -> np.ndarray:
    """lr of every training iteration under mmengine's schedulers, stepped after each
    iteration as ``ParamSchedulerHook`` steps iteration-based ones."""
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS
    param = torch.nn.Parameter(torch.zeros(1))
    optim = OptimWrapper(torch.optim.SGD([param], lr=peak))
    schedulers = []
    for cfg in schedulers_cfg:
        cfg = dict(cfg)
        cfg.setdefault('end', max_epochs)
        schedulers.append(
            PARAM_SCHEDULERS.build(
                cfg, default_args=dict(optimizer=optim, epoch_length=epoch_length)))
    lrs = []
    for _ in range(epoch_length * max_epochs):
        lrs.append(optim.param_groups[0]['lr'])
        for s in schedulers:
            s.step()
    return np.array(lrs)


# ----------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------
SCHEDULES: Dict[str, dict] = {
    # config -> timm arguments of the official run (in epochs, absolute lrs)
    # supervised/configs/hivit_*_224.yaml + supervised/config.py, x 1024 / 512
    'hivit/hivit-base-p16_8xb128_in1k.py':
    dict(total=300, warmup=20, peak=1e-3, warmup_init=1e-6, lr_min=1e-5),
    'hivit/hivit-tiny-p16_8xb128_in1k.py':
    dict(total=300, warmup=20, peak=1e-3, warmup_init=1e-6, lr_min=1e-5),
    # GreenMIM ft_configs/greenmim_finetune_swin_base_img224_win7.yaml, x batch / 512
    'greenmim/benchmarks/swin-base-w7_8xb128-amp-coslr-100e_in1k.py':
    dict(total=100, warmup=20, peak=2.5e-3, warmup_init=5e-7, lr_min=5e-7),
    'greenmim/benchmarks/swin-base-w7_16xb48-amp-coslr-100e_in1k.py':
    dict(total=100, warmup=20, peak=1.875e-3, warmup_init=3.75e-7, lr_min=3.75e-7),
}


@pytest.mark.parametrize('name', sorted(SCHEDULES))
def test_lr_curve_is_the_official_one(name):
    ref = SCHEDULES[name]
    cfg = Config.fromfile(str(CONFIGS / name))
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(ref['peak'], rel=1e-12)
    assert cfg.train_cfg.max_epochs == ref['total']
    n = 20  # iterations per epoch
    got = simulate(cfg.param_scheduler, ref['peak'], n, ref['total'])
    want = np.array([
        timm_cosine(t / n, ref['total'], ref['warmup'], ref['peak'], ref['warmup_init'],
                    ref['lr_min']) for t in range(n * ref['total'])
    ])
    after = slice(n * ref['warmup'], None)
    # after warmup: the official curve (a cosine restarted after warmup would be up
    # to 13% (supervised) or 53% (GreenMIM) above it)
    np.testing.assert_allclose(got[after], want[after], rtol=2e-4)
    # during warmup: the same start, then within [0.9, 1.005] of the official ramp
    # (mmengine multiplies the warmup factor onto the cosine)
    assert got[0] == pytest.approx(want[0], rel=1e-9)
    ratio = got[:n * ref['warmup']] / want[:n * ref['warmup']]
    assert 0.9 <= ratio.min() and ratio.max() <= 1.005


def test_greenmim_83_8_batch_and_lr():
    cfg = Config.fromfile(
        str(CONFIGS / 'greenmim/benchmarks/swin-base-w7_16xb48-amp-coslr-100e_in1k.py'))
    assert cfg.train_dataloader.batch_size * 16 == 768  # the README's 48 x 16
    assert cfg.auto_scale_lr.base_batch_size == 768
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.25e-3 * 768 / 512)


# ----------------------------------------------------------------------------
# Layer decay of the ImageNet fine-tuning
# ----------------------------------------------------------------------------
def test_finetune_layer_decay_scales_are_the_official_ones():
    """The real-size HiViT-B classifier of the fine-tuning config, group by group."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(CLS_FINETUNE))
    init_default_scope(cfg.default_scope)
    model_cfg = cfg.model.copy()
    model_cfg.backbone.init_cfg = None
    model = MODELS.build(model_cfg)
    ow_cfg = cfg.optim_wrapper.copy()
    ow_cfg.type = 'OptimWrapper'  # AMP needs a GPU
    ow = build_optim_wrapper(model, ow_cfg)
    seen = set()
    for group in ow.optimizer.param_groups:
        for name in group['param_names']:
            want = official_finetune_layer_scale(name)
            assert group['lr_scale'] == pytest.approx(want, rel=1e-12), name
            assert group['lr'] == pytest.approx(2e-3 * want, rel=1e-12), name
            seen.add(name)
    assert seen == {n for n, p in model.named_parameters() if p.requires_grad}
    scale = {n: g['lr_scale'] for g in ow.optimizer.param_groups
             for n in g['param_names']}
    # the figures for depths (2, 2, 20) at rate 0.85
    assert scale['backbone.patch_embed.proj.weight'] == pytest.approx(0.85**29)
    assert scale['backbone.pos_embed'] == pytest.approx(0.0090, abs=5e-5)
    assert scale['backbone.stem.0.blocks.3.mlp.fc1.weight'] == pytest.approx(0.85**25)
    assert scale['backbone.stem.0.downsample.reduction.weight'] == pytest.approx(
        0.85**25)
    assert scale['backbone.stem.1.blocks.0.norm.weight'] == pytest.approx(0.85**24)
    assert scale['backbone.blocks.0.attn.qkv.weight'] == pytest.approx(0.85**20)
    assert scale['head.fc.weight'] == 1.0


def test_mae_trains_and_decays_the_sincos_table_and_mask_token():
    """The release's MAE: the absolute table starts as sin-cos and is trained; timm's
    ``add_weight_decay`` exempts only 1-D parameters and biases, so the table and the
    mask token get weight decay 0.05."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.models.utils import build_2d_sincos_position_embedding
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(MAE_1600))
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.update(arch=dict(embed_dims=32, depths=(1, 1, 2), num_heads=2),
                              img_size=64)
    cfg.model.neck.update(embed_dim=7 * 32, num_patches=16, decoder_embed_dim=16,
                          decoder_depth=1, decoder_num_heads=2)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.backbone.pos_embed.requires_grad
    torch.testing.assert_close(model.backbone.pos_embed.data,
                               build_2d_sincos_position_embedding((4, 4), 32))
    assert not model.neck.decoder_pos_embed.requires_grad  # fixed, as the release
    ow_cfg = cfg.optim_wrapper.copy()
    ow_cfg.type = 'OptimWrapper'
    ow = build_optim_wrapper(model, ow_cfg)
    wd = {}
    for group in ow.optimizer.param_groups:
        for p in group['params']:
            wd[id(p)] = group.get('weight_decay', 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    for pid, decay in wd.items():
        name, param = names[pid], model.get_parameter(names[pid])
        want = 0. if param.ndim <= 1 or name.endswith('.bias') else 0.05
        assert decay == want, name
    assert wd[id(model.backbone.pos_embed)] == 0.05
    assert wd[id(model.neck.mask_token)] == 0.05


#: config -> the release behaviours it selects, by source.
RELEASE_BEHAVIOURS = {
    # detection/mmdet/models/backbones/hivit.py and the 3x config: ViTDet zero padding,
    # the scale-factor resize of the 14x14 table, mid-stem taps ('H', 'M')
    'mask_rcnn/mask-rcnn_hivit-base-p16_fpn-3x_coco.py': {
        'model.backbone.window_padding': 'zeros',
        'model.backbone.pos_embed_resize': 'scale_factor',
        'model.backbone.stem_taps': 'mid'},
    # segmentation/backbone/hivit.py and mmcv_custom/checkpoint.py: the 224 table kept,
    # relative tables resized by geometric splines on load
    'upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py': {
        'model.backbone.pretrain_img_size': 224,
        'model.backbone.rel_pos_resize': 'geometric',
        'model.backbone.pos_embed_resize': 'scale_factor',
        'model.backbone.stem_taps': 'mid'},
    # self_supervised/util/lr_decay.py: every stem block its own layer
    'hivit/benchmarks/hivit-base-p16_8xb128-amp-coslr-100e_in1k.py': {
        'optim_wrapper.paramwise_cfg.layer_numbering': 'per_block'},
}


@pytest.mark.parametrize('name', sorted(RELEASE_BEHAVIOURS))
def test_official_configs_select_the_release_behaviours(name):
    cfg = Config.fromfile(str(CONFIGS / name))
    want = RELEASE_BEHAVIOURS[name]
    assert {key: resolve(cfg, key) for key in want} == want


# ----------------------------------------------------------------------------
# ADE20K test protocol
# ----------------------------------------------------------------------------
def release_views(h: int, w: int) -> List[tuple]:
    """``(height, width, flipped)`` of the release's test views of an ``h x w`` image:
    MultiScaleFlipAug((2560, 640), ratios 0.5..1.75, flip) with SETR_Resize's
    ``setr_multi_scale`` (short side max(640 r, 640), aspect kept, mmcv rounding)."""
    views = []
    for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75):
        short = max(int(640 * r), 640)
        scale = short / min(h, w)
        size = (int(h * scale + 0.5), int(w * scale + 0.5))
        views += [(*size, False), (*size, True)]
    return views


@pytest.mark.parametrize('hw', [(512, 683), (480, 360), (640, 640)])
def test_tta_pipeline_makes_the_release_views(hw):
    import mmcv
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(str(ADE640))
    init_default_scope('mmseg')
    assert cfg.tta_model.type == 'SegTTAModel'
    # the default test (and validation) protocol stays single-scale
    assert [t.type for t in cfg.test_dataloader.dataset.pipeline].count('Resize') == 1
    pipeline = Compose(cfg.tta_pipeline[1:])  # the loading step replaced by a dict
    h, w = hw
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    seg = np.zeros((h, w), dtype=np.uint8)
    path = f'/tmp/hivit_mm_tta_{os.getpid()}.png'
    mmcv.imwrite(seg, path)
    try:
        out = pipeline(
            dict(img=img, img_shape=(h, w), ori_shape=(h, w), seg_map_path=path,
                 reduce_zero_label=True, seg_fields=[]))
    finally:
        os.remove(path)
    got = [(*s.img_shape, s.flip) for s in out['data_samples']]
    assert got == release_views(h, w)
    assert len(got) == 12 and [g[0] < g[1] for g in got] == [h < w] * 12 or h == w


@pytest.mark.e2e
def test_tools_test_tta_runs_on_shapes(tmp_path):
    """``tools/test.py --tta`` on the ADE20K 640 config (tiny model, shapes data): it
    runs the twelve views through slide inference and reports mIoU."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from hivit_mm.datasets import make_segmentation
    root = tmp_path / 'ade'
    make_segmentation(str(root), 1, 1, img_size=64)
    cfg = Config.fromfile(str(TTA_CONFIG))
    assert cfg.tta_pipeline == Config.fromfile(str(ADE640)).tta_pipeline
    init_default_scope('mmseg')
    torch.manual_seed(0)  # random weights: the protocol is tested, not the model
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), ckpt)

    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
               PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'test.py'), str(TTA_CONFIG), str(ckpt),
         '--tta', '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         f'test_dataloader.dataset.data_root={root}'],
        env=env, cwd=str(REPO), capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r'mIoU: \d', out), out[-2000:]


def test_tools_test_tta_without_a_tta_config_fails_clearly():
    spec = importlib.util.spec_from_file_location('hivit_mm_tools_test',
                                                  REPO / 'tools' / 'test.py')
    test_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_py)
    with pytest.raises(RuntimeError, match='--tta needs tta_pipeline and tta_model'):
        test_py.use_tta(Config(dict(model=dict(type='M'))))
    cfg = Config.fromfile(str(ADE640))
    model = cfg.model
    test_py.use_tta(cfg)
    assert cfg.model.type == 'SegTTAModel' and cfg.model.module == model
    assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline


# ----------------------------------------------------------------------------
# Config names
# ----------------------------------------------------------------------------
def upstream_config_names() -> Dict[str, set]:
    names = {}
    for pkg in ('mmpretrain', 'mmdet', 'mmseg'):
        spec = importlib.util.find_spec(pkg)
        assert spec is not None, f'{pkg} is not installed'
        root = Path(next(iter(spec.submodule_search_locations))) / '.mim' / 'configs'
        assert root.is_dir(), f'{pkg} has no configs at {root}'
        names[pkg] = {p.name for p in root.rglob('*.py')}
        assert len(names[pkg]) > 100, (pkg, len(names[pkg]))
    return names


def test_no_config_shares_a_file_name_with_an_upstream_config():
    ours = sorted(p for p in CONFIGS.rglob('*.py'))
    assert len(ours) > 20
    clashes = {
        str(p.relative_to(REPO)): pkg
        for pkg, names in upstream_config_names().items() for p in ours
        if p.name in names
    }
    assert not clashes, f'configs named like an upstream config: {clashes}'
    # the test can fail: the upstream MAE HiViT configs are there
    assert 'mae_hivit-base-p16_8xb512-amp-coslr-1600e_in1k.py' in \
        upstream_config_names()['mmpretrain']
