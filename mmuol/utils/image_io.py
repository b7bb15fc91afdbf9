# Copyright (c) mmuol contributors. All rights reserved.
"""Host-free image reading and decoding shared by the loaders and the demo.

Decoding follows the official FOUND / TokenCut / LOST code (PIL, no EXIF
rotation, ``convert('RGB')`` / ``convert('L')``) and handles odd files
explicitly: grayscale becomes RGB, RGBA/LA drop alpha (not composited), and
16-bit files are scaled to 8 bits with ``>> 8`` (PIL's own ``convert`` would
clip them to 255). :func:`read_image` / :func:`read_mask` read the bytes with
mmengine's file backends first (local paths, URLs, ``backend_args``) and name
the file in their errors.
"""
import io
from typing import Optional

import numpy as np
from PIL import Image

__all__ = ['decode_image', 'decode_mask', 'read_image', 'read_mask']

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


def _undecodable(what: str, content: bytes) -> str:
    if len(content) == 0:
        return f'cannot decode {what}: the file is empty (0 bytes)'
    return f'cannot decode {what}: unknown format or not an image ({len(content)} bytes)'


def decode_image(content: bytes, channel_order: str = 'bgr') -> np.ndarray:
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
    except Image.UnidentifiedImageError:
        raise ValueError(_undecodable('image', content)) from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        # Truncated / damaged data ("image file is truncated", broken PNG
        # chunks) and decompression bombs.
        raise ValueError(f'cannot decode image: {e} (truncated or damaged file?)') from None
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
    except Image.UnidentifiedImageError:
        raise ValueError(_undecodable('mask', content)) from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f'cannot decode mask: {e} (truncated or damaged file?)') from None


def _read_bytes(path: str, backend_args: Optional[dict]) -> bytes:
    # Imported here: the host-free core imports mmuol.utils and must not pull
    # in mmengine.
    from mmengine import fileio
    return fileio.get(path, backend_args=backend_args)


def read_image(path: str,
               channel_order: str = 'bgr',
               backend_args: Optional[dict] = None) -> np.ndarray:
    """Read an image file and decode it with :func:`decode_image`.

    Args:
        path (str): File path or URL (any mmengine file backend).
        channel_order (str): ``'bgr'`` (mmseg / mmdet convention) or
            ``'rgb'``.
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8.

    Raises:
        OSError: The file cannot be read (e.g. ``FileNotFoundError``; the
            backend's message names it).
        ValueError: ``'cannot read image <path>: cannot decode image: ...'``
            for an empty, truncated or damaged file, or not an image.
    """
    content = _read_bytes(path, backend_args)
    try:
        return decode_image(content, channel_order)
    except ValueError as err:
        raise ValueError(f'cannot read image {path}: {err}') from None


def read_mask(path: str, backend_args: Optional[dict] = None) -> np.ndarray:
    """Read a mask file and decode it with :func:`decode_mask`.

    Args:
        path (str): File path or URL (any mmengine file backend).
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        np.ndarray: ``(H, W)`` uint8 mask (values kept).

    Raises:
        OSError: The file cannot be read (the backend's message names it).
        ValueError: ``'cannot read mask <path>: cannot decode mask: ...'``.
    """
    content = _read_bytes(path, backend_args)
    try:
        return decode_mask(content)
    except ValueError as err:
        raise ValueError(f'cannot read mask {path}: {err}') from None
