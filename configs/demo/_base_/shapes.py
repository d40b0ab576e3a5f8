# The built-in shapes world (hivit_mm.datasets; `python tools/misc/make_shapes.py
# data/shapes` writes it, tools/demo.py makes it when missing) as variables a demo
# config takes with ``_base_.shapes_*``: 4 classes of filled shapes on textured
# backgrounds; a classification set of 64-px images (cls/), a COCO-style instance set
# (coco/) and an ADE20K-style semantic set with a background class (ade/) of 128-px
# images. The loaders' common settings: 2 workers (ReliableRunner restarts a training
# loader's workers each epoch, seeded per epoch, for an exact resume).
shapes_classes = ('circle', 'square', 'star', 'triangle')  # datasets.SHAPE_CLASSES
shapes_loader = dict(num_workers=2, persistent_workers=True)
shapes_cls_set = dict(type='CustomDataset', data_root='data/shapes/cls/', data_prefix='')
shapes_cls_crop = dict(
    type='RandomResizedCrop',
    scale=64,
    crop_ratio_range=(0.6, 1.0),
    backend='pillow',
    interpolation='bicubic')
shapes_coco_set = dict(
    data_root='data/shapes/coco/', metainfo=dict(classes=shapes_classes))
shapes_ade_set = dict(
    type='BaseSegDataset',
    data_root='data/shapes/ade/',
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=False,
    metainfo=dict(classes=('background', *shapes_classes)))
