# Copyright (c) mmuol contributors. All rights reserved.
"""Data transforms of STEGO's protocol (mmseg ``TRANSFORMS``).

* :class:`STEGOResizeCenterCrop` - ``Resize(size, NEAREST)`` of the shorter
  side + ``CenterCrop(size)``, applied to the image **and** the labels, as
  STEGO's loaders do (224 for training and the KNN table, 320 for testing).
* :class:`STEGORemapLabels` - raw label values to a benchmark's class ids
  (COCO-Stuff-27, Cityscapes-27, Potsdam-3), see
  :mod:`mmuol.seg.stego.label_maps`.
* :class:`LoadPotsdamMat` - STEGO's Potsdam tiles (``.mat`` files).
"""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from mmuol.localization.stego import resize_center_crop_indices
from .label_maps import label_lut

__all__ = ['STEGOResizeCenterCrop', 'STEGORemapLabels', 'LoadPotsdamMat']


@TRANSFORMS.register_module()
class STEGOResizeCenterCrop(BaseTransform):
    """Shorter side to ``size`` with PIL-exact nearest sampling, then the
    centre ``size x size`` crop, for the image and every ``seg_fields`` map.

    STEGO resizes images with ``NEAREST`` too (not only labels); the index
    arithmetic reproduces torchvision ``Resize(size, NEAREST)`` +
    ``CenterCrop(size)`` on PIL images bit for bit.

    With ``eval_at_crop=True`` (test pipelines) ``ori_shape`` becomes the
    crop size, so that a segmentor returns predictions at the crop
    resolution, aligned with the cropped labels (STEGO scores the 320x320
    crops).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``,
    ``gt_seg_map`` (and other ``seg_fields``), ``ori_shape`` (with
    ``eval_at_crop``).

    Args:
        size (int): Output side (224 training, 320 testing).
        eval_at_crop (bool): Set ``ori_shape`` to the crop size.
    """

    def __init__(self, size: int = 224, eval_at_crop: bool = False) -> None:
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f'size must be a positive int, got {size!r}')
        self.size = size
        self.eval_at_crop = eval_at_crop

    def transform(self, results: dict) -> dict:
        img = results['img']
        height, width = img.shape[:2]
        rows, cols = resize_center_crop_indices(height, width, self.size)
        results['img'] = np.ascontiguousarray(img[rows][:, cols])
        for key in results.get('seg_fields', []):
            seg = results[key]
            if seg.shape[:2] != (height, width):
                raise ValueError(f'{results.get("seg_map_path")}: label map of {seg.shape[:2]} '
                                 f'for an image of {(height, width)} '
                                 f'({results.get("img_path")})')
            results[key] = np.ascontiguousarray(seg[rows][:, cols])
        results['img_shape'] = (self.size, self.size)
        if self.eval_at_crop:
            results['ori_shape'] = (self.size, self.size)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, eval_at_crop={self.eval_at_crop})'


@TRANSFORMS.register_module()
class STEGORemapLabels(BaseTransform):
    """Map raw label values to a benchmark's class ids (others -> 255).

    Place it right after ``LoadAnnotations``. Mappings:
    ``'cocostuff182_to_27'``, ``'cocostuff171_to_27'``,
    ``'cityscapes_labelids_to_27'``, ``'potsdam6_to_3'`` (see
    :mod:`mmuol.seg.stego.label_maps`).

    Required keys: ``gt_seg_map``. Modified keys: ``gt_seg_map`` (uint8).

    Args:
        mapping (str): Name of the label map.
    """

    def __init__(self, mapping: str) -> None:
        self.mapping = mapping
        self.lut = label_lut(mapping)

    def transform(self, results: dict) -> dict:
        seg = np.asarray(results['gt_seg_map'])
        if seg.size and (int(seg.min()) < 0 or int(seg.max()) > 255):
            raise ValueError(f'{results.get("seg_map_path")}: label values in '
                             f'[{int(seg.min())}, {int(seg.max())}] do not fit the 8-bit '
                             f"'{self.mapping}' mapping")
        results['gt_seg_map'] = self.lut[seg.astype(np.int64)]
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mapping='{self.mapping}')"


@TRANSFORMS.register_module()
class LoadPotsdamMat(BaseTransform):
    """Load STEGO's Potsdam tiles: ``imgs/<id>.mat`` (key ``img``, the first
    three channels are RGB, float images in [0, 1] are scaled by 255 and
    truncated as torchvision's ``to_pil_image``; the 4th channel, infrared,
    is dropped as upstream) and,
    when ``seg_map_path`` is set, ``gt/<id>.mat`` (key ``gt``, ids 0..5).

    Added keys: ``img`` (BGR uint8, like mmcv's loader), ``img_shape``,
    ``ori_shape``, ``gt_seg_map``, ``seg_fields``.

    Args:
        with_label (bool): Also load ``gt``.
    """

    def __init__(self, with_label: bool = True) -> None:
        self.with_label = with_label

    @staticmethod
    def _load(path: str, key: str) -> np.ndarray:
        from scipy.io import loadmat
        try:
            data = loadmat(path)
        except (OSError, ValueError) as e:
            raise ValueError(f'{path}: not a readable .mat file ({e})') from None
        if key not in data:
            raise KeyError(f'{path} has no {key!r} array (keys: '
                           f'{sorted(k for k in data if not k.startswith("__"))})')
        return np.asarray(data[key])

    def transform(self, results: dict) -> Optional[dict]:
        img = self._load(results['img_path'], 'img')
        if img.ndim != 3 or img.shape[2] < 3:
            raise ValueError(f'{results["img_path"]}: expected an (H, W, >=3) image, got '
                             f'{img.shape}')
        img = img[..., :3]
        if np.issubdtype(img.dtype, np.floating):
            # torchvision's to_pil_image on a float tensor: mul(255) + byte().
            img = np.clip(img * 255, 0, 255)
        results['img'] = np.ascontiguousarray(img[..., ::-1]).astype(np.uint8)
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        if self.with_label and results.get('seg_map_path'):
            gt = self._load(results['seg_map_path'], 'gt')
            if gt.shape[:2] != img.shape[:2]:
                raise ValueError(f'{results["seg_map_path"]}: {gt.shape[:2]} labels for a '
                                 f'{img.shape[:2]} image')
            results['gt_seg_map'] = gt.astype(np.uint8) if gt.max() <= 255 else gt
            results.setdefault('seg_fields', []).append('gt_seg_map')
        return results
