# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Dense prediction with HiViT: the Mask R-CNN (mmdet) and UperNet (mmseg) configs.

In-process tests build the real configs with a tiny backbone (32 wide, depths 1, 1, 2,
2 heads, a 64-pixel grid; for detection, padded 3x3 windows in block 0 and global
attention in block 1), small necks/heads and SyncBN reverted to BN, and
check: the pyramid contract (channels and strides the necks/heads expect), loss and
predict on fake batches, the checkpoint hand-off through ``init_weights()`` of a real
detector/segmentor (from an mmpretrain MAE checkpoint and from a fine-tuned classifier
checkpoint, both saved by mmengine), and the exact layer-wise learning rates of the real
models. End-to-end tests run ``tools/train.py`` and ``tools/test.py`` (and mmdet's and
mmseg's own scripts, and ``tools/dist_train.sh`` with 2 CPU processes) on the tiny
configs ``tests/data/{det,seg}_tiny_*.py`` and the built-in shapes data, CPU only.
"""
import json
import math
import os.path as osp
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from mmengine.structures import PixelData

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')

from conftest import HIVIT_TINY, free_port, run_ok  # noqa: E402
from hivit_mm.datasets import make_detection, make_segmentation  # noqa: E402
from hivit_mm.models import HiViT, MaskedHiViT  # noqa: E402
from hivit_mm.models.geometry import resize_rel_pos_bias_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DET_3X = REPO / 'configs/mask_rcnn/mask-rcnn_hivit-base-p16_fpn-3x_coco.py'
DET_1X = REPO / 'configs/mask_rcnn/mask-rcnn_hivit-base-p16_fpn-1x_coco.py'
SEG_640 = REPO / 'configs/upernet/upernet_hivit-base-p16_8xb4-80k_ade20k-640x640.py'
SEG_512 = REPO / 'configs/upernet/upernet_hivit-base-p16_8xb2-160k_ade20k-512x512.py'
DET_CONFIGS = (DET_3X, DET_1X)
SEG_CONFIGS = (SEG_640, SEG_512)
TINY_DET = REPO / 'tests/data/det_tiny_mask-rcnn_hivit.py'
TINY_SEG = REPO / 'tests/data/seg_tiny_upernet_hivit.py'

GRID = 64  # backbone img_size of the tiny models (pixels)
# 32-channel FPN and heads, fewer proposals and RoIs than COCO's (seconds, not minutes,
# per step on a CPU; as tests/data/det_tiny_mask-rcnn_hivit.py)
SMALL_DET_HEADS = {
    'model.neck.out_channels': 32,
    'model.rpn_head.in_channels': 32,
    'model.rpn_head.feat_channels': 32,
    'model.roi_head.bbox_roi_extractor.out_channels': 32,
    'model.roi_head.bbox_head.in_channels': 32,
    'model.roi_head.bbox_head.conv_out_channels': 32,
    'model.roi_head.bbox_head.fc_out_channels': 64,
    'model.roi_head.mask_roi_extractor.out_channels': 32,
    'model.roi_head.mask_head.in_channels': 32,
    'model.roi_head.mask_head.conv_out_channels': 32,
    'model.train_cfg.rpn_proposal.nms_pre': 200,
    'model.train_cfg.rpn_proposal.max_per_img': 100,
    'model.train_cfg.rcnn.sampler.num': 64,
    'model.test_cfg.rpn.nms_pre': 200,
    'model.test_cfg.rpn.max_per_img': 100,
    'model.test_cfg.rcnn.max_per_img': 20,
}


# ----------------------------------------------------------------------------
# Building the real configs with a tiny backbone
# ----------------------------------------------------------------------------
def _tiny_cfg(path: Path, arch: dict = HIVIT_TINY, **backbone) -> Config:
    """The config with a tiny HiViT, necks/heads fed its channels, no weights."""
    cfg = Config.fromfile(str(path))
    model = cfg.model
    model.backbone.arch = dict(arch)
    model.backbone.img_size = GRID
    if 'pretrain_img_size' in model.backbone:  # the absolute table's own grid
        model.backbone.pretrain_img_size = PRE_GRID
    model.backbone.init_cfg = None
    c = arch['embed_dims']
    channels = [c // 4, c // 2, c, c]
    if 'neck' in model:  # Mask R-CNN: FPN
        # 3x3 windows in block 0, global attention in block 1: 3 divides no grid of
        # these inputs, so windows are padded, as 14 on COCO's grids (e.g. 50x84)
        model.backbone.window_size = 3
        model.backbone.global_blocks = (1, )
        model.neck.in_channels = channels
        cfg.merge_from_dict(SMALL_DET_HEADS)
    else:  # UperNet: heads straight on the stages
        model.decode_head.in_channels = channels
        model.decode_head.channels = 16
        model.auxiliary_head.in_channels = c
        model.auxiliary_head.channels = 8
        crop = (GRID, GRID)
        model.data_preprocessor.size = crop
        model.data_preprocessor.test_cfg = dict(size=crop)
        model.test_cfg = dict(mode='slide', crop_size=crop, stride=(32, 32))
    model.backbone.update(backbone)
    return cfg


def _build(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in its library's scope; SyncBN reverted to BN."""
    scope = cfg.default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    torch.manual_seed(0)
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def _det_inputs() -> Dict[str, object]:
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 128, 160), (3, 96, 128)],  # padded to 128x160 (divisor 32)
        num_items=[3, 2],
        num_classes=4,
        with_mask=True)


def _seg_inputs(shapes: List[tuple], num_classes: int = 150) -> Dict[str, object]:
    from mmseg.structures import SegDataSample
    inputs, samples = [], []
    gen = torch.Generator().manual_seed(0)
    for h, w in shapes:
        inputs.append(torch.randint(0, 256, (3, h, w), generator=gen).to(torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, h, w), generator=gen))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


# ----------------------------------------------------------------------------
# Configs: the pyramid contract and the recipes
# ----------------------------------------------------------------------------
def _backbone_of(cfg: Config) -> HiViT:
    """The config's backbone, built without its weights."""
    kwargs = {
        k: v
        for k, v in cfg.model.backbone.items() if k not in ('type', 'init_cfg')
    }
    return HiViT(**kwargs)


@pytest.mark.parametrize('path', DET_CONFIGS, ids=lambda p: p.name)
def test_det_configs_feed_fpn_the_backbone_pyramid(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    backbone = cfg.model.backbone
    assert backbone.type == 'hivit_mm.HiViT' and backbone.arch == 'base'
    assert tuple(backbone.out_indices) == (0, 1, 2, 3) and backbone.out_norm
    built = _backbone_of(cfg)
    assert tuple(cfg.model.neck.in_channels) == built.channels == (128, 256, 512, 512)
    assert built.strides == (4, 8, 16, 32) and sorted(built.out_norms) == list('0123')
    assert built.global_blocks == (4, 9, 14, 19)  # the official detector's
    # official recipe: MAE weights, no rpe, 14x14 windows with the default global rule
    assert (backbone.img_size, backbone.window_size, backbone.use_rel_pos_bias,
            backbone.drop_path_rate) == (224, 14, False, 0.2)
    assert 'global_blocks' not in backbone
    assert backbone.init_cfg == dict(
        type='Pretrained', checkpoint=cfg.checkpoint, prefix='backbone.')
    head = cfg.model.roi_head.bbox_head
    assert head.type == 'Shared4Conv1FCBBoxHead' and head.reg_decoded_bbox
    assert head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
    assert head.norm_cfg.type == 'SyncBN'
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper'
    assert ow.constructor == 'hivit_mm.LayerDecayOptimWrapperConstructor'
    assert ow.paramwise_cfg == dict(layer_decay_rate=0.9)  # depth from the backbone
    assert ow.optimizer == dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.by_epoch, warmup.end) == (
        'LinearLR', 1e-3, False, 500)
    epochs, milestones = (36, [27, 33]) if path == DET_3X else (12, [8, 11])
    assert cfg.train_cfg.max_epochs == steps.end == epochs
    assert steps.type == 'MultiStepLR' and steps.milestones == milestones
    resizes = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert ('RandomChoice' in resizes) == (path == DET_3X)  # ms-crop vs single scale
    assert cfg.custom_imports.imports == ['hivit_mm.models', 'hivit_mm.engine']


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=lambda p: p.name)
def test_seg_configs_feed_upernet_the_backbone_pyramid(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    backbone = cfg.model.backbone
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert tuple(backbone.out_indices) == (0, 1, 2, 3) and not backbone.out_norm
    built = _backbone_of(cfg)
    base_channels = built.channels
    assert tuple(head.in_channels) == base_channels
    assert list(head.in_index) == [0, 1, 2, 3]
    assert built.out_norms is None
    assert (head.channels, head.num_classes, aux.num_classes) == (1024, 150, 150)
    assert aux.in_index == 2 and aux.in_channels == base_channels[2]
    assert backbone.use_rel_pos_bias and backbone.drop_path_rate == 0.1
    assert backbone.get('window_size') is None  # global attention over the crop
    # the grid of the tables is the crop: training crops and slide windows match it
    crop = tuple(cfg.crop_size)
    assert tuple(backbone.img_size) == crop == tuple(cfg.model.test_cfg.crop_size)
    assert cfg.model.test_cfg.mode == 'slide'
    assert tuple(cfg.model.data_preprocessor.size) == crop
    assert tuple(cfg.model.data_preprocessor.test_cfg['size']) == crop
    crops = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop']
    assert tuple(crops[0].crop_size) == crop
    assert backbone.init_cfg == dict(
        type='Pretrained', checkpoint=cfg.checkpoint, prefix='backbone.')
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper'
    assert ow.constructor == 'hivit_mm.LayerDecayOptimWrapperConstructor'
    assert ow.paramwise_cfg == dict(layer_decay_rate=0.75)
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, poly.type, poly.power, poly.eta_min) == (
        'LinearLR', 1e-6, 'PolyLR', 1.0, 0.)
    assert warmup.end == poly.begin and poly.end == cfg.train_cfg.max_iters
    grid = crop[0] // 16
    assert built.grid == (grid, grid)  # relative tables of (2 * grid - 1)**2 offsets
    table = built.blocks[0].attn.relative_position_bias_table
    assert table.shape[0] == (2 * grid - 1)**2
    if path == SEG_640:  # the official recipe
        assert crop == (640, 640) and tuple(cfg.model.test_cfg.stride) == (426, 426)
        assert (ow.optimizer.lr, ow.optimizer.weight_decay) == (1e-3, 0.05)
        assert (warmup.end, poly.end) == (750, 80000)
        assert cfg.train_dataloader.batch_size == 4
    else:
        assert crop == (512, 512) and tuple(cfg.model.test_cfg.stride) == (341, 341)
        assert (ow.optimizer.lr, warmup.end, poly.end) == (5e-4, 1500, 160000)
        assert cfg.train_dataloader.batch_size == 2


# ----------------------------------------------------------------------------
# Forward: loss and predict on fake batches
# ----------------------------------------------------------------------------
def test_mask_rcnn_loss_and_predict() -> None:
    model = _build(_tiny_cfg(DET_3X, drop_path_rate=0.1))
    from mmdet.models.losses import GIoULoss
    assert isinstance(model.roi_head.bbox_head.loss_bbox, GIoULoss)
    assert sorted(model.backbone.out_norms) == ['0', '1', '2', '3']
    assert model.backbone.window_size == 3 and model.backbone.global_blocks == (1, )

    model.train()
    data = model.data_preprocessor(_det_inputs(), True)
    assert tuple(data['inputs'].shape) == (2, 3, 128, 160)
    feats = model.backbone(data['inputs'])
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 32, 40), (16, 16, 20),
                                                   (32, 8, 10), (32, 4, 5)]
    losses = model(**data, mode='loss')
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert key in losses, sorted(losses)
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    no_grad = [n for n, p in model.backbone.named_parameters() if p.grad is None]
    assert not no_grad

    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(_det_inputs(), False),
                        mode='predict')
    assert len(results) == 2
    for result, (h, w) in zip(results, [(128, 160), (96, 128)]):
        pred = result.pred_instances
        assert pred.bboxes.shape[1] == 4 and len(pred.scores) == len(pred.bboxes)
        assert tuple(pred.masks.shape[1:]) == (h, w)


def test_upernet_loss_and_slide_predict() -> None:
    model = _build(_tiny_cfg(SEG_640))
    assert model.backbone.use_rel_pos_bias and model.backbone.out_norms is None
    grids = []
    model.backbone.register_forward_pre_hook(
        lambda m, args: grids.append(tuple(args[0].shape[-2:])))

    model.train()
    data = model.data_preprocessor(_seg_inputs([(64, 64), (48, 64)]), True)
    assert tuple(data['inputs'].shape) == (2, 3, 64, 64)  # padded to the crop
    losses = model(**data, mode='loss')
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())

    model.eval()
    grids.clear()
    # 96x128: 2x3 overlapping 64x64 windows; 48x80: padded to 64x80 (smaller than a
    # window), then 1x2 windows; every window is the backbone's 64x64 grid
    for h, w in [(96, 128), (48, 80)]:
        with torch.no_grad():
            (result, ) = model(**model.data_preprocessor(_seg_inputs([(h, w)]), False),
                               mode='predict')
        assert tuple(result.seg_logits.data.shape) == (150, h, w)
        assert tuple(result.pred_sem_seg.data.shape) == (1, h, w)
    assert grids == [(GRID, GRID)] * (6 + 2)


# ----------------------------------------------------------------------------
# Checkpoint hand-off: MAE / fine-tuned classifier -> detector / segmentor
# ----------------------------------------------------------------------------
PRE_GRID = 32  # pre-training / fine-tuning img_size (2x2 units); the tasks use 64


def _save(model: nn.Module, path: Path) -> Dict[str, torch.Tensor]:
    """Save as the Runner does (state_dict + meta with a HistoryBuffer)."""
    own = model.state_dict()
    state = OrderedDict((k, v.clone()) for k, v in own.items())
    state._metadata = own._metadata  # e.g. the grid HiViT records, kept by the Runner
    save_checkpoint(dict(state_dict=state, meta=dict(loss=HistoryBuffer([1.0], [1]))),
                    str(path))
    return state


@pytest.fixture(scope='module')
def mae_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """An mmpretrain MAE (MaskedHiViT + ClsFreeMAEDecoder, fused stem features)."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(1)
    c = HIVIT_TINY['embed_dims']
    mae = MODELS.build(
        dict(
            type='MAE',
            backbone=dict(type='hivit_mm.MaskedHiViT', arch=dict(HIVIT_TINY),
                          img_size=PRE_GRID, mask_ratio=0.75, fuse_stem_features=True),
            neck=dict(type='hivit_mm.ClsFreeMAEDecoder', num_patches=4, patch_size=16,
                      embed_dim=7 * c, decoder_embed_dim=16, decoder_depth=1,
                      decoder_num_heads=2),
            head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16,
                      loss=dict(type='PixelReconstructionLoss', criterion='L2'))))
    mae.init_weights()
    path = tmp_path_factory.mktemp('mae') / 'mae.pth'
    state = _save(mae, path)
    assert any(k.startswith('neck.') for k in state)
    return path, state


def _classifier_ckpt(path: Path, arch: dict = HIVIT_TINY,
                     **backbone) -> Dict[str, torch.Tensor]:
    """A fine-tuned mmpretrain ImageClassifier (official head: mean-pool, LN, fc)."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(2)
    c = arch['embed_dims']
    cls = MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='hivit_mm.HiViT', arch=dict(arch), img_size=PRE_GRID,
                           **backbone),
             neck=dict(type='hivit_mm.MeanPoolLayerNorm', in_channels=c),
             head=dict(type='LinearClsHead', num_classes=5, in_channels=c)))
    cls.init_weights()
    for name, p in cls.named_parameters():  # tables start at zeros: make them random
        if 'relative_position_bias_table' in name:
            p.data.normal_()
    return _save(cls, path)


@pytest.fixture(scope='module')
def cls_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    path = tmp_path_factory.mktemp('cls') / 'cls.pth'
    return path, _classifier_ckpt(path, use_rel_pos_bias=True)


def _with_weights(path: Path, ckpt: Path) -> nn.Module:
    """The real config, tiny backbone, initialised from ``ckpt`` as the config says."""
    cfg = _tiny_cfg(path)
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=str(ckpt), prefix='backbone.')
    model = _build(cfg)
    model.init_weights()
    return model


def _assert_backbone_loaded(backbone: HiViT, state: Dict[str, torch.Tensor]) -> None:
    """Every backbone key of ``state`` is in the model (tables/embeddings resized)."""
    prefix = 'backbone.'
    src = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    own = backbone.state_dict()
    pre_only = [k for k in src if k.startswith(MaskedHiViT.pretraining_keys)]
    assert set(src) - set(own) == set(pre_only)
    for key, value in src.items():
        if key in pre_only:
            continue
        if key == 'pos_embed' and backbone.pos_grid != (2, 2):
            from mmpretrain.models.utils import resize_pos_embed
            value = resize_pos_embed(value, (2, 2), (4, 4), mode='bicubic',
                                     num_extra_tokens=0)
        elif key.endswith('relative_position_bias_table'):
            value = resize_rel_pos_bias_table(value, (2, 2), (4, 4), 'geometric')
        torch.testing.assert_close(own[key], value, msg=key)


@pytest.mark.parametrize('path', [DET_3X, SEG_640], ids=['mask-rcnn', 'upernet'])
def test_mae_checkpoint_initialises_the_backbone(path: Path, mae_ckpt: tuple) -> None:
    ckpt, state = mae_ckpt
    model = _with_weights(path, ckpt)
    _assert_backbone_loaded(model.backbone, state)
    own = model.backbone.state_dict()
    assert 'norm.weight' not in own  # the encoder's final (fused-feature) norm: dropped
    # MAE trains without relative tables: the segmentor's start at zero
    tables = [v for k, v in own.items() if k.endswith('relative_position_bias_table')]
    assert bool(tables) == (path == SEG_640)
    assert all(not t.abs().sum() for t in tables)
    # task-specific parts keep their initialisation (LayerNorm2d: ones/zeros)
    for k, v in own.items():
        if k.startswith('out_norms.'):
            assert torch.equal(v, torch.ones_like(v) if k.endswith('weight') else
                               torch.zeros_like(v)), k


def test_finetuned_classifier_checkpoint_initialises_the_segmentor(
        cls_ckpt: tuple) -> None:
    ckpt, state = cls_ckpt
    model = _with_weights(SEG_640, ckpt)
    _assert_backbone_loaded(model.backbone, state)
    table = model.backbone.blocks[0].attn.relative_position_bias_table
    assert tuple(table.shape) == (7 * 7, HIVIT_TINY['num_heads'])  # 3x3 -> 7x7 offsets
    assert table.abs().sum() > 0


def test_mismatched_checkpoints_are_refused_naming_keys(tmp_path: Path,
                                                       cls_ckpt: tuple) -> None:
    # relative tables in the weights but not in the (rpe-off) detector
    with pytest.raises(KeyError, match=r'unexpected keys: \[.*relative_position_bias'):
        _with_weights(DET_3X, cls_ckpt[0])
    # another width: every shape mismatch is named
    wide = tmp_path / 'wide.pth'
    _classifier_ckpt(wide, arch=dict(HIVIT_TINY, embed_dims=64), use_rel_pos_bias=True)
    with pytest.raises(KeyError, match=r'blocks\.0\.attn\.qkv\.weight: checkpoint '
                       r'\(192, 64\) vs model \(96, 32\)'):
        _with_weights(SEG_640, wide)
    # no 'backbone.' keys at all
    bare = tmp_path / 'bare.pth'
    save_checkpoint(HiViT(arch=dict(HIVIT_TINY)).state_dict(), str(bare))
    with pytest.raises(KeyError, match='backbone. is not in the pretrained'):
        _with_weights(DET_3X, bare)


# ----------------------------------------------------------------------------
# Layer-wise lr decay on the real models
# ----------------------------------------------------------------------------
DEEP = dict(HIVIT_TINY, depths=(1, 1, 4))  # a main stage with a middle block


@pytest.mark.parametrize('path, rate, lr, heads', [
    (DET_3X, 0.9, 1e-4, ('neck.lateral_convs.0.conv.weight', 'rpn_head.rpn_conv.weight',
                         'roi_head.bbox_head.shared_convs.0.conv.weight',
                         'roi_head.bbox_head.fc_reg.weight',
                         'roi_head.mask_head.conv_logits.weight',
                         'backbone.out_norms.0.weight')),
    (SEG_640, 0.75, 1e-3, ('decode_head.lateral_convs.0.conv.weight',
                           'decode_head.fpn_bottleneck.conv.weight',
                           'decode_head.conv_seg.weight',
                           'auxiliary_head.conv_seg.weight')),
], ids=['mask-rcnn', 'upernet'])
def test_layer_decay_on_real_models(path: Path, rate: float, lr: float,
                                    heads: tuple) -> None:
    cfg = _tiny_cfg(path, arch=DEEP)
    model = _build(cfg)
    optim_cfg = cfg.optim_wrapper.copy()
    optim_cfg.type = 'OptimWrapper'  # AMP needs a GPU; the groups are the same
    groups = build_optim_wrapper(model, optim_cfg).optimizer.param_groups
    lr_of, wd_of = {}, {}
    for group in groups:
        for name in group['param_names']:
            assert name not in lr_of, f'{name} is in two groups'
            lr_of[name], wd_of[name] = group['lr'], group['weight_decay']
    assert set(lr_of) == {n for n, p in model.named_parameters() if p.requires_grad}

    top = DEEP['depths'][2] + 1  # layers: stem 0, main block k -> k + 1, rest top
    expected = {
        'backbone.patch_embed.proj.weight': rate**top,
        'backbone.stem.0.blocks.0.mlp.fc1.weight': rate**top,  # first stem block
        'backbone.stem.1.downsample.reduction.weight': rate**top,
        'backbone.pos_embed': rate**top,
        'backbone.blocks.0.attn.qkv.weight': rate**(top - 1),
        'backbone.blocks.1.attn.proj.weight': rate**(top - 2),  # a middle block
        'backbone.blocks.3.mlp.fc2.weight': rate,  # the last block
        **{name: 1. for name in heads},
    }
    for name, scale in expected.items():
        assert lr_of[name] == pytest.approx(lr * scale), name
    # weight decay: none on 1-D parameters and position tables
    assert wd_of['backbone.pos_embed'] == 0.
    assert wd_of['backbone.blocks.1.norm1.weight'] == 0.
    assert wd_of['backbone.blocks.1.attn.qkv.bias'] == 0.
    assert wd_of['backbone.blocks.1.attn.qkv.weight'] == 0.05
    assert wd_of[heads[0]] == 0.05
    if path == SEG_640:
        assert wd_of['backbone.blocks.1.attn.relative_position_bias_table'] == 0.


# ----------------------------------------------------------------------------
# End to end: the tools on the built-in shapes data
# ----------------------------------------------------------------------------
def _upstream_tool(package: str, name: str) -> str:
    module = __import__(package)
    path = osp.join(osp.dirname(module.__file__), '.mim', 'tools', name)
    assert osp.isfile(path), path
    return path


def _losses(work_dir: Path) -> List[float]:
    (scalars, ) = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [r['loss'] for r in records if 'loss' in r]


def _metric(output: str, key: str) -> float:
    found = re.findall(rf'{re.escape(key)}: (-?[0-9.]+)', output)
    assert found, output[-3000:]
    return float(found[-1])


@pytest.fixture(scope='module')
def det_options(tmp_path_factory: pytest.TempPathFactory) -> List[str]:
    root = tmp_path_factory.mktemp('shapes') / 'coco'
    make_detection(root, num_train=8, num_val=2, img_size=128)
    ann = root / 'annotations' / 'instances_val.json'
    return ['--cfg-options'] + [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ] + [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']


@pytest.fixture(scope='module')
def seg_options(tmp_path_factory: pytest.TempPathFactory) -> List[str]:
    root = tmp_path_factory.mktemp('shapes') / 'ade'
    make_segmentation(root, num_train=8, num_val=2, img_size=128)
    return ['--cfg-options'] + [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


NO_VAL = ['train_cfg.max_iters=2', 'val_cfg=None', 'val_dataloader=None',
          'val_evaluator=None', 'default_hooks.checkpoint.interval=2']


@pytest.mark.e2e
@pytest.mark.parametrize('kind', ['det', 'seg'])
def test_train_then_test_end_to_end(kind: str, tmp_path: Path,
                                    request: pytest.FixtureRequest) -> None:
    config = str(TINY_DET if kind == 'det' else TINY_SEG)
    options = request.getfixturevalue(f'{kind}_options')
    keys = (['coco/bbox_mAP', 'coco/segm_mAP'] if kind == 'det' else ['mIoU'])
    work_dir = tmp_path / 'train'
    out = run_ok([sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir),
                *options])
    losses = _losses(work_dir)
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert 'LayerDecayOptimWrapperConstructor: layer_decay_rate' in out
    for key in keys:  # validation at the last iteration
        assert 0 <= _metric(out, key) <= 100
    ckpt = work_dir / 'iter_4.pth'
    out = run_ok([sys.executable, 'tools/test.py', config, str(ckpt), '--work-dir',
                str(tmp_path / 'test'), *options])
    for key in keys:
        assert 0 <= _metric(out, key) <= 100


@pytest.mark.e2e
@pytest.mark.parametrize('kind', ['det', 'seg'])
def test_upstream_train_script_runs_the_config(kind: str, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    """mmdet's / mmseg's own tools/train.py (custom_imports registers hivit_mm)."""
    package, config = ('mmdet', TINY_DET) if kind == 'det' else ('mmseg', TINY_SEG)
    options = request.getfixturevalue(f'{kind}_options')
    work_dir = tmp_path / 'train'
    run_ok([sys.executable, _upstream_tool(package, 'train.py'), str(config),
          '--work-dir', str(work_dir), *options, *NO_VAL])
    losses = _losses(work_dir)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    if kind == 'seg':  # and the upstream test script loads the checkpoint
        out = run_ok([sys.executable, _upstream_tool(package, 'test.py'), str(config),
                    str(work_dir / 'iter_2.pth'), '--work-dir', str(tmp_path / 'test'),
                    *options])
        assert 0 <= _metric(out, 'mIoU') <= 100


@pytest.mark.e2e
def test_dist_train_two_cpu_processes(tmp_path: Path, det_options: List[str]) -> None:
    work_dir = tmp_path / 'dist'
    out = run_ok(['bash', 'tools/dist_train.sh', str(TINY_DET), '2', '--work-dir',
                str(work_dir), *det_options, *NO_VAL], PORT=str(free_port()))
    assert 'SyncBN replaced by BN' in out
    assert 'Distributed training: True' in out and 'GPU number: 2' in out
    losses = _losses(work_dir)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert (work_dir / 'iter_2.pth').is_file()
