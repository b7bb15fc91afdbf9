# Copyright (c) mmuol contributors. All rights reserved.
"""FOUND's training augmentations (``configs/found_DUTS-TR.yaml`` of valeoai/FOUND).

A 224x224 crop per image: :class:`FOUNDRandomScale` (shorter side to 224,
random scale, resize to 224x224) then :class:`FOUNDGaussianBlur` (SimCLR-style
blur with probability 0.5). Random draws use ``numpy.random`` (seeded by
mmengine's ``randomness`` setting).
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image

__all__ = ['FOUNDRandomScale', 'FOUNDGaussianBlur']


def _pil_resize(arr: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
    """``torchvision.transforms.functional.resize`` on a PIL image (bilinear, PIL's
    antialiasing), the official training resize."""
    h, w = size_hw
    return np.array(Image.fromarray(arr).resize((w, h), Image.BILINEAR))


@TRANSFORMS.register_module()
class FOUNDRandomScale(BaseTransform):
    """FOUND's ``random_scale`` training geometry.

    1. Resize the shorter side to ``size`` (bilinear, aspect kept; the
       longer side is ``int(long / short * size)``);
    2. resize by a random factor ``s ~ U(scale_range)`` to
       ``(int(h * s), int(w * s))`` (bilinear);
    3. resize to ``size x size`` (bilinear; aspect ratio **not** kept, no
       crop: the scale only changes the effective resolution).

    Resizes use PIL bilinear (torchvision's PIL path), as the official code.
    The scale is drawn from ``numpy.random`` (the official code uses
    ``random.uniform``; both are seeded by mmengine). ``gt_seg_map``, if
    present, follows with the same resizes.

    Args:
        size (int): Output side (``crop_size``, 224).
        scale_range (tuple[float, float]): Uniform scale range ((0.1, 3.0)).
    """

    def __init__(self, size: int = 224, scale_range: Sequence[float] = (0.1, 3.0)) -> None:
        if size <= 0:
            raise ValueError(f'size must be positive, got {size}')
        lo, hi = scale_range
        if not 0 < lo <= hi:
            raise ValueError(f'invalid scale_range {scale_range}: need 0 < low <= high')
        self.size = size
        self.scale_range = (float(lo), float(hi))

    def _sizes(self, h: int, w: int, scale: float) -> List[Tuple[int, int]]:
        """The three ``(H, W)`` resize targets for an ``h x w`` image."""
        size = self.size
        # compute_size(edge='shorter') of the official geometric transforms.
        if w > h:
            base = (size, int(float(w) / h * size))
        else:
            base = (int(float(h) / w * size), size)
        scaled = (max(int(base[0] * scale), 1), max(int(base[1] * scale), 1))
        return [base, scaled, (size, size)]

    def transform(self, results: dict) -> dict:
        """Resize ``img`` (and ``gt_seg_map``) to ``size x size``."""
        img = results['img']
        h, w = img.shape[:2]
        scale = float(np.random.uniform(*self.scale_range))
        sizes = self._sizes(h, w, scale)
        for size_hw in sizes:
            img = _pil_resize(img, size_hw)
        results['img'] = img
        if 'gt_seg_map' in results:
            gt = results['gt_seg_map']
            for size_hw in sizes:
                gt = _pil_resize(gt, size_hw)
            results['gt_seg_map'] = gt
        results['img_shape'] = img.shape[:2]
        results['scale_factor'] = (self.size / w, self.size / h)
        results['found_scale'] = scale
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, scale_range={self.scale_range})'


@TRANSFORMS.register_module()
class FOUNDGaussianBlur(BaseTransform):
    """FOUND's photometric augmentation (SimCLR-style Gaussian blur).

    With probability ``prob`` blur with ``cv2.GaussianBlur`` and
    ``sigma ~ U(sigma_range)``; the kernel is ``int(0.1 * min(h, w) // 2 * 2)
    + 1`` (23 for 224 crops) unless given.

    Args:
        prob (float): Blur probability (0.5, hard-coded upstream).
        sigma_range (tuple[float, float]): Sigma range ((0.1, 2.0)).
        kernel_size (int, optional): Odd kernel size; None = 10% rule.
    """

    def __init__(self,
                 prob: float = 0.5,
                 sigma_range: Sequence[float] = (0.1, 2.0),
                 kernel_size: Optional[int] = None) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if kernel_size is not None and (kernel_size <= 0 or kernel_size % 2 == 0):
            raise ValueError(f'kernel_size must be odd and positive, got {kernel_size}')
        self.prob = prob
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        self.kernel_size = kernel_size

    def transform(self, results: dict) -> dict:
        """Blur ``img`` with probability ``prob``."""
        img = results['img']
        # Same draw order as upstream: the coin, then sigma.
        if np.random.random_sample() < self.prob:
            h, w = img.shape[:2]
            k = self.kernel_size or int(0.1 * min(w, h) // 2 * 2) + 1
            lo, hi = self.sigma_range
            sigma = (hi - lo) * np.random.random_sample() + lo
            img = cv2.GaussianBlur(img, (k, k), sigma)
            results['found_blur_sigma'] = sigma
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, sigma_range={self.sigma_range}, '
                f'kernel_size={self.kernel_size})')
