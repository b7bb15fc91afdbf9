# Copyright (c) mmuol contributors. All rights reserved.
"""Tiny saliency datasets in the released folder layouts (for tests).

:func:`make_saliency_dataset` writes a few small synthetic RGB JPEGs, each
with one bright elliptic object on a darker textured background, and the
matching {0, 255} PNG masks, in the layout of ECSSD, DUTS-TE, DUTS-TR or
DUT-OMRON, so the dataset configs in ``configs/_base_/datasets`` work with
only ``data_root`` changed.
"""
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from mmuol.utils.constants import IMAGENET_MEAN_255, IMAGENET_STD_255
from .models import TINY_VIT_ARCH  # also imported from here by tests

PathLike = Union[str, Path]

#: layout name -> (folder under the root, image folder, mask folder, class)
SALIENCY_LAYOUTS: Dict[str, Tuple[str, str, str, str]] = {
    'ecssd': ('ECSSD', 'images', 'ground_truth_mask', 'ECSSDDataset'),
    'duts-te': ('DUTS-TE', 'DUTS-TE-Image', 'DUTS-TE-Mask', 'DUTSDataset'),
    'duts-tr': ('DUTS-TR', 'DUTS-TR-Image', 'DUTS-TR-Mask', 'DUTSDataset'),
    'dut-omron': ('DUT-OMRON', 'DUT-OMRON-image', 'pixelwiseGT-new-PNG', 'DUTOMRONDataset'),
}


def synthetic_saliency_pair(height: int,
                            width: int,
                            seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """One image with a salient ellipse and its mask.

    Args:
        height (int): Image height.
        width (int): Image width.
        seed (int): Random seed (object position, size, colours, noise).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(H, W, 3)`` uint8 RGB image and
        ``(H, W)`` uint8 mask with values {0, 255}.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    cy = rng.uniform(0.35, 0.65) * height
    cx = rng.uniform(0.35, 0.65) * width
    ry = rng.uniform(0.2, 0.3) * height
    rx = rng.uniform(0.2, 0.3) * width
    mask = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1.0
    bg = rng.uniform(30, 90, size=3)
    fg = rng.uniform(170, 240, size=3)
    img = np.where(mask[..., None], fg, bg) + rng.normal(0, 12, size=(height, width, 3))
    # A smooth gradient so the background is not flat.
    img += (xx / max(width - 1, 1) * 20)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, mask.astype(np.uint8) * 255


def make_saliency_dataset(root: PathLike,
                          layout: str = 'ecssd',
                          sizes: Sequence[Tuple[int, int]] = ((40, 48), (48, 40), (56, 64)),
                          with_masks: bool = True,
                          seed: int = 0) -> Dict[str, Union[str, List[str]]]:
    """Write a tiny saliency dataset in a released layout.

    Args:
        root (str | Path): Parent folder (the dataset folder is created
            inside it, e.g. ``root/ECSSD``).
        layout (str): ``'ecssd'``, ``'duts-te'``, ``'duts-tr'`` or
            ``'dut-omron'``.
        sizes (Sequence[tuple[int, int]]): ``(H, W)`` of each image.
        with_masks (bool): Also write the masks.
        seed (int): Base random seed.

    Returns:
        dict: ``data_root``, ``img_path`` and ``seg_map_path`` (relative to
        ``data_root``, as in the dataset configs), ``dataset_type`` and the
        image ``stems``.
    """
    from PIL import Image
    if layout not in SALIENCY_LAYOUTS:
        raise ValueError(f'layout must be one of {sorted(SALIENCY_LAYOUTS)},'
                         f' got {layout!r}')
    folder, img_dir, seg_dir, dataset_type = SALIENCY_LAYOUTS[layout]
    data_root = Path(root) / folder
    (data_root / img_dir).mkdir(parents=True, exist_ok=True)
    if with_masks:
        (data_root / seg_dir).mkdir(parents=True, exist_ok=True)
    stems = []
    for i, (h, w) in enumerate(sizes):
        stem = f'{layout.replace("-", "_")}_{i:04d}'
        img, mask = synthetic_saliency_pair(h, w, seed=seed + i)
        Image.fromarray(img).save(data_root / img_dir / f'{stem}.jpg', quality=95)
        if with_masks:
            Image.fromarray(mask).save(data_root / seg_dir / f'{stem}.png')
        stems.append(stem)
    return dict(
        data_root=str(data_root),
        img_path=img_dir,
        seg_map_path=seg_dir,
        dataset_type=dataset_type,
        stems=stems)


def tiny_found_segmentor_cfg(patch_size: int = 8, **kwargs) -> dict:
    """Config of a tiny random ``FOUNDSegmentor`` (no weights downloaded).

    Args:
        patch_size (int): ViT patch size.
        **kwargs: Extra / overriding segmentor arguments (``test_cfg``,
            ``train_cfg``, ...).

    Returns:
        dict: Model config (ImageNet mean/std, ``bgr_to_rgb``, padding to a
        multiple of the patch size).
    """
    arch = dict(TINY_VIT_ARCH, patch_size=patch_size)
    cfg = dict(
        type='FOUNDSegmentor',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=list(IMAGENET_MEAN_255),
            std=list(IMAGENET_STD_255),
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=0,
            size_divisor=patch_size,
            test_cfg=dict(size_divisor=patch_size)),
        backbone=dict(type='DINOViT', arch=arch, init_cfg=None),
        decode_head=dict(type='FOUNDHead', in_channels=48, patch_size=patch_size))
    cfg.update(kwargs)
    return cfg
