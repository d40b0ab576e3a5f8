# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The classification configs under ``configs/hivit/``: recipes, builds, one step (CPU).

Each config is parsed, its model built with a tiny HiViT (same flags, ``arch`` and
``img_size`` swapped) and run in ``loss`` mode (with the config's Mixup/CutMix) and in
``predict`` mode; its optimizer wrapper is built (``AmpOptimWrapper`` swapped for
``OptimWrapper``: it needs a GPU) and checked group by group. The recipe values that
matter are asserted on the parsed configs, against the official recipes
(``zhangxiaosong18/hivit``: supervised yaml files, MAE ``main_finetune.py``).
"""
import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from conftest import (ABSENT, HIVIT_TINY, at, cpu_optim_wrapper, param_settings, resolve,
                      warmup_then_cosine)

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs' / 'hivit'
IMG = 32

# file -> (arch, embed dims, drop path)
SUPERVISED = {
    'hivit-tiny-p16_8xb128_in1k.py': ('tiny', 384, 0.05),
    'hivit-small-p16_8xb128_in1k.py': ('small', 384, 0.3),
    'hivit-base-p16_8xb128_in1k.py': ('base', 512, 0.5),
}
FINETUNE = 'benchmarks/hivit-base-p16_8xb128-amp-coslr-100e_in1k.py'
FINETUNE_LARGE = 'benchmarks/hivit-large-p16_8xb128-amp-coslr-50e_in1k.py'
ALL = sorted([*SUPERVISED, FINETUNE, FINETUNE_LARGE])
LINEAR = 'benchmarks/hivit-base-p16_8xb2048-linear-coslr-90e_in1k.py'  # own tests


def load(name: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / name))


def tiny_model(cfg: Config) -> nn.Module:
    """The config's model with a tiny HiViT, built as the Runner builds it."""
    init_default_scope(cfg.default_scope)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model_cfg.backbone.update(arch=dict(HIVIT_TINY), img_size=IMG, init_cfg=None)
    model_cfg.neck.in_channels = model_cfg.head.in_channels = HIVIT_TINY['embed_dims']
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def batch(n: int = 4) -> dict:
    g = torch.Generator().manual_seed(0)
    return dict(
        inputs=[torch.randint(0, 256, (3, IMG, IMG), dtype=torch.uint8, generator=g)
                for _ in range(n)],
        data_samples=[DataSample().set_gt_label(i * 7) for i in range(n)])


def no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim <= 1 or name.endswith(('pos_embed', 'relative_position_bias_table'))


# -- the folder ------------------------------------------------------------------------
def test_the_folder_holds_exactly_the_tested_configs():
    found = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob('*.py'))
    assert found == sorted([*ALL, LINEAR]), 'add a new config to this test, with a recipe'


# -- builds and runs -------------------------------------------------------------------
@pytest.mark.parametrize('name', ALL)
def test_config_builds_trains_and_predicts(name):
    cfg = load(name)
    assert cfg.custom_imports == dict(
        imports=['hivit_mm.models', 'hivit_mm.engine'], allow_failed_imports=False)
    model = tiny_model(cfg)
    assert type(model.backbone).__name__ == 'HiViT'
    assert model.backbone.use_rel_pos_bias

    augments = model.data_preprocessor.batch_augments.augments
    assert [type(a).__name__ for a in augments] == ['Mixup', 'CutMix']
    data = model.data_preprocessor(batch(), True)
    # the batch augments turned the labels into (mixed) one-hot scores
    for sample in data['data_samples']:
        assert sample.gt_score.shape == (1000, )
        assert torch.allclose(sample.gt_score.sum(), torch.tensor(1.))
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)

    ow = cpu_optim_wrapper(cfg, model)
    before = model.head.fc.weight.detach().clone()
    ow.update_params(loss)
    assert not torch.equal(before, model.head.fc.weight)

    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(batch(), False), mode='predict')
    assert len(preds) == 4
    for pred in preds:
        assert pred.pred_score.shape == (1000, )
        assert torch.allclose(pred.pred_score.sum(), torch.tensor(1.))
        assert pred.pred_label.item() == pred.pred_score.argmax().item()


@pytest.mark.parametrize('name', sorted(SUPERVISED))
def test_supervised_groups_decay_only_matrices(name):
    cfg = load(name)
    model = tiny_model(cfg)
    got = param_settings(cpu_optim_wrapper(cfg, model), model)
    want = {n: (1e-3, 0. if no_decay(n, p) else 0.05)
            for n, p in model.named_parameters()}
    assert got == want


def test_finetune_groups_have_the_layer_decay_scales():
    cfg = load(FINETUNE)
    model = tiny_model(cfg)
    ow = cpu_optim_wrapper(cfg, model)
    # the official fine-tuning's per-block numbering: embeddings 0, the 2 + 2 stem
    # blocks 1..4 (a PatchMerge with the block before it), main blocks 5, 6, head 7
    num_layers = 2 * sum(HIVIT_TINY['depths'][:2]) + HIVIT_TINY['depths'][2] + 2
    for group in ow.optimizer.param_groups:
        i = group['layer_id']
        assert group['lr'] == 2e-3 * 0.85**(num_layers - 1 - i)
    got = param_settings(ow, model)
    assert set(got) == {n for n, _ in model.named_parameters()}
    assert got['backbone.patch_embed.proj.weight'] == (2e-3 * 0.85**7, 0.05)
    assert got['backbone.stem.0.blocks.0.mlp.fc1.weight'] == (2e-3 * 0.85**6, 0.05)
    assert got['backbone.stem.0.downsample.reduction.weight'] == (2e-3 * 0.85**5, 0.05)
    assert got['backbone.stem.1.blocks.1.mlp.fc1.weight'] == (2e-3 * 0.85**3, 0.05)
    assert got['backbone.stem.1.downsample.norm.weight'] == (2e-3 * 0.85**3, 0.)
    assert got['backbone.pos_embed'] == (2e-3 * 0.85**7, 0.)
    assert got['backbone.blocks.0.attn.qkv.weight'] == (2e-3 * 0.85**2, 0.05)
    assert got['backbone.blocks.1.attn.relative_position_bias_table'] == (2e-3 * 0.85,
                                                                           0.)
    assert got['backbone.blocks.1.norm1.bias'] == (2e-3 * 0.85, 0.)
    assert got['neck.norm.weight'] == (2e-3, 0.)
    assert got['head.fc.weight'] == (2e-3, 0.05)


def test_finetune_loads_an_mae_encoder_through_its_init_cfg(tmp_path):
    init_default_scope('mmpretrain')
    torch.manual_seed(1)
    mae = MODELS.build(
        dict(type='MAE',
             backbone=dict(type='hivit_mm.MaskedHiViT', arch=dict(HIVIT_TINY),
                           img_size=IMG, fuse_stem_features=True),
             neck=dict(type='hivit_mm.ClsFreeMAEDecoder', num_patches=(IMG // 16)**2,
                       patch_size=16, embed_dim=7 * 32, decoder_embed_dim=16,
                       decoder_depth=1, decoder_num_heads=2),
             head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16,
                       loss=dict(type='PixelReconstructionLoss', criterion='L2'))))
    mae.init_weights()
    path = tmp_path / 'mae.pth'
    torch.save(dict(state_dict=mae.state_dict(), meta=dict()), path)

    cfg = load(FINETUNE)
    cfg.model.backbone.update(arch=dict(HIVIT_TINY), img_size=IMG)
    cfg.model.backbone.init_cfg.checkpoint = str(path)
    cfg.model.neck.in_channels = cfg.model.head.in_channels = 32
    model = MODELS.build(cfg.model)
    model.init_weights()
    own, src = model.backbone.state_dict(), mae.backbone.state_dict()
    for key in ('patch_embed.proj.weight', 'stem.1.downsample.reduction.weight',
                'blocks.1.mlp.fc2.weight', 'pos_embed'):
        assert torch.equal(own[key], src[key]), key
    # relative tables are not in the MAE encoder: zero-initialised, as the official code
    assert not own['blocks.0.attn.relative_position_bias_table'].any()
    assert model.head.fc.weight.std() < 1e-4  # trunc-normal std 2e-5


def test_finetune_without_a_checkpoint_fails_loudly():
    cfg = load(FINETUNE)
    assert cfg.checkpoint == ''  # to be given on the command line
    cfg.model.backbone.update(arch=dict(HIVIT_TINY), img_size=IMG)
    cfg.model.neck.in_channels = cfg.model.head.in_channels = 32
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='model.backbone.init_cfg.checkpoint=PATH'):
        model.init_weights()


# -- recipes ---------------------------------------------------------------------------
def augment_values(cfg: Config) -> dict:
    pipeline = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    return dict(
        augments={a['type']: a['alpha'] for a in cfg.model.train_cfg.augments},
        loss=cfg.model.head.loss,
        erase=pipeline['RandomErasing']['erase_prob'],
        randaug=tuple(pipeline['RandAugment'][k] for k in (
            'policies', 'num_policies', 'magnitude_level', 'magnitude_std')),
        crop=pipeline['RandomResizedCrop']['scale'],
        batch=cfg.train_dataloader.batch_size)


SHARED_AUGMENTS = dict(
    augments={'Mixup': 0.8, 'CutMix': 1.0},
    loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
    erase=0.25,
    randaug=('timm_increasing', 2, 9, 0.5),
    crop=224,
    batch=128)  # x 8 GPUs = 1024


#: The release's supervised recipe (zhangxiaosong18/hivit, supervised/configs/*.yaml,
#: run by its Swin-based main.py): the values shared by the tiny, small and base configs.
#: 20 warmup epochs from 1e-6, then one cosine over the whole run to 1e-5 (timm's
#: scheduler, no warmup prefix; the curve is checked in test_official_recipes.py).
SUPERVISED_RECIPE = {
    **at('model.backbone', type='hivit_mm.HiViT', img_size=224, use_abs_pos_embed=True,
         use_rel_pos_bias=True, out_indices=(2, ),
         rel_pos_zero_init=ABSENT),  # trunc-normal tables from scratch
    **at('model.head', num_classes=1000,
         init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.)),
    # OptimWrapper (AMP is the --amp flag), CLIP_GRAD None in the yaml files
    **at('optim_wrapper', type=ABSENT, constructor=ABSENT, clip_grad=None,
         paramwise_cfg=dict(
             norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
             custom_keys={'.pos_embed': dict(decay_mult=0.),
                          '.relative_position_bias_table': dict(decay_mult=0.)})),
    # BASE_LR 1e-3 at batch 1024
    **at('optim_wrapper.optimizer', type='AdamW', lr=1e-3, betas=(0.9, 0.999),
         weight_decay=0.05, eps=1e-8),
    **warmup_then_cosine(20, eta_min=1e-5, begin=0, end=300, T_max=300),
    'param_scheduler.0.start_factor': 1e-3,
    'train_cfg.max_epochs': 300,
    'auto_scale_lr': dict(base_batch_size=1024),
}

#: The release's MAE fine-tuning (zhangxiaosong18/hivit, self_supervised/
#: main_finetune.py and get_started.md: blr 5e-4 at 1024, layer decay 0.85 numbered as
#: its util/lr_decay.py, 5 warmup epochs, min_lr 1e-6 (x each layer's scale, hence
#: eta_min_ratio), drop path 0.2; the MAE encoder has no relative tables).
FINETUNE_RECIPE = {
    **at('model.backbone', type='hivit_mm.HiViT', arch='base', img_size=224,
         drop_path_rate=0.2, use_rel_pos_bias=True, rel_pos_zero_init=True,
         init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    'model.neck': dict(type='hivit_mm.MeanPoolLayerNorm', in_channels=512),
    'model.head.init_cfg': dict(type='TruncNormal', layer='Linear', std=2e-5, bias=0.),
    **at('optim_wrapper', type='AmpOptimWrapper', clip_grad=None,
         constructor='hivit_mm.LayerDecayOptimWrapperConstructor',
         paramwise_cfg=dict(layer_decay_rate=0.85, layer_numbering='per_block')),
    **at('optim_wrapper.optimizer', type='AdamW', lr=2e-3, betas=(0.9, 0.999),
         weight_decay=0.05),
    **warmup_then_cosine(5, begin=5, end=ABSENT, eta_min=ABSENT),
    'train_cfg.max_epochs': 100,
    'auto_scale_lr': dict(base_batch_size=1024),
}

#: MAE's linear probe (He et al. 2022, appendix A.2; mmpretrain's configs/mae/
#: benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py, inherited): LARS lr 6.4 =
#: 0.1 x 16384 / 256 (2048 per GPU x 8), 10 warmup epochs, 90 in all.
LINEAR_RECIPE = {
    **at('model.backbone', type='hivit_mm.HiViT', arch='base', frozen_stages=2,
         use_rel_pos_bias=False,
         init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    'model.neck': dict(type='hivit_mm.MeanPoolBatchNorm', in_channels=512),
    **at('model.head', in_channels=512,
         init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]),
    **at('optim_wrapper.optimizer', type='LARS', lr=6.4, momentum=0.9, weight_decay=0.),
    'train_dataloader.batch_size': 2048,
    **at('param_scheduler.0', type='LinearLR', end=10),
    **at('param_scheduler.1', type='CosineAnnealingLR', end=90),
    'train_cfg.max_epochs': 90,
}

#: config -> the recipe table it must match (plus what differs per config).
RECIPES = {
    **{name: dict(SUPERVISED_RECIPE, **{
        'model.backbone.arch': arch, 'model.backbone.drop_path_rate': drop_path,
        'model.neck': dict(type='hivit_mm.MeanPoolLayerNorm', in_channels=dims),
        'model.head.in_channels': dims})
       for name, (arch, dims, drop_path) in SUPERVISED.items()},
    FINETUNE: FINETUNE_RECIPE,
    LINEAR: LINEAR_RECIPE,
}


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_recipe_values(name):
    cfg = load(name)
    got = {key: resolve(cfg, key) for key in RECIPES[name]}
    assert got == RECIPES[name]


@pytest.mark.parametrize('name', [*sorted(SUPERVISED), FINETUNE])
def test_recipe_augments(name):
    """The release's augmentation, shared by its supervised and fine-tuning recipes."""
    assert augment_values(load(name)) == SHARED_AUGMENTS


def test_finetune_recipe_ends_at_the_official_min_lr():
    cfg = load(FINETUNE)
    warmup, cosine = cfg.param_scheduler
    assert warmup.start_factor <= 1e-4  # from (almost) zero, as the official warmup
    assert math.isclose(cosine.eta_min_ratio * cfg.optim_wrapper.optimizer.lr, 1e-6)


def test_large_finetune_recipe():
    """HiViT-L: the HiViT-B recipe with the MAE paper's large-model settings (appendix
    A.1: 50 epochs, base lr 1e-3 per 256 images, layer decay 0.75, drop path 0.2)."""
    base, cfg = load(FINETUNE), load(FINETUNE_LARGE)
    bb = cfg.model.backbone
    assert (bb.arch, bb.drop_path_rate) == ('large', 0.2)
    changed = ('arch', 'drop_path_rate')
    assert {k: v for k, v in bb.items() if k not in changed} == {
        k: v for k, v in base.model.backbone.items() if k not in changed}
    assert cfg.model.neck.in_channels == cfg.model.head.in_channels == 768
    assert cfg.model.head.init_cfg == base.model.head.init_cfg
    ow = cfg.optim_wrapper
    assert ow.optimizer.lr == 1e-3 * 1024 / 256
    # the B recipe's per-block numbering (every stem block a layer), at the L rate
    assert ow.paramwise_cfg == dict(layer_decay_rate=0.75, layer_numbering='per_block')
    assert {k: v for k, v in ow.optimizer.items() if k != 'lr'} == {
        k: v for k, v in base.optim_wrapper.optimizer.items() if k != 'lr'}
    warmup, cosine = cfg.param_scheduler
    base_warmup, base_cosine = base.param_scheduler
    assert warmup == base_warmup
    assert math.isclose(cosine.eta_min_ratio * ow.optimizer.lr, 1e-6)
    assert {k: v for k, v in cosine.items() if k != 'eta_min_ratio'} == {
        k: v for k, v in base_cosine.items() if k != 'eta_min_ratio'}
    assert cfg.train_cfg.max_epochs == 50
    assert cfg.train_dataloader == base.train_dataloader
    assert cfg.model.train_cfg == base.model.train_cfg


# -- linear probe ------------------------------------------------------------------------
def test_linear_probe_trains_only_the_classifier():
    """One LARS step changes the classifier and the norm's running statistics, nothing
    of the frozen encoder; the norm has no parameters (MAE's BatchNorm, affine=False)."""
    cfg = load(LINEAR)
    cfg.model.backbone.drop_path_rate = 0.5  # inactive: frozen blocks stay in eval mode
    model = tiny_model(cfg)
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'head.layers.head.weight', 'head.layers.head.bias'}
    assert not list(model.neck.parameters())
    # the frozen encoder computes the same features in training mode as in eval mode
    x = model.data_preprocessor(batch(), False)['inputs']
    with torch.no_grad():
        train_feats = model.backbone(x)
        model.eval()
        eval_feats = model.backbone(x)
        model.train()
    torch.testing.assert_close(train_feats, eval_feats, rtol=0, atol=0)

    ow = cpu_optim_wrapper(cfg, model)
    assert type(ow.optimizer).__name__ == 'LARS'
    before = copy.deepcopy(model.state_dict())
    losses = model(**model.data_preprocessor(batch(), True), mode='loss')
    ow.update_params(sum(v for k, v in losses.items() if 'loss' in k))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {'head.layers.head.weight', 'head.layers.head.bias',
                       'neck.norm.running_mean', 'neck.norm.running_var',
                       'neck.norm.num_batches_tracked'}


def test_linear_probe_pipeline_is_crop_and_flip():
    cfg = load(LINEAR)
    assert [t['type'] for t in cfg.train_dataloader.dataset.pipeline] == [
        'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'PackInputs']


def test_mean_pool_batch_norm_standardises_the_pooled_tokens():
    from hivit_mm.models import MeanPoolBatchNorm
    neck = MeanPoolBatchNorm(8).train()
    x = torch.randn(16, 8, 3, 3) * 5 + 2
    (out, ) = neck((torch.zeros(1), x))  # the last map is used
    pooled = x.mean(dim=(2, 3))
    want = (pooled - pooled.mean(0)) / torch.sqrt(pooled.var(0, unbiased=False) + 1e-6)
    torch.testing.assert_close(out, want)
