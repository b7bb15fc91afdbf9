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
* An all-False ``mask`` means "no object found" (e.g. LOST on features with
  no positive similarity); it has no box (:func:`mask_to_box` raises), so
  check ``mask.any()`` first.
* Dense steps run through numpy on CPU tensors and through torch on other
  devices (:func:`use_numpy`); the choice is made once where a computation
  starts and its result converted back once where it ends.

Components are labelled with SciPy on the CPU (a grid has at most a few
thousand cells, so the device round trip is negligible); results come back on
the input's device.
"""
import math
import os
import threading
from numbers import Integral, Real
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from mmuol.utils.arrays import ArrayLike, to_numpy

__all__ = [
    'as_float_tensor', 'check_grid_hw', 'check_keys', 'check_cls_attn', 'check_real',
    'check_finite', 'connected_components', 'component_containing', 'largest_component',
    'mask_to_box', 'first_argmax', 'grid_corners', 'mask_iou', 'mask_iou_or_nan', 'use_numpy',
    'patch_grid', 'pad_to_patch_multiple', 'available_memory', 'graph_memory_bytes',
    'check_graph_memory'
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
            f'grid_hw must be a pair (h, w) of positive ints, got {grid_hw!r}') from None
    if len(items) != 2:
        raise ValueError(f'grid_hw must be a pair (h, w) of positive ints, got {grid_hw!r}')
    out = []
    for v in items:
        if isinstance(v, Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, Integral):
            raise ValueError(f'grid_hw must contain integers, got {grid_hw!r}')
        out.append(int(v))
    h, w = out
    if h <= 0 or w <= 0:
        raise ValueError('grid_hw must be positive (an empty patch grid has nothing to localize), '
                         f'got {grid_hw!r}')
    return h, w


def check_real(value: float,
               name: str,
               low: float = -math.inf,
               high: float = math.inf,
               low_open: bool = False,
               high_open: bool = False,
               hint: str = '') -> float:
    """Validate a finite real hyper-parameter inside an interval.

    Args:
        value (float): The value.
        name (str): Argument name used in the message.
        low (float): Lower bound. Defaults to -inf.
        high (float): Upper bound. Defaults to inf.
        low_open (bool): Exclude ``low``. Defaults to False.
        high_open (bool): Exclude ``high``. Defaults to False.
        hint (str): Appended to the message (e.g. the official value).

    Returns:
        float: ``value`` as a Python float.

    Raises:
        ValueError: For a non-real, NaN/inf or out-of-range value.
    """
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise ValueError(f'{name} must be a real number, got {value!r}')
    value = float(value)
    lo_ok = value > low if low_open else value >= low
    hi_ok = value < high if high_open else value <= high
    if not (math.isfinite(value) and lo_ok and hi_ok):
        interval = f'{"(" if low_open else "["}{low:g}, {high:g}{")" if high_open else "]"}'
        raise ValueError(f'{name} must be a finite number in {interval}, got {value!r}'
                         f'{"; " + hint if hint else ""}')
    return value


def check_int(value: int, name: str, low: int = 1, high: Optional[int] = None) -> int:
    """Validate an integer hyper-parameter in ``[low, high)``.

    Args:
        value (int): The value (integral floats such as ``3.0`` are accepted).
        name (str): Argument name used in the message.
        low (int): Smallest allowed value. Defaults to 1.
        high (int, optional): Exclusive upper bound. Defaults to None.

    Returns:
        int: ``value`` as a Python int.

    Raises:
        ValueError: For a non-integral or out-of-range value.
    """
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    ok = isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) \
        and math.isfinite(value) and int(value) == value
    if not ok or value < low or (high is not None and value >= high):
        bounds = f'[{low}, {high})' if high is not None else f'>= {low}'
        raise ValueError(f'{name} must be an int {bounds}, got {value!r}')
    return int(value)


def block_rows(num_cols: int, bytes_per_entry: int, budget_bytes: int, max_rows: int) -> int:
    """Rows of a ``(rows, num_cols)`` block that fit in ``budget_bytes``
    (at least 1, at most ``max_rows``): how the N x N matrices of the
    localizers are computed in row blocks."""
    rows = budget_bytes // max(1, num_cols * bytes_per_entry)
    return int(max(1, min(max_rows, rows)))


# Largest patch-graph buffer kept for reuse between calls, per thread.
_WORKSPACE_MAX_BYTES = 256 * 2**20


class _WorkspaceSlot(threading.local):
    buffer: Optional[np.ndarray] = None  # flat uint8, owns its memory


_WORKSPACE = _WorkspaceSlot()


def _take_workspace(shape: Tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-ordered array for an N x N patch graph, in the
    memory the previous graph of this thread gave back when it fits.

    Large fresh arrays are slow to fill: numpy asks for transparent huge
    pages, which the kernel may compact memory for at the first write (up to
    ~0.1 s for 100 MB, measured); a graph built for every image of a
    dataset reuses one buffer instead. Pair with :func:`_give_back_workspace`
    once nothing refers to the array any more.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = _WORKSPACE.buffer
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(nbytes, dtype=np.uint8)
    else:
        _WORKSPACE.buffer = None
    return buf[:nbytes].view(dtype).reshape(shape)


def _give_back_workspace(array: Optional[np.ndarray]) -> None:
    """Keep the memory of an array from :func:`_take_workspace` for the next
    graph (the larger buffer, up to ``_WORKSPACE_MAX_BYTES``)."""
    if array is None:
        return
    root = array if array.base is None else array.base
    if not isinstance(root, np.ndarray) or root.dtype != np.uint8 or root.ndim != 1:
        return
    kept = _WORKSPACE.buffer
    if root.nbytes <= _WORKSPACE_MAX_BYTES and (kept is None or root.nbytes > kept.nbytes):
        _WORKSPACE.buffer = root


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
            raise ValueError(f'{name} must be a numeric array, got object dtype')
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ValueError(f'{name} must be a torch.Tensor or numpy array, got {type(x)}')
    x = x.detach()
    if x.is_complex():
        raise ValueError(f'{name} must be real, got dtype {x.dtype}')
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)
    return x


def use_numpy(x: Tensor) -> bool:
    """Whether a dense computation on ``x`` runs through numpy (CPU tensors:
    numpy's BLAS and element-wise kernels were 2-3x faster than torch's on one
    thread) or through torch (other devices, e.g. CUDA).

    Entry points call this once and keep the chosen representation until
    their result is packed (tests patch it to run the device path on CPU).
    """
    return x.device.type == 'cpu'


def check_finite(x: Tensor, name: str) -> None:
    # The sum is NaN/inf if any element is (a float overflow of the sum is
    # re-checked element-wise): one cheap reduction instead of a full
    # boolean map on the common, valid path.
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
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
        raise ValueError(f'keys must have shape (N, D) = (h*w, dim), got {tuple(keys.shape)} '
                         f'(ndim={keys.ndim})')
    n, d = keys.shape
    if n != h * w:
        hint = ' (did you pass the CLS token? drop row 0)' if n == h * w + 1 else ''
        raise ValueError(f'keys has N={n} rows but grid_hw={(h, w)} needs h*w={h * w}{hint}')
    if d == 0:
        raise ValueError('keys has an empty feature dimension (D=0)')
    check_finite(keys, 'keys')
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
        raise ValueError(f'cls_attn must have shape (num_heads, N), got {tuple(att.shape)}')
    nh, n = att.shape
    if nh == 0:
        raise ValueError('cls_attn has no heads')
    if n != h * w:
        hint = ' (did you keep the CLS column? drop column 0)' if n == h * w + 1 else ''
        raise ValueError(f'cls_attn has N={n} columns but grid_hw={(h, w)} needs '
                         f'h*w={h * w}{hint}')
    check_finite(att, 'cls_attn')
    return att


def _as_mask_hw(mask: ArrayLike, name: str = 'mask') -> Tensor:
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, Tensor):
        raise ValueError(f'{name} must be a torch.Tensor or numpy array, got {type(mask)}')
    if mask.ndim != 2:
        raise ValueError(f'{name} must be 2-D (h, w), got shape {tuple(mask.shape)}')
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


def component_containing(mask: ArrayLike,
                         index: int,
                         return_labels: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """The 4-connected component of ``mask`` that contains a patch.

    This is the "object = component of the foreground holding the seed" step
    of LOST, TokenCut and MaskCut.

    Args:
        mask (Tensor | np.ndarray): ``(h, w)`` boolean mask.
        index (int): Flat row-major patch index ``r * w + c``.
        return_labels (bool): Also return the labels of all components
            (what the localizers report), so nothing is labelled twice.

    Returns:
        Tensor | tuple[Tensor, Tensor]: ``(h, w)`` bool mask of that
        component, on the mask's device (all False if ``mask[index]`` is
        False: the official LOST/TokenCut code would raise there); with
        ``return_labels`` also the ``(h, w)`` int32 labels of
        :func:`connected_components`.

    Raises:
        ValueError: If ``index`` is outside the grid.
    """
    mask = _as_mask_hw(mask)
    h, w = mask.shape
    index = int(index)
    if not 0 <= index < h * w:
        raise ValueError(f'index {index} is outside the {h}x{w} grid')
    labels, _ = connected_components(mask)
    lab = int(labels.reshape(-1)[index])
    comp = labels == lab if lab != 0 else torch.zeros_like(mask)
    return (comp, labels) if return_labels else comp


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
def _positive_pair(v: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """An int or a pair of ints (integral floats accepted), both positive."""
    if isinstance(v, (Tensor, np.ndarray)):
        v = v.tolist()
    if isinstance(v, Real) and not isinstance(v, (bool, np.bool_)):
        v = (v, v)
    try:
        pair = tuple(v)
    except TypeError:
        pair = ()
    ok = len(pair) == 2 and all(
        isinstance(x, Real) and not isinstance(x, (bool,
                                                   np.bool_)) and math.isfinite(x) and x == int(x)
        for x in pair)
    if not ok:
        raise ValueError(f'{name} must be an int or a pair of ints, got {v!r}')
    a, b = (int(x) for x in pair)
    if a <= 0 or b <= 0:
        raise ValueError(f'{name} must be positive, got {v!r}')
    return a, b


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

    An empty mask means "no object" and has no box: test ``mask.any()``
    first, e.g. ``box = mask_to_box(m, 16, hw) if m.any() else None``.

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
        ValueError: If ``mask`` is empty (no object, no box), if
            ``patch_size`` or ``image_hw`` are not positive ints, or if the
            mask lies outside ``image_hw`` (the clipped box would be empty or
            inverted: ``image_hw`` does not belong to this patch grid).
    """
    mask = _as_mask_hw(mask)
    ps_y, ps_x = _positive_pair(patch_size, 'patch_size')
    rows = torch.nonzero(mask.any(dim=1)).reshape(-1)
    cols = torch.nonzero(mask.any(dim=0)).reshape(-1)
    if rows.numel() == 0:
        raise ValueError('mask_to_box: the mask is empty (no object was found), it has no box; '
                         'test mask.any() first')
    ymin, ymax = int(rows[0]), int(rows[-1])
    xmin, xmax = int(cols[0]), int(cols[-1])
    x0, y0 = xmin * ps_x, ymin * ps_y
    x1, y1 = (xmax + 1) * ps_x, (ymax + 1) * ps_y
    if image_hw is not None:
        img_h, img_w = _positive_pair(image_hw, 'image_hw')
        x1, y1 = min(x1, img_w), min(y1, img_h)
        if x1 <= x0 or y1 <= y0:
            h, w = mask.shape
            raise ValueError(
                f'mask_to_box: image_hw={(img_h, img_w)} is smaller than the box of the mask '
                f'([x0, y0] = {[x0, y0]} px on a {h}x{w} grid of {ps_y}x{ps_x} patches); the '
                'box would be inverted. Pass the unpadded (H, W) of the image the patch grid '
                'was computed on (not (W, H), not the original size before resizing).')
    return torch.tensor([x0, y0, x1, y1], dtype=torch.int64, device=mask.device)


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
    v = np.asarray(to_numpy(values), dtype=np.float64).reshape(-1)
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


# ---------------------------------------------------------------------------
# Mask IoU: the two conventions of the upstream code, side by side
# ---------------------------------------------------------------------------
def mask_iou(mask1: ArrayLike, mask2: ArrayLike) -> float:
    """IoU of ``mask1 > 0.5`` and ``mask2 > 0.5``; **0.0** when both are empty.

    FOUND's bilateral-solver gate (soft masks are binarised at 0.5; upstream
    yields NaN for two empty masks, which fails its ``> 0.5`` gate just like
    0.0 does).

    Args:
        mask1 (Tensor | np.ndarray): ``(H, W)`` mask (bool or values in
            [0, 1]).
        mask2 (Tensor | np.ndarray): ``(H, W)`` mask.

    Returns:
        float: IoU in [0, 1].
    """
    a = to_numpy(mask1) > 0.5
    b = to_numpy(mask2) > 0.5
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def mask_iou_or_nan(mask1: ArrayLike, mask2: ArrayLike) -> float:
    """IoU of two boolean masks (non-zero = inside); **NaN** when both are
    empty.

    MaskCut's stage filter (TokenCut's ``metric.IoU``): a NaN IoU is not
    ``> iou_thresh``, so an empty mask after an empty one is not dropped for
    overlap.

    Args:
        mask1 (Tensor | np.ndarray): ``(h, w)`` mask.
        mask2 (Tensor | np.ndarray): ``(h, w)`` mask.

    Returns:
        float: IoU in [0, 1], or NaN.
    """
    a = to_numpy(mask1) != 0
    b = to_numpy(mask2) != 0
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else math.nan


# ---------------------------------------------------------------------------
# Patch grid of an image
# ---------------------------------------------------------------------------
def patch_grid(image_hw: Sequence[int], patch_size: int) -> Tuple[int, int]:
    """Patch grid ``(ceil(H / p), ceil(W / p))`` of an image padded to a
    multiple of the patch size.

    Args:
        image_hw (Sequence[int]): Unpadded image size ``(H, W)``.
        patch_size (int): Patch size ``p`` in pixels.

    Returns:
        tuple[int, int]: ``(h, w)`` patch rows and columns.

    Raises:
        ValueError: If the image is smaller than one patch.
    """
    img_h, img_w = (int(v) for v in image_hw[:2])
    p = int(patch_size)
    if p <= 0:
        raise ValueError(f'patch_size must be positive, got {patch_size!r}')
    if img_h < p or img_w < p:
        raise ValueError(f'image of {img_h}x{img_w} pixels is smaller than one {p}x{p} patch; '
                         'nothing can be localized (resize it up)')
    return math.ceil(img_h / p), math.ceil(img_w / p)


def pad_to_patch_multiple(images: Tensor,
                          patch_size: int,
                          image_hw: Optional[Sequence[int]] = None) -> Tensor:
    """Zero-pad images at the bottom/right to a multiple of the patch size.

    This is the padding of the official LOST / TokenCut / FOUND / DINO code:
    zeros in *normalised* space (the mean colour), bottom and right only. With
    ``image_hw`` the input is taken as a batch-padded tensor whose true image
    is its top-left ``image_hw`` corner: pixels past it are zeroed and the
    tensor is cropped (or padded) to that image's own padded size, so the
    result never depends on how the batch was padded.

    Args:
        images (Tensor): ``(B, C, H, W)`` normalised images.
        patch_size (int): Patch size ``p``.
        image_hw (Sequence[int], optional): True size ``(H0, W0)`` of every
            image in ``images`` (``H0 <= H``, ``W0 <= W``).

    Returns:
        Tensor: ``(B, C, ceil(H0 / p) * p, ceil(W0 / p) * p)``: the input
        itself when nothing changes, a cropped view when only cropping is
        needed, else a new tensor.

    Raises:
        ValueError: If ``image_hw`` exceeds the tensor or the patch size is
            not positive.
    """
    p = int(patch_size)
    if p <= 0:
        raise ValueError(f'patch_size must be positive, got {patch_size!r}')
    height, width = images.shape[-2:]
    if image_hw is None:
        img_h, img_w = height, width
    else:
        img_h, img_w = (int(v) for v in image_hw[:2])
        if img_h > height or img_w > width:
            raise ValueError(f'image_hw {(img_h, img_w)} exceeds the tensor size '
                             f'{(height, width)}')
    out_h, out_w = -(-img_h // p) * p, -(-img_w // p) * p
    if (img_h, img_w, out_h, out_w) == (height, width, height, width):
        return images
    out = images[..., :img_h, :img_w]
    return torch.nn.functional.pad(out, (0, out_w - img_w, 0, out_h - img_h))


# ---------------------------------------------------------------------------
# Memory of the N x N patch graphs
# ---------------------------------------------------------------------------
#: Bytes per entry of an N x N patch graph at the peak of each method:
#: TokenCut / MaskCut keep the float64 graph (the Lanczos path), the dense
#: solver also its Laplacian, ``diag(D)`` and LAPACK's two working copies.
#: LOST, FOUND stage 1 and DINO-seg work in row blocks (memory linear in N).
_GRAPH_BYTES_PER_ENTRY = {'lanczos': 8, 'dense': 40}
_LINEAR_METHODS = ('lost', 'found', 'found_background', 'dino_seg')
_GRAPH_METHODS = ('tokencut', 'maskcut', 'ncut')


def available_memory(device: Union[str, torch.device] = 'cpu') -> Optional[int]:
    """Bytes that a new allocation on ``device`` can use now.

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux; None elsewhere). CUDA:
    the free device memory plus what torch's caching allocator holds unused.

    Args:
        device (str | torch.device): Device. Defaults to ``'cpu'``.

    Returns:
        int | None: Bytes, or None when unknown (no check is made then).
    """
    device = torch.device(device)
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    if device.type != 'cpu':
        return None
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def graph_memory_bytes(num_patches: int, method: str = 'tokencut', solver: str = 'auto') -> int:
    """Peak memory of a localizer's patch graph on ``num_patches`` patches.

    Args:
        num_patches (int): ``N = h * w``.
        method (str): ``'tokencut'``, ``'maskcut'``, ``'ncut'`` (an N x N
            float64 graph) or ``'lost'``, ``'found'``, ``'dino_seg'``
            (computed in row blocks: 0 is returned, nothing N x N is held).
        solver (str): ``'auto'`` / ``'lanczos'`` (8 bytes per entry) or
            ``'dense'`` (~40 bytes per entry).

    Returns:
        int: Bytes of the N x N arrays held at the peak.
    """
    n = int(num_patches)
    if method in _LINEAR_METHODS:
        return 0
    if method not in _GRAPH_METHODS:
        raise ValueError(f'method must be one of {_GRAPH_METHODS + _LINEAR_METHODS}, '
                         f'got {method!r}')
    per_entry = _GRAPH_BYTES_PER_ENTRY['dense' if solver == 'dense' else 'lanczos']
    return per_entry * n * n


def check_graph_memory(num_patches: int,
                       method: str = 'tokencut',
                       device: Union[str, torch.device] = 'cpu',
                       solver: str = 'auto',
                       available_bytes: Optional[int] = None) -> int:
    """Fail early, with advice, when a patch graph cannot fit in memory.

    Called by TokenCut / MaskCut / :func:`cosine_affinity` /
    :func:`ncut_bipartition` before they allocate, and usable by a detector
    before it runs the backbone on a huge image. Set the environment variable
    ``MMUOL_GRAPH_MEMORY_LIMIT`` (bytes) to impose a lower limit.

    Args:
        num_patches (int): ``N = h * w``.
        method (str): See :func:`graph_memory_bytes`.
        device (str | torch.device): Where the graph will live.
        solver (str): See :func:`graph_memory_bytes`.
        available_bytes (int, optional): Memory that may be used; default:
            :func:`available_memory` (and the environment limit).

    Returns:
        int: The bytes needed (see :func:`graph_memory_bytes`).

    Raises:
        MemoryError: If more is needed than available, with what to do.
    """
    need = graph_memory_bytes(num_patches, method, solver)
    if need == 0:
        return need
    avail = available_bytes
    if avail is None:
        avail = available_memory(device)
        env = os.environ.get('MMUOL_GRAPH_MEMORY_LIMIT')
        if env:
            avail = int(float(env)) if avail is None else min(avail, int(float(env)))
    if avail is not None and need > avail:
        n = int(num_patches)
        side = int(math.sqrt(avail / graph_memory_bytes(1, method, solver)))
        what = f'{method} with the dense solver' if solver == 'dense' else method
        raise MemoryError(
            f'{what} on {n:,} patches needs an N x N patch graph of {need / 2**30:.1f} GiB '
            f'but only {avail / 2**30:.1f} GiB of {torch.device(device).type} memory is '
            f'available (at most ~{side:,} patches fit, e.g. a {int(math.sqrt(side))}x'
            f'{int(math.sqrt(side))} grid). Resize the image in the data pipeline (e.g. '
            "dict(type='Resize', scale=(480, 480), keep_ratio=True): 60x60 patches with a "
            "ViT-S/8, 30x30 with a ViT-S/16), or cap the number of patches before the backbone "
            '(the detector option max_patches).')
    return need
