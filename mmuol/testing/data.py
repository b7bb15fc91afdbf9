# Copyright (c) mmuol contributors. All rights reserved.
"""Tiny synthetic datasets written to disk for end-to-end tests."""
import json
import os.path as osp
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, Path]


def synthetic_image(
    height: int,
    width: int,
    box: Sequence[int],
    seed: int = 0,
    rng: Optional[np.random.Generator] = None,
    background: Tuple[int, int] = (20, 90),
    foreground: Tuple[int, int] = (180, 255)
) -> np.ndarray:
    """A noisy background with one bright rectangle.

    Args:
        height (int): Image height.
        width (int): Image width.
        box (Sequence[int]): ``[x0, y0, x1, y1]`` (exclusive) of the object.
        seed (int): Noise seed (when no ``rng`` is given).
        rng (np.random.Generator, optional): Generator to draw from.
        background (tuple[int, int]): ``[low, high)`` of background values.
        foreground (tuple[int, int]): ``[low, high)`` of object values.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB image.
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    img = rng.integers(*background, size=(height, width, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = rng.integers(*foreground, size=(y1 - y0, x1 - x0, 3), dtype=np.uint8)
    return img


def _save_rgb(path: PathLike, img: np.ndarray) -> None:
    import cv2
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[..., ::-1])


def make_coco_detection(
    root: PathLike, sizes: Sequence[Tuple[int, int]] = ((64, 48), (56, 72))) -> str:
    """Write ``root/images/*.jpg`` and ``root/annotations.json`` (one class).

    Args:
        root: Output folder.
        sizes: ``(H, W)`` of each image.

    Returns:
        str: Path of the COCO json.
    """
    root = Path(root)
    images, annotations = [], []
    for i, (h, w) in enumerate(sizes):
        box = [w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2]
        _save_rgb(root / 'images' / f'{i}.jpg', synthetic_image(h, w, box, seed=i))
        images.append(dict(id=i, file_name=f'{i}.jpg', height=h, width=w))
        annotations.append(
            dict(
                id=i,
                image_id=i,
                category_id=1,
                iscrowd=0,
                area=float((w // 2) * (h // 2)),
                bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]]))
    ann_file = root / 'annotations.json'
    ann_file.write_text(
        json.dumps(
            dict(
                images=images,
                annotations=annotations,
                categories=[dict(id=1, name='object', supercategory='object')])))
    return str(ann_file)


def make_semseg_dataset(
    root: PathLike, sizes: Sequence[Tuple[int, int]] = ((48, 40), (40, 56))) -> List[str]:
    """Write ``root/img_dir/*.jpg`` and ``root/ann_dir/*.png`` (labels 0/1).

    Returns:
        list[str]: The image stems.
    """
    import cv2
    root = Path(root)
    stems = []
    for i, (h, w) in enumerate(sizes):
        box = [w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2]
        _save_rgb(root / 'img_dir' / f'{i}.jpg', synthetic_image(h, w, box, seed=i))
        label = np.zeros((h, w), np.uint8)
        label[box[1]:box[3], box[0]:box[2]] = 1
        (root / 'ann_dir').mkdir(parents=True, exist_ok=True)
        cv2.imwrite(osp.join(root, 'ann_dir', f'{i}.png'), label)
        stems.append(str(i))
    return stems
