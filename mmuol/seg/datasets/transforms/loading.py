# Copyright (c) mmuol contributors. All rights reserved.
"""Loading saliency images and masks as the official FOUND / TokenCut code does.

Both transforms read through :mod:`mmuol.utils.image_io` (PIL, no EXIF
rotation, ``convert('RGB')`` for images and ``convert('L')`` for masks) with
explicit handling of inputs the official code mishandles or does not expect:

* grayscale / palette / CMYK images: converted to RGB (channels replicated);
* RGBA / LA images: the alpha channel is dropped (PIL ``convert('RGB')``, as
  the official ``Image.open(...).convert("RGB")``), not composited;
* 16-bit images and masks (PIL modes ``I;16*`` / ``I``): scaled to 8 bits by
  ``value >> 8`` (PIL's own ``convert`` would clip them to 255);
* images smaller than one patch: loaded as they are; the segmentor pads them
  to one patch (as FOUND's ``make_input_divisible``);
* masks with values other than {0, 255} (anti-aliased edges, {0, 1} masks):
  kept as loaded; :class:`~mmuol.seg.SaliencyMetric`'s convention decides
  (``tokencut``: any non-zero pixel is foreground, ``found``: only 255), and
  the metric reports how many such masks it saw; ``strict_binary=True``
  raises instead;
* a mask whose size differs from its image raises a ``ValueError`` naming
  both files (metrics are computed at the original GT resolution).
"""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from mmuol.utils.image_io import read_image, read_mask

__all__ = ['LoadSaliencyImageFromFile', 'LoadSaliencyAnnotations']


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
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        self.to_float32 = to_float32
        self.channel_order = channel_order
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Decode ``results['img_path']`` into ``results['img']``."""
        img = read_image(results['img_path'], self.channel_order, self.backend_args)
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
        """Decode ``results['seg_map_path']`` into ``results['gt_seg_map']``."""
        path = results['seg_map_path']
        gt = read_mask(path, self.backend_args)
        ori = results.get('ori_shape')
        if self.check_size and ori is not None and tuple(gt.shape[:2]) != tuple(ori[:2]):
            raise ValueError(f'saliency mask {path} is {gt.shape[0]}x{gt.shape[1]} but its image '
                             f'{results.get("img_path")} is {ori[0]}x{ori[1]} (H x W); metrics '
                             'are computed at the GT resolution, so the two must match')
        if self.strict_binary:
            values = np.unique(gt)
            if not np.isin(values, (0, 255)).all():
                raise ValueError(f'saliency mask {path} has values {values[:10].tolist()} '
                                 'outside {0, 255}')
        results['gt_seg_map'] = gt
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(strict_binary={self.strict_binary}, '
                f'check_size={self.check_size})')
