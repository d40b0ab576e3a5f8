# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The model zoo: the index matches the configs, models are found and built by name,
and the inference API and the upstream inferencers run our models on an image."""
import glob
import json
import os.path as osp
import runpy

import mmcv
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

import hivit_mm  # noqa: F401  (registers the model index with mmpretrain)
from hivit_mm.apis import (extract_features, init_model, list_models, load_model_index,
                           model_complexity, reconstruct)
from hivit_mm.apis.model_zoo import serves_mmpretrain
from hivit_mm.datasets import make_classification
from hivit_mm.utils.checkpoint import CheckpointHashError, publish_checkpoint

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
INDEX = load_model_index()
MMPRETRAIN_SERVED = sorted(n for n, e in INDEX.items() if serves_mmpretrain(e))
#: FLOPs counted in the unit tier (small models); the rest are e2e.
CHEAP_FLOPS = ('hivit-tiny-p16_8xb128_in1k',
               'mae_hivit-tiny-p16-hifeat_8xb512-amp-coslr-400e_in1k')
TINY_CLS = 'hivit-tiny-p16_8xb128_in1k'


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory):
    """A few 256-px images of the built-in shapes world."""
    root = tmp_path_factory.mktemp('shapes')
    make_classification(root, num_train=4, num_val=0, img_size=256)
    return sorted(glob.glob(str(root / 'train' / '**' / '*.png'), recursive=True))


def upstream_model_names():
    """Model names of mmpretrain's, mmdet's and mmseg's own model indexes."""
    import mmdet
    import mmseg
    from mmpretrain.apis import ModelHub
    from modelindex.load_model_index import load
    names = set()
    for lib in (mmdet, mmseg):
        index = osp.join(osp.dirname(lib.__file__), '.mim', 'model-index.yml')
        if osp.isfile(index):
            model_index = load(index)
            model_index.build_models_with_collections()
            names |= {m.name.lower() for m in model_index.models}
    ModelHub._register_mmpretrain_models()
    ours = set(INDEX)
    names |= {n for n, m in ModelHub._models_dict.items()
              if n not in ours or m.config != INDEX[n]['config']}
    return names


# ----------------------------------------------------------------------------
# The index
# ----------------------------------------------------------------------------
def test_index_lists_every_config_and_every_metafile():
    configs = {osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
        if '/_base_/' not in p and '/demo/' not in p}
    assert {osp.relpath(e['config'], REPO) for e in INDEX.values()} == configs
    metafiles = {osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', '*', 'metafile.yml'))}
    assert {osp.relpath(e['metafile'], REPO) for e in INDEX.values()} == metafiles
    for name, entry in INDEX.items():
        assert 'Weights' in entry and 'Results' in entry, name
        meta = entry['Metadata']
        assert meta['Parameters'] > 0 and meta['FLOPs'] > 0, name
        assert meta['Training Data'], name
        # a stated metric is the paper's, and says so
        stated = [v for r in entry['Results'] or [] for v in r['Metrics'].values()
                  if v is not None]
        assert bool(stated) == bool(entry.get('Results Source')), name
        for downstream in entry.get('Downstream', []) + [entry.get('Pre-trained From')]:
            assert downstream is None or downstream in INDEX, (name, downstream)


def test_names_are_distinct_from_every_upstream_model_name():
    assert not set(INDEX) & upstream_model_names()


def test_paper_results_are_stated():
    def metric(name, key):
        return INDEX[name]['Results'][0]['Metrics'][key]

    assert metric('hivit-tiny-p16_8xb128_in1k', 'Top 1 Accuracy') == 82.1
    assert metric('hivit-base-p16_8xb128-amp-coslr-100e_in1k', 'Top 1 Accuracy') == 84.6
    assert metric('mask-rcnn_hivit-base-p16_fpn-3x_coco', 'box AP') == 53.3
    assert metric('upernet_hivit-base-p16_8xb4-80k_ade20k-640x640', 'mIoU') == 52.8
    assert metric('swin-base-w7_16xb48-amp-coslr-100e_in1k', 'Top 1 Accuracy') == 83.8
    assert metric('swin-base-w7_8xb128-amp-coslr-100e_in1k', 'Top 1 Accuracy') == 83.7
    assert '85.1' in INDEX['greenmim_swin-large-w14_8xb256-amp-coslr-800e_in1k'][
        'Paper Result']


def test_readme_table_is_generated_from_the_metafiles():
    tool = runpy.run_path(osp.join(REPO, 'tools', 'misc', 'model_zoo.py'))
    assert tool['main'](['readme', '--check']) == 0
    table = tool['table'](INDEX)
    assert table.count('\n') == len(INDEX) + 1  # header, separator, one row each
    assert '| 19.18M | 4.60G |' in table  # HiViT-T, as stated


# ----------------------------------------------------------------------------
# By name: every model builds with the stated parameter count
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(INDEX))
def test_every_model_builds_by_name_with_the_stated_parameters(name):
    """mmpretrain's get_model for the models it serves, init_model for the others."""
    expected = INDEX[name]['Metadata']['Parameters']
    if name in MMPRETRAIN_SERVED:
        from mmpretrain import get_model
        model = get_model(name)
        assert model._metainfo.name.lower() == name
    else:
        model = init_model(name)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_list_models_finds_ours_through_mmpretrain():
    from mmpretrain import list_models as mmpretrain_list_models
    assert set(MMPRETRAIN_SERVED) <= set(mmpretrain_list_models())
    assert 'hivit-tiny-p16_8xb128_in1k' in mmpretrain_list_models('*hivit*')
    assert set(mmpretrain_list_models('mae_hivit*')) == set(list_models('mae_hivit'))
    # detection and segmentation models are ours only (mmpretrain cannot build them)
    assert 'mask-rcnn_hivit-base-p16_fpn-3x_coco' in list_models('mask-rcnn')
    assert 'mask-rcnn_hivit-base-p16_fpn-3x_coco' not in mmpretrain_list_models()
    # registering again changes nothing
    assert hivit_mm.apis.register_model_index() == []


@pytest.mark.parametrize('name', CHEAP_FLOPS)
def test_flops_equal_the_metafile(name):
    meta = INDEX[name]['Metadata']
    assert model_complexity(name) == (meta['Parameters'], meta['FLOPs'])


@pytest.mark.e2e
def test_flops_equal_the_metafile_for_every_model():
    """Counted once per distinct model and input size (configs differing only in their
    schedule build the same model), then compared with every metafile entry."""
    from mmengine.config import Config
    groups = {}
    for name, entry in INDEX.items():
        if name in CHEAP_FLOPS:
            continue
        model = Config.fromfile(entry['config']).model.to_dict()
        key = (json.dumps(model, sort_keys=True, default=str),
               tuple(entry['Metadata'].get('Input Size', (224, 224))))
        groups.setdefault(key, []).append(name)
    assert len(groups) < len(INDEX) - len(CHEAP_FLOPS)  # some configs share a model
    for names in groups.values():
        figures = model_complexity(names[0])
        for name in names:
            meta = INDEX[name]['Metadata']
            assert figures == (meta['Parameters'], meta['FLOPs']), name


# ----------------------------------------------------------------------------
# inference_model by name, and hivit_mm.apis
# ----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_cls_checkpoint(tmp_path_factory):
    """A published HiViT-T classifier checkpoint (random weights, 4 class names)."""
    torch.manual_seed(0)
    model = init_model(TINY_CLS)
    root = tmp_path_factory.mktemp('ckpt')
    meta = dict(dataset_meta=dict(classes=[f'class{i}' for i in range(1000)]))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), root / 'train.pth')
    return publish_checkpoint(str(root / 'train.pth'), str(root / 'hivit-tiny'))


def test_inference_model_by_name_uses_the_published_weights(image_dir,
                                                            tiny_cls_checkpoint):
    from mmpretrain import inference_model
    from mmpretrain.apis import ImageClassificationInferencer
    result = inference_model(TINY_CLS, image_dir[0], pretrained=tiny_cls_checkpoint)
    scores = torch.as_tensor(result['pred_scores'])
    assert scores.shape == (1000, ) and abs(float(scores.sum()) - 1) < 1e-4
    assert result['pred_label'] == int(scores.argmax())
    assert result['pred_class'] == f'class{result["pred_label"]}'
    # the same weights through our strict loader give the same scores
    ours = init_model(TINY_CLS, tiny_cls_checkpoint)
    again = ImageClassificationInferencer(ours)(image_dir[0])[0]
    torch.testing.assert_close(torch.as_tensor(again['pred_scores']), scores)


def test_init_model_refuses_a_checkpoint_of_another_model(tmp_path, tiny_cls_checkpoint):
    with pytest.raises(ValueError, match='missing keys .*unexpected keys'):
        init_model('hivit-small-p16_8xb128_in1k', tiny_cls_checkpoint)
    corrupted = tmp_path / osp.basename(tiny_cls_checkpoint)
    data = bytearray(open(tiny_cls_checkpoint, 'rb').read())
    data[-100] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    with pytest.raises(CheckpointHashError):
        init_model(TINY_CLS, str(corrupted))
    with pytest.raises(FileNotFoundError, match='did you mean'):
        init_model('hivit-tiny-p16_8xb128_in1', None)


def test_extract_features_gives_every_stage_with_its_stride(image_dir):
    torch.manual_seed(0)
    model = init_model(osp.join(REPO, 'tests/data/tiny_cls_config.py'),
                       cfg_options={'model.backbone.out_indices': (0, 1, 2, 3),
                                    'model.backbone.img_size': (96, 128)})
    image = mmcv.imread(image_dir[0])[:96, :128]  # 96 x 128, BGR
    feats = extract_features(model, [image, image[::-1].copy()])
    dims = (8, 16, 32, 32)  # the tiny config's C = 32: C/4, C/2, C, C
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        f'stage{i}': (2, dims[i], 96 // s, 128 // s)
        for i, s in enumerate((4, 8, 16, 32))
    }
    # the model's preprocessing: BGR -> RGB, (x - 127.5) / 127.5
    x = torch.from_numpy(np.stack([image, image[::-1]])).permute(0, 3, 1, 2).float()
    x = (x[:, [2, 1, 0]] - 127.5) / 127.5
    with torch.no_grad():
        direct = model.backbone(x)
    for i, out in enumerate(direct):
        torch.testing.assert_close(feats[f'stage{i}'], out)


def test_reconstruct_masks_the_stated_fraction_reproducibly(image_dir):
    torch.manual_seed(0)
    model = init_model(osp.join(REPO, 'tests/data/mae_tiny_hivit.py'))
    out = reconstruct(model, image_dir[:2], seed=3)
    assert {k: tuple(v.shape) for k, v in out.items()} == dict(
        original=(2, 3, 64, 64), masked=(2, 3, 64, 64), reconstruction=(2, 3, 64, 64),
        mask=(2, 1, 64, 64))
    # 12 of the 16 units of each 64-px image, as 16x16-pixel squares
    units = out['mask'][:, 0].unflatten(1, (4, 16)).unflatten(3, (4, 16))
    assert units.amax((2, 4)).sum((1, 2)).tolist() == [12, 12]
    assert torch.equal(units.amax((2, 4)), units.amin((2, 4)))
    visible = out['mask'] == 0
    assert torch.equal(out['masked'] * visible, out['original'] * visible)
    # the masked units show the normalisation mean (the image's mean colour)
    mean = model.data_preprocessor.mean.view(1, 3, 1, 1).expand(2, 3, 64, 64)
    hidden = (out['mask'] == 1).expand(-1, 3, -1, -1)
    torch.testing.assert_close(out['masked'][hidden], mean[hidden])
    assert out['reconstruction'].std() > 0
    again = reconstruct(model, image_dir[:2], seed=3)
    assert all(torch.equal(out[k], again[k]) for k in out)
    other = reconstruct(model, image_dir[:2], seed=4, mask_ratio=0.5)
    assert other['mask'].mean() == 0.5 and model.backbone.mask_ratio == 0.75


# ----------------------------------------------------------------------------
# The inferencer recipes of the README: DetInferencer, MMSegInferencer
# ----------------------------------------------------------------------------
def _save_checkpoint(model, path, classes):
    palette = [(60 * i % 256, 90 * i % 256, 150 * i % 256) for i in range(len(classes))]
    meta = dict(dataset_meta=dict(classes=classes, palette=palette))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return str(path)


@pytest.mark.e2e
def test_det_inferencer_recipe_writes_boxes_and_masks(image_dir, tmp_path):
    from mmdet.apis import DetInferencer
    config = osp.join(REPO, 'tests/data/det_tiny_mask-rcnn_hivit.py')
    torch.manual_seed(0)
    model = init_model(config)
    # a detector that finds something: lower the score threshold of the random model
    checkpoint = _save_checkpoint(model, tmp_path / 'det.pth',
                                  ('circle', 'square', 'star', 'triangle'))
    init_default_scope('mmdet')
    inferencer = DetInferencer(model=config, weights=checkpoint, device='cpu')
    result = inferencer(image_dir[0], out_dir=str(tmp_path / 'out'), pred_score_thr=0.)
    pred = result['predictions'][0]
    assert {'labels', 'scores', 'bboxes', 'masks'} <= set(pred)
    drawn = mmcv.imread(str(tmp_path / 'out' / 'vis' / osp.basename(image_dir[0])))
    assert drawn.shape == mmcv.imread(image_dir[0]).shape


@pytest.mark.e2e
def test_seg_inferencer_recipe_writes_an_overlay(image_dir, tmp_path):
    from mmseg.apis import MMSegInferencer
    config = osp.join(REPO, 'tests/data/seg_tiny_upernet_hivit.py')
    torch.manual_seed(0)
    model = init_model(config)
    checkpoint = _save_checkpoint(
        model, tmp_path / 'seg.pth', ('background', 'circle', 'square', 'star',
                                      'triangle'))
    init_default_scope('mmseg')
    inferencer = MMSegInferencer(model=config, weights=checkpoint, device='cpu')
    result = inferencer(image_dir[0], out_dir=str(tmp_path / 'out'))
    assert result['predictions'].shape == mmcv.imread(image_dir[0]).shape[:2]
    overlays = glob.glob(str(tmp_path / 'out' / 'vis' / '*'))
    assert len(overlays) == 1
    overlay = mmcv.imread(overlays[0])
    assert overlay.shape == mmcv.imread(image_dir[0]).shape
    assert not np.array_equal(overlay, mmcv.imread(image_dir[0]))
