# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Checkpoint converters: source-layout models give the same outputs after conversion.

The official layout comes from a plain reference model written here from the release's
description (zhangxiaosong18/hivit, ``self_supervised/models/models_hivit.py``: flat
``blocks`` list, ``absolute_pos_embed``,
``fc_norm``/``head``, MAE ``norm`` and timm-named decoder blocks); mmpretrain's layout
comes from mmpretrain's own ``HiViT``. Every model is tiny and randomly initialised, and
every converted state dict loads with ``strict=True``.
"""
import os
import os.path as osp
import runpy
import subprocess
import sys
from collections import OrderedDict
from typing import List, Optional

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmpretrain.models.backbones import HiViT as MMPretrainHiViT
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS

from conftest import HIVIT_TINY
from hivit_mm.models import HiViT
from hivit_mm.models.convert_hivit import (convert_mmpretrain_hivit,
                                           convert_official_hivit, flat_block_layout,
                                           rename_flat_block_key)


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    """The models built here are mmpretrain's: don't inherit another test's scope."""
    init_default_scope('mmpretrain')


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = HIVIT_TINY
DIM, DEPTHS, HEADS = TINY['embed_dims'], TINY['depths'], TINY['num_heads']
EPS = 1e-6


def backbone_of(converted: 'OrderedDict[str, torch.Tensor]') -> OrderedDict:
    """The ``backbone.`` keys of a converted state dict, prefix removed, with the grid
    the converter recorded for them."""
    out = OrderedDict((k[len('backbone.'):], v) for k, v in converted.items()
                      if k.startswith('backbone.'))
    out._metadata = OrderedDict({'': converted._metadata['backbone']})
    return out


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter a random value (LayerNorm weights around 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.2
            is_ln_weight = p.dim() == 1 and name.endswith('weight') and (
                'norm' in name or 'ln' in name)
            p.copy_(noise + 1 if is_ln_weight else noise)
    model.eval()  # mmpretrain's BaseBackbone.train returns None
    return model


# ----------------------------------------------------------------------------
# A plain reference model in the official layout (not the release's code)
# ----------------------------------------------------------------------------
def swin_relative_index(side: int) -> torch.Tensor:
    """(N, N) index into a ((2s-1)^2, heads) table, for a side x side grid."""
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + side - 1
    dx = xs[:, None] - xs[None, :] + side - 1
    return dy * (2 * side - 1) + dx


class OfficialAttention(nn.Module):

    def __init__(self, dim: int, heads: int, table_size: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if table_size:
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros(table_size, heads))

    def forward(self, x: torch.Tensor, index: Optional[torch.Tensor]) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q * (C // self.heads)**-0.5) @ k.transpose(-2, -1)
        if index is not None:
            bias = self.relative_position_bias_table[index]  # [B,] N, N, heads
            attn = attn + bias.movedim(-1, -3)
        x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class OfficialBlock(nn.Module):
    """timm-named pre-norm block; ``heads=0`` is the MLP-only stem block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, table_size: int = 0):
        super().__init__()
        self.heads = heads
        if heads:
            self.norm1 = nn.LayerNorm(dim, eps=EPS)
            self.attn = OfficialAttention(dim, heads, table_size)
        self.norm2 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.mlp.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x: torch.Tensor, index: Optional[torch.Tensor] = None):
        if self.heads:
            x = x + self.attn(self.norm1(x), index)
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class OfficialPatchMerge(nn.Module):

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=EPS)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B, L, h, w, C
        x = torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :],
                       x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]], -1)
        return self.reduction(self.norm(x))


class OfficialHiViT(nn.Module):
    """The release's module tree: a classifier, or (``mae=True``) hifeat MAE."""

    def __init__(self, img: int, rpe: bool, num_classes: int = 0, mae: bool = False,
                 dec_dim: int = 16, dec_depth: int = 2, dec_heads: int = 2) -> None:
        super().__init__()
        self.side = img // 16
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, DIM // 4, 4, 4)
        self.patch_embed.norm = nn.LayerNorm(DIM // 4, eps=EPS)
        self.absolute_pos_embed = nn.Parameter(torch.zeros(1, self.side**2, DIM))
        table = (2 * self.side - 1)**2 if rpe else 0
        if rpe:
            self.register_buffer('relative_position_index',
                                 swin_relative_index(self.side))
        self.blocks = nn.ModuleList()
        dim = DIM // 4
        for depth in DEPTHS[:2]:
            self.blocks.extend(OfficialBlock(dim, 0, 3.) for _ in range(2 * depth))
            self.blocks.append(OfficialPatchMerge(dim))
            dim *= 2
        self.blocks.extend(
            OfficialBlock(DIM, HEADS, 4., table) for _ in range(DEPTHS[2]))
        self.rpe, self.mae = rpe, mae
        if mae:
            self.norm = nn.LayerNorm(7 * DIM, eps=EPS)
            self.decoder_embed = nn.Linear(7 * DIM, dec_dim)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
            self.decoder_pos_embed = nn.Parameter(torch.zeros(1, self.side**2, dec_dim))
            self.decoder_blocks = nn.ModuleList(
                OfficialBlock(dec_dim, dec_heads, 4.) for _ in range(dec_depth))
            self.decoder_norm = nn.LayerNorm(dec_dim, eps=EPS)
            self.decoder_pred = nn.Linear(dec_dim, 16 * 16 * 3)
        else:
            self.fc_norm = nn.LayerNorm(DIM, eps=EPS)
            self.head = nn.Linear(DIM, num_classes)

    def features(self, x: torch.Tensor,
                 ids_keep: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        B, s = x.shape[0], self.side
        x = self.patch_embed.proj(x).reshape(B, -1, s, 4, s, 4)
        x = x.permute(0, 2, 4, 3, 5, 1).reshape(B, s * s, 4, 4, -1)  # B, L, 4, 4, C
        x = self.patch_embed.norm(x)
        pos = self.absolute_pos_embed.expand(B, -1, -1)
        index = self.relative_position_index if self.rpe else None
        if ids_keep is not None:
            x = x[torch.arange(B)[:, None], ids_keep]
            pos = pos[torch.arange(B)[:, None], ids_keep]
            if index is not None:
                index = index[ids_keep[:, :, None], ids_keep[:, None, :]]
        hifeat = []
        num_main = DEPTHS[2]
        for blk in self.blocks[:-num_main]:
            if isinstance(blk, OfficialPatchMerge):
                hifeat.append(x)
            x = blk(x)
        x = x[..., 0, 0, :] + pos
        for blk in self.blocks[-num_main:]:
            x = blk(x, index)
        return hifeat + [x]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc_norm(self.features(x)[-1].mean(1)))

    def reconstruct(self, x: torch.Tensor, ids_keep: torch.Tensor,
                    ids_restore: torch.Tensor) -> torch.Tensor:
        h, m, latent = self.features(x, ids_keep)
        B, L_keep = ids_keep.shape
        x = self.norm(torch.cat([h.reshape(B, L_keep, -1), m.reshape(B, L_keep, -1),
                                 latent], -1))
        x = self.decoder_embed(x)
        masks = self.mask_token.repeat(B, ids_restore.shape[1] + 1 - L_keep, 1)
        x = torch.cat([x, masks], 1)
        x = torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))


def build_classifier(img: int, rpe: bool, num_classes: int,
                     neck: Optional[dict] = None) -> nn.Module:
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='hivit_mm.HiViT', arch=dict(TINY), img_size=img,
                      use_rel_pos_bias=rpe),
        neck=neck or dict(type='hivit_mm.MeanPoolLayerNorm', in_channels=DIM),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=DIM))).eval()


# ----------------------------------------------------------------------------
# Layout helper
# ----------------------------------------------------------------------------
def test_flat_block_layout_of_the_released_base():
    layout = flat_block_layout((2, 2, 20))
    assert len(layout) == 4 + 1 + 4 + 1 + 20
    assert layout[3] == ('stem', 'stem.0.blocks.3')
    assert layout[4] == ('merge', 'stem.0.downsample')
    assert layout[5] == ('stem', 'stem.1.blocks.0')
    assert layout[9] == ('merge', 'stem.1.downsample')
    assert layout[10] == ('attention', 'blocks.0')
    assert layout[29] == ('attention', 'blocks.19')


def test_rename_flat_block_key_per_kind():
    layout = flat_block_layout(DEPTHS)  # stem 0,1 | merge 2 | stem 3,4 | merge 5 | 6,7
    assert rename_flat_block_key('blocks.1.norm2.weight', layout) == \
        'stem.0.blocks.1.norm.weight'
    assert rename_flat_block_key('blocks.4.mlp.fc2.bias', layout) == \
        'stem.1.blocks.1.mlp.fc2.bias'
    assert rename_flat_block_key('blocks.5.reduction.weight', layout) == \
        'stem.1.downsample.reduction.weight'
    assert rename_flat_block_key('blocks.7.attn.relative_position_bias_table',
                                 layout) == 'blocks.1.attn.relative_position_bias_table'
    assert rename_flat_block_key('blocks.0.norm1.weight', layout) is None  # stem
    assert rename_flat_block_key('blocks.2.norm2.weight', layout) is None  # merge
    assert rename_flat_block_key('blocks.8.norm1.weight', layout) is None  # range


# ----------------------------------------------------------------------------
# Official release
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('rpe', [True, False])
def test_official_classifier_gives_the_same_logits(rpe):
    official = randomize_(OfficialHiViT(img=48, rpe=rpe, num_classes=7))
    state = official.state_dict()
    if rpe:  # the supervised code keeps one index per attention block, too
        state['blocks.6.attn.relative_position_index'] = swin_relative_index(3)
    converted = convert_official_hivit({'model': state, 'epoch': 3}, DEPTHS,
                                       img_size=48)
    assert not any('relative_position_index' in k for k in converted)
    assert 'backbone.pos_embed' in converted and 'neck.norm.weight' in converted

    model = build_classifier(img=48, rpe=rpe, num_classes=7)
    model.load_state_dict(converted, strict=True)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        expected = official.classify(x)
        got = model(x, mode='tensor')
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_official_checkpoint_is_not_modified():
    state = OfficialHiViT(img=32, rpe=True, num_classes=3).state_dict()
    keys = list(state)
    converted = convert_official_hivit(state, DEPTHS, img_size=32)
    assert list(state) == keys
    assert converted['backbone.stem.0.blocks.0.norm.weight'] is \
        state['blocks.0.norm2.weight']


def build_mae(img: int, dec_dim: int, dec_depth: int, dec_heads: int) -> nn.Module:
    return MODELS.build(dict(
        type='MAE',
        backbone=dict(type='hivit_mm.MaskedHiViT', arch=dict(TINY), img_size=img,
                      mask_ratio=0.75, fuse_stem_features=True),
        neck=dict(type='hivit_mm.ClsFreeMAEDecoder', num_patches=(img // 16)**2,
                  patch_size=16, embed_dim=7 * DIM, decoder_embed_dim=dec_dim,
                  decoder_depth=dec_depth, decoder_num_heads=dec_heads, mlp_ratio=4.),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')))).eval()


def test_official_mae_gives_the_same_reconstruction():
    official = randomize_(OfficialHiViT(img=64, rpe=False, mae=True, dec_dim=16,
                                        dec_depth=2, dec_heads=2))
    converted = convert_official_hivit({'model': official.state_dict()}, DEPTHS,
                                       img_size=64)
    assert converted['neck.decoder_pos_embed'].shape == (1, 16, 16)  # no class slot
    model = build_mae(img=64, dec_dim=16, dec_depth=2, dec_heads=2)
    model.load_state_dict(converted, strict=True)

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(11)
        latent, mask, ids_restore = model.backbone(x)
        got = model.neck(latent, ids_restore)
        # The official masking, on the same random stream.
        torch.manual_seed(11)
        ids_shuffle = torch.rand(2, 16).argsort(dim=1)
        ids_keep = ids_shuffle[:, :int(16 * (1 - 0.75))]
        assert torch.equal(ids_restore, ids_shuffle.argsort(dim=1))
        expected = official.reconstruct(x, ids_keep, ids_shuffle.argsort(dim=1))
    assert got.shape == (2, 16, 768)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_official_mae_initialises_a_fine_tuning_backbone(tmp_path):
    official = randomize_(OfficialHiViT(img=64, rpe=False, mae=True))
    converted = convert_official_hivit({'model': official.state_dict()}, DEPTHS,
                                       img_size=64)
    path = str(tmp_path / 'mae.pth')
    torch.save({'state_dict': converted, 'meta': {}}, path)
    model = HiViT(arch=dict(TINY), img_size=64, use_rel_pos_bias=True,
                  rel_pos_zero_init=True, init_cfg=dict(
                      type='Pretrained', checkpoint=path, prefix='backbone.'))
    model.init_weights()  # strict, apart from the logged fresh RPE tables
    torch.testing.assert_close(model.pos_embed, official.absolute_pos_embed)
    torch.testing.assert_close(model.blocks[1].mlp.fc2.weight,
                               official.blocks[7].mlp.fc2.weight)


def test_official_unmappable_keys_are_all_named():
    state = dict(OfficialHiViT(img=32, rpe=True, num_classes=3).state_dict())
    state['blocks.0.norm1.weight'] = torch.ones(DIM // 4)  # a stem block has no norm1
    state['cls_token'] = torch.zeros(1, 1, DIM)
    with pytest.raises(ValueError) as err:
        convert_official_hivit(state, DEPTHS)
    assert "'blocks.0.norm1.weight'" in str(err.value)
    assert "'cls_token'" in str(err.value)


def test_official_wrong_depths_raise():
    state = OfficialHiViT(img=32, rpe=True, num_classes=3).state_dict()
    with pytest.raises(ValueError,
                       match=r"depths \(1, 1, 1\).*'blocks\.7\.norm1\.weight'"):
        convert_official_hivit(state, (1, 1, 1))  # one main block too few
    with pytest.raises(ValueError, match=r"absent: \['blocks\.8'\]"):
        convert_official_hivit(state, (1, 1, 3))  # one main block too many
    with pytest.raises(ValueError, match=r"do not map: .*'blocks\.2\.norm\.weight'"):
        convert_official_hivit(state, (2, 1, 1))  # a merge where a stem block is due
    with pytest.raises(ValueError, match='three positive ints'):
        convert_official_hivit(state, (1, 2))


# ----------------------------------------------------------------------------
# mmpretrain
# ----------------------------------------------------------------------------
# mmpretrain's HiViT.forward tests its (overwritten) out index ``d2 - 1`` against the
# stem loop's indices too, and then reshapes the stem tokens in place; with d2 - 1 past
# the 2*d0 + 2*d1 + 2 stem modules its output is the end of the main stage.
MM_DEPTHS = (1, 1, 7)


def build_mmpretrain_hivit(rpe: bool, **kwargs) -> nn.Module:
    return MMPretrainHiViT(
        arch=dict(embed_dims=DIM, depths=list(MM_DEPTHS), num_heads=HEADS),
        img_size=48, rpe=rpe, norm_cfg=dict(type='LN', eps=EPS),
        out_indices=[MM_DEPTHS[2] - 1], **kwargs)


@pytest.mark.parametrize('rpe', [True, False])
def test_mmpretrain_backbone_gives_the_same_features(rpe):
    theirs = randomize_(build_mmpretrain_hivit(rpe))
    state = theirs.state_dict()
    if rpe:
        assert 'relative_position_index' in state
        assert 'blocks.6.attn.relative_position_index' in state
    converted = convert_mmpretrain_hivit(state, MM_DEPTHS, img_size=48)
    assert all(k.startswith('backbone.') for k in converted)
    assert not any('relative_position_index' in k for k in converted)

    ours = HiViT(arch=dict(embed_dims=DIM, depths=MM_DEPTHS, num_heads=HEADS),
                 img_size=48, use_rel_pos_bias=rpe).eval()
    ours.load_state_dict(backbone_of(converted), strict=True)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        (expected, ), (got, ) = theirs(x), ours(x)
    assert got.shape == (2, DIM, 3, 3)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_mmpretrain_classifier_checkpoint_keeps_its_head():
    def classifier(backbone: dict) -> nn.Module:
        return MODELS.build(dict(
            type='ImageClassifier', backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=DIM))).eval()

    arch = dict(embed_dims=DIM, depths=list(MM_DEPTHS), num_heads=HEADS)
    theirs = randomize_(classifier(dict(
        type='HiViT', arch=arch, img_size=48, rpe=True,
        norm_cfg=dict(type='LN', eps=EPS), out_indices=[MM_DEPTHS[2] - 1])))
    converted = convert_mmpretrain_hivit({'state_dict': theirs.state_dict()}, MM_DEPTHS,
                                         img_size=48)
    assert 'head.fc.weight' in converted

    ours = classifier(dict(type='hivit_mm.HiViT', arch=dict(arch, depths=MM_DEPTHS),
                           img_size=48, use_rel_pos_bias=True))
    ours.load_state_dict(converted, strict=True)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, mode='tensor'), theirs(x, mode='tensor'),
                                   atol=1e-5, rtol=1e-5)


def test_mmpretrain_layer_scale_and_stray_keys_are_named():
    state = build_mmpretrain_hivit(False, layer_scale_init_value=0.1).state_dict()
    with pytest.raises(ValueError) as err:
        convert_mmpretrain_hivit(state, MM_DEPTHS)
    assert "'blocks.6.gamma_1'" in str(err.value)
    assert "'blocks.0.gamma_2'" in str(err.value)

    state = build_mmpretrain_hivit(False).state_dict()
    full = {f'backbone.{k}': v for k, v in state.items()}
    full['blocks.0.norm2.weight'] = torch.ones(DIM // 4)  # no prefix in a full model
    with pytest.raises(ValueError, match=r"\['blocks\.0\.norm2\.weight'\]"):
        convert_mmpretrain_hivit(full, MM_DEPTHS)


def test_mmpretrain_wrong_depths_raise():
    state = build_mmpretrain_hivit(False).state_dict()
    with pytest.raises(ValueError, match=r"absent: \['blocks\.13', 'blocks\.14'\]"):
        convert_mmpretrain_hivit(state, (1, 1, 9))
    with pytest.raises(ValueError, match=r"do not map: .*'blocks\.2\.norm\.weight'"):
        convert_mmpretrain_hivit(state, (2, 1, 5))


# ----------------------------------------------------------------------------
# CLIs
# ----------------------------------------------------------------------------
def cli_path(script: str) -> str:
    return osp.join(REPO, 'tools', 'model_converters', script)


def run_cli(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [REPO, os.environ.get('PYTHONPATH')])))
    return subprocess.run([sys.executable, cli_path(script), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_official_cli(tmp_path):
    src, dst = tmp_path / 'official.pth', tmp_path / 'out' / 'converted.pth'
    torch.save({'model': OfficialHiViT(img=32, rpe=True, num_classes=3).state_dict(),
                'epoch': 99}, src)
    proc = run_cli('hivit_official_to_hivit_mm.py', str(src), str(dst),
                   '--depths', *map(str, DEPTHS), '--img-size', '32')
    assert proc.returncode == 0, proc.stderr
    saved = torch.load(dst, map_location='cpu', weights_only=False)
    assert saved['meta']['depths'] == list(DEPTHS)
    assert f"converted {len(saved['state_dict'])} keys" in proc.stdout
    build_classifier(img=32, rpe=True, num_classes=3).load_state_dict(
        saved['state_dict'], strict=True)

    cli = runpy.run_path(cli_path('hivit_official_to_hivit_mm.py'))
    assert cli['parse_args'](['a', 'b', '--arch', 'base']).depths == (2, 2, 20)
    with pytest.raises(ValueError, match=r'depths \(1, 1, 10\).*blocks\.8'):
        cli['main']([str(src), str(dst), '--arch', 'tiny'])


def test_converted_release_records_its_grid(tmp_path):
    """The release's weights are of 224 px (14x14 units): the converter records it, so
    the 196-token table (alone: 14x14, 7x28 or 4x49?) loads into a 4x16 model resized
    from 14x14; a grid the tables do not fit is refused."""
    official = randomize_(OfficialHiViT(img=224, rpe=False, num_classes=3))
    src, dst = tmp_path / 'release.pth', tmp_path / 'converted.pth'
    torch.save({'model': official.state_dict()}, src)
    main = runpy.run_path(cli_path('hivit_official_to_hivit_mm.py'))['main']
    main([str(src), str(dst), '--depths', *map(str, DEPTHS)])  # --img-size 224
    saved = torch.load(dst, map_location='cpu', weights_only=False)['state_dict']
    assert saved._metadata['backbone'] == dict(grid=[14, 14], pos_grid=[14, 14])
    model = HiViT(arch=dict(TINY), img_size=(64, 256), init_cfg=dict(
        type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    model.init_weights()
    assert torch.equal(model.pos_embed.data, resize_pos_embed(
        official.absolute_pos_embed.data, (14, 14), (4, 16), mode='bicubic',
        num_extra_tokens=0))
    with pytest.raises(ValueError, match='backbone.pos_embed of the official checkpoint '
                       'has 196 entries, not the 64 of a 4x16 grid'):
        main([str(src), str(tmp_path / 'other.pth'), '--depths', *map(str, DEPTHS),
              '--img-size', '64', '256'])


def test_mmpretrain_cli(tmp_path):
    src, dst = tmp_path / 'mmpretrain.pth', tmp_path / 'converted.pth'
    state = build_mmpretrain_hivit(True).state_dict()
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in state.items()},
                'meta': {}}, src)
    proc = run_cli('mmpretrain_hivit_to_hivit_mm.py', str(src), str(dst),
                   '--depths', *map(str, MM_DEPTHS), '--img-size', '48')
    assert proc.returncode == 0, proc.stderr
    saved = torch.load(dst, map_location='cpu', weights_only=False)
    assert f"converted {len(saved['state_dict'])} keys" in proc.stdout
    ours = HiViT(arch=dict(embed_dims=DIM, depths=MM_DEPTHS, num_heads=HEADS),
                 img_size=48, use_rel_pos_bias=True)
    ours.load_state_dict(backbone_of(saved['state_dict']), strict=True)

    cli = runpy.run_path(cli_path('mmpretrain_hivit_to_hivit_mm.py'))
    assert cli['parse_args'](['a', 'b', '--arch', 'base']).depths == (2, 2, 24)
    with pytest.raises(SystemExit):  # --arch and --depths exclude each other
        cli['parse_args'](['a', 'b', '--arch', 'tiny', '--depths', '1', '1', '2'])
