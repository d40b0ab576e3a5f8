# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Layer-wise lr decay: the exact lr and weight decay of every parameter (CPU, seconds).

The expected values are computed by a plain rule written here, independently of the
constructor: with ``L = main depth + 2`` layers, patch embedding, stem and ``pos_embed``
train at ``base_lr * r**(L - 1)``, main block ``k`` at ``base_lr * r**(L - 2 - k)``,
everything outside the backbone's blocks at ``base_lr``; no weight decay on parameters
with at most one dimension, position embeddings, mask tokens and relative tables.
"""
import logging
from typing import Dict, Tuple

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmpretrain.structures import DataSample

from conftest import HIVIT_TINY, build_mmpretrain_model, param_settings, tiny_hivit_mae
from hivit_mm.engine import LayerDecayOptimWrapperConstructor

NUM_LAYERS = HIVIT_TINY['depths'][2] + 2  # stem, 2 blocks, everything else
BASE_LR, WD, RATE = 1e-3, 0.05, 0.75
CONSTRUCTOR = 'hivit_mm.LayerDecayOptimWrapperConstructor'


def classifier(**backbone) -> nn.Module:
    return build_mmpretrain_model(
        dict(
            type='ImageClassifier',
            backbone=dict(type='hivit_mm.HiViT', arch=dict(HIVIT_TINY), img_size=32,
                          use_rel_pos_bias=True, **backbone),
            neck=dict(type='hivit_mm.MeanPoolLayerNorm', in_channels=32),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=32)))


def build(model: nn.Module, **paramwise) -> OptimWrapper:
    paramwise.setdefault('layer_decay_rate', RATE)
    return build_optim_wrapper(
        model,
        dict(optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD),
             constructor=CONSTRUCTOR, paramwise_cfg=paramwise))


def expected(model: nn.Module, rate: float = RATE) -> Dict[str, Tuple[float, float]]:
    """The rule of the module docstring, for every trainable parameter."""
    out = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if (name.startswith(('backbone.patch_embed.', 'backbone.stem.'))
                or name == 'backbone.pos_embed'):
            lr = BASE_LR * rate**(NUM_LAYERS - 1)
        elif name.startswith('backbone.blocks.'):
            k = int(name.split('.')[2])
            lr = BASE_LR * rate**(NUM_LAYERS - 2 - k)
        else:  # output norms, necks, heads, decoders
            lr = BASE_LR
        no_decay = p.ndim <= 1 or name.endswith(
            ('pos_embed', 'mask_token', 'relative_position_bias_table'))
        out[name] = (lr, 0. if no_decay else WD)
    return out


# -- exact groups ------------------------------------------------------------------
def test_classifier_every_parameter_exact():
    model = classifier()
    ow = build(model)
    got = param_settings(ow, model, named_groups=True)
    assert got == expected(model)
    # spot checks of the rule itself
    r = RATE
    assert got['backbone.patch_embed.proj.weight'] == (BASE_LR * r**3, WD)
    assert got['backbone.stem.1.downsample.reduction.weight'] == (BASE_LR * r**3, WD)
    assert got['backbone.pos_embed'] == (BASE_LR * r**3, 0.)
    assert got['backbone.blocks.0.attn.qkv.weight'] == (BASE_LR * r**2, WD)
    assert got['backbone.blocks.0.attn.qkv.bias'] == (BASE_LR * r**2, 0.)
    assert got['backbone.blocks.1.attn.relative_position_bias_table'] == (BASE_LR * r,
                                                                           0.)
    assert got['backbone.blocks.1.norm2.weight'] == (BASE_LR * r, 0.)
    assert got['neck.norm.weight'] == (BASE_LR, 0.)
    assert got['head.fc.weight'] == (BASE_LR, WD)
    assert got['head.fc.bias'] == (BASE_LR, 0.)


def test_groups_are_per_layer_and_decay_with_metadata():
    ow = build(classifier())
    groups = ow.optimizer.param_groups
    assert [g['group_name'] for g in groups] == [
        f'layer_{i}_{kind}' for i in range(NUM_LAYERS)
        for kind in ('decay', 'no_decay')
    ]
    for g in groups:
        i = g['layer_id']
        assert g['lr_scale'] == RATE**(NUM_LAYERS - 1 - i)
        assert g['lr'] == BASE_LR * RATE**(NUM_LAYERS - 1 - i)
        assert g['weight_decay'] == (0. if g['group_name'].endswith('no_decay') else WD)
    assert type(ow) is OptimWrapper and type(ow.optimizer) is torch.optim.AdamW


def test_mae_self_supervisor_exact():
    model = tiny_hivit_mae(decoder_dims=16)
    got = param_settings(build(model), model, named_groups=True)
    assert got == expected(model)
    # frozen sin-cos tables are left out; the decoder trains at the full lr
    assert 'backbone.pos_embed' not in got and 'neck.decoder_pos_embed' not in got
    assert got['neck.mask_token'] == (BASE_LR, 0.)  # 3-D, but a token: no decay
    assert got['neck.decoder_embed.weight'] == (BASE_LR, WD)
    assert got['neck.decoder_blocks.0.attn.qkv.weight'] == (BASE_LR, WD)
    assert got['backbone.norm.weight'] == (BASE_LR, 0.)  # final LN: last layer
    assert got['backbone.blocks.0.mlp.fc1.weight'] == (BASE_LR * RATE**2, WD)


def test_frozen_parameters_are_left_out():
    model = classifier(frozen_stages=1)  # patch embedding + both stem stages
    model.head.fc.bias.requires_grad = False
    got = param_settings(build(model), model, named_groups=True)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert 'backbone.patch_embed.proj.weight' in frozen
    assert 'backbone.stem.1.blocks.0.mlp.fc1.weight' in frozen
    assert 'head.fc.bias' in frozen
    assert frozen.isdisjoint(got)
    assert got == expected(model)  # the others keep their settings
    assert set(got) == {n for n, _ in model.named_parameters()} - frozen


def test_rate_one_keeps_the_weight_decay_rule():
    model = classifier()
    got = param_settings(build(model, layer_decay_rate=1.), model, named_groups=True)
    assert got == expected(model, rate=1.)
    assert {lr for lr, _ in got.values()} == {BASE_LR}


def test_custom_keys_multiply_lr_and_set_decay():
    model = classifier()
    ow = build(model, custom_keys={'head': dict(lr_mult=10.),
                                   '.pos_embed': dict(decay_mult=1.)})
    got = param_settings(ow, model, named_groups=True)
    want = expected(model)
    want['head.fc.weight'] = (BASE_LR * 10., WD)
    want['head.fc.bias'] = (BASE_LR * 10., 0.)
    want['backbone.pos_embed'] = (BASE_LR * RATE**3, WD)  # decay_mult overrides
    assert got == want
    names = {g['group_name'] for g in ow.optimizer.param_groups}
    assert {'layer_3_decay_head', 'layer_3_no_decay_head',
            'layer_0_no_decay_.pos_embed'} <= names


def test_model_wrapper_is_unwrapped():
    model = classifier()
    constructor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD)),
        dict(layer_decay_rate=RATE))
    params = []
    constructor.add_params(params, nn.DataParallel(model))  # a registered wrapper
    got = {n: (g['lr'], g['weight_decay']) for g in params for n in g['param_names']}
    assert got == expected(model)


def test_groups_train_and_round_trip_through_state_dict():
    model = classifier()
    ow = build(model)
    data = model.data_preprocessor(
        dict(inputs=[torch.rand(3, 32, 32) * 255 for _ in range(2)],
             data_samples=[DataSample().set_gt_label(i) for i in (1, 3)]), True)
    before = model.head.fc.weight.detach().clone()
    loss = model(**data, mode='loss')['loss']
    ow.update_params(loss)
    assert not torch.equal(before, model.head.fc.weight)
    state = ow.state_dict()
    fresh = build(classifier())
    fresh.load_state_dict(state)
    assert [g['param_names'] for g in fresh.optimizer.param_groups] == [
        g['param_names'] for g in ow.optimizer.param_groups
    ]


def test_groups_are_logged_one_line_per_layer():
    records = []

    class Collect(logging.Handler):

        def emit(self, record):
            records.append(record)

    logger = MMLogger.get_current_instance()
    handler = Collect(level=logging.INFO)
    logger.addHandler(handler)
    try:
        build(classifier())
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records if r.levelno == logging.INFO]
    summary = [line for line in lines if 'layer_decay_rate=0.75' in line]
    assert len(summary) == 1 and f'{NUM_LAYERS} layers' in summary[0]
    per_layer = [line.strip() for line in lines if line.strip().startswith('layer ')]
    assert len(per_layer) == NUM_LAYERS
    assert per_layer[0].startswith(f'layer 0: lr scale {RATE**3:.4g}')


# -- rejected configurations ---------------------------------------------------------
def make(paramwise=None, optimizer=None):
    return LayerDecayOptimWrapperConstructor(
        dict(optimizer=optimizer or dict(type='AdamW', lr=BASE_LR, weight_decay=WD)),
        paramwise)


def test_unknown_paramwise_key_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown paramwise_cfg keys \['norm_decay_mult"
                       r"'\]; valid keys are \['layer_decay_rate', 'layer_numbering', "
                       r"'custom_keys'\]"):
        make(dict(layer_decay_rate=RATE, norm_decay_mult=0.))


@pytest.mark.parametrize('paramwise', [None, {}, dict(custom_keys={})])
def test_missing_layer_decay_rate(paramwise):
    with pytest.raises(ValueError, match='needs paramwise_cfg=dict\\(layer_decay_rate'):
        make(paramwise)


@pytest.mark.parametrize('rate', [0, -0.5, 1.01, True, '0.75', None])
def test_layer_decay_rate_out_of_range(rate):
    with pytest.raises(ValueError, match=f'layer_decay_rate must be a number in '
                       rf'\(0, 1\], got {rate!r}'):
        make(dict(layer_decay_rate=rate))


def test_bad_custom_keys():
    with pytest.raises(ValueError, match=r"custom_keys\['head'\] has unknown fields "
                       r"\['decay'\]; valid fields are \['lr_mult', 'decay_mult'\]"):
        make(dict(layer_decay_rate=RATE, custom_keys={'head': dict(decay=0.)}))
    with pytest.raises(ValueError, match=r"custom_keys\['head'\]\['lr_mult'\] must be "
                       'a non-negative number, got -1'):
        make(dict(layer_decay_rate=RATE, custom_keys={'head': dict(lr_mult=-1)}))
    with pytest.raises(TypeError, match=r"custom_keys\['head'\] must be a dict"):
        make(dict(layer_decay_rate=RATE, custom_keys={'head': 0.1}))


def test_missing_lr():
    with pytest.raises(ValueError, match='the optimizer config must set lr'):
        make(dict(layer_decay_rate=RATE), dict(type='AdamW', weight_decay=WD))


def test_model_without_depth_aware_backbone():
    with pytest.raises(TypeError, match='backbone has `get_layer_depth.*got model '
                       'Linear with backbone None'):
        build(nn.Linear(2, 2))
    model = nn.Module()
    model.backbone = nn.Linear(2, 2)
    with pytest.raises(TypeError, match='got model Module with backbone Linear'):
        build(model)


def test_inconsistent_layer_depth_is_rejected():

    class Liar(nn.Linear):

        def get_layer_depth(self, param_name, prefix=''):
            return 4, 4  # layer ids must be below num_layers

    model = nn.Module()
    model.backbone = Liar(2, 2)
    with pytest.raises(ValueError, match=r"get_layer_depth\('backbone.weight'\) "
                       r'returned \(4, 4\)'):
        build(model)
