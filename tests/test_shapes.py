# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Tests of the synthetic "shapes" world: upstream loaders read it unchanged."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from hivit_mm.datasets import (SEG_CLASSES, SHAPE_CLASSES, ensure_shapes,
                               make_classification, make_detection, make_segmentation,
                               make_shapes, shapes)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
NUM_TRAIN, NUM_VAL = 12, 8
DET_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True)
]
TINY = dict(num_cls_train=8, num_cls_val=4, num_det_train=3, num_det_val=2,
            num_seg_train=3, num_seg_val=2)


def _tree(root):
    """Map relative path -> bytes of every file under ``root``."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                files[osp.relpath(path, root)] = f.read()
    return files


def _mtimes(root):
    """Map relative path -> modification time (ns) of every file under ``root``."""
    return {
        osp.relpath(osp.join(folder, name), root):
        os.stat(osp.join(folder, name)).st_mtime_ns
        for folder, _, names in os.walk(root) for name in names
    }


@pytest.fixture(scope='module')
def cls_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cls'))
    make_classification(root, NUM_TRAIN, NUM_VAL, img_size=64, seed=0)
    return root


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    make_detection(root, NUM_TRAIN, NUM_VAL, img_size=128, seed=0)
    return root


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ade'))
    make_segmentation(root, NUM_TRAIN, NUM_VAL, img_size=128, seed=0)
    return root


def test_classification_loads_with_mmpretrain(cls_root):
    from mmpretrain.datasets import CustomDataset
    init_default_scope('mmpretrain')
    counts = {}
    for split, num in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        dataset = CustomDataset(
            data_root=cls_root, ann_file=f'meta/{split}.txt', data_prefix='',
            classes=osp.join(cls_root, 'meta', 'classes.txt'),
            pipeline=[dict(type='LoadImageFromFile')])
        assert len(dataset) == num
        assert dataset.metainfo['classes'] == SHAPE_CLASSES
        labels = dataset.get_gt_labels()
        counts[split] = np.bincount(labels, minlength=len(SHAPE_CLASSES)).tolist()
        for index in range(num):
            sample = dataset[index]
            assert sample['img'].shape == (64, 64, 3)
            # the folder names the class, so a folder scan agrees with the labels
            assert osp.basename(osp.dirname(
                sample['img_path'])) == SHAPE_CLASSES[sample['gt_label']]
    assert counts == {'train': [3, 3, 3, 3], 'val': [2, 2, 2, 2]}


def test_classification_folder_scan_for_mae(cls_root):
    from mmpretrain.datasets import CustomDataset
    unlabeled = CustomDataset(data_root=cls_root, data_prefix='train', with_label=False)
    assert len(unlabeled) == NUM_TRAIN
    assert all('gt_label' not in unlabeled.get_data_info(i) for i in range(NUM_TRAIN))
    labeled = CustomDataset(
        data_root=cls_root, data_prefix='val', classes=SHAPE_CLASSES)
    from_file = CustomDataset(
        data_root=cls_root, ann_file='meta/val.txt', data_prefix='',
        classes=SHAPE_CLASSES)
    scanned = {
        osp.relpath(info['img_path'], cls_root): info['gt_label']
        for info in (labeled.get_data_info(i) for i in range(len(labeled)))
    }
    listed = {
        osp.relpath(info['img_path'], cls_root): info['gt_label']
        for info in (from_file.get_data_info(i) for i in range(len(from_file)))
    }
    assert scanned == listed and len(listed) == NUM_VAL


def _load_coco(coco_root, split, pipeline):
    from mmdet.datasets import CocoDataset
    init_default_scope('mmdet')
    return CocoDataset(
        data_root=coco_root, ann_file=f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'{split}/'), metainfo=dict(classes=SHAPE_CLASSES),
        pipeline=pipeline)


def test_detection_loads_with_mmdet(coco_root):
    for split, num in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        with open(osp.join(coco_root, 'annotations', f'instances_{split}.json')) as f:
            coco = json.load(f)
        areas = {}
        for ann in coco['annotations']:
            areas.setdefault(ann['image_id'], []).append(ann['area'])
        dataset = _load_coco(coco_root, split, DET_PIPELINE)
        assert len(dataset) == num
        num_instances = 0
        for index in range(num):
            results = dataset[index]
            assert results['img'].shape == (128, 128, 3)
            boxes = results['gt_bboxes'].numpy()
            assert boxes.min() >= 0 and boxes.max() <= 128
            assert np.all(boxes[:, 2:] > boxes[:, :2])
            labels = results['gt_bboxes_labels']
            assert labels.min() >= 0 and labels.max() < len(SHAPE_CLASSES)
            masks = results['gt_masks'].to_ndarray()
            assert masks.shape == (len(labels), 128, 128)
            expected = np.array(areas[results['img_id']])
            # the polygons rasterize back to the visible pixels, whose count is area
            np.testing.assert_array_equal(masks.sum((1, 2)), expected)
            num_instances += len(labels)
        assert num_instances == len(coco['annotations'])


def test_detection_evaluates_with_coco_metric(coco_root):
    from mmdet.evaluation import CocoMetric
    dataset = _load_coco(coco_root, 'val', DET_PIPELINE)
    metric = CocoMetric(
        ann_file=osp.join(coco_root, 'annotations', 'instances_val.json'),
        metric=['bbox', 'segm'])
    metric.dataset_meta = dataset.metainfo
    for index in range(len(dataset)):
        gt = dataset[index]
        masks = gt['gt_masks'].to_ndarray().astype(bool)
        metric.process({}, [dict(
            img_id=gt['img_id'], ori_shape=(128, 128),
            pred_instances=dict(
                bboxes=gt['gt_bboxes'].tensor,
                scores=torch.ones(len(masks)),
                labels=torch.from_numpy(gt['gt_bboxes_labels']),
                masks=torch.from_numpy(masks)))])
    results = metric.evaluate(len(dataset))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)


def test_segmentation_loads_with_mmseg(ade_root):
    from mmseg.datasets import BaseSegDataset
    init_default_scope('mmseg')
    for split, num in (('training', NUM_TRAIN), ('validation', NUM_VAL)):
        dataset = BaseSegDataset(
            data_root=ade_root,
            data_prefix=dict(img_path=f'images/{split}',
                             seg_map_path=f'annotations/{split}'),
            img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
            metainfo=dict(classes=SEG_CLASSES),
            pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')])
        assert len(dataset) == num
        assert dataset.metainfo['classes'] == SEG_CLASSES
        for index in range(num):
            results = dataset[index]
            assert results['img'].shape == (128, 128, 3)
            seg = results['gt_seg_map']
            assert seg.shape == (128, 128) and seg.dtype == np.uint8
            values = np.unique(seg)
            assert values[0] == 0 and values.max() < len(SEG_CLASSES)
            assert len(values) >= 2  # every scene has at least one object


def test_objects_are_learnable(cls_root, coco_root, ade_root):
    for split in ('train', 'val'):
        with open(osp.join(cls_root, 'meta', f'{split}.txt')) as f:
            labels = {int(line.split()[1]) for line in f}
        assert labels == set(range(len(SHAPE_CLASSES)))
        with open(osp.join(coco_root, 'annotations', f'instances_{split}.json')) as f:
            coco = json.load(f)
        categories = {ann['category_id'] for ann in coco['annotations']}
        assert categories == set(range(1, len(SHAPE_CLASSES) + 1))
        assert [c['name'] for c in coco['categories']] == list(SHAPE_CLASSES)
        # objects of 128 px scenes are large: over 400 px (a 20x20 square) on average
        assert np.mean([ann['area'] for ann in coco['annotations']]) > 400
    # every class is in both segmentation splits; objects are much brighter (HSV
    # value) than the background
    fg, bg = [], []
    for split in ('training', 'validation'):
        values = set()
        for name in sorted(os.listdir(osp.join(ade_root, 'images', split))):
            image = cv2.imread(osp.join(ade_root, 'images', split, name))
            seg = cv2.imread(osp.join(ade_root, 'annotations', split, name), 0)
            values.update(np.unique(seg).tolist())
            brightness = image.max(axis=2).astype(np.float64)
            fg.append(brightness[seg > 0].mean())
            bg.append(brightness[seg == 0].mean())
        assert values == set(range(len(SEG_CLASSES)))
    assert np.mean(fg) - np.mean(bg) > 60


def test_same_seed_same_bytes(tmp_path):
    first = make_shapes(tmp_path / 'a', seed=3, **TINY)
    second = make_shapes(tmp_path / 'b', seed=3, **TINY)
    other = make_shapes(tmp_path / 'c', seed=4, **TINY)
    for name in ('cls', 'coco', 'ade'):
        files = _tree(first[name])
        assert files == _tree(second[name])
        pngs = [data for path, data in files.items() if path.endswith('.png')]
        other_pngs = [
            data for path, data in _tree(other[name]).items() if path.endswith('.png')
        ]
        # another seed: every image (and label map) is new
        assert len(set(pngs)) == len(pngs) == len(other_pngs)
        assert set(pngs).isdisjoint(other_pngs)
    assert len([f for f in os.listdir(tmp_path / 'a') if f.startswith('.shapes-')]) == 1


def test_ensure_shapes_regenerates_only_on_change(tmp_path, monkeypatch):
    paths = ensure_shapes(tmp_path, **TINY)
    assert paths == {
        name: osp.join(str(tmp_path), name)
        for name in ('cls', 'coco', 'ade')
    }
    before = _mtimes(tmp_path)
    assert ensure_shapes(tmp_path, **TINY) == paths
    assert _mtimes(tmp_path) == before
    # fewer images: all rewritten, none stale, one marker for the new parameters
    smaller = dict(TINY, num_cls_train=4)
    ensure_shapes(tmp_path, **smaller)
    after = _mtimes(tmp_path)
    same_names = [p for p in before if p.startswith(('coco', 'ade'))]
    assert len(same_names) == 17 and all(after[p] != before[p] for p in same_names)
    assert len([p for p in after if p.startswith(osp.join('cls', 'train'))]) == 4
    markers = [p for p in after if p.startswith('.shapes-')]
    assert len(markers) == 1 and markers[0] not in before
    ensure_shapes(tmp_path, **smaller)
    assert _mtimes(tmp_path) == after
    # a new generator version invalidates the marker as well
    monkeypatch.setattr(shapes, 'GENERATOR_VERSION', shapes.GENERATOR_VERSION + 1)
    ensure_shapes(tmp_path, **smaller)
    newest = _mtimes(tmp_path)
    assert all(newest[p] != after[p] for p in same_names)
    assert [p for p in newest if p.startswith('.shapes-')] != markers


def test_bad_input_raises(tmp_path):
    with pytest.raises(ValueError, match='num_train.*-1'):
        make_detection(tmp_path, -1, 2)
    with pytest.raises(ValueError, match='img_size.*16'):
        make_segmentation(tmp_path, 2, 2, img_size=16)
    with pytest.raises(ValueError, match='seed.*-3'):
        ensure_shapes(tmp_path, seed=-3, **TINY)
    assert os.listdir(tmp_path) == []


def test_cli(tmp_path):
    args = [f'--{k.replace("_", "-")}={v}' for k, v in TINY.items()]
    proc = subprocess.run(
        [sys.executable, osp.join('tools', 'misc', 'make_shapes.py'),
         str(tmp_path / 'out'), '--seed', '1'] + args,
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    out = str(tmp_path / 'out')
    assert lines[0] == f'cls   {osp.join(out, "cls")}: train 8 images, val 4 images'
    assert lines[1].startswith(f'coco  {osp.join(out, "coco")}: train 3 images (')
    assert lines[2] == f'ade   {osp.join(out, "ade")}: train 3 images, val 2 images'
    with open(osp.join(out, 'coco', 'annotations', 'instances_val.json')) as f:
        assert len(json.load(f)['images']) == 2
