# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The demo: HiViT-MAE on real images (Fashion-MNIST) and the dense-prediction chain on
the built-in shapes data, on a CPU.

Every stage runs through ``tools/train.py`` and ``tools/test.py`` with a config of
``configs/demo/``, which inherits the real config and only shrinks it, and loads the
previous stage's checkpoint the way a user would (``init_cfg=Pretrained``):

1. ``mae``        HiViT-MAE pre-training on the 60,000 Fashion-MNIST training images
                  (no labels; reconstruction loss, reconstructions of test images)
2. ``ft_mae``     fine-tuning with 10% of the labels from the MAE checkpoint (top-1 on
                  the 10,000 test images)
3. ``ft_scratch`` the same fine-tuning from random initialisation
4. ``linear``     a linear classifier on the frozen MAE features (all labels)
5. ``ft_full``    fine-tuning with all labels from the MAE checkpoint (top-1, confusion
                  matrix)
6. ``det``        Mask R-CNN on the shapes COCO set from the MAE checkpoint (bbox and
                  segm mAP, pictures)
7. ``seg``        UperNet on the shapes ADE20K-style set from the classifier of
                  ``ft_mae`` (mIoU, overlays)

The Fashion-MNIST files come from ``tools/misc/get_fashion_mnist.sh`` (a copy in
``--fmnist-root``, else the Debian package, else the standard download). Every config
is seeded (``randomness``), so a re-run on the same machine repeats the numbers. On a
CPU with bf16 instructions every stage but ``det`` trains under bf16 autocast
(``tools/train.py --amp``; measured faster with the same results, see the README's
"The demo"); ``--fp32`` turns it off. Tests run in fp32.

It writes ``results.md`` and ``results.json`` (stage, metric, value, wall time, and
the published Fashion-MNIST results beside ours) and ``pictures/`` into the work
directory. Stages whose results exist are skipped (``--force`` re-runs them).

    python tools/demo.py --work-dir work_dirs/demo            # make demo
    python tools/demo.py --work-dir /tmp/d --quick            # a few iterations per stage
    python tools/demo.py --update-readme                      # ... and into the README
"""
import argparse
import json
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from glob import glob
from typing import Dict, List, Optional, Tuple

from hivit_mm.datasets import ensure_shapes

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIGS = osp.join(ROOT, 'configs', 'demo')
README_BEGIN = '<!-- demo results: begin (written by tools/demo.py --update-readme) -->'
README_END = '<!-- demo results: end -->'
TOP1 = {'accuracy/top1': 'top-1 (%)'}


@dataclass
class Stage:
    """One step of the chain.

    Attributes:
        name: Short name, also the sub-directory of the work directory.
        title: What the stage does, for the progress line and the table.
        config: Config file name under ``configs/demo/``.
        init_from: Stage whose checkpoint initialises the backbone, or None.
        metrics: ``{key in the test metrics: name in the table}``.
        data: ``'fmnist'`` (Fashion-MNIST) or ``'shapes'`` (the built-in shapes world).
        pictures: What ``tools/test.py --show-dir`` should draw (``'det'``/``'seg'``).
        options: Extra ``--cfg-options`` for training.
        bf16: Train with ``tools/train.py --amp`` (bf16 autocast) on a CPU with bf16
            instructions: measured faster there with the same results (README, "The
            demo"). False for Mask R-CNN: mmcv's CPU RoIAlign has no bf16 kernel.
    """
    name: str
    title: str
    config: str
    init_from: Optional[str]
    metrics: Dict[str, str]
    data: str = 'fmnist'
    pictures: Optional[str] = None
    options: List[str] = field(default_factory=list)
    bf16: bool = True


FT_10PCT = 'hivit-demo-p16_1xb128-coslr-6e_fashion-mnist-10pct-64px.py'
STAGES = (
    Stage('mae', 'HiViT-MAE pre-training on the Fashion-MNIST training images',
          'mae_hivit-demo-p16_1xb256-coslr-3e_fashion-mnist-64px.py', None, {}),
    Stage('ft_mae', 'fine-tuning with 10% of the labels from the MAE checkpoint',
          FT_10PCT, 'mae', TOP1),
    Stage('ft_scratch', 'the same fine-tuning from random initialisation', FT_10PCT, None,
          TOP1, options=['model.backbone.init_cfg=None']),
    Stage('linear', 'linear probe of the frozen MAE features (all labels)',
          'hivit-demo-p16_1xb256-linear-coslr-1e_fashion-mnist-64px.py', 'mae', TOP1),
    Stage('ft_full', 'fine-tuning with all labels from the MAE checkpoint',
          'hivit-demo-p16_1xb128-coslr-1e_fashion-mnist-64px.py', 'mae', TOP1),
    Stage('det', 'Mask R-CNN on shapes from the MAE checkpoint',
          'mask-rcnn_hivit-demo-p16_fpn-4e_shapes.py', 'mae',
          {'coco/bbox_mAP': 'bbox mAP', 'coco/bbox_mAP_50': 'bbox mAP@50',
           'coco/segm_mAP': 'segm mAP'}, data='shapes', pictures='det', bf16=False),
    # from the classifier: it transferred better than the MAE encoder (README)
    Stage('seg', 'UperNet on shapes from the 10%-labels classifier',
          'upernet_hivit-demo-p16_1xb8-800i_shapes-128x128.py', 'ft_mae',
          {'mIoU': 'mIoU (%)', 'aAcc': 'pixel acc. (%)'}, data='shapes', pictures='seg'),
)

# the shapes world: detection and segmentation sets (the classification set, which
# classification now takes from Fashion-MNIST, is made only token-sized); 300 detection
# training images instead of the default 600 keep Mask R-CNN, the one fp32 stage and
# the slowest a step, within the demo's time (README, "The demo")
SHAPES = dict(num_cls_train=8, num_cls_val=4, num_det_train=300)
# --quick: a handful of iterations per stage on subsets (for the test)
QUICK_SHAPES = dict(SHAPES, num_det_train=8, num_det_val=4, num_seg_train=8,
                    num_seg_val=4)
QUICK_TEST_IMAGES = 200  # of the 10,000 Fashion-MNIST test images
QUICK_OPTIONS = {
    # enough iterations for a warm-up of at least one (warm-ups are fractions of epochs)
    'mae': ['train_dataloader.dataset.indices=512', 'train_cfg.max_epochs=2'],
    'ft_mae': ['train_dataloader.dataset.indices=256', 'train_cfg.max_epochs=1'],
    'ft_scratch': ['train_dataloader.dataset.indices=256', 'train_cfg.max_epochs=1'],
    'linear': ['train_dataloader.dataset.indices=1280', 'train_cfg.max_epochs=1'],
    'ft_full': ['train_dataloader.dataset.indices=640', 'train_cfg.max_epochs=1'],
    'det': ['train_cfg.max_epochs=1'],
    'seg': ['train_cfg.max_iters=4'],
}

# Published Fashion-MNIST test accuracies (10,000 test images, 60,000 training labels).
# The Debian package ships the scikit-learn benchmark's grid as benchmark/baselines.json;
# its results are in the paper. "README" is the benchmark table of the dataset's README
# (zalandoresearch/fashion-mnist, also /usr/share/doc/dataset-fashion-mnist/README.md.gz).
PUBLISHED = (
    ('human, crowd-sourced (1,000 test images)', '', 83.5, 'README'),
    ('MLP 256-128-100', '', 88.3, 'README'),
    ('SVC, RBF kernel, C=10 (best of the scikit-learn benchmark)', '', 89.7,
     'Xiao et al. 2017, arXiv:1708.07747'),
    ('2 conv + pooling (TensorFlow tutorial)', '', 91.6, 'README'),
    ('2 conv, < 100K parameters', '< 0.1M', 92.5, 'README'),
    ('ResNet-18 with augmentation', '11M', 94.9, 'README'),
    ('WRN-28-10 + random erasing', '36.5M', 96.3, 'Zhong et al. 2017, arXiv:1708.04896'),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the hivit_mm demo chain')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default=None,
                        help='shapes data (default: <work-dir>/data, made if missing)')
    parser.add_argument('--fmnist-root', default=osp.join(ROOT, 'data', 'fashion_mnist'),
                        help='Fashion-MNIST files (fetched when missing by '
                        'tools/misc/get_fashion_mnist.sh; default: data/fashion_mnist)')
    parser.add_argument('--force', action='store_true', help='re-run finished stages')
    parser.add_argument('--quick', action='store_true',
                        help='a few iterations per stage on small subsets')
    parser.add_argument('--stages', nargs='+', choices=[s.name for s in STAGES],
                        help='run (and report) only these stages and the ones they start '
                        'from, e.g. the Fashion-MNIST part: --stages ft_mae ft_scratch '
                        'linear ft_full (default: all)')
    parser.add_argument('--fp32', action='store_true',
                        help='full precision everywhere (default: bf16 autocast for the '
                        'stages marked bf16 when the CPU has bf16 instructions)')
    parser.add_argument('--update-readme', action='store_true',
                        help='copy the tables and pictures into the README (between its '
                        'demo markers) and the docs/demo/ folder beside it')
    parser.add_argument('--readme', default=osp.join(ROOT, 'README.md'),
                        help='the README --update-readme writes (default: the '
                        "repository's)")
    return parser.parse_args()


def selected_stages(names: Optional[List[str]]) -> List[Stage]:
    """The stages named (all if None) and those whose checkpoints they start from, in
    chain order."""
    by_name = {s.name: s for s in STAGES}
    wanted = set(names or by_name)
    for name in list(wanted):
        while by_name[name].init_from:
            name = by_name[name].init_from
            wanted.add(name)
    return [s for s in STAGES if s.name in wanted]


def use_bf16(stage: Stage, args: argparse.Namespace) -> bool:
    """Whether ``stage`` trains in bf16: marked so, no ``--fp32``, and a CPU run on a CPU
    with bf16 instructions (on a GPU ``--amp`` would mean fp16, which was not measured
    for the demo)."""
    import torch

    from hivit_mm.engine.amp import cpu_supports_bf16
    return (stage.bf16 and not args.fp32 and not torch.cuda.is_available()
            and cpu_supports_bf16())


# -- running tools -------------------------------------------------------------------
def run(cmd: List[str], log_path: str) -> None:
    """Run a tool, logging to a file; on failure show the end of the log and exit.

    OpenMP threads that wait for each other sleep instead of spinning
    (``OMP_WAIT_POLICY=PASSIVE`` unless set): on a CPU shared with other jobs, spinning
    threads made a 2-thread training step ten times slower than one thread (0.9 s ->
    10 s an MAE step here); passive ones ran as fast as one thread.
    """
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    with open(log_path, 'a') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env=env)
    if proc.returncode:
        with open(log_path) as log:
            tail = log.readlines()[-40:]
        sys.exit(f'demo: command failed ({proc.returncode}): {" ".join(cmd)}\n'
                 f'--- end of {log_path} ---\n{"".join(tail)}')


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def read_scalars(run_dir: str) -> List[dict]:
    """The scalar records mmengine's LocalVisBackend wrote under ``run_dir``."""
    files = sorted(glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no scalars.json under {run_dir}')
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_metrics(test_dir: str) -> Dict[str, float]:
    """Metrics of the latest ``tools/test.py`` run in ``test_dir`` (its json log)."""
    logs = sorted(glob(osp.join(test_dir, '*', '*.json')))
    if not logs:
        raise FileNotFoundError(f'no test log under {test_dir}')
    with open(logs[-1]) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return {k: v for k, v in records[-1].items() if isinstance(v, (int, float))}


def count_parameters(checkpoint: str, prefixes: Tuple[str, ...]) -> int:
    """Floating-point parameters saved in a checkpoint under the given key prefixes."""
    import torch
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    return sum(v.numel() for k, v in state.items()
               if k.startswith(prefixes) and v.is_floating_point())


# -- stages ----------------------------------------------------------------------
def run_stage(stage: Stage, args: argparse.Namespace, roots: Dict[str, str],
              results: Dict[str, dict]) -> dict:
    stage_dir = osp.join(args.work_dir, stage.name)
    os.makedirs(stage_dir, exist_ok=True)
    log = osp.join(stage_dir, 'demo.log')
    config = osp.join(DEMO_CONFIGS, stage.config)
    options = data_options(stage, roots[stage.data]) + stage.options + (
        QUICK_OPTIONS[stage.name] if args.quick else [])
    if stage.init_from:
        options.append('model.backbone.init_cfg.checkpoint=' +
                       results[stage.init_from]['checkpoint'])
    bf16 = use_bf16(stage, args)
    start = time.time()
    # tools/test.py evaluates next, so training skips its own (identical) validation
    run([sys.executable, 'tools/train.py', config, '--work-dir', stage_dir,
         '--no-validate', *(['--amp'] if bf16 else []), '--cfg-options', *options], log)
    train_seconds = time.time() - start
    result = dict(stage=stage.name, title=stage.title, precision='bf16' if bf16 else
                  'fp32', checkpoint=last_checkpoint(stage_dir))
    losses = [(r['step'], r['loss']) for r in read_scalars(stage_dir) if 'loss' in r]
    result['loss_curve'] = losses
    if stage.name == 'mae':
        result['metrics'] = {'reconstruction loss (first log)': losses[0][1],
                             'reconstruction loss (last log)': losses[-1][1]}
    else:
        test_dir = osp.join(stage_dir, 'test')
        opts = data_options(stage, roots[stage.data], test_only=True, quick=args.quick)
        cmd = [sys.executable, 'tools/test.py', config, result['checkpoint'],
               '--work-dir', test_dir]
        if stage.data == 'fmnist':
            result['predictions'] = osp.join(test_dir, 'predictions.pkl')
            cmd += ['--out', result['predictions']]
        run(cmd + ['--cfg-options', *opts], log)
        metrics = test_metrics(test_dir)
        result['metrics'] = {name: metrics[key] for key, name in stage.metrics.items()}
    result['train_seconds'] = round(train_seconds, 1)
    result['seconds'] = round(time.time() - start, 1)
    return result


def data_options(stage: Stage, root: str, test_only: bool = False,
                 quick: bool = False) -> List[str]:
    """``--cfg-options`` that point a stage's dataloaders (and COCO evaluator) at its
    data root (and, for a quick Fashion-MNIST test, at the first test images)."""
    if stage.data == 'fmnist':
        sub = root + '/'
    else:
        sub = osp.join(root, {'det': 'coco', 'seg': 'ade'}[stage.name]) + '/'
    if test_only:
        loaders = ['test_dataloader']
    elif stage.name == 'mae':  # pre-training has no evaluation
        loaders = ['train_dataloader']
    else:
        loaders = ['train_dataloader', 'val_dataloader', 'test_dataloader']
    options = [f'{loader}.dataset.data_root={sub}' for loader in loaders]
    if stage.data == 'fmnist' and test_only and quick:
        options.append(f'test_dataloader.dataset.indices={QUICK_TEST_IMAGES}')
    if stage.name == 'det':
        ann = sub + 'annotations/instances_val.json'
        options += [f'{e}.ann_file={ann}' for e in ('val_evaluator', 'test_evaluator')]
    return options


def fetch_fashion_mnist(root: str) -> None:
    """Run ``tools/misc/get_fashion_mnist.sh``; exit with its message if it fails."""
    script = osp.join(ROOT, 'tools', 'misc', 'get_fashion_mnist.sh')
    proc = subprocess.run(['bash', script, root], cwd=ROOT, stderr=subprocess.PIPE,
                          text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode:
        sys.exit('demo: the Fashion-MNIST files are missing (see the message above)')


# -- pictures ------------------------------------------------------------------------
def montage(files: List[str], out: str, columns: int = 1) -> None:
    """Stack equally sized images into a grid (rows of ``columns``)."""
    import mmcv
    import numpy as np
    imgs = [mmcv.imread(f) for f in files]
    h = max(i.shape[0] for i in imgs)
    w = max(i.shape[1] for i in imgs)
    imgs = [np.pad(i, ((0, h - i.shape[0]), (0, w - i.shape[1]), (0, 0)),
                   constant_values=255) for i in imgs]
    rows = [np.concatenate(imgs[r:r + columns] + [np.full_like(imgs[0], 255)] *
                           (columns - len(imgs[r:r + columns])), axis=1)
            for r in range(0, len(imgs), columns)]
    mmcv.imwrite(np.concatenate(rows, axis=0), out)


def fashion_mnist_classes() -> Tuple[str, ...]:
    from mmpretrain.datasets.categories import FASHIONMNIST_CATEGORITES
    return tuple(FASHIONMNIST_CATEGORITES)


def write_test_images(fmnist_root: str, out_dir: str) -> List[str]:
    """The first test image of each class as a PNG (28x28 grey), in class order."""
    import mmcv
    from mmpretrain.datasets import FashionMNIST
    test_set = FashionMNIST(
        data_root=fmnist_root, split='test', test_mode=True, download=False)
    classes = fashion_mnist_classes()
    files: Dict[int, str] = {}
    for i in range(len(test_set)):
        info = test_set.get_data_info(i)
        label = int(info['gt_label'])
        if label not in files:
            name = classes[label].replace('/', '-').replace(' ', '-').lower()
            files[label] = osp.join(out_dir, f'{label}-{name}-test{i:05d}.png')
            mmcv.imwrite(info['img'], files[label])
        if len(files) == len(classes):
            break
    return [files[k] for k in sorted(files)]


def draw_pictures(args: argparse.Namespace, roots: Dict[str, str],
                  results: Dict[str, dict]) -> Dict[str, str]:
    pic_dir = osp.join(args.work_dir, 'pictures')
    os.makedirs(pic_dir, exist_ok=True)
    pictures = {}
    log = osp.join(pic_dir, 'demo.log')
    # MAE reconstructions of held-out test images (pre-training saw only the training set)
    mae_dir = osp.join(pic_dir, 'mae')
    shutil.rmtree(mae_dir, ignore_errors=True)
    test_imgs = write_test_images(roots['fmnist'], osp.join(pic_dir, 'test_images'))
    run([sys.executable, 'tools/visualize_mae.py',
         osp.join(DEMO_CONFIGS, STAGES[0].config), results['mae']['checkpoint'],
         *test_imgs, '--out-dir', mae_dir, '--max-images', str(len(test_imgs)),
         '--min-panel', '96'], log)
    pictures['MAE reconstructions of Fashion-MNIST test images, one per class (input, '
             'masked, reconstruction, with visible units)'] = \
        _montage_dir(mae_dir, osp.join(pic_dir, 'mae_reconstructions.png'), 2)
    if 'ft_full' in results:
        pictures['Fine-tuned with all labels: confusion matrix and per-class accuracy '
                 'on the 10,000 test images'] = plot_confusion(
                     results['ft_full']['predictions'],
                     osp.join(pic_dir, 'confusion_matrix.png'))
    # detections and segmentation overlays on a few validation images
    for stage in STAGES:
        if not stage.pictures or stage.name not in results:
            continue
        show_dir = osp.join(pic_dir, stage.name)
        shutil.rmtree(show_dir, ignore_errors=True)
        opts = data_options(stage, roots[stage.data], test_only=True)
        opts.append('test_dataloader.dataset.indices=4')
        run([sys.executable, 'tools/test.py', osp.join(DEMO_CONFIGS, stage.config),
             results[stage.name]['checkpoint'], '--work-dir',
             osp.join(pic_dir, f'{stage.name}_run'), '--show-dir', show_dir,
             '--cfg-options', *opts], log)
        title = ('Mask R-CNN: boxes and masks' if stage.pictures == 'det' else
                 'UperNet: segmentation overlays')
        title += ' (ground truth left, prediction right)'
        pictures[title] = _montage_dir(show_dir, osp.join(pic_dir, f'{stage.name}.png'),
                                       2, limit=4)
    pictures['Training losses'] = plot_losses(results,
                                              osp.join(pic_dir, 'loss_curves.png'))
    return pictures


def _montage_dir(folder: str, out: str, columns: int, limit: Optional[int] = None) -> str:
    files = sorted(glob(osp.join(folder, '**', '*.png'), recursive=True))
    if not files:
        raise FileNotFoundError(f'no pictures were drawn into {folder}')
    montage(files[:limit], out, columns)
    return out


def confusion_matrix(predictions: str):
    """``(num_classes, num_classes)`` counts (rows: true class) from the predictions
    ``tools/test.py --out`` dumped for mmpretrain."""
    import torch
    from mmpretrain.evaluation import ConfusionMatrix
    with open(predictions, 'rb') as f:
        samples = pickle.load(f)
    pred = torch.stack([s['pred_label'] for s in samples]).flatten()
    target = torch.stack([s['gt_label'] for s in samples]).flatten()
    return ConfusionMatrix.calculate(pred, target,
                                     num_classes=len(fashion_mnist_classes()))


def plot_confusion(predictions: str, out: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cm = confusion_matrix(predictions).numpy()
    per_class = 100 * cm.diagonal() / cm.sum(1).clip(min=1)
    classes = fashion_mnist_classes()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.2),
                                 gridspec_kw=dict(width_ratios=[1.25, 1]))
    ax.imshow(cm, cmap='Blues')
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha='center', va='center', fontsize=6,
                        color='white' if cm[i, j] > cm.max() / 2 else 'black')
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha='right', fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel('predicted', fontsize=8)
    ax.set_ylabel('true', fontsize=8)
    bx.barh(range(len(classes)), per_class, color='tab:blue')
    for i, v in enumerate(per_class):
        bx.text(min(v, 100) - 1, i, f'{v:.1f}', ha='right', va='center', fontsize=7,
                color='white')
    bx.set_yticks(range(len(classes)), classes, fontsize=7)
    bx.invert_yaxis()
    bx.set_xlim(0, 100)
    bx.set_xlabel('per-class accuracy (%)', fontsize=8)
    bx.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_losses(results: Dict[str, dict], out: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(2.6 * len(results), 2.6),
                             squeeze=False)
    axes = axes[0]
    for ax, res in zip(axes, results.values()):
        steps, losses = zip(*res['loss_curve'])
        ax.plot(steps, losses, lw=1)
        ax.set_title(res['stage'], fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel('training loss', fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# -- report ----------------------------------------------------------------------------
def table(results: Dict[str, dict]) -> List[Tuple[str, ...]]:
    rows = []
    for res in results.values():
        for i, (name, value) in enumerate(res['metrics'].items()):
            first = i == 0
            rows.append((res['stage'] if first else '', name, f'{value:.3f}'
                         if abs(value) < 10 else f'{value:.2f}',
                         res.get('precision', 'fp32') if first else '',
                         f'{res["seconds"]:.0f} s' if first else ''))
    return rows


def machine() -> str:
    """The CPU cores, their bf16 support and the load average, for the report."""
    import torch

    from hivit_mm.engine.amp import cpu_supports_bf16
    load = ', '.join(f'{x:.1f}' for x in os.getloadavg())
    bf16 = 'has' if cpu_supports_bf16() else 'has no'
    return (f'{os.cpu_count()} CPU cores, {torch.get_num_threads()} threads a process, '
            f'the CPU {bf16} bf16 instructions (bf16: trained under bf16 autocast, '
            f'`tools/train.py --amp`); load average (1, 5, 15 min) at the end: {load}')


def comparison(results: Dict[str, dict]) -> Tuple[List[str], List[str]]:
    """The Fashion-MNIST table (ours beside the published results) and what it shows."""
    top1 = {k: results[k]['metrics']['top-1 (%)']
            for k in ('ft_mae', 'ft_scratch', 'linear', 'ft_full')}
    mae_s = results['mae']['train_seconds']
    params = count_parameters(results['ft_full']['checkpoint'],
                              ('backbone.', 'neck.', 'head.')) / 1e6
    ours = (
        ('ft_full', 'all', f'MAE ({mae_s / 60:.0f} min) + fine-tuning'),
        ('linear', 'all', f'MAE ({mae_s / 60:.0f} min) + linear probe (frozen)'),
        ('ft_mae', '10%', f'MAE ({mae_s / 60:.0f} min) + fine-tuning'),
        ('ft_scratch', '10%', 'from scratch, same fine-tuning budget'),
    )
    lines = ['| model | labels | params | top-1 (%) | training time (2 CPU cores) '
             '| source |', '|---|---|---|---|---|---|']
    for stage, labels, how in ours:
        seconds = results[stage]['train_seconds']
        if stage != 'ft_scratch':
            seconds += mae_s  # the pre-training it starts from
        lines.append(f'| **ours: demo HiViT, {how}** | {labels} | {params:.2f}M | '
                     f'**{top1[stage]:.2f}** | {seconds / 60:.1f} min | `{stage}` |')
    for name, size, acc, source in PUBLISHED:
        lines.append(f'| {name} | all | {size} | {acc:.1f} | | {source} |')
    gain = top1['ft_mae'] - top1['ft_scratch']
    notes = [
        f'With 10% of the labels, fine-tuning from the MAE checkpoint reaches '
        f'{top1["ft_mae"]:.2f}% against {top1["ft_scratch"]:.2f}% from scratch with the '
        f'same budget ({gain:+.2f} points): MAE pre-training on the unlabelled images '
        + ('helps.' if gain > 0 else 'does not help in this budget.'),
        f'A linear classifier on the frozen MAE features reaches {top1["linear"]:.2f}% '
        f'(chance: 10%).',
        f'Fine-tuned with all labels, the {params:.2f}M-parameter demo HiViT reaches '
        f'{top1["ft_full"]:.2f}% on the 10,000 test images.',
    ]
    return lines, notes


def write_report(args: argparse.Namespace, results: Dict[str, dict],
                 pictures: Dict[str, str], total: float) -> str:
    lines = []
    if all(s.name in results for s in STAGES if s.data == 'fmnist'):
        fmnist, notes = comparison(results)
        lines += ['Fashion-MNIST, top-1 on the 10,000 test images (published results: '
                  'all 60,000 training labels; "README": the dataset\'s benchmark '
                  'table):',
                  '', *fmnist, '', *notes, '']
    lines += ['Every stage:', '', '| stage | metric | value | precision | wall time |',
              '|---|---|---|---|---|']
    lines += [f'| {" | ".join(r)} |' for r in table(results)]
    missing = [s.name for s in STAGES if s.name not in results]
    if missing:
        lines.append(f'\nNot in this run (`--stages`): {", ".join(missing)}.')
    lines.append(f'\nTotal wall time: {total / 60:.1f} min (stages and pictures; after '
                 f'set-up). Machine: {machine()}.')
    md = '\n'.join(lines) + '\n'
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(md)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(stages={k: {kk: vv for kk, vv in v.items() if kk != 'loss_curve'}
                               for k, v in results.items()},
                       published=[dict(zip(('model', 'params', 'top1', 'source'), p))
                                  for p in PUBLISHED],
                       pictures=pictures, total_seconds=round(total, 1)), f, indent=2)
    return md


def update_readme(md: str, pictures: Dict[str, str], readme: str) -> None:
    """Replace the text between the README's demo markers with ``md`` and the pictures,
    copied to ``docs/demo/`` beside the README.

    Raises:
        RuntimeError: The README lacks one of the markers.
    """
    doc_dir = osp.join(osp.dirname(osp.abspath(readme)), 'docs', 'demo')
    os.makedirs(doc_dir, exist_ok=True)
    block = [README_BEGIN, '', md]
    for title, path in pictures.items():
        name = osp.basename(path)
        shutil.copyfile(path, osp.join(doc_dir, name))
        block += [f'**{title}**', '', f'![{title}](docs/demo/{name})', '']
    block.append(README_END)
    with open(readme) as f:
        text = f.read()
    if README_BEGIN not in text or README_END not in text:
        raise RuntimeError(
            f'README.md lacks the markers {README_BEGIN!r} ... {README_END!r}')
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    with open(readme, 'w') as f:
        f.write(head + '\n'.join(block) + tail)


def main() -> None:
    args = parse_args()
    args.work_dir = osp.abspath(args.work_dir)
    os.makedirs(args.work_dir, exist_ok=True)
    roots = dict(fmnist=osp.abspath(args.fmnist_root),
                 shapes=osp.abspath(args.data_root or osp.join(args.work_dir, 'data')))
    stages = selected_stages(args.stages)
    print(f'[demo] Fashion-MNIST in {roots["fmnist"]}', flush=True)
    fetch_fashion_mnist(roots['fmnist'])
    if any(s.data == 'shapes' for s in stages):
        print(f'[demo] shapes data in {roots["shapes"]}', flush=True)
        ensure_shapes(roots['shapes'], **(QUICK_SHAPES if args.quick else SHAPES))

    results: Dict[str, dict] = {}
    for i, stage in enumerate(stages, 1):
        done = osp.join(args.work_dir, stage.name, 'result.json')
        prefix = f'[demo {i}/{len(stages)}] {stage.name}: {stage.title}'
        if osp.exists(done) and not args.force:
            with open(done) as f:
                results[stage.name] = json.load(f)
            print(f'{prefix} ... done earlier, skipped (--force re-runs)', flush=True)
            continue
        print(f'{prefix} ...', flush=True)
        results[stage.name] = res = run_stage(stage, args, roots, results)
        with open(done, 'w') as f:
            json.dump(res, f)
        shown = ', '.join(f'{k} {v:.3f}' for k, v in res['metrics'].items())
        print(f'{prefix} ... {res["seconds"]:.0f} s: {shown}', flush=True)

    print('[demo] pictures ...', flush=True)
    pictures_start = time.time()
    pictures = draw_pictures(args, roots, results)
    # the chain's time, also when earlier runs did some of the stages
    total = sum(r['seconds'] for r in results.values()) + time.time() - pictures_start
    md = write_report(args, results, pictures, total)
    print('\n' + md)
    print(f'[demo] results and pictures in {args.work_dir}')
    if args.update_readme:
        update_readme(md, pictures, args.readme)
        print(f'[demo] {args.readme} and the docs/demo/ beside it updated')


if __name__ == '__main__':
    main()
