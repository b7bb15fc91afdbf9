# Copyright (c) mmuol contributors. All rights reserved.
"""Helpers shared by every training-free localizer (one source of truth).

Conventions used throughout :mod:`mmuol.localization`:

* A patch grid is ``grid_hw = (h, w)`` (rows, columns). Patch tokens are
  flattened **row-major**: token ``i`` is the patch at ``(i // w, i % w)``,
  exactly ``PatchEmbed -> flatten(2).transpose(1, 2)``.
* Connected components use **4-connectivity** (``scipy.ndimage.label``'s
  default cross); label 0 is the background.
* Boxes are ``[x0, y0, x1, y1]`` in pixels of the original, unpadded image,
  ``int64``, with ``x1``/``y1`` **exclusive**.

Components are labelled with SciPy on the CPU (a grid has at most a few
thousand cells, so the device round trip is negligible); results come back on
the input's device.
"""
import math
from numbers import Integral
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]

__all__ = [
    'as_float_tensor', 'check_grid_hw', 'check_keys', 'check_cls_attn',
    'connected_components', 'component_containing', 'largest_component',
    'mask_to_box', 'first_argmax', 'use_numpy'
]


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------
def check_grid_hw(grid_hw: Sequence[int]) -> Tuple[int, int]:
    """Validate a patch-grid size.

    Args:
        grid_hw (Sequence[int]): ``(h, w)`` number of patch rows and columns.

    Returns:
        tuple[int, int]: ``(h, w)`` as Python ints.

    Raises:
        ValueError: If ``grid_hw`` is not two positive integers.
    """
    try:
        items = list(grid_hw)
    except TypeError:
        raise ValueError(
            f'grid_hw must be a pair (h, w) of positive ints, got {grid_hw!r}'
        ) from None
    if len(items) != 2:
        raise ValueError(
            f'grid_hw must be a pair (h, w) of positive ints, got {grid_hw!r}')
    out = []
    for v in items:
        if isinstance(v, Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, Integral):
            raise ValueError(
                f'grid_hw must contain integers, got {grid_hw!r}')
        out.append(int(v))
    h, w = out
    if h <= 0 or w <= 0:
        raise ValueError(f'grid_hw must be positive (an empty patch grid has '
                         f'nothing to localize), got {grid_hw!r}')
    return h, w


def as_float_tensor(x: ArrayLike, name: str = 'input') -> Tensor:
    """Convert an array to a floating-point torch tensor without copying.

    ``float32`` and ``float64`` are kept; ``float16``/``bfloat16``, integer
    and boolean inputs are promoted to ``float32`` (graph thresholds near
    ``tau`` are meaningless at half precision).

    Args:
        x (Tensor | np.ndarray): Input array.
        name (str): Argument name used in error messages.

    Returns:
        Tensor: Detached floating tensor on the input's device.

    Raises:
        ValueError: If ``x`` is not an array or is complex.
    """
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise ValueError(f'{name} must be a numeric array, got object '
                             'dtype')
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ValueError(
            f'{name} must be a torch.Tensor or numpy array, got {type(x)}')
    x = x.detach()
    if x.is_complex():
        raise ValueError(f'{name} must be real, got dtype {x.dtype}')
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)
    return x


def use_numpy(x: Tensor) -> bool:
    """Whether to run a heavy dense step through numpy (CPU tensors: numpy's
    BLAS and element-wise kernels were 2-3x faster than torch's on one
    thread) or through torch (other devices, e.g. CUDA)."""
    return x.device.type == 'cpu'


def _check_finite(x: Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f'{name} contains NaN or inf values')


def check_keys(keys: ArrayLike, grid_hw: Sequence[int]) -> Tensor:
    """Validate patch features ``(N, D)`` against a patch grid.

    Args:
        keys (Tensor | np.ndarray): Patch features of shape ``(N, D)`` with
            ``N = h * w`` in row-major order, **without** the CLS token.
        grid_hw (Sequence[int]): ``(h, w)``.

    Returns:
        Tensor: ``keys`` as a floating tensor of shape ``(N, D)``.

    Raises:
        ValueError: For a wrong number of dimensions, ``N != h * w``, an empty
            grid or feature dimension, or NaN/inf values.
    """
    h, w = check_grid_hw(grid_hw)
    keys = as_float_tensor(keys, 'keys')
    if keys.ndim != 2:
        raise ValueError(f'keys must have shape (N, D) = (h*w, dim), got '
                         f'{tuple(keys.shape)} (ndim={keys.ndim})')
    n, d = keys.shape
    if n != h * w:
        hint = ''
        if n == h * w + 1:
            hint = ' (did you pass the CLS token? drop row 0)'
        raise ValueError(f'keys has N={n} rows but grid_hw={(h, w)} needs '
                         f'h*w={h * w}{hint}')
    if d == 0:
        raise ValueError('keys has an empty feature dimension (D=0)')
    _check_finite(keys, 'keys')
    return keys


def check_cls_attn(cls_attn: ArrayLike, grid_hw: Sequence[int]) -> Tensor:
    """Validate CLS->patch attention ``(num_heads, N)``.

    Args:
        cls_attn (Tensor | np.ndarray): Attention of the CLS query to the
            patch tokens, shape ``(num_heads, N)`` (no CLS column). A 1-D
            ``(N,)`` input is treated as a single head.
        grid_hw (Sequence[int]): ``(h, w)``.

    Returns:
        Tensor: ``(num_heads, N)`` floating tensor.

    Raises:
        ValueError: For a wrong shape or NaN/inf values.
    """
    h, w = check_grid_hw(grid_hw)
    att = as_float_tensor(cls_attn, 'cls_attn')
    if att.ndim == 1:
        att = att[None]
    if att.ndim != 2:
        raise ValueError(f'cls_attn must have shape (num_heads, N), got '
                         f'{tuple(att.shape)}')
    nh, n = att.shape
    if nh == 0:
        raise ValueError('cls_attn has no heads')
    if n != h * w:
        hint = ''
        if n == h * w + 1:
            hint = ' (did you keep the CLS column? drop column 0)'
        raise ValueError(f'cls_attn has N={n} columns but grid_hw={(h, w)} '
                         f'needs h*w={h * w}{hint}')
    _check_finite(att, 'cls_attn')
    return att


def _as_mask_hw(mask: ArrayLike, name: str = 'mask') -> Tensor:
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, Tensor):
        raise ValueError(
            f'{name} must be a torch.Tensor or numpy array, got {type(mask)}')
    if mask.ndim != 2:
        raise ValueError(f'{name} must be 2-D (h, w), got shape '
                         f'{tuple(mask.shape)}')
    if mask.dtype != torch.bool:
        mask = mask != 0
    return mask


# ---------------------------------------------------------------------------
# Connected components
# ---------------------------------------------------------------------------
def connected_components(mask_hw: ArrayLike) -> Tuple[Tensor, int]:
    """Label the 4-connected components of a 2-D boolean mask.

    Args:
        mask_hw (Tensor | np.ndarray): ``(h, w)`` mask (bool, or non-zero =
            foreground), on any device.

    Returns:
        tuple[Tensor, int]: ``labels`` ``(h, w)`` int32 on the input device
        (0 = background, components numbered 1..num in raster order of their
        first pixel, as ``scipy.ndimage.label``) and ``num``.
    """
    mask = _as_mask_hw(mask_hw, 'mask_hw')
    labels, num = ndimage.label(mask.cpu().numpy())
    return torch.from_numpy(labels.astype(np.int32)).to(mask.device), int(num)


def component_containing(mask: ArrayLike, index: int) -> Tensor:
    """The 4-connected component of ``mask`` that contains a patch.

    Args:
        mask (Tensor | np.ndarray): ``(h, w)`` boolean mask.
        index (int): Flat row-major patch index ``r * w + c``.

    Returns:
        Tensor: ``(h, w)`` bool mask of that component; all False if
        ``mask[index]`` is False (the official LOST/TokenCut code would raise
        there).

    Raises:
        ValueError: If ``index`` is outside the grid.
    """
    mask = _as_mask_hw(mask)
    h, w = mask.shape
    index = int(index)
    if not 0 <= index < h * w:
        raise ValueError(f'index {index} is outside the {h}x{w} grid')
    labels, _ = connected_components(mask)
    lab = labels.reshape(-1)[index]
    if int(lab) == 0:
        return torch.zeros_like(mask)
    return labels == lab


def largest_component(mask: ArrayLike) -> Tensor:
    """The largest 4-connected component of a mask.

    Ties go to the lowest label, i.e. the component whose first pixel comes
    first in raster order (``np.bincount(labels[labels > 0]).argmax()`` as in
    FOUND's ``get_bbox_from_segmentation_labels``).

    Args:
        mask (Tensor | np.ndarray): ``(h, w)`` boolean mask.

    Returns:
        Tensor: ``(h, w)`` bool mask of the largest component (all False if
        ``mask`` is empty).
    """
    mask = _as_mask_hw(mask)
    labels, num = connected_components(mask)
    if num == 0:
        return torch.zeros_like(mask)
    lab = labels.reshape(-1).cpu().numpy()
    best = int(np.bincount(lab[lab > 0], minlength=num + 1).argmax())
    return labels == best


# ---------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------
def _pair(v: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    if isinstance(v, Integral) and not isinstance(v, bool):
        return int(v), int(v)
    try:
        a, b = v
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be an int or a pair, got {v!r}') \
            from None
    return int(a), int(b)


def mask_to_box(mask: ArrayLike,
                patch_size: Union[int, Sequence[int]],
                image_hw: Optional[Sequence[int]] = None) -> Tensor:
    """Bounding box of a patch mask in original-image pixels.

    ``x0 = xmin * ps_x``, ``y0 = ymin * ps_y``,
    ``x1 = min((xmax + 1) * ps_x, W)``, ``y1 = min((ymax + 1) * ps_y, H)``
    over all True patches (the clipping removes the zero padding that makes
    the image a multiple of the patch size). This is the box of LOST's and
    TokenCut's ``detect_box`` and FOUND's ``get_bbox_from_segmentation_labels``
    (select the component first, e.g. with :func:`component_containing` or
    :func:`largest_component`).

    Args:
        mask (Tensor | np.ndarray): ``(h, w)`` boolean patch mask.
        patch_size (int | Sequence[int]): Patch size in pixels, or
            ``(ps_y, ps_x)``. Use 1 for a mask that is already at pixel
            resolution.
        image_hw (Sequence[int], optional): Original (unpadded) image size
            ``(H, W)`` used for clipping; None means no clipping (LOST's
            DINO-seg baseline).

    Returns:
        Tensor: ``(4,)`` int64 ``[x0, y0, x1, y1]`` (x1/y1 exclusive) on the
        mask's device.

    Raises:
        ValueError: If ``mask`` is empty (has no box).
    """
    mask = _as_mask_hw(mask)
    ps_y, ps_x = _pair(patch_size, 'patch_size')
    if ps_y <= 0 or ps_x <= 0:
        raise ValueError(f'patch_size must be positive, got {patch_size!r}')
    rows = torch.nonzero(mask.any(dim=1)).reshape(-1)
    cols = torch.nonzero(mask.any(dim=0)).reshape(-1)
    if rows.numel() == 0:
        raise ValueError('mask_to_box: the mask is empty, it has no box')
    ymin, ymax = int(rows[0]), int(rows[-1])
    xmin, xmax = int(cols[0]), int(cols[-1])
    x0, y0 = xmin * ps_x, ymin * ps_y
    x1, y1 = (xmax + 1) * ps_x, (ymax + 1) * ps_y
    if image_hw is not None:
        img_h, img_w = _pair(image_hw, 'image_hw')
        x1, y1 = min(x1, img_w), min(y1, img_h)
    return torch.tensor([x0, y0, x1, y1], dtype=torch.int64,
                        device=mask.device)


def first_argmax(values: ArrayLike, rtol: float = 1e-9) -> int:
    """Lowest index whose value is within ``rtol`` of the maximum.

    Eigenvector entries of patches with identical graph neighbourhoods are
    equal in exact arithmetic but differ by rounding noise (~1e-16), which
    would make a plain ``argmax`` pick an arbitrary member of the tie (and
    a different one per solver/BLAS). Treating entries within
    ``rtol * max|values|`` of the maximum as tied and taking the lowest index
    makes the choice deterministic ("stable": lowest index first).

    Args:
        values (Tensor | np.ndarray): ``(N,)`` real values (any device).
        rtol (float): Relative tie tolerance w.r.t. ``max |values|``.

    Returns:
        int: The selected flat index.
    """
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError('first_argmax of an empty array')
    vmax = v.max()
    tol = rtol * float(np.abs(v).max())
    return int(np.flatnonzero(v >= vmax - tol)[0])


def grid_corners(grid_hw: Sequence[int]) -> Tuple[int, int, int, int]:
    """Flat indices of the 4 grid corners (top-left, top-right, bottom-left,
    bottom-right); corners coincide on 1xN / Nx1 grids (then counted twice,
    as in MaskCut's corner test)."""
    h, w = check_grid_hw(grid_hw)
    return (0, w - 1, (h - 1) * w, h * w - 1)


def _iou(a: Tensor, b: Tensor) -> float:
    """IoU of two boolean masks; NaN when both are empty."""
    inter = int((a & b).sum())
    union = int((a | b).sum())
    return inter / union if union > 0 else math.nan
