# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""GreenMIM: configs (recipes, builds, one step), initialisation, checkpoint conversion
to mmpretrain's Swin Transformer, and a tiny pre-training run through tools/train.py.

The recipes are asserted against the official release (LayneH/GreenMIM scripts and
``ft_configs``, SimMIM defaults). Official checkpoints are not downloaded:
a state dict in the official layout is built here from a tiny model by the inverse
renames, written out plainly.
"""
import copy
import importlib.util
import json
import math
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import PatchMerging
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.models.utils import build_2d_sincos_position_embedding
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from conftest import (SWIN_TINY, at, backward_reaches_every_parameter, cpu_optim_wrapper,
                      mmpretrain_swin, param_settings, resolve, warmup_then_cosine)
from hivit_mm.datasets import make_classification
from hivit_mm.models.convert_greenmim import (convert_hivit_mm_greenmim,
                                              convert_official_greenmim,
                                              merging_channels_to_mmcv)
from hivit_mm.models.geometry import relative_position_index

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs' / 'greenmim'
PRETRAIN_B = 'greenmim_swin-base-w7_8xb256-amp-coslr-800e_in1k.py'
PRETRAIN_L = 'greenmim_swin-large-w14_8xb256-amp-coslr-800e_in1k.py'
FINETUNE = 'benchmarks/swin-base-w7_8xb128-amp-coslr-100e_in1k.py'
# FINETUNE at the current README's batch (its lr curve: test_official_recipes.py)
FINETUNE_768 = 'benchmarks/swin-base-w7_16xb48-amp-coslr-100e_in1k.py'
ALL = sorted([PRETRAIN_B, PRETRAIN_L, FINETUNE, FINETUNE_768])
TINY_CONFIG = REPO / 'tests' / 'data' / 'greenmim_tiny.py'
CONVERTER = REPO / 'tools' / 'model_converters' / 'greenmim_to_mmpretrain.py'

IMG = 128  # 4x4 mask units of 32 px; stage sides 32, 16, 8, 4
SUBTOKENS = {  # official concatenation order of the 2x2 sub-tokens (dh, dw)
    'row_first': [(0, 0), (0, 1), (1, 0), (1, 1)],
    'swin': [(0, 0), (1, 0), (0, 1), (1, 1)],
}


def load(name: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / name))


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial weights everywhere (bias tables included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + (p.dim() == 1) * 0.5)


def tiny_pretrain_model(cfg: Config, window: int = 4, init: bool = True) -> nn.Module:
    """A pre-training config's model with a tiny GreenSwin on 128-px images; the decoder
    keeps its configured width, depth and heads."""
    init_default_scope(cfg.default_scope)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(arch=dict(SWIN_TINY), img_size=IMG, window_size=window)
    model_cfg.neck.update(
        num_patches=(IMG // 32)**2, embed_dim=8 * SWIN_TINY['embed_dims'])
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    if init:
        model.init_weights()
    return model


def tiny_mae(window: int, seed: int = 0) -> nn.Module:
    """The Swin-B recipe's MAE with a tiny GreenSwin and random weights."""
    model = tiny_pretrain_model(load(PRETRAIN_B), window=window, init=False)
    randomize(model, seed)
    return model.eval()


def tiny_classifier(cfg: Config, checkpoint: str) -> nn.Module:
    """The fine-tuning config's classifier with a tiny Swin (window 4), as the Runner
    builds it, weights from ``checkpoint``."""
    init_default_scope(cfg.default_scope)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model_cfg.backbone.update(
        arch=dict(SWIN_TINY), img_size=IMG,
        stage_cfgs=dict(block_cfgs=dict(window_size=4)))
    model_cfg.backbone.init_cfg.checkpoint = checkpoint
    model_cfg.head.in_channels = 8 * SWIN_TINY['embed_dims']
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def strip(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def images(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, IMG, IMG, generator=torch.Generator().manual_seed(seed))


def load_converter() -> ModuleType:
    spec = importlib.util.spec_from_file_location('greenmim_to_mmpretrain', CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the folder ------------------------------------------------------------------------
def test_the_folder_holds_exactly_the_tested_configs():
    found = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob('*.py'))
    assert found == ALL, 'add a new config to this test, with its recipe'


# -- pre-training recipes --------------------------------------------------------------
def pretrain_recipe(arch: str, window: int, width: int) -> dict:
    """The release's GreenMIM pre-training (LayneH/GreenMIM, README and
    scripts/run_greenmim_swin_*.sh, models `green_mim_swin_*_dec512b1`): Swin encoder
    (patch 4, no drop path, 224 px) on visible 32-px units, ratio 0.75, one mask per
    batch; MAE decoder 512-d x 1 block x 16 heads; normalised-pixel L2; Xavier-uniform
    init with the patch embedding as a (C_out, C_in*p*p) matrix; RandomResizedCrop 224
    (0.2, 1) bicubic + flip, 256 per GPU; AdamW blr 1e-4 at 8 x 256 = 2048, betas (0.9,
    0.95), wd 0.05 except 1-D parameters, tables and the mask token; 40 warmup epochs
    then a per-iteration cosine to 0 at 800."""
    bound = math.sqrt(6 / (3 * 4 * 4 + width))
    return {
        'custom_imports.imports': ['hivit_mm.models'],
        'model.type': 'MAE',
        'model.data_preprocessor.type': 'SelfSupDataPreprocessor',
        **at('model.backbone', type='hivit_mm.GreenSwin', arch=arch, window_size=window,
             img_size=224, patch_size=4, drop_path_rate=0., mask_ratio=0.75,
             shared_mask=True, attn_mode='auto', out_indices=(3, )),
        **at('model.neck', type='hivit_mm.ClsFreeMAEDecoder', num_patches=49,
             patch_size=32, embed_dim=8 * width, decoder_embed_dim=512,
             decoder_depth=1, decoder_num_heads=16, mlp_ratio=4.),
        'model.head': dict(type='MAEPretrainHead', norm_pix=True, patch_size=32,
                           loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        'model.init_cfg': [
            dict(type='Xavier', layer='Linear', distribution='uniform', bias=0.),
            dict(type='Uniform', layer='Conv2d', a=-bound, b=bound, bias=0.),
            dict(type='Constant', layer='LayerNorm', val=1., bias=0.)],
        **at('train_dataloader', batch_size=256,
             **{'collate_fn.type': 'default_collate'}),
        **at('train_dataloader.dataset.pipeline.1', type='RandomResizedCrop', scale=224,
             crop_ratio_range=(0.2, 1.0), interpolation='bicubic'),
        **at('train_dataloader.dataset.pipeline.2', type='RandomFlip', prob=0.5),
        'train_dataloader.dataset.pipeline.0.type': 'LoadImageFromFile',
        'train_dataloader.dataset.pipeline.3.type': 'PackInputs',
        'optim_wrapper.type': 'AmpOptimWrapper',
        'optim_wrapper.optimizer': dict(type='AdamW', lr=1e-4 * 2048 / 256,
                                        betas=(0.9, 0.95), weight_decay=0.05),
        'optim_wrapper.paramwise_cfg': dict(
            flat_decay_mult=0.,
            custom_keys=dict(relative_position_bias_table=dict(decay_mult=0.),
                             mask_token=dict(decay_mult=0.))),
        'auto_scale_lr.base_batch_size': 2048,
        **warmup_then_cosine(40, eta_min=0., begin=40, end=800, T_max=760),
        'train_cfg': dict(type='EpochBasedTrainLoop', max_epochs=800),
    }


@pytest.mark.parametrize('name,arch,window,width', [(PRETRAIN_B, 'base', 7, 128),
                                                    (PRETRAIN_L, 'large', 14, 192)])
def test_pretrain_recipe(name, arch, window, width):
    cfg = load(name)
    want = pretrain_recipe(arch, window, width)
    assert {key: resolve(cfg, key) for key in want} == want
    assert len(cfg.train_dataloader.dataset.pipeline) == 4


# -- pre-training builds and runs ------------------------------------------------------
@pytest.mark.parametrize('name,window', [(PRETRAIN_B, 4), (PRETRAIN_L, 8)])
def test_pretrain_config_builds_and_trains(name, window):
    """Window 8 at 128 px shrinks the last (4x4) stage, as window 14 at 224 px."""
    cfg = load(name)
    model = tiny_pretrain_model(cfg, window=window)
    assert type(model.backbone).__name__ == 'GreenSwin'
    assert model.neck.decoder_pos_embed.shape == (1, 16, 512)
    # default_collate (the config's) stacks the images
    inputs = torch.randint(0, 256, (4, 3, IMG, IMG), dtype=torch.uint8)
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=[DataSample() for _ in range(4)]), True)
    backward_reaches_every_parameter(model, data)
    ow = cpu_optim_wrapper(cfg, model)
    qkv = model.backbone.stages[0].blocks[0].attn.w_msa.qkv.weight
    before = qkv.detach().clone()
    ow.step()
    assert not torch.equal(before, qkv)

    # one lr; no weight decay on 1-D parameters, bias tables and the mask token; the
    # fixed decoder embedding is not optimised
    got = param_settings(ow, model)
    want = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            no_decay = p.ndim == 1 or n.endswith(
                ('relative_position_bias_table', 'mask_token'))
            want[n] = (8e-4, 0. if no_decay else 0.05)
    assert got == want
    assert 'neck.decoder_pos_embed' not in got


def test_pretrain_init_is_the_released_one():
    """Xavier-uniform Linears (encoder included), the patch-embedding conv as a matrix,
    bias tables trunc-normal(0.02), mask token normal(0.02), fixed sin-cos decoder
    embedding."""
    model = tiny_pretrain_model(load(PRETRAIN_B))
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            bound = math.sqrt(6 / (m.in_features + m.out_features))
            w = m.weight
            assert w.abs().max() <= bound, name
            if w.numel() >= 4096:  # uniform: std = bound / sqrt(3)
                assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
            if m.bias is not None:  # 0 (mmpretrain's decoder FFN: normal(1e-6))
                assert m.bias.abs().max() < 1e-4, name
    conv = model.backbone.patch_embed.projection
    bound = math.sqrt(6 / (3 * 4 * 4 + 128))  # the config's: Swin-B's width
    assert conv.weight.abs().max() <= bound < 1.05 * conv.weight.abs().max()
    assert not conv.bias.any()
    tables = torch.cat([p.flatten() for n, p in model.named_parameters()
                        if n.endswith('relative_position_bias_table')])
    # trunc_normal(std=0.02) cut at +-2 (absolute, as timm's): a normal(0.02) in effect
    assert tables.std().item() == pytest.approx(0.02, rel=0.2)
    assert tables.mean().abs() < 0.005
    assert model.neck.mask_token.std().item() == pytest.approx(0.02, rel=0.3)
    pos = model.neck.decoder_pos_embed
    assert not pos.requires_grad
    torch.testing.assert_close(pos, build_2d_sincos_position_embedding(4, 512))


# -- fine-tuning -----------------------------------------------------------------------
#: The release's fine-tuning (LayneH/GreenMIM, ft_configs/greenmim_finetune_swin_base_
#: img224_win7.yaml on the SimMIM codebase): Swin-B window 7, drop path 0.1, Mixup 0.8
#: / CutMix 1.0, label smoothing 0.1, RandAugment m9-mstd0.5-inc1, erasing 0.25, test
#: resize 256 + centre crop 224; AdamW, wd 0.05, BASE_LR 1.25e-3 and WARMUP_LR = MIN_LR
#: = 2.5e-7, all x 1024 / 512, clip 5.0, layer decay 0.9, 20 warmup epochs overlapping
#: one cosine over the 100 (timm, no warmup prefix; the curve is checked in
#: test_official_recipes.py).
FINETUNE_RECIPE = {
    'checkpoint': '',  # given on the command line
    **at('model.backbone', type='SwinTransformer', arch='base', img_size=224,
         drop_path_rate=0.1, init_cfg=dict(type='Pretrained', checkpoint='',
                                           prefix='backbone.'),
         **{'stage_cfgs.block_cfgs.window_size': 7}),
    'model.head.loss': dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                            mode='original'),
    'model.train_cfg.augments': [dict(type='Mixup', alpha=0.8),
                                 dict(type='CutMix', alpha=1.0)],
    'train_dataloader.batch_size': 128,
    **{f'{loader}.collate_fn.type': 'default_collate'
       for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')},
    **at('optim_wrapper', type='AmpOptimWrapper', clip_grad=dict(max_norm=5.0),
         constructor='hivit_mm.LayerDecayOptimWrapperConstructor',
         paramwise_cfg=dict(layer_decay_rate=0.9)),
    'optim_wrapper.optimizer': dict(type='AdamW', lr=2.5e-3, weight_decay=0.05),
    **warmup_then_cosine(20, begin=0, end=100, T_max=100),
    'train_cfg.max_epochs': 100,
    'auto_scale_lr.base_batch_size': 1024,
}


def test_finetune_recipe():
    cfg = load(FINETUNE)
    assert {key: resolve(cfg, key) for key in FINETUNE_RECIPE} == FINETUNE_RECIPE
    assert 'hivit_mm.engine' in cfg.custom_imports.imports
    train = {t['type']: dict(t) for t in cfg.train_dataloader.dataset.pipeline}
    assert train['RandomResizedCrop']['scale'] == 224
    assert train['RandomErasing']['erase_prob'] == 0.25
    assert tuple(train['RandAugment'][k] for k in (
        'policies', 'magnitude_level', 'magnitude_std')) == ('timm_increasing', 9, 0.5)
    test = {t['type']: dict(t) for t in cfg.val_dataloader.dataset.pipeline}
    assert test['ResizeEdge']['scale'] == 256 and test['CenterCrop']['crop_size'] == 224
    warmup, cosine = cfg.param_scheduler  # WARMUP_LR and MIN_LR, up to rounding
    assert warmup.start_factor * cfg.optim_wrapper.optimizer.lr == pytest.approx(5e-7)
    assert cosine.eta_min == pytest.approx(5e-7)


def test_finetune_loads_a_converted_checkpoint_and_trains(tmp_path):
    mae = tiny_mae(window=4)
    path = tmp_path / 'converted.pth'
    converted = convert_hivit_mm_greenmim({'state_dict': mae.state_dict()})
    torch.save(dict(state_dict=converted), path)

    cfg = load(FINETUNE)
    model = tiny_classifier(cfg, str(path))
    own = model.backbone.state_dict()
    assert set(own) == set(strip(converted, 'backbone.'))  # nothing left random
    for key, value in strip(converted, 'backbone.').items():
        assert torch.equal(own[key], value), key

    inputs = torch.randint(0, 256, (4, 3, IMG, IMG), dtype=torch.uint8)
    samples = [DataSample().set_gt_label(i) for i in range(4)]
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
    loss = sum(v for k, v in model(**data, mode='loss').items() if 'loss' in k)
    assert torch.isfinite(loss)
    ow = cpu_optim_wrapper(cfg, model)
    before = model.head.fc.weight.detach().clone()
    ow.update_params(loss)
    assert not torch.equal(before, model.head.fc.weight)

    # layer decay with SwinTransformer.get_layer_depth (SimMIM's rule): patch embedding
    # 0, block j of stage i 1 + sum(depths[:i]) + j, PatchMerging with the last block of
    # its stage, final norm and head sum(depths) + 1; no decay on 1-D and bias tables
    num_layers = sum(SWIN_TINY['depths']) + 2
    lr = lambda layer: 2.5e-3 * 0.9**(num_layers - 1 - layer)  # noqa: E731
    got = param_settings(ow, model)
    assert set(got) == {n for n, _ in model.named_parameters()}
    assert got['backbone.patch_embed.projection.weight'] == (lr(0), 0.05)
    assert got['backbone.patch_embed.norm.weight'] == (lr(0), 0.)
    assert got['backbone.stages.0.blocks.1.attn.w_msa.qkv.weight'] == (lr(2), 0.05)
    assert got['backbone.stages.0.downsample.reduction.weight'] == (lr(2), 0.05)
    assert got['backbone.stages.2.blocks.0.attn.w_msa.relative_position_bias_table'] == (
        lr(5), 0.)
    assert got['backbone.stages.3.blocks.1.ffn.layers.1.bias'] == (lr(8), 0.)
    assert got['backbone.norm3.weight'] == (lr(9), 0.)
    assert got['head.fc.weight'] == (lr(9), 0.05)


# -- conversion: our checkpoints -------------------------------------------------------
def test_ours_converts_strictly_into_mmpretrain_swin_with_identical_features():
    mae = tiny_mae(window=4)
    checkpoint = dict(state_dict=mae.state_dict(), meta=dict(), message_hub=dict())
    converted = convert_hivit_mm_greenmim(checkpoint)
    assert all(k.startswith('backbone.') for k in converted)
    assert set(converted) == {k for k in mae.state_dict() if k.startswith('backbone.')}
    assert 'backbone.norm3.weight' in converted  # the final encoder LayerNorm

    swin = mmpretrain_swin(4, img_size=IMG, out_indices=(3, ))
    swin.load_state_dict(strip(converted, 'backbone.'), strict=True)
    x = images()
    with torch.no_grad():
        expected = mae.backbone(x, mask=None)
        got = swin(x)
    assert len(expected) == len(got) == 1 and got[0].shape == (2, 256, 4, 4)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-4, atol=1e-4)


def test_ours_rejects_other_checkpoints():
    state = tiny_mae(window=4).state_dict()
    with pytest.raises(ValueError, match=r"'backbone.blocks.0.attn.qkv.weight', 'foo'"):
        convert_hivit_mm_greenmim({**state, 'backbone.blocks.0.attn.qkv.weight':
                                   torch.zeros(1), 'foo': torch.zeros(1)})
    with pytest.raises(ValueError, match='no backbone'):
        convert_hivit_mm_greenmim(
            {k: v for k, v in state.items() if k.startswith('neck.')})


# -- conversion: the official layout ---------------------------------------------------
def official_index(m: int) -> torch.Tensor:
    """The original Swin's relative position index of an m x m window."""
    hw = torch.stack(torch.meshgrid(torch.arange(m), torch.arange(m), indexing='ij'))
    hw = hw.flatten(1)  # 2, m*m
    rel = (hw[:, :, None] - hw[:, None, :]).permute(1, 2, 0) + (m - 1)  # m*m, m*m, 2
    return rel[..., 0] * (2 * m - 1) + rel[..., 1]


def to_official_channels(t: torch.Tensor, order: str) -> torch.Tensor:
    """mmcv's PatchMerging channels ``c * 4 + 2 * dh + dw`` to the official ``k * C + c``
    with sub-token ``k`` in ``order``."""
    channels = t.shape[-1] // 4
    index = [c * 4 + 2 * dh + dw
             for (dh, dw) in SUBTOKENS[order] for c in range(channels)]
    return t[..., index]


def crop_table(t: torch.Tensor, window: int, m: int) -> torch.Tensor:
    """The centre ``(2m-1)**2`` entries of a ``(2M-1)**2`` bias table."""
    span = 2 * window - 1
    return t.view(span, span, -1)[window - m:window + m - 1,
                                  window - m:window + m - 1].reshape(-1, t.shape[1])


def to_official(state: Dict[str, torch.Tensor], order: str,
                window: int) -> Dict[str, Dict[str, torch.Tensor]]:
    """An official GreenMIM checkpoint of the tiny MAE: inverse renames, official
    relative indices and tables of the windows of the release (a stage at most
    ``window`` wide has a window of its side), PatchMerging channels in ``order``."""
    official = {}
    for key, value in state.items():
        param = key.rpartition('.')[2]
        if key.startswith('neck.decoder_blocks.'):
            name = (key[len('neck.'):].replace('.ln1.', '.norm1.')
                    .replace('.ln2.', '.norm2.').replace('.ffn.layers.0.0.', '.mlp.fc1.')
                    .replace('.ffn.layers.1.', '.mlp.fc2.'))
        elif key.startswith('neck.ln1.'):
            name = 'decoder_norm.' + param
        elif key.startswith('neck.'):
            name = key[len('neck.'):]
        elif key.startswith('backbone.patch_embed.projection.'):
            name = 'encoder.patch_embed.proj.' + param
        elif key.startswith('backbone.patch_embed.norm.'):
            name = 'encoder.patch_embed.norm.' + param
        elif key.startswith('backbone.norm3.'):
            name = 'encoder.norm.' + param
        else:
            assert key.startswith('backbone.stages.'), key
            stage = int(key.split('.')[2])
            m = min(IMG // 4 >> stage, window)  # the release's window of the stage
            name = ('encoder.layers.' + key[len('backbone.stages.'):]).replace(
                '.attn.w_msa.', '.attn.').replace('.ffn.layers.0.0.', '.mlp.fc1.')
            name = name.replace('.ffn.layers.1.', '.mlp.fc2.')
            if name.endswith('relative_position_index'):
                value = official_index(m)
            elif name.endswith('relative_position_bias_table'):
                value = crop_table(value, window, m)
            elif '.downsample.' in name:
                value = to_official_channels(value, order)
        official[name] = value
    official['encoder.layers.0.blocks.1.attn_mask'] = torch.zeros(4, 64, 64)  # Swin's
    return {'model': official}


def zero_unused_table_entries(model: nn.Module, window: int) -> None:
    """Zero the bias-table entries a stage narrower than the window cannot use."""
    with torch.no_grad():
        for s, stage in enumerate(model.backbone.stages):
            m = min(IMG // 4 >> s, window)
            for block in stage.blocks:
                table = block.attn.w_msa.relative_position_bias_table
                kept = crop_table(table, window, m).clone()
                table.zero_()
                span, pad = 2 * window - 1, window - m
                table.view(span, span, -1)[pad:span - pad, pad:span - pad] = kept.view(
                    2 * m - 1, 2 * m - 1, -1)


@pytest.mark.parametrize('order', ['row_first', 'swin'])
def test_official_layout_converts_back_to_the_original(order):
    """Window 8 at 128 px: the release shrinks the last stage's window to 4 (7x7 table),
    which must land at the centre of the 15x15 table."""
    mae = tiny_mae(window=8)
    x = images()
    with torch.no_grad():
        before = mae.backbone(x, mask=None)[0]
    zero_unused_table_entries(mae, window=8)
    with torch.no_grad():  # the zeroed entries were not used
        torch.testing.assert_close(mae.backbone(x, mask=None)[0], before)
    original = mae.state_dict()
    official = to_official(original, order, window=8)
    table = 'encoder.layers.3.blocks.0.attn.relative_position_bias_table'
    assert official['model'][table].shape == (49, 8)

    converted = convert_official_greenmim(official, patch_merging_order=order,
                                          keep_decoder=True)
    assert list(converted) != [] and set(converted) == set(original)
    for key, value in original.items():
        assert torch.equal(converted[key], value), key
    mae.load_state_dict(converted, strict=True)

    backbone_only = convert_official_greenmim(official, patch_merging_order=order)
    assert set(backbone_only) == {k for k in original if k.startswith('backbone.')}
    # mmpretrain's Swin takes the result strictly (its index buffers included)
    swin = mmpretrain_swin(8, img_size=IMG, out_indices=(3, ))
    swin.load_state_dict(strip(backbone_only, 'backbone.'), strict=True)
    assert torch.equal(swin.stages[3].blocks[0].attn.w_msa.relative_position_index,
                       relative_position_index((8, 8)))

    # the other order gives other PatchMerging weights
    other = 'swin' if order == 'row_first' else 'row_first'
    wrong = convert_official_greenmim(official, patch_merging_order=other)
    key = 'backbone.stages.0.downsample.reduction.weight'
    assert not torch.equal(wrong[key], original[key])


def test_extracted_official_backbone_converts():
    """util/extract_backbone.py of the release: no `encoder.`, no decoder, no index."""
    mae = tiny_mae(window=4)
    official = to_official(mae.state_dict(), 'row_first', window=4)['model']
    extracted = {k[len('encoder.'):]: v for k, v in official.items()
                 if k.startswith('encoder.') and 'relative_position_index' not in k
                 and 'attn_mask' not in k}
    converted = convert_official_greenmim(extracted, window_size=4)
    backbone = {k: v for k, v in mae.state_dict().items() if k.startswith('backbone.')}
    assert set(converted) == set(backbone)
    for key, value in backbone.items():
        assert torch.equal(converted[key], value), key


@pytest.mark.parametrize('order', ['row_first', 'swin'])
def test_patch_merging_permutation_matches_the_official_merge(order):
    """The official merge (sub-tokens concatenated in ``order``, then LayerNorm and a
    bias-free Linear) equals mmcv's PatchMerging with the converted weights."""
    gen = torch.Generator().manual_seed(0)
    C, H, W = 3, 4, 6
    x = torch.randn(2, H * W, C, generator=gen)
    norm_w, norm_b = torch.randn(4 * C, generator=gen), torch.randn(4 * C, generator=gen)
    reduction = torch.randn(2 * C, 4 * C, generator=gen)

    grid = x.view(2, H, W, C)
    merged = torch.cat([grid[:, dh::2, dw::2] for dh, dw in SUBTOKENS[order]], dim=-1)
    merged = merged.view(2, -1, 4 * C)  # 2, H/2*W/2, 4C (raster)
    expected = F.linear(F.layer_norm(merged, (4 * C, ), norm_w, norm_b), reduction)

    merge = PatchMerging(in_channels=C, out_channels=2 * C, norm_cfg=dict(type='LN'),
                         bias=False)
    merge.load_state_dict({
        'norm.weight': merging_channels_to_mmcv(norm_w, order),
        'norm.bias': merging_channels_to_mmcv(norm_b, order),
        'reduction.weight': merging_channels_to_mmcv(reduction, order),
    }, strict=True)
    with torch.no_grad():
        out, size = merge(x, (H, W))
    assert size == (H // 2, W // 2)
    torch.testing.assert_close(out, expected)


def test_official_conversion_errors():
    official = to_official(tiny_mae(window=4).state_dict(), 'row_first', window=4)
    state = dict(official['model'])
    with pytest.raises(ValueError, match=r"\['encoder.head.weight', 'extra'\]"):
        convert_official_greenmim({**state, 'encoder.head.weight': torch.zeros(1),
                                   'extra': torch.zeros(1)})
    with pytest.raises(ValueError, match="pass the model's window_size"):
        convert_official_greenmim(state, window_size=3)
    with pytest.raises(ValueError, match='patch_merging_order must be one of'):
        convert_official_greenmim(state, patch_merging_order='column_first')
    with pytest.raises(ValueError, match='no encoder keys'):
        convert_official_greenmim({k: v for k, v in state.items()
                                   if not k.startswith('encoder.')})


def test_converter_cli(tmp_path):
    cli = load_converter()
    mae = tiny_mae(window=4)
    ours = tmp_path / 'ours.pth'
    torch.save(dict(state_dict=mae.state_dict(), meta=dict()), ours)
    cli.main([str(ours), str(tmp_path / 'out' / 'a.pth')])
    saved = torch.load(tmp_path / 'out' / 'a.pth', weights_only=False)
    assert saved['meta']['source_layout'] == 'ours'
    assert set(saved['state_dict']) == {k for k in mae.state_dict()
                                        if k.startswith('backbone.')}

    official = tmp_path / 'official.pth'
    torch.save(to_official(mae.state_dict(), 'swin', window=4), official)
    cli.main([str(official), str(tmp_path / 'b.pth'), '--source', 'official',
              '--patch-merging-order', 'swin', '--keep-decoder'])
    saved = torch.load(tmp_path / 'b.pth', weights_only=False)
    assert saved['meta']['patch_merging_order'] == 'swin'
    for key, value in mae.state_dict().items():
        assert torch.equal(saved['state_dict'][key], value), key

    with pytest.raises(SystemExit):  # official-only flags
        cli.parse_args([str(ours), 'x.pth', '--keep-decoder'])


# -- end to end ------------------------------------------------------------------------
def losses(work_dir: Path) -> List[float]:
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert len(files) == 1, files
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    return [r['loss'] for r in sorted(records, key=lambda r: r['step']) if 'loss' in r]


@pytest.mark.e2e
def test_tiny_pretraining_end_to_end(tmp_path):
    """tools/train.py on the tiny config (40 iterations): the loss falls clearly; the
    checkpoint converts and initialises the fine-tuning classifier."""
    data_root = tmp_path / 'shapes'
    make_classification(data_root, 32, 0, img_size=IMG)
    work_dir = tmp_path / 'work'
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='2',
               PYTHONPATH=os.pathsep.join(
                   p for p in (str(REPO), os.environ.get('PYTHONPATH')) if p))
    env.pop('LOCAL_RANK', None)
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(TINY_CONFIG),
         '--work-dir', str(work_dir), '--cfg-options',
         f'train_dataloader.dataset.data_root={data_root}'],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:]

    loss = losses(work_dir)
    assert len(loss) == 40 and all(math.isfinite(v) for v in loss)
    first, last = sum(loss[:5]) / 5, sum(loss[-10:]) / 10
    assert first > 0.9  # normalised pixels: about 1 before training
    assert last < 0.85 * first, (first, last, loss)

    checkpoint = work_dir / 'iter_40.pth'
    assert checkpoint.is_file()
    converted = tmp_path / 'backbone.pth'
    load_converter().main([str(checkpoint), str(converted)])
    trained = strip(torch.load(checkpoint, weights_only=False)['state_dict'],
                    'backbone.')
    model = tiny_classifier(load(FINETUNE), str(converted))
    own = model.backbone.state_dict()
    assert set(own) == set(trained)
    for key, value in trained.items():
        assert torch.equal(own[key], value), key
    assert osp.getsize(converted) < osp.getsize(checkpoint)  # decoder and optimizer gone
