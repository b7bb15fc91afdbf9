# Copyright (c) mmuol contributors. All rights reserved.
"""Image loading of the CorLoc pipelines: mmuol's one image decoder.

:class:`LoadCorLocImageFromFile` reads with
:func:`mmuol.utils.image_io.read_image`, the reader of the saliency loaders
(its decoder is the demo's): PIL without EXIF rotation and ``convert('RGB')``, as
the official LOST / TokenCut / FOUND loaders, plus palette, CMYK, alpha and
16-bit files (a 16-bit grayscale PNG is scaled ``>> 8``, not clipped to white).
"""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine.logging import MMLogger

from mmuol.utils.image_io import read_image

__all__ = ['LoadCorLocImageFromFile']


@TRANSFORMS.register_module()
class LoadCorLocImageFromFile(BaseTransform):
    """Load an image with :func:`~mmuol.utils.image_io.read_image` (BGR).

    A file that is missing or cannot be decoded (0 bytes, truncated, not an
    image) raises a ``ValueError`` naming it. When the data info carries
    ``skip_invalid=True`` (the CorLoc datasets' ``skip_invalid`` option) the
    failure is logged instead, a ``1 x 1`` black placeholder is returned and
    ``invalid_reason`` is set: the detector then predicts nothing for it and
    :class:`~mmuol.det.CorLocMetric` counts it as skipped (keep
    ``invalid_reason`` and ``skip_invalid`` in ``PackDetInputs.meta_keys``).

    Required keys: ``img_path``. Added keys: ``img`` (``(H, W, 3)`` uint8
    BGR, or float32 with ``to_float32``), ``img_shape``, ``ori_shape`` and,
    on a skipped failure, ``invalid_reason``.

    Args:
        to_float32 (bool): Return a float32 image. Defaults to False.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self, to_float32: bool = False, backend_args: dict = None) -> None:
        self.to_float32 = to_float32
        self.backend_args = None if backend_args is None else dict(backend_args)

    def transform(self, results: dict) -> dict:
        """Decode ``results['img_path']``.

        Args:
            results (dict): Data info with ``img_path``.

        Returns:
            dict: ``results`` with the image and its shapes.

        Raises:
            ValueError: The file cannot be read and skipping is off.
        """
        path = results['img_path']
        try:
            img = read_image(path, 'bgr', self.backend_args)
            reason = None
        except ValueError as err:  # 0 bytes, truncated, not an image: the message names it
            reason = str(err)
        except OSError as err:  # missing or unreadable
            reason = f'cannot read image {path}: {type(err).__name__}: {err}'
        if reason is not None:
            if not results.get('skip_invalid', False):
                raise ValueError(f'{reason}. Set test_dataloader.dataset.skip_invalid=True to '
                                 'skip unreadable images and count them.') from None
            MMLogger.get_current_instance().warning(f'skipped: {reason}')
            results['invalid_reason'] = reason
            img = np.zeros((1, 1, 3), np.uint8)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(to_float32={self.to_float32}, '
                f'backend_args={self.backend_args})')
