# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The demo: the whole HiViT story on the built-in shapes data, on a CPU.

Every stage runs through ``tools/train.py`` and ``tools/test.py`` with a config of
``configs/demo/``, which inherits the real config and only shrinks it, and loads the
previous stage's checkpoint the way a user would (``init_cfg=Pretrained``):

1. ``mae``        HiViT-MAE pre-training (reconstruction loss, reconstruction pictures)
2. ``ft_mae``     classification fine-tuning from the MAE checkpoint (top-1)
3. ``ft_scratch`` the same fine-tuning from random initialisation (top-1)
4. ``det``        Mask R-CNN from the MAE checkpoint (bbox and segm mAP, pictures)
5. ``seg``        UperNet from the fine-tuned checkpoint (mIoU, overlays)

It writes ``results.md`` and ``results.json`` (stage, metric, value, wall time) and
``pictures/`` (reconstructions, detections, segmentation overlays, loss curves) into the
work directory. Stages whose results exist are skipped (``--force`` re-runs them).

    python tools/demo.py --work-dir work_dirs/demo            # make demo
    python tools/demo.py --work-dir /tmp/d --quick            # a few iterations per stage
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from glob import glob
from typing import Callable, Dict, List, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIGS = osp.join(ROOT, 'configs', 'demo')
README_BEGIN = '<!-- demo results: begin (written by tools/demo.py --update-readme) -->'
README_END = '<!-- demo results: end -->'


@dataclass
class Stage:
    """One step of the chain.

    Attributes:
        name: Short name, also the sub-directory of the work directory.
        title: What the stage does, for the progress line.
        config: Config file name under ``configs/demo/``.
        init_from: Stage whose checkpoint initialises the backbone, or None.
        metrics: ``{key in the test metrics: name in the table}``.
        pictures: What ``tools/test.py --show-dir`` should draw (``'det'``/``'seg'``).
        options: Extra ``--cfg-options`` for training.
    """
    name: str
    title: str
    config: str
    init_from: Optional[str]
    metrics: Dict[str, str]
    pictures: Optional[str] = None
    options: List[str] = field(default_factory=list)


STAGES = (
    Stage('mae', 'HiViT-MAE pre-training', 'mae_hivit-demo-p16_1xb64-coslr-20e_shapes.py',
          None, {}),
    Stage('ft_mae', 'fine-tuning from the MAE checkpoint',
          'hivit-demo-p16_1xb32-coslr-30e_shapes-10pct.py', 'mae',
          {'accuracy/top1': 'top-1 (%)'}),
    Stage('ft_scratch', 'the same fine-tuning from random initialisation',
          'hivit-demo-p16_1xb32-coslr-30e_shapes-10pct.py', None,
          {'accuracy/top1': 'top-1 (%)'}, options=['model.backbone.init_cfg=None']),
    Stage('det', 'Mask R-CNN from the MAE checkpoint',
          'mask-rcnn_hivit-demo-p16_fpn-4e_shapes.py', 'mae',
          {'coco/bbox_mAP': 'bbox mAP', 'coco/bbox_mAP_50': 'bbox mAP@50',
           'coco/segm_mAP': 'segm mAP'}, pictures='det'),
    Stage('seg', 'UperNet from the fine-tuned checkpoint',
          'upernet_hivit-demo-p16_1xb8-800i_shapes-128x128.py', 'ft_mae',
          {'mIoU': 'mIoU (%)', 'aAcc': 'pixel acc. (%)'}, pictures='seg'),
)

# --quick: a handful of iterations per stage on a small shapes set (for the test)
QUICK_DATA = dict(num_cls_train=64, num_cls_val=16, num_det_train=8, num_det_val=4,
                  num_seg_train=8, num_seg_val=4)
QUICK_OPTIONS = {
    'mae': ['train_cfg.max_epochs=3'],  # past the 2 warm-up epochs
    'ft_mae': ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
    'ft_scratch': ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
    'det': ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
    'seg': ['train_cfg.max_iters=4', 'train_cfg.val_interval=4'],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the hivit_mm demo chain')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default=None,
                        help='shapes data (default: <work-dir>/data, made if missing)')
    parser.add_argument('--force', action='store_true', help='re-run finished stages')
    parser.add_argument('--quick', action='store_true',
                        help='a few iterations per stage on a small data set')
    parser.add_argument('--update-readme', action='store_true',
                        help='copy the table and pictures into README.md / docs/demo')
    return parser.parse_args()


# -- running tools -------------------------------------------------------------------
def run(cmd: List[str], log_path: str) -> None:
    """Run a tool, logging to a file; on failure show the end of the log and exit."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    with open(log_path, 'a') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
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


# -- stages ----------------------------------------------------------------------
def run_stage(stage: Stage, args: argparse.Namespace, data_root: str,
              results: Dict[str, dict]) -> dict:
    stage_dir = osp.join(args.work_dir, stage.name)
    os.makedirs(stage_dir, exist_ok=True)
    log = osp.join(stage_dir, 'demo.log')
    config = osp.join(DEMO_CONFIGS, stage.config)
    options = data_options(stage, data_root) + stage.options + (QUICK_OPTIONS[stage.name] if args.quick else [])
    if stage.init_from:
        options.append('model.backbone.init_cfg.checkpoint=' +
                       results[stage.init_from]['checkpoint'])
    start = time.time()
    run([sys.executable, 'tools/train.py', config, '--work-dir', stage_dir,
         '--cfg-options', *options], log)
    result = dict(stage=stage.name, title=stage.title,
                  checkpoint=last_checkpoint(stage_dir))
    losses = [(r['step'], r['loss']) for r in read_scalars(stage_dir) if 'loss' in r]
    result['loss_curve'] = losses
    if stage.name == 'mae':
        result['metrics'] = {'reconstruction loss (first log)': losses[0][1],
                             'reconstruction loss (last log)': losses[-1][1]}
    else:
        test_dir = osp.join(stage_dir, 'test')
        run([sys.executable, 'tools/test.py', config, result['checkpoint'],
             '--work-dir', test_dir, '--cfg-options',
             *data_options(stage, data_root, test_only=True)], log)
        metrics = test_metrics(test_dir)
        result['metrics'] = {name: metrics[key] for key, name in stage.metrics.items()}
    result['seconds'] = round(time.time() - start, 1)
    return result


def data_options(stage: Stage, data_root: str, test_only: bool = False) -> List[str]:
    """``--cfg-options`` that point a stage's dataloaders (and COCO evaluator) at
    ``data_root``."""
    sub = osp.join(data_root, {'mae': 'cls', 'ft_mae': 'cls', 'ft_scratch': 'cls',
                               'det': 'coco', 'seg': 'ade'}[stage.name]) + '/'
    if test_only:
        loaders = ['test_dataloader']
    elif stage.name == 'mae':  # pre-training has no evaluation
        loaders = ['train_dataloader']
    else:
        loaders = ['train_dataloader', 'val_dataloader', 'test_dataloader']
    options = [f'{loader}.dataset.data_root={sub}' for loader in loaders]
    if stage.name == 'det':
        ann = sub + 'annotations/instances_val.json'
        options += [f'{e}.ann_file={ann}' for e in ('val_evaluator', 'test_evaluator')]
    return options


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


def draw_pictures(args: argparse.Namespace, data_root: str,
                  results: Dict[str, dict]) -> Dict[str, str]:
    pic_dir = osp.join(args.work_dir, 'pictures')
    os.makedirs(pic_dir, exist_ok=True)
    pictures = {}
    log = osp.join(pic_dir, 'demo.log')
    # MAE reconstructions on a few validation images
    mae_dir = osp.join(pic_dir, 'mae')
    shutil.rmtree(mae_dir, ignore_errors=True)
    val_imgs = sorted(glob(osp.join(data_root, 'cls', 'val', '*', '*.png')))
    val_imgs = val_imgs[::max(1, len(val_imgs) // 4)][:4]  # one per class folder
    run([sys.executable, 'tools/visualize_mae.py',
         osp.join(DEMO_CONFIGS, STAGES[0].config), results['mae']['checkpoint'],
         *val_imgs, '--out-dir', mae_dir, '--min-panel', '128'], log)
    pictures['MAE reconstructions (input, masked, reconstruction, with visible units)'] = \
        _montage_dir(mae_dir, osp.join(pic_dir, 'mae_reconstructions.png'), 1)
    # detections and segmentation overlays on a few validation images
    for stage in STAGES:
        if not stage.pictures:
            continue
        show_dir = osp.join(pic_dir, stage.name)
        shutil.rmtree(show_dir, ignore_errors=True)
        opts = data_options(stage, data_root, test_only=True)
        opts.append('test_dataloader.dataset.indices=4')
        run([sys.executable, 'tools/test.py', osp.join(DEMO_CONFIGS, stage.config),
             results[stage.name]['checkpoint'], '--work-dir',
             osp.join(pic_dir, f'{stage.name}_run'), '--show-dir', show_dir,
             '--cfg-options', *opts], log)
        title = ('Mask R-CNN: boxes and masks' if stage.pictures == 'det' else
                 'UperNet: segmentation overlays') + ' (ground truth left, prediction right)'
        pictures[title] = _montage_dir(show_dir, osp.join(pic_dir, f'{stage.name}.png'), 2)
    pictures['Training losses'] = plot_losses(results, osp.join(pic_dir, 'loss_curves.png'))
    return pictures


def _montage_dir(folder: str, out: str, columns: int) -> str:
    files = sorted(glob(osp.join(folder, '**', '*.png'), recursive=True))
    if not files:
        raise FileNotFoundError(f'no pictures were drawn into {folder}')
    montage(files[:4], out, columns)
    return out


def plot_losses(results: Dict[str, dict], out: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 2.8))
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
def table(results: Dict[str, dict]) -> List[Tuple[str, str, str, str]]:
    rows = []
    for res in results.values():
        for i, (name, value) in enumerate(res['metrics'].items()):
            rows.append((res['stage'] if i == 0 else '', name, f'{value:.3f}'
                         if abs(value) < 10 else f'{value:.2f}',
                         f'{res["seconds"]:.0f} s' if i == 0 else ''))
    return rows


def write_report(args: argparse.Namespace, results: Dict[str, dict],
                 pictures: Dict[str, str], total: float) -> str:
    lines = ['| stage | metric | value | wall time |', '|---|---|---|---|']
    lines += [f'| {" | ".join(r)} |' for r in table(results)]
    lines.append(f'\nTotal wall time: {total / 60:.1f} min (stages and pictures; after set-up).')
    md = '\n'.join(lines) + '\n'
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(md)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(stages={k: {kk: vv for kk, vv in v.items() if kk != 'loss_curve'}
                               for k, v in results.items()},
                       pictures=pictures, total_seconds=round(total, 1)), f, indent=2)
    return md


def update_readme(md: str, pictures: Dict[str, str]) -> None:
    doc_dir = osp.join(ROOT, 'docs', 'demo')
    os.makedirs(doc_dir, exist_ok=True)
    block = [README_BEGIN, '', md]
    for title, path in pictures.items():
        name = osp.basename(path)
        shutil.copyfile(path, osp.join(doc_dir, name))
        block += [f'**{title}**', '', f'![{title}](docs/demo/{name})', '']
    block.append(README_END)
    readme = osp.join(ROOT, 'README.md')
    with open(readme) as f:
        text = f.read()
    if README_BEGIN not in text or README_END not in text:
        raise RuntimeError(f'README.md lacks the markers {README_BEGIN!r} ... {README_END!r}')
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    with open(readme, 'w') as f:
        f.write(head + '\n'.join(block) + tail)


def main() -> None:
    args = parse_args()
    args.work_dir = osp.abspath(args.work_dir)
    os.makedirs(args.work_dir, exist_ok=True)
    data_root = osp.abspath(args.data_root or osp.join(args.work_dir, 'data'))
    print(f'[demo] shapes data in {data_root}', flush=True)
    sys.path.insert(0, ROOT)
    from hivit_mm.datasets import ensure_shapes
    ensure_shapes(data_root, **(QUICK_DATA if args.quick else {}))

    results: Dict[str, dict] = {}
    for i, stage in enumerate(STAGES, 1):
        done = osp.join(args.work_dir, stage.name, 'result.json')
        prefix = f'[demo {i}/{len(STAGES)}] {stage.name}: {stage.title}'
        if osp.exists(done) and not args.force:
            with open(done) as f:
                results[stage.name] = json.load(f)
            print(f'{prefix} ... done earlier, skipped (--force re-runs)', flush=True)
            continue
        print(f'{prefix} ...', flush=True)
        results[stage.name] = res = run_stage(stage, args, data_root, results)
        with open(done, 'w') as f:
            json.dump(res, f)
        shown = ', '.join(f'{k} {v:.3f}' for k, v in res['metrics'].items())
        print(f'{prefix} ... {res["seconds"]:.0f} s: {shown}', flush=True)

    print('[demo] pictures ...', flush=True)
    pictures_start = time.time()
    pictures = draw_pictures(args, data_root, results)
    # the chain's time, also when earlier runs did some of the stages
    total = sum(r['seconds'] for r in results.values()) + time.time() - pictures_start
    md = write_report(args, results, pictures, total)
    print('\n' + md)
    print(f'[demo] results and pictures in {args.work_dir}')
    if args.update_readme:
        update_readme(md, pictures)
        print('[demo] README.md and docs/demo/ updated')


if __name__ == '__main__':
    main()
