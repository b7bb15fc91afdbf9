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

Files that cannot be used (undecodable, truncated, empty, smaller than one
patch) are named in a warning and skipped; the others are processed and the
final line counts both. A missing input or a folder without images is an
error (exit code 2).
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

METHODS = {
    'lost': dict(type='LOSTLocalizer'),
    'tokencut': dict(type='TokenCutLocalizer'),
    'found': dict(type='FOUNDBkgLocalizer'),
    'maskcut': dict(type='MaskCutLocalizer'),
    'dinoseg': dict(type='DINOSegLocalizer'),
}
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
# One colour per box (BGR), MaskCut uses several.
PALETTE = [(60, 20, 220), (0, 170, 255), (255, 120, 0), (80, 200, 60), (200, 0, 200)]
BGR = Tuple[int, int, int]
PANEL_GAP = 4  # px of white between the methods' panels in <image>_all.jpg


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument(
        '--checkpoint', help="local DINO checkpoint (.pth); default: the arch's official weights")
    parser.add_argument(
        '--arch',
        default='dino_vits16',
        help='DINOViT preset (dino_vits16, dino_vits8, dino_vitb8, ...) or a JSON dict of '
        'VisionTransformer arguments')
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['lost', 'tokencut', 'found', 'maskcut'],
        choices=sorted(METHODS) + ['all'],
        help='localizers to run')
    parser.add_argument(
        '--max-size',
        type=int,
        default=480,
        help='downscale so the longer side is at most this (0: keep size)')
    parser.add_argument('--out-dir', default='outputs/demo', help='where pictures are written')
    parser.add_argument('--device', default=None, help='cuda or cpu (default: cuda if available)')
    return parser.parse_args(argv)


def list_images(inputs: Sequence[str]) -> List[Path]:
    """Image files named directly or found (non-recursively) in folders.

    Files named directly are kept whatever their extension (decoding decides);
    in folders only ``IMAGE_EXTS`` files are taken.

    Raises:
        FileNotFoundError: An input does not exist, or no image was found.
    """
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
            if not found:
                raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTS)}) in folder {item}')
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f'no such image or folder: {item}')
    return files


def decode_rgb(path: Path) -> np.ndarray:
    """Decode a file to ``(H, W, 3)`` uint8 RGB with :func:`mmuol.utils.decode_image`.

    Grey, palette, CMYK, RGBA and 16-bit files are converted.

    Raises:
        ValueError | OSError: The file cannot be decoded (empty, truncated, not an image).
    """
    from mmuol.utils import decode_image
    content = path.read_bytes()
    if not content:
        raise ValueError('the file is empty (0 bytes)')
    return decode_image(content, channel_order='rgb')


def limit_size(img: np.ndarray, max_size: int) -> np.ndarray:
    """Downscale ``img`` so that its longer side is at most ``max_size`` (0: keep)."""
    import cv2
    height, width = img.shape[:2]
    if not max_size or max(height, width) <= max_size:
        return img
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def load_rgb(path: Path, max_size: int) -> np.ndarray:
    """:func:`decode_rgb` then :func:`limit_size`."""
    return limit_size(decode_rgb(path), max_size)


def _write(path: str, img: np.ndarray) -> None:
    import cv2
    if not cv2.imwrite(path, img):
        raise OSError(f'cannot write {path}')


def build_backbone(args: argparse.Namespace):
    from mmuol.models.backbones import DINOViT
    arch = args.arch
    if arch.strip().startswith('{'):
        try:
            arch = json.loads(arch)
        except json.JSONDecodeError as err:
            raise ValueError(f'--arch {args.arch!r} is not a valid JSON dict ({err})') from None
    init_cfg = dict(type='Pretrained', checkpoint=args.checkpoint or 'default')
    return DINOViT(arch=arch, init_cfg=init_cfg).to(args.device)


def contrast_text_colour(colour: BGR) -> BGR:
    """Black or white, whichever contrasts more with a BGR background.

    Uses the WCAG relative luminance ``L`` of the sRGB colour: black text has
    the higher contrast ratio exactly when ``L > 0.179``.
    """
    lin = [(c / 255 / 12.92) if c <= 10 else ((c / 255 + 0.055) / 1.055)**2.4 for c in colour]
    blue, green, red = lin
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return (0, 0, 0) if luminance > 0.179 else (255, 255, 255)


def font_scale_for(image_hw: Tuple[int, int]) -> float:
    """Label font scale that grows with the image (0.5 at <= 320 px, 1.0 at 640 px)."""
    return float(np.clip(max(image_hw) / 640, 0.5, 2.5))


def draw_label(img: np.ndarray,
               text: str,
               xy: Tuple[int, int],
               colour: BGR,
               scale: float,
               above: bool = True) -> Tuple[int, int, int, int]:
    """Write ``text`` on a filled box of ``colour`` (in place), in a contrasting colour.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image, drawn on in place.
        text (str): The label.
        xy (tuple[int, int]): ``(x, y)`` of the label's bottom-left corner when
            ``above`` (e.g. a box's top-left corner), else of its top-left corner.
            The label is moved inside the image when it would leave it.
        colour (tuple[int, int, int]): BGR fill colour.
        scale (float): cv2 font scale.
        above (bool): Place the label above ``xy`` (inside the box when there
            is no room above).

    Returns:
        tuple[int, int, int, int]: The filled box ``(x0, y0, x1, y1)``, exclusive ends.
    """
    import cv2
    thickness = max(1, round(scale * 1.6))
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, round(3 * scale))
    box_w, box_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    height, width = img.shape[:2]
    x0 = int(min(max(xy[0], 0), max(width - box_w, 0)))
    y0 = int(xy[1] - box_h if above and xy[1] - box_h >= 0 else xy[1])
    y0 = int(min(max(y0, 0), max(height - box_h, 0)))
    x1, y1 = min(x0 + box_w, width), min(y0 + box_h, height)
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), colour, cv2.FILLED)
    cv2.putText(img, text, (x0 + pad, y0 + pad + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale,
                contrast_text_colour(colour), thickness, cv2.LINE_AA)
    return x0, y0, x1, y1


def draw(img_rgb: np.ndarray, masks: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
         title: str) -> np.ndarray:
    """Overlay masks and boxes with legible score labels; returns BGR.

    Args:
        img_rgb (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        masks (np.ndarray): ``(K, H, W)`` bool masks at image size.
        boxes (np.ndarray): ``(K, 4)`` boxes ``(x0, y0, x1, y1)`` in pixels, exclusive ends.
        scores (np.ndarray): ``(K,)`` box scores.
        title (str): Method name written at the bottom-left.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 BGR picture.
    """
    import cv2
    out = img_rgb[..., ::-1].astype(np.float32)
    for i, mask in enumerate(masks):
        colour = np.array(PALETTE[i % len(PALETTE)], np.float32)
        out[mask] = 0.55 * out[mask] + 0.45 * colour
    out = np.ascontiguousarray(out.astype(np.uint8))
    scale = font_scale_for(out.shape[:2])
    line = max(2, round(max(out.shape[:2]) / 240))
    for i, (box, score) in enumerate(zip(boxes, scores)):
        colour = PALETTE[i % len(PALETTE)]
        x0, y0, x1, y1 = (int(v) for v in box)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, line)
        draw_label(out, f'{score:.2f}', (x0, y0), colour, scale)
    draw_label(out, title, (0, out.shape[0]), (40, 40, 40), scale)
    return out


def side_by_side(panels: Sequence[np.ndarray], gap: int = PANEL_GAP) -> np.ndarray:
    """Panels of one height in a row, separated by white ``gap``-pixel columns."""
    sep = np.full((panels[0].shape[0], gap, 3), 255, np.uint8)
    row = [sep] * (2 * len(panels) - 1)
    row[::2] = panels
    return np.concatenate(row, 1)


def _warn(message: str) -> None:
    print(f'warning: {message}', file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    import torch
    from mmdet.registry import TASK_UTILS
    from mmengine.registry import init_default_scope

    import mmuol.det  # noqa: F401  registers the localizer adapters
    from mmuol.det import PatchFeatures
    from mmuol.det.unsupervised_localizer import DEFAULT_MAX_PATCHES, IMAGENET_MEAN, IMAGENET_STD
    from mmuol.models.backbones import CheckpointMismatchError, WeightsUnavailableError

    init_default_scope('mmdet')
    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    methods = sorted(METHODS) if 'all' in args.methods else args.methods
    try:  # before the weights: a wrong path should not wait for a download
        images = list_images(args.inputs)
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    try:
        backbone = build_backbone(args)
    except (WeightsUnavailableError, CheckpointMismatchError, OSError, ValueError) as err:
        print(f'\nerror: {err}', file=sys.stderr)
        return 2
    cfgs = {m: dict(METHODS[m]) for m in methods}
    if 'dinoseg' in cfgs and backbone.num_heads <= cfgs['dinoseg'].get('head', 4):
        # LOST's DINO-seg reads head 4 of ViT-S/B (6 or 12 heads); smaller
        # models (e.g. tiny test ViTs) use their last head.
        cfgs['dinoseg']['head'] = backbone.num_heads - 1
        print(f'note: DINO-seg uses head {backbone.num_heads - 1} (the model has '
              f'{backbone.num_heads} heads, LOST reads head 4)')
    adapters = {m: TASK_UTILS.build(cfg) for m, cfg in cfgs.items()}
    mean = torch.tensor(IMAGENET_MEAN, device=args.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=args.device).view(3, 1, 1)
    os.makedirs(args.out_dir, exist_ok=True)
    patch = backbone.patch_size
    timings: Dict[str, float] = {m: 0.0 for m in ['backbone'] + methods}
    done, skipped = 0, 0
    for index, path in enumerate(images, 1):
        try:
            original = decode_rgb(path)
        except (OSError, ValueError) as err:  # empty, truncated, not an image
            _warn(f'skipped {path}: cannot decode it as an image ({err})')
            skipped += 1
            continue
        img = limit_size(original, args.max_size)
        height, width = img.shape[:2]
        size = f'{width}x{height} px'
        if img.shape != original.shape:
            size = f'{original.shape[1]}x{original.shape[0]} px ({size} after --max-size)'
        grid = math.ceil(height / patch) * math.ceil(width / patch)  # padded to whole patches
        problem = None
        if min(height, width) < patch:
            problem = f'{size} is smaller than one {patch}x{patch} patch'
        elif grid > DEFAULT_MAX_PATCHES:
            problem = (f'{size} gives {grid} patches (more than {DEFAULT_MAX_PATCHES}); '
                       'lower --max-size')
        if problem:
            _warn(f'skipped {path}: {problem}')
            skipped += 1
            continue
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
            _write(osp.join(args.out_dir, f'{path.stem}_{method}.jpg'), panel)
            panels.append(panel)
            print(f'[{index}/{len(images)}] {path.name:>20s}  {method:>8s}: '
                  f'{len(res.boxes)} box(es) {res.boxes.cpu().tolist()}')
        _write(osp.join(args.out_dir, f'{path.stem}_all.jpg'), side_by_side(panels))
        done += 1
    if not done:
        print(
            f'\nerror: none of the {len(images)} image(s) could be used (see the warnings)',
            file=sys.stderr)
        return 2
    per_image = ', '.join(f'{k} {v / done:.3f}s' for k, v in timings.items())
    print(f'\n{done} image(s) -> {args.out_dir}/, {skipped} skipped '
          f'(mean per image: {per_image})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
