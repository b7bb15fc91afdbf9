# Copyright (c) mmuol contributors. All rights reserved.
"""Host-free image decoding shared by the saliency loaders and the demo.

Decoding follows the official FOUND / TokenCut / LOST code (PIL, no EXIF
rotation, ``convert('RGB')`` / ``convert('L')``) and handles odd files
explicitly: grayscale becomes RGB, RGBA/LA drop alpha (not composited), and
16-bit files are scaled to 8 bits with ``>> 8`` (PIL's own ``convert`` would
clip them to 255).
"""
import io

import numpy as np
from PIL import Image

__all__ = ['decode_image', 'decode_mask']

_SIXTEEN_BIT_MODES = ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I')


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    """16-bit (or 32-bit 'I') pixels to 8 bits: ``>> 8`` (as OpenCV does).

    A 32-bit PIL ``'I'`` image whose values all fit in 8 bits is kept as is
    (some PNG readers widen 8-bit data).
    """
    arr = np.asarray(arr)
    if arr.size and arr.max() <= 255 and arr.dtype.itemsize > 2:
        return arr.astype(np.uint8)
    return (np.clip(arr.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)


def decode_image(content: bytes, channel_order: str = 'bgr'
                          ) -> np.ndarray:
    """Decode an image file like the official code, robust to odd formats.

    Args:
        content (bytes): Encoded image.
        channel_order (str): ``'bgr'`` (mmseg convention) or ``'rgb'``.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8.

    Raises:
        ValueError: An undecodable file or a floating-point image.
    """
    try:
        with Image.open(io.BytesIO(content)) as im:
            im.load()
            if im.mode in _SIXTEEN_BIT_MODES:
                gray = _sixteen_to_eight(np.asarray(im))
                rgb = np.repeat(gray[..., None], 3, axis=2)
            elif im.mode == 'F':
                raise ValueError('floating-point (mode F) images are not '
                                 'supported; convert to 8-bit RGB')
            else:
                rgb = np.array(im.convert('RGB'))
    except Image.UnidentifiedImageError as e:
        raise ValueError(f'cannot decode image: {e}') from None
    if channel_order == 'bgr':
        rgb = rgb[..., ::-1]
    elif channel_order != 'rgb':
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got "
                         f'{channel_order!r}')
    return np.array(rgb, copy=True, order='C')  # writable, contiguous


def decode_mask(content: bytes) -> np.ndarray:
    """Decode a mask (e.g. saliency GT): 8-bit gray ``(H, W)`` uint8.

    Colour / palette / alpha masks go through PIL ``convert('L')`` like the
    official FOUND code; 16-bit masks are scaled with ``>> 8``.

    Args:
        content (bytes): Encoded mask.

    Returns:
        np.ndarray: ``(H, W)`` uint8 mask (values kept, e.g. {0, 255}).
    """
    try:
        with Image.open(io.BytesIO(content)) as im:
            im.load()
            if im.mode in _SIXTEEN_BIT_MODES:
                return _sixteen_to_eight(np.asarray(im))
            if im.mode == 'F':
                raise ValueError('floating-point (mode F) masks are not '
                                 'supported')
            return np.array(im.convert('L'))
    except Image.UnidentifiedImageError as e:
        raise ValueError(f'cannot decode mask: {e}') from None
