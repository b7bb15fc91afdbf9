# Copyright (c) mmuol contributors. All rights reserved.
"""Localize objects in images with the training-free localizers.

Runs a DINO ViT once per image and applies LOST, TokenCut, FOUND background
discovery, MaskCut (and optionally DINO-seg) to the same last-block features,
then draws the boxes and masks on the image.

Usage:
    python demo/image_demo.py demo/images --checkpoint dino_deitsmall16_pretrain.pth
    python demo/image_demo.py img.jpg --arch dino_vits8 --methods tokencut maskcut

Without ``--checkpoint`` the preset's official weights are downloaded (or
read from the torch hub cache); with no network the demo stops with a message
that names the URL, the cache path and how to pass a local file.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

METHODS = {
    'lost': dict(type='LOSTLocalizer'),
    'tokencut': dict(type='TokenCutLocalizer'),
    'found': dict(type='FOUNDBkgLocalizer'),
    'maskcut': dict(type='MaskCutLocalizer'),
    'dinoseg': dict(type='DINOSegLocalizer'),
}
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
# One colour per box (BGR), MaskCut uses several.
PALETTE = [(60, 20, 220), (0, 170, 255), (255, 120, 0), (80, 200, 60), (200, 0, 200)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument('--checkpoint', help='local DINO checkpoint (.pth); default: the '
                        "arch's official weights")
    parser.add_argument('--arch', default='dino_vits16',
                        help='DINOViT preset (dino_vits16, dino_vits8, dino_vitb8, ...) or a '
                        'JSON dict of VisionTransformer arguments')
    parser.add_argument('--methods', nargs='+', default=['lost', 'tokencut', 'found', 'maskcut'],
                        choices=sorted(METHODS) + ['all'], help='localizers to run')
    parser.add_argument('--max-size', type=int, default=480,
                        help='downscale so the longer side is at most this (0: keep size)')
    parser.add_argument('--out-dir', default='outputs/demo', help='where pictures are written')
    parser.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    return parser.parse_args()


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def list_images(inputs: List[str]) -> List[Path]:
    """Image files named directly or found (non-recursively) in folders."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f'no such image or folder: {item}')
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTS)}) in {inputs}')
    return files


def load_rgb(path: Path, max_size: int) -> np.ndarray:
    """Read an image as 8-bit RGB (grey, RGBA and 16-bit files are converted)."""
    import cv2

    from mmuol.utils import decode_image
    img = decode_image(path.read_bytes(), channel_order='rgb')
    height, width = img.shape[:2]
    if max_size and max(height, width) > max_size:
        scale = max_size / max(height, width)
        img = cv2.resize(img, (round(width * scale), round(height * scale)),
                         interpolation=cv2.INTER_AREA)
    return img


def build_backbone(args: argparse.Namespace):
    from mmuol.models.backbones import DINOViT
    arch = json.loads(args.arch) if args.arch.strip().startswith('{') else args.arch
    init_cfg = dict(type='Pretrained', checkpoint=args.checkpoint or 'default')
    return DINOViT(arch=arch, init_cfg=init_cfg).to(args.device)


def draw(img_rgb: np.ndarray, masks: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
         title: str) -> np.ndarray:
    """Overlay masks (already at image size) and boxes; returns BGR."""
    import cv2
    out = img_rgb[..., ::-1].astype(np.float32)
    for i, mask in enumerate(masks):
        colour = np.array(PALETTE[i % len(PALETTE)], np.float32)
        out[mask] = 0.55 * out[mask] + 0.45 * colour
    out = out.astype(np.uint8)
    for i, (box, score) in enumerate(zip(boxes, scores)):
        colour = PALETTE[i % len(PALETTE)]
        x0, y0, x1, y1 = (int(v) for v in box)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, 2)
        cv2.putText(out, f'{score:.2f}', (x0 + 3, max(y0 + 14, 14)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, colour, 1, cv2.LINE_AA)
    cv2.putText(out, title, (6, out.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                (255, 255, 255), 2, cv2.LINE_AA)
    return out


def main() -> int:
    args = parse_args()
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    import cv2
    import torch

    import mmuol.det  # noqa: F401  registers the localizer adapters
    from mmdet.registry import TASK_UTILS
    from mmuol.det.localizer import IMAGENET_MEAN, IMAGENET_STD, PatchFeatures
    from mmuol.models.backbones import WeightsUnavailableError

    methods = sorted(METHODS) if 'all' in args.methods else args.methods
    images = list_images(args.inputs)
    try:
        backbone = build_backbone(args)
    except (WeightsUnavailableError, FileNotFoundError) as err:
        print(f'\nerror: {err}', file=sys.stderr)
        return 2
    adapters = {m: TASK_UTILS.build(METHODS[m]) for m in methods}
    mean = torch.tensor(IMAGENET_MEAN, device=args.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=args.device).view(3, 1, 1)
    os.makedirs(args.out_dir, exist_ok=True)
    patch = backbone.patch_size
    timings: Dict[str, float] = {m: 0.0 for m in ['backbone'] + methods}
    for path in images:
        img = load_rgb(path, args.max_size)
        height, width = img.shape[:2]
        x = torch.from_numpy(img).to(args.device).permute(2, 0, 1).float()
        x = ((x - mean) / std)[None]  # 0-255 statistics, as the configs' preprocessor
        tic = time.perf_counter()
        with torch.inference_mode():
            out = backbone.forward_last_block(x, with_qkv=True, with_attn=True)
        timings['backbone'] += time.perf_counter() - tic
        feats = PatchFeatures(out.patch_keys[0], out.cls_attn[0], out.grid_hw, patch,
                              (height, width))
        panels = []
        for method, adapter in adapters.items():
            tic = time.perf_counter()
            with torch.inference_mode():
                res = adapter(feats)
            timings[method] += time.perf_counter() - tic
            masks = res.masks.cpu().numpy().repeat(patch, 1).repeat(patch, 2)[:, :height, :width]
            panel = draw(img, masks, res.boxes.cpu().numpy(), res.scores.cpu().numpy(), method)
            cv2.imwrite(osp.join(args.out_dir, f'{path.stem}_{method}.jpg'), panel)
            panels.append(panel)
            print(f'{path.name:>20s}  {method:>8s}: {len(res.boxes)} box(es) '
                  f'{res.boxes.cpu().tolist()}')
        cv2.imwrite(osp.join(args.out_dir, f'{path.stem}_all.jpg'), np.concatenate(panels, 1))
    per_image = ', '.join(f'{k} {v / len(images):.3f}s' for k, v in timings.items())
    print(f'\n{len(images)} image(s) -> {args.out_dir}/  (mean per image: {per_image})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
