# Copyright (c) mmuol contributors. All rights reserved.
"""Saliency datasets (ECSSD, DUTS, DUT-OMRON) and FOUND's transforms.

Datasets read the released folder layouts (images and ``.png`` masks with the
same stem); configs in ``configs/_base_/datasets/*_saliency.py``:

===========  =========================  ======================  ==========
dataset      images                     masks                   images
===========  =========================  ======================  ==========
ECSSD        ``ECSSD/images``           ``ECSSD/ground_truth_   1,000
                                        mask``
DUTS-TE      ``DUTS-TE/DUTS-TE-Image``  ``DUTS-TE/DUTS-TE-      5,019
                                        Mask``
DUTS-TR      ``DUTS-TR/DUTS-TR-Image``  (not used by FOUND)     10,553
DUT-OMRON    ``DUT-OMRON/DUT-OMRON-     ``DUT-OMRON/pixelwise   5,168
             image``                    GT-new-PNG``
===========  =========================  ======================  ==========

Loading follows the official code (PIL, no EXIF rotation, ``convert('RGB')``
for images and ``convert('L')`` for masks) with explicit handling of inputs
the official code mishandles or does not expect:

* grayscale / palette / CMYK images: converted to RGB (channels replicated);
* RGBA / LA images: the alpha channel is dropped (PIL ``convert('RGB')``,
  as the official ``Image.open(...).convert("RGB")``), not composited;
* 16-bit images and masks (PIL modes ``I;16*`` / ``I``): scaled to 8 bits by
  ``value >> 8`` (PIL's own ``convert`` would clip them to 255);
* images smaller than one patch: loaded as they are; the segmentor pads them
  to one patch (as FOUND's ``make_input_divisible``);
* masks with values other than {0, 255} (anti-aliased edges, {0, 1} masks):
  kept as loaded; :class:`SaliencyMetric`'s convention decides (``tokencut``:
  any non-zero pixel is foreground, ``found``: only 255), and the metric
  reports how many such masks it saw; ``strict_binary=True`` raises instead;
* a mask whose size differs from its image raises a ``ValueError`` naming
  both files (metrics are computed at the original GT resolution).
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS, TRANSFORMS
from PIL import Image

from mmuol.utils.image_io import decode_image as decode_saliency_image
from mmuol.utils.image_io import decode_mask as decode_saliency_mask

__all__ = [
    'SaliencyDataset', 'ECSSDDataset', 'DUTSDataset', 'DUTOMRONDataset',
    'LoadSaliencyImageFromFile', 'LoadSaliencyAnnotations',
    'FOUNDRandomScale', 'FOUNDGaussianBlur', 'decode_saliency_image',
    'decode_saliency_mask'
]

@TRANSFORMS.register_module()
class LoadSaliencyImageFromFile(BaseTransform):
    """Load an image as FOUND does (PIL, ``convert('RGB')``, no EXIF turn).

    See the module docstring for grayscale, RGBA and 16-bit inputs.

    Required keys: ``img_path``. Added keys: ``img`` (``(H, W, 3)`` uint8,
    BGR like mmcv's loader), ``img_shape``, ``ori_shape``.

    Args:
        to_float32 (bool): Convert to float32. Defaults to False.
        channel_order (str): ``'bgr'`` (pair with
            ``SegDataPreProcessor(bgr_to_rgb=True)``) or ``'rgb'``.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 to_float32: bool = False,
                 channel_order: str = 'bgr',
                 backend_args: Optional[dict] = None) -> None:
        self.to_float32 = to_float32
        self.channel_order = channel_order
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        try:
            img = decode_saliency_image(
                fileio.get(path, backend_args=self.backend_args),
                self.channel_order)
        except ValueError as e:
            raise ValueError(f'{path}: {e}') from None
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(to_float32={self.to_float32}, '
                f"channel_order='{self.channel_order}')")


@TRANSFORMS.register_module()
class LoadSaliencyAnnotations(BaseTransform):
    """Load a saliency mask at its original resolution (values kept).

    Required keys: ``seg_map_path``, ``ori_shape``. Added keys:
    ``gt_seg_map`` (``(H, W)`` uint8), ``seg_fields``.

    Args:
        strict_binary (bool): Raise if a mask has values other than
            {0, 255}. Defaults to False (kept; the metric convention
            binarises).
        check_size (bool): Raise if the mask size differs from the image's
            original size. Defaults to True.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 strict_binary: bool = False,
                 check_size: bool = True,
                 backend_args: Optional[dict] = None) -> None:
        self.strict_binary = strict_binary
        self.check_size = check_size
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['seg_map_path']
        try:
            gt = decode_saliency_mask(
                fileio.get(path, backend_args=self.backend_args))
        except ValueError as e:
            raise ValueError(f'{path}: {e}') from None
        ori = results.get('ori_shape')
        if self.check_size and ori is not None and \
                tuple(gt.shape[:2]) != tuple(ori[:2]):
            raise ValueError(
                f'saliency mask {path} is {gt.shape[0]}x{gt.shape[1]} but its '
                f'image {results.get("img_path")} is {ori[0]}x{ori[1]} '
                '(H x W); metrics are computed at the GT resolution, so the '
                'two must match')
        if self.strict_binary:
            values = np.unique(gt)
            if not np.isin(values, (0, 255)).all():
                raise ValueError(f'saliency mask {path} has values '
                                 f'{values[:10].tolist()} outside {{0, 255}}')
        results['gt_seg_map'] = gt
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(strict_binary='
                f'{self.strict_binary}, check_size={self.check_size})')


def _pil_resize(arr: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
    """``torchvision.transforms.functional.resize`` on a PIL image
    (bilinear, PIL's antialiasing), the official training resize."""
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

    def __init__(self, size: int = 224,
                 scale_range: Sequence[float] = (0.1, 3.0)) -> None:
        if size <= 0:
            raise ValueError(f'size must be positive, got {size}')
        lo, hi = scale_range
        if not 0 < lo <= hi:
            raise ValueError(f'invalid scale_range {scale_range}')
        self.size = size
        self.scale_range = (float(lo), float(hi))

    def _sizes(self, h: int, w: int,
               scale: float) -> List[Tuple[int, int]]:
        size = self.size
        # compute_size(edge='shorter') of the official geometric transforms.
        if w > h:
            base = (size, int(float(w) / h * size))
        else:
            base = (int(float(h) / w * size), size)
        scaled = (max(int(base[0] * scale), 1), max(int(base[1] * scale), 1))
        return [base, scaled, (size, size)]

    def transform(self, results: dict) -> dict:
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
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'scale_range={self.scale_range})')


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
        if kernel_size is not None and (kernel_size <= 0
                                        or kernel_size % 2 == 0):
            raise ValueError(f'kernel_size must be odd and positive, got '
                             f'{kernel_size}')
        self.prob = prob
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        self.kernel_size = kernel_size

    def transform(self, results: dict) -> dict:
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
        return (f'{self.__class__.__name__}(prob={self.prob}, sigma_range='
                f'{self.sigma_range}, kernel_size={self.kernel_size})')


@DATASETS.register_module()
class SaliencyDataset(BaseSegDataset):
    """Binary saliency dataset: an image folder and a mask folder.

    Masks share the image stem (``<stem><seg_map_suffix>``); without
    ``data_prefix['seg_map_path']`` only images are listed (FOUND training
    on DUTS-TR). Missing masks raise a ``FileNotFoundError`` listing them.
    Classes are ``('background', 'foreground')``; masks keep their values
    (normally {0, 255}), which :class:`SaliencyMetric` binarises per
    convention (``reduce_zero_label`` / ``ignore_index`` are not used).

    Args:
        img_suffix (str | tuple[str]): Image extensions (case-insensitive).
        seg_map_suffix (str): Mask extension. Defaults to ``'.png'``.
        expected_num_images (int, optional): Warn if the folder holds a
            different number of images (e.g. a partial download).
        **kwargs: :class:`~mmseg.datasets.BaseSegDataset` arguments
            (``data_root``, ``data_prefix``, ``pipeline``, ``ann_file`` with
            one stem per line, ...).
    """

    METAINFO = dict(
        classes=('background', 'foreground'),
        palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 img_suffix: Union[str, Sequence[str]] = ('.jpg', '.jpeg',
                                                          '.png', '.bmp'),
                 seg_map_suffix: str = '.png',
                 expected_num_images: Optional[int] = None,
                 **kwargs) -> None:
        self.expected_num_images = expected_num_images
        if isinstance(img_suffix, str):
            img_suffix = (img_suffix, )
        super().__init__(
            img_suffix=tuple(s.lower() for s in img_suffix),
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=False,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """List images (sorted) and pair each with its mask."""
        img_dir = self.data_prefix.get('img_path', '') or ''
        ann_dir = self.data_prefix.get('seg_map_path', None) or None
        name = type(self).__name__
        if not fileio.isdir(img_dir, backend_args=self.backend_args):
            raise FileNotFoundError(
                f'{name}: image folder {img_dir!r} not found (data_root='
                f'{self.data_root!r}); see the layouts in '
                'mmuol/seg/datasets.py')
        if self.ann_file:
            stems = [line.strip() for line in fileio.list_from_file(
                self.ann_file, backend_args=self.backend_args)
                     if line.strip()]
            files = []
            for stem in stems:
                if stem.lower().endswith(self.img_suffix):
                    files.append(stem)
                    continue
                found = [stem + s for s in self.img_suffix
                         if fileio.exists(osp.join(img_dir, stem + s),
                                          backend_args=self.backend_args)]
                if not found:
                    raise FileNotFoundError(f'{name}: no image for {stem!r} '
                                            f'in {img_dir}')
                files.append(found[0])
        else:
            files = [
                f for f in fileio.list_dir_or_file(
                    img_dir, list_dir=False, recursive=False,
                    backend_args=self.backend_args)
                if f.lower().endswith(self.img_suffix)
            ]
        data_list, missing = [], []
        for fname in sorted(files):
            info = dict(
                img_path=osp.join(img_dir, fname),
                label_map=self.label_map,
                reduce_zero_label=False,
                seg_fields=[])
            if ann_dir is not None:
                seg = osp.join(ann_dir,
                               osp.splitext(fname)[0] + self.seg_map_suffix)
                if not fileio.exists(seg, backend_args=self.backend_args):
                    missing.append(seg)
                info['seg_map_path'] = seg
            data_list.append(info)
        if missing:
            raise FileNotFoundError(
                f'{name}: {len(missing)} of {len(data_list)} images have no '
                f'mask in {ann_dir}, e.g. {missing[:3]}')
        if not data_list:
            raise FileNotFoundError(f'{name}: no images with suffix '
                                    f'{self.img_suffix} in {img_dir}')
        if self.expected_num_images is not None and \
                len(data_list) != self.expected_num_images:
            print_log(
                f'{name}: found {len(data_list)} images in {img_dir}, the '
                f'released dataset has {self.expected_num_images}; results '
                'are not comparable to published numbers', logger='current',
                level=30)
        return data_list


@DATASETS.register_module()
class ECSSDDataset(SaliencyDataset):
    """ECSSD (1,000 images): ``images/*.jpg``, ``ground_truth_mask/*.png``."""


@DATASETS.register_module()
class DUTSDataset(SaliencyDataset):
    """DUTS: ``DUTS-TR/DUTS-TR-{Image,Mask}`` (10,553) and
    ``DUTS-TE/DUTS-TE-{Image,Mask}`` (5,019)."""


@DATASETS.register_module()
class DUTOMRONDataset(SaliencyDataset):
    """DUT-OMRON (5,168 images): ``DUT-OMRON-image/*.jpg``,
    ``pixelwiseGT-new-PNG/*.png``."""
