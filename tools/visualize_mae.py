# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Pictures of MAE reconstructions.

For each image writes ``<out-dir>/<name>_mae.png``: a row of four panels, the input, the
masked input, the reconstruction, and the reconstruction with the visible units pasted
back. Works for any mmpretrain ``MAE``-style model whose backbone returns
``(latent, mask, ids_restore)`` and whose neck predicts pixels per unit (HiViT-MAE,
GreenMIM, MAE-ViT).

    python tools/visualize_mae.py CONFIG CHECKPOINT IMAGE_OR_DIR [...] --out-dir DIR
"""
import argparse
import os.path as osp
from pathlib import Path
from typing import List

import mmcv
import numpy as np
import torch
from mmengine.utils import mkdir_or_exist

from hivit_mm.apis import init_model, reconstruct

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Visualise MAE reconstructions')
    parser.add_argument('config', help='pre-training config (a file or a model name)')
    parser.add_argument('checkpoint', help='pre-training checkpoint')
    parser.add_argument('images', nargs='+', help='image files or directories')
    parser.add_argument('--out-dir', required=True, help='where to write PNGs')
    parser.add_argument('--max-images', type=int, default=8,
                        help='at most this many images (directories are sorted)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the masks')
    parser.add_argument('--min-panel', type=int, default=192,
                        help='upscale (nearest) small images to at least this size')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args()


def list_images(paths: List[str], limit: int) -> List[Path]:
    files: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob('*') if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f'no such image or directory: {p}')
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {paths}')
    return files[:limit]


def panels_of(model: torch.nn.Module, path: Path, seed: int) -> List[np.ndarray]:
    """The four RGB uint8 panels of one image (hivit_mm.apis.reconstruct)."""
    out = reconstruct(model, [path], seed=seed)
    mask = out['mask']
    pasted = out['original'] * (1 - mask) + out['reconstruction'] * mask
    return [
        t[0].permute(1, 2, 0).round().byte().cpu().numpy()  # H, W, 3
        for t in (out['original'], out['masked'], out['reconstruction'], pasted)
    ]


def make_row(panels: List[np.ndarray], min_panel: int, gap: int = 4) -> np.ndarray:
    scale = max(1, -(-min_panel // panels[0].shape[0]))
    panels = [p.repeat(scale, 0).repeat(scale, 1) for p in panels]
    h, w = panels[0].shape[:2]
    row = np.full((h, len(panels) * w + (len(panels) - 1) * gap, 3), 255, np.uint8)
    for i, p in enumerate(panels):
        row[:, i * (w + gap):i * (w + gap) + w] = p
    return row


def main() -> None:
    args = parse_args()
    model = init_model(args.config, args.checkpoint, device=args.device)
    mkdir_or_exist(args.out_dir)
    for path in list_images(args.images, args.max_images):
        panels = panels_of(model, path, args.seed)
        out = osp.join(args.out_dir, f'{path.stem}_mae.png')
        mmcv.imwrite(mmcv.rgb2bgr(make_row(panels, args.min_panel)), out)
        print(out)


if __name__ == '__main__':
    main()
