# Copyright (c) mmuol contributors. All rights reserved.
"""Tiny synthetic pseudo-label datasets (MaskCut json + images) for tests.

Each image is dark noise with up to two bright objects whose masks are known
exactly: an axis-aligned rectangle and an ellipse. The json is written with
:mod:`mmuol.pseudo_labels.coco_json` (correct sizes) or, with
``official=True``, in the layout of CutLER's MaskCut files (image
width/height swapped, extra image keys, annotation width/height).
"""
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from mmuol.pseudo_labels import annotations_from_masks, build_dataset, dump_json, image_entry

__all__ = ['object_masks', 'make_maskcut_dataset', 'boxes_of']


def object_masks(height: int, width: int, index: int) -> np.ndarray:
    """The known object masks of synthetic image ``index``.

    Image 0 has a rectangle and an ellipse, image 1 only a rectangle, image 2
    no object (an image MaskCut kept without masks), further images repeat
    the pattern with shifted objects.

    Returns:
        np.ndarray: ``(N, H, W)`` bool masks (N may be 0).
    """
    kind = index % 3
    shift = index // 3
    masks = []
    if kind in (0, 1):
        m = np.zeros((height, width), bool)
        y0, x0 = height // 8 + shift, width // 10 + shift
        m[y0:y0 + height // 3, x0:x0 + width // 3] = True
        masks.append(m)
    if kind == 0:
        yy, xx = np.mgrid[:height, :width]
        cy, cx = 0.65 * height, 0.7 * width
        ry, rx = height / 5, width / 6
        masks.append(((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1)
    return np.stack(masks) if masks else np.zeros((0, height, width), bool)


def _draw(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = masks.shape[1:]
    img = rng.integers(0, 40, size=(h, w, 3), dtype=np.uint8)
    colours = [(230, 60, 40), (40, 200, 230)]
    for k, m in enumerate(masks):
        img[m] = np.asarray(colours[k % 2], np.uint8)
    return img


def make_maskcut_dataset(root: str,
                         num_images: int = 4,
                         image_hw: Tuple[int, int] = (48, 64),
                         official: bool = False,
                         seed: int = 0,
                         file_name: str = 'maskcut.json') -> Dict[str, object]:
    """Write ``root/train/<wnid>/*.png`` and ``root/annotations/<file_name>``.

    Args:
        root (str): Output folder (the dataset's ``data_root``).
        num_images (int): Number of images (ids 1..N).
        image_hw (tuple[int, int]): ``(H, W)``; keep it non-square so that the
            official width/height swap is visible.
        official (bool): Write the json the way CutLER's MaskCut does.
        seed (int): Noise seed.
        file_name (str): Json file name.

    Returns:
        dict: ``data_root``, ``ann_file`` (relative to ``data_root``),
        ``img_prefix`` (``'train/'``), ``image_hw``, ``file_names`` and
        ``masks`` (per image id, its ``(N, H, W)`` masks in annotation order).
    """
    rng = np.random.default_rng(seed)
    h, w = image_hw
    images, annotations = [], []
    masks_by_id: Dict[int, np.ndarray] = {}
    file_names: List[str] = []
    next_ann = 1
    for img_id in range(1, num_images + 1):
        masks = object_masks(h, w, img_id - 1)
        name = f'n0000000{img_id % 2}/img_{img_id:03d}.png'
        path = osp.join(root, 'train', name)
        os.makedirs(osp.dirname(path), exist_ok=True)
        Image.fromarray(_draw(masks, rng)).save(path)
        file_names.append(name)
        masks_by_id[img_id] = masks
        if official:
            # MaskCut's create_image_info: width and height swapped, extra keys
            images.append(
                image_entry(
                    img_id,
                    name,
                    height=w,
                    width=h,
                    date_captured='2023',
                    license=1,
                    coco_url='',
                    flickr_url=''))
        else:
            images.append(image_entry(img_id, name, height=h, width=w))
        anns = annotations_from_masks(masks, img_id, next_ann)
        if official:
            for ann in anns:  # MaskCut also stores the image size per annotation
                ann.update(width=w, height=h)
        annotations.extend(anns)
        next_ann += len(anns)
    ann_file = osp.join('annotations', file_name)
    dump_json(build_dataset(images, annotations), osp.join(root, ann_file))
    return dict(
        data_root=root if root.endswith(os.sep) else root + os.sep,
        ann_file=ann_file,
        img_prefix='train/',
        image_hw=(h, w),
        file_names=file_names,
        masks=masks_by_id)


def boxes_of(masks: Sequence[np.ndarray]) -> np.ndarray:
    """``[x1, y1, x2, y2]`` tight boxes (``x2 = last column + 1``) of masks."""
    out = []
    for m in masks:
        ys, xs = np.nonzero(m)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.asarray(out, np.float32).reshape(-1, 4)
