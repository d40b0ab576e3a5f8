# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The built-in "shapes" world: small, seeded, synthetic datasets in upstream formats.

Every image shows saturated, flat-coloured geometric objects (``SHAPE_CLASSES``:
circle, square, star, triangle) on a dark, smooth random colour gradient with mild
Gaussian pixel noise. The class of an object is its shape only: hue, size, position and
rotation are drawn independently of it. Objects are placed with their centres at least
0.8 times the sum of their circumradii apart, so they may overlap but never hide each
other entirely; a later object is drawn on top of an earlier one. Every annotation is
derived from the final drawing: an instance is its visible region after occlusion,
visible pieces under 12 pixels and instances with less than half of their area visible
are painted back to background, so images, boxes, polygons and label maps always agree.

The same seed gives byte-identical files; each task (cls/det/seg) and split
(train/val) has its own random stream. ``GENERATOR_VERSION`` is bumped whenever the
output for a given seed changes, which makes :func:`ensure_shapes` regenerate.

Each task has a writer with the same arguments,
``make_<task>(out_dir, num_train, num_val, img_size, seed=0)``: the root of its tree
(the ``data_root`` of the upstream dataset; the writer's own folders in it are
replaced), images per split (>= 0), the side of the square images in pixels, and a
non-negative random seed. It returns counts per split. Layouts (all images are 8-bit
BGR PNGs, read unchanged by the upstream loaders):

* :func:`make_classification`, one object per image, label = its class, classes
  balanced::

      cls/train/<class>/<index>.png   cls/val/<class>/<index>.png
      cls/meta/train.txt              lines "train/<class>/<index>.png <label>"
      cls/meta/val.txt                cls/meta/classes.txt (one class name a line)

* :func:`make_detection`, 1 to 4 objects per image, COCO instances with polygon
  ``segmentation`` (rasterizing it gives the visible region back, pixel for pixel),
  ``bbox`` (x, y, w, h of the visible region), ``area`` (its pixel count),
  ``iscrowd`` 0, category ids 1..4 in ``SHAPE_CLASSES`` order::

      coco/train/<index>.png   coco/annotations/instances_train.json
      coco/val/<index>.png     coco/annotations/instances_val.json

* :func:`make_segmentation`, the same kind of scenes, ADE20K layout, label maps are
  single-channel uint8 PNGs with 0 = background and k = ``SHAPE_CLASSES[k - 1]``
  (``SEG_CLASSES[k]``)::

      ade/images/training/<index>.png     ade/annotations/training/<index>.png
      ade/images/validation/<index>.png   ade/annotations/validation/<index>.png

:func:`make_shapes` writes all three under one folder (``cls/``, ``coco/``, ``ade/``)
with defaults sized for the CPU demo, and :func:`ensure_shapes` does so only when the
parameters changed. Example dataset configs (``data_root`` as returned by them)::

    # mmpretrain: classification. For MAE pre-training use with_label=False,
    # ann_file='' and data_prefix='train' (a folder scan). A str `classes` is read
    # relative to the working directory, not to data_root.
    dict(type='CustomDataset', data_root='data/shapes/cls', ann_file='meta/train.txt',
         data_prefix='', classes=('circle', 'square', 'star', 'triangle'),
         pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])

    # mmdet: Mask R-CNN; evaluate with dict(type='CocoMetric', metric=['bbox', 'segm'],
    # ann_file='data/shapes/coco/annotations/instances_val.json')
    dict(type='CocoDataset', data_root='data/shapes/coco',
         ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
         metainfo=dict(classes=('circle', 'square', 'star', 'triangle')),
         pipeline=[dict(type='LoadImageFromFile'),
                   dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                   dict(type='PackDetInputs')])

    # mmseg: UperNet; evaluate with dict(type='IoUMetric', iou_metrics=['mIoU'])
    dict(type='BaseSegDataset', data_root='data/shapes/ade',
         data_prefix=dict(img_path='images/training',
                          seg_map_path='annotations/training'),
         img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
         metainfo=dict(
             classes=('background', 'circle', 'square', 'star', 'triangle')),
         pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                   dict(type='PackSegInputs')])
"""
import colorsys
import glob
import hashlib
import inspect
import json
import os
import os.path as osp
import shutil
from typing import Dict, Iterator, List, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'SHAPE_CLASSES', 'SEG_CLASSES', 'GENERATOR_VERSION', 'make_classification',
    'make_detection', 'make_segmentation', 'make_shapes', 'ensure_shapes'
]

# Sorted, so that folder order (mmpretrain's folder scan) and label order agree.
SHAPE_CLASSES = ('circle', 'square', 'star', 'triangle')
SEG_CLASSES = ('background', ) + SHAPE_CLASSES
GENERATOR_VERSION = 1

PathLike = Union[str, 'os.PathLike[str]']

_CLS_RADIUS = (0.22, 0.40)  # circumradius / image side, classification images
_SCENE_RADIUS = (0.10, 0.22)  # circumradius / image side, detection/segmentation
_SCENE_OBJECTS = (1, 4)  # objects per detection/segmentation image, inclusive
_MIN_SPACING = 0.8  # centre distance >= this * (r_i + r_j): overlap, no containment
_PLACEMENT_TRIES = 50
_MIN_VISIBLE = 0.5  # an instance is kept only if this fraction of it is visible
_MIN_FRAGMENT = 12  # visible pieces smaller than this (pixels) become background
_STAR_INNER = 0.45  # inner / outer radius of the five-pointed star
_CIRCLE_VERTICES = 48
_OBJECT_SAT, _OBJECT_VAL = (0.65, 1.0), (0.7, 1.0)
_BG_SAT, _BG_VAL = (0.0, 0.6), (0.1, 0.45)
_NOISE_STD = 5.0
_SHIFT = 4  # cv2 fractional bits: polygon vertices with 1/16 pixel precision
_MIN_IMG_SIZE = 32
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
_STREAMS = {'cls': 0, 'det': 1, 'seg': 2}
_MARKER_PREFIX = '.shapes-'


def _check_count(name: str, value: int) -> None:
    """Raise ValueError unless ``value`` is a non-negative int."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f'{name} must be a non-negative int, got {value!r}')


def _check_size(name: str, value: int) -> None:
    """Raise ValueError unless ``value`` is an int image side of at least 32."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < _MIN_IMG_SIZE:
        raise ValueError(
            f'{name} must be an int >= {_MIN_IMG_SIZE}, got {value!r}')


def _rng(seed: int, task: str, split: int) -> np.random.Generator:
    """The random stream of one task and split."""
    return np.random.default_rng([seed, _STREAMS[task], split])


def _class_stream(rng: np.random.Generator) -> Iterator[int]:
    """Endless class indices, each run of ``len(SHAPE_CLASSES)`` a permutation."""
    while True:
        yield from rng.permutation(len(SHAPE_CLASSES)).tolist()


def _balanced_labels(rng: np.random.Generator, num: int) -> List[int]:
    """``num`` class indices in random order whose counts differ by at most one."""
    return rng.permutation(np.arange(num) % len(SHAPE_CLASSES)).tolist()


def _random_colour(rng: np.random.Generator, sat: Tuple[float, float],
                   val: Tuple[float, float]) -> np.ndarray:
    """A BGR colour in [0, 255] with a uniform random hue."""
    hue = rng.random()
    red, green, blue = colorsys.hsv_to_rgb(hue, rng.uniform(*sat),
                                           rng.uniform(*val))
    return np.array([blue, green, red], dtype=np.float32) * 255


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear gradient between two dark colours in a random direction."""
    start = _random_colour(rng, _BG_SAT, _BG_VAL)
    end = _random_colour(rng, _BG_SAT, _BG_VAL)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    ramp = xs * np.cos(angle) + ys * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    return start + ramp[..., None] * (end - start)


def _shape_vertices(label: int, cx: float, cy: float, radius: float,
                    theta: float) -> np.ndarray:
    """Polygon (N, 2) of a shape with circumradius ``radius``, rotated by theta."""
    name = SHAPE_CLASSES[label]
    if name == 'circle':
        count, radii = _CIRCLE_VERTICES, np.full(_CIRCLE_VERTICES, radius)
    elif name == 'square':
        count, radii = 4, np.full(4, radius)
    elif name == 'triangle':
        count, radii = 3, np.full(3, radius)
    else:  # star: alternating outer and inner points
        count, radii = 10, radius * np.tile([1.0, _STAR_INNER], 5)
    angles = theta + 2 * np.pi * np.arange(count) / count
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)


def _fill_shape(size: int, vertices: np.ndarray) -> np.ndarray:
    """Binary (size, size) mask of a filled polygon."""
    mask = np.zeros((size, size), np.uint8)
    points = np.round(vertices * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask.astype(bool)


def _place_objects(rng: np.random.Generator, size: int, labels: Sequence[int],
                   radius: Tuple[float, float]) -> List[dict]:
    """Random geometry and colour per label; a label that finds no room is skipped."""
    objects: List[dict] = []
    for label in labels:
        for _ in range(_PLACEMENT_TRIES):
            r = rng.uniform(*radius) * size
            cx, cy = rng.uniform(r, size - 1 - r, size=2)
            spaced = all(
                np.hypot(cx - other['cx'], cy - other['cy']) >= _MIN_SPACING *
                (r + other['r']) for other in objects)
            if spaced:
                theta = rng.uniform(0, 2 * np.pi)
                colour = _random_colour(rng, _OBJECT_SAT, _OBJECT_VAL)
                objects.append(
                    dict(label=label, cx=cx, cy=cy, r=r, theta=theta, colour=colour))
                break
    return objects


def _visible_instances(size: int,
                       objects: Sequence[dict]) -> List[Tuple[dict, np.ndarray]]:
    """Draw objects in order; return (object, visible mask) of the kept ones."""
    canvas = np.zeros((size, size), np.int32)
    full_areas = []
    for index, obj in enumerate(objects, 1):
        mask = _fill_shape(
            size,
            _shape_vertices(obj['label'], obj['cx'], obj['cy'], obj['r'],
                            obj['theta']))
        canvas[mask] = index
        full_areas.append(int(mask.sum()))
    instances = []
    for index, obj in enumerate(objects, 1):
        visible = (canvas == index).astype(np.uint8)
        num, parts, stats, _ = cv2.connectedComponentsWithStats(
            visible, connectivity=8)
        for part in range(1, num):
            if stats[part, cv2.CC_STAT_AREA] < _MIN_FRAGMENT:
                canvas[parts == part] = 0
        visible = canvas == index
        if visible.sum() < _MIN_VISIBLE * full_areas[index - 1]:
            canvas[visible] = 0
        else:
            instances.append((obj, visible))
    return instances


def _render(rng: np.random.Generator, size: int, labels: Sequence[int],
            radius: Tuple[float, float]) -> Tuple[np.ndarray, List[tuple]]:
    """One BGR uint8 image and the (label, visible mask) of its instances."""
    image = _background(rng, size)
    instances = _visible_instances(size, _place_objects(rng, size, labels, radius))
    for obj, mask in instances:  # what was dropped stays background
        image[mask] = obj['colour']
    image += rng.normal(0.0, _NOISE_STD, size=image.shape).astype(np.float32)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, [(obj['label'], mask) for obj, mask in instances]


def _mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons (x1, y1, x2, y2, ...) of the outer contours of a binary mask.

    Contours are traced on the mask upsampled 2x, so in COCO coordinates (pixel ``i``
    spans ``[i, i + 1]``) they run a quarter pixel inside the mask's outer pixel edges:
    every mask pixel centre lies inside and every other one outside, and
    rasterizing the polygons (pycocotools, mmdet ``PolygonMasks``) gives the mask back.
    """
    upsampled = np.kron(mask.astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(upsampled, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [((contour.reshape(-1, 2) + 0.5) / 2).ravel().tolist()
            for contour in contours]


def _mask_to_bbox(mask: np.ndarray) -> List[int]:
    """COCO box (x, y, w, h) enclosing the pixels of a binary mask."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def _write_png(path: str, array: np.ndarray) -> None:
    """Write an image into an existing folder; raise if OpenCV fails."""
    if not cv2.imwrite(path, array, _PNG_PARAMS):
        raise OSError(f'could not write {path}')


def _reset(out_dir: str, subdirs: Sequence[str]) -> None:
    """Remove the given generated folders under ``out_dir`` (stale files)."""
    for subdir in subdirs:
        path = osp.join(out_dir, subdir)
        if osp.isdir(path):
            shutil.rmtree(path)


def _start_tree(out_dir, num_train: int, num_val: int, img_size: int, seed: int,
                subdirs: Sequence[str]) -> str:
    """Check the arguments of a ``make_*`` function, then clear its folders.

    Args:
        out_dir (str | os.PathLike): Root of the tree.
        num_train (int): Training images, >= 0.
        num_val (int): Validation images, >= 0.
        img_size (int): Side of the square images in pixels.
        seed (int): Non-negative random seed (default 0 in every ``make_*``).
        subdirs (Sequence[str]): The function's folders under ``out_dir``, removed.

    Returns:
        str: ``out_dir`` as a path string.
    """
    _check_count('num_train', num_train)
    _check_count('num_val', num_val)
    _check_size('img_size', img_size)
    _check_count('seed', seed)
    out_dir = os.fspath(out_dir)
    _reset(out_dir, subdirs)
    return out_dir


def _scene_labels(rng: np.random.Generator, classes: Iterator[int]) -> List[int]:
    """Classes of the objects of one scene."""
    low, high = _SCENE_OBJECTS
    return [next(classes) for _ in range(int(rng.integers(low, high + 1)))]


def _shapes_params(out_dir: PathLike, **params) -> Dict[str, int]:
    """Checked parameters of :func:`make_shapes` but ``out_dir``, defaults filled in."""
    bound = inspect.signature(make_shapes).bind(out_dir, **params)
    bound.apply_defaults()
    params = {k: v for k, v in bound.arguments.items() if k != 'out_dir'}
    for name, value in params.items():
        if name.endswith('img_size'):
            _check_size(name, value)
        else:
            _check_count(name, value)
    return params


def _marker_name(params: Dict[str, int]) -> str:
    """Marker file name keyed on the parameters and ``GENERATOR_VERSION``."""
    key = json.dumps(dict(params, generator_version=GENERATOR_VERSION), sort_keys=True)
    return _MARKER_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]


def _shapes_paths(out_dir: str) -> Dict[str, str]:
    """The dataset roots written by :func:`make_shapes`."""
    return {name: osp.join(out_dir, name) for name in ('cls', 'coco', 'ade')}


def make_classification(out_dir: PathLike,
                        num_train: int,
                        num_val: int,
                        img_size: int = 64,
                        seed: int = 0) -> Dict[str, int]:
    """Write the ImageNet-style classification tree (``train/``, ``val/``, ``meta/``
    of an mmpretrain ``CustomDataset``; arguments in the module docstring), one object
    per image, labels balanced (class counts of a split differ by at most one).

    Returns:
        Number of images per split, ``{'train': ..., 'val': ...}``.
    """
    out_dir = _start_tree(out_dir, num_train, num_val, img_size, seed,
                          ('train', 'val', 'meta'))
    os.makedirs(osp.join(out_dir, 'meta'))
    with open(osp.join(out_dir, 'meta', 'classes.txt'), 'w') as f:
        f.write('\n'.join(SHAPE_CLASSES) + '\n')
    splits = (('train', num_train), ('val', num_val))
    for split_index, (split, num) in enumerate(splits):
        for name in SHAPE_CLASSES:  # every class folder exists, also when empty
            os.makedirs(osp.join(out_dir, split, name))
        rng = _rng(seed, 'cls', split_index)
        lines = []
        for index, label in enumerate(_balanced_labels(rng, num)):
            image, _ = _render(rng, img_size, [label], _CLS_RADIUS)
            rel_path = f'{split}/{SHAPE_CLASSES[label]}/{index:06d}.png'
            _write_png(osp.join(out_dir, rel_path), image)
            lines.append(f'{rel_path} {label}\n')
        with open(osp.join(out_dir, 'meta', f'{split}.txt'), 'w') as f:
            f.writelines(lines)
    return {'train': num_train, 'val': num_val}


def make_detection(out_dir: PathLike,
                   num_train: int,
                   num_val: int,
                   img_size: int = 128,
                   seed: int = 0) -> Dict[str, int]:
    """Write COCO-style instance annotations (boxes and polygons) with their images
    (``train/``, ``val/``, ``annotations/`` of an mmdet ``CocoDataset``; arguments in
    the module docstring). Image and annotation ids start at 1, category ``k``
    (1-based) is ``SHAPE_CLASSES[k - 1]``.

    Returns:
        Images and instances per split, ``{'train': ..., 'val': ...,
        'train_instances': ..., 'val_instances': ...}``.
    """
    out_dir = _start_tree(out_dir, num_train, num_val, img_size, seed,
                          ('train', 'val', 'annotations'))
    os.makedirs(osp.join(out_dir, 'annotations'))
    categories = [
        dict(id=label, name=name, supercategory='shape')
        for label, name in enumerate(SHAPE_CLASSES, 1)
    ]
    counts = {}
    splits = (('train', num_train), ('val', num_val))
    for split_index, (split, num) in enumerate(splits):
        os.makedirs(osp.join(out_dir, split))
        rng = _rng(seed, 'det', split_index)
        classes = _class_stream(rng)
        images, annotations = [], []
        for index in range(num):
            image, instances = _render(rng, img_size, _scene_labels(rng, classes),
                                       _SCENE_RADIUS)
            file_name = f'{index:06d}.png'
            _write_png(osp.join(out_dir, split, file_name), image)
            images.append(dict(id=index + 1, file_name=file_name, height=img_size,
                               width=img_size))
            for label, mask in instances:
                annotations.append(
                    dict(id=len(annotations) + 1, image_id=index + 1,
                         category_id=label + 1,
                         segmentation=_mask_to_polygons(mask),
                         area=int(mask.sum()), bbox=_mask_to_bbox(mask), iscrowd=0))
        coco = dict(
            info=dict(description=f'hivit_mm shapes {split}, seed {seed}, '
                      f'generator {GENERATOR_VERSION}'),
            licenses=[], images=images, annotations=annotations,
            categories=categories)
        ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
        with open(ann_file, 'w') as f:
            json.dump(coco, f)
        counts[split] = num
        counts[f'{split}_instances'] = len(annotations)
    return counts


def make_segmentation(out_dir: PathLike,
                      num_train: int,
                      num_val: int,
                      img_size: int = 128,
                      seed: int = 0) -> Dict[str, int]:
    """Write an ADE20K-style semantic segmentation tree (``images/``, ``annotations/``
    of an mmseg ``BaseSegDataset``; arguments in the module docstring). Label maps are
    uint8 with 0 = background and ``k`` = ``SEG_CLASSES[k]``.

    Returns:
        Number of images per split, ``{'train': ..., 'val': ...}``.
    """
    out_dir = _start_tree(out_dir, num_train, num_val, img_size, seed,
                          ('images', 'annotations'))
    for split_index, (split, num) in enumerate((('training', num_train),
                                                 ('validation', num_val))):
        os.makedirs(osp.join(out_dir, 'images', split))
        os.makedirs(osp.join(out_dir, 'annotations', split))
        rng = _rng(seed, 'seg', split_index)
        classes = _class_stream(rng)
        for index in range(num):
            image, instances = _render(rng, img_size, _scene_labels(rng, classes),
                                       _SCENE_RADIUS)
            label_map = np.zeros((img_size, img_size), np.uint8)
            for label, mask in instances:
                label_map[mask] = label + 1
            _write_png(osp.join(out_dir, 'images', split, f'{index:06d}.png'), image)
            _write_png(osp.join(out_dir, 'annotations', split, f'{index:06d}.png'),
                       label_map)
    return {'train': num_train, 'val': num_val}


def make_shapes(out_dir: PathLike,
                seed: int = 0,
                num_cls_train: int = 4000,
                num_cls_val: int = 800,
                cls_img_size: int = 64,
                num_det_train: int = 600,
                num_det_val: int = 100,
                det_img_size: int = 128,
                num_seg_train: int = 600,
                num_seg_val: int = 100,
                seg_img_size: int = 128) -> Dict[str, str]:
    """Write the classification, detection and segmentation sets under one folder.

    The sets go to ``{out_dir}/cls``, ``{out_dir}/coco`` and ``{out_dir}/ade`` (each
    replaced), then a marker file ``{out_dir}/.shapes-<key>`` records the parameters;
    ``<key>`` hashes them with ``GENERATOR_VERSION`` (see :func:`ensure_shapes`). The
    defaults are sized for the CPU demo.

    Args:
        out_dir: Folder of the three dataset roots; created if missing.
        seed: Non-negative random seed. Defaults to 0.
        num_cls_train: Classification training images. Defaults to 4000.
        num_cls_val: Classification validation images. Defaults to 800.
        cls_img_size: Classification image side. Defaults to 64.
        num_det_train: Detection training images. Defaults to 600.
        num_det_val: Detection validation images. Defaults to 100.
        det_img_size: Detection image side. Defaults to 128.
        num_seg_train: Segmentation training images. Defaults to 600.
        num_seg_val: Segmentation validation images. Defaults to 100.
        seg_img_size: Segmentation image side. Defaults to 128.

    Returns:
        The dataset roots, ``{'cls': ..., 'coco': ..., 'ade': ...}``.
    """
    out_dir = os.fspath(out_dir)
    params = _shapes_params(
        out_dir, seed=seed, num_cls_train=num_cls_train, num_cls_val=num_cls_val,
        cls_img_size=cls_img_size, num_det_train=num_det_train,
        num_det_val=num_det_val, det_img_size=det_img_size,
        num_seg_train=num_seg_train, num_seg_val=num_seg_val,
        seg_img_size=seg_img_size)
    os.makedirs(out_dir, exist_ok=True)
    for marker in glob.glob(osp.join(glob.escape(out_dir), _MARKER_PREFIX + '*')):
        os.remove(marker)  # the sets are about to change: no marker may vouch for them
    paths = _shapes_paths(out_dir)
    make_classification(paths['cls'], num_cls_train, num_cls_val, cls_img_size, seed)
    make_detection(paths['coco'], num_det_train, num_det_val, det_img_size, seed)
    make_segmentation(paths['ade'], num_seg_train, num_seg_val, seg_img_size, seed)
    with open(osp.join(out_dir, _marker_name(params)), 'w') as f:
        json.dump(dict(params, generator_version=GENERATOR_VERSION), f, sort_keys=True)
    return paths


def ensure_shapes(out_dir: PathLike, **params: int) -> Dict[str, str]:
    """Like :func:`make_shapes`, but a no-op when its marker file is already there.

    The sets are (re)generated only when ``out_dir`` has no marker for these parameters
    and the current ``GENERATOR_VERSION``, e.g. on first use or after a change.

    Args:
        out_dir: Folder of the three dataset roots.
        **params: Keyword arguments of :func:`make_shapes`.

    Returns:
        The dataset roots, ``{'cls': ..., 'coco': ..., 'ade': ...}``.
    """
    out_dir = os.fspath(out_dir)
    params = _shapes_params(out_dir, **params)
    if osp.isfile(osp.join(out_dir, _marker_name(params))):
        return _shapes_paths(out_dir)
    return make_shapes(out_dir, **params)
