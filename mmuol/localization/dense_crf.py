# Copyright (c) mmuol contributors. All rights reserved.
"""Fully-connected (dense) CRF with Gaussian edge potentials.

One implementation of the CRF of Krähenbühl & Koltun, "Efficient Inference in
Fully Connected CRFs with Gaussian Edge Potentials" (NeurIPS 2011), as wrapped
by ``pydensecrf`` (``DenseCRF2D``): Potts compatibilities, an appearance
(bilateral: position + colour) kernel and a smoothness (position) kernel,
both with diagonal bandwidths and symmetric normalisation, and mean-field
inference where every message is one permutohedral-lattice Gaussian filter
(:class:`~mmuol.localization.dense_crf_lattice.PermutohedralLattice`).

The model (``N`` pixels, ``C`` labels, unary ``U = -log clip(p)``)::

    Q⁰ = softmax(-U)
    Qᵗ⁺¹ = softmax(-U + Σₖ wₖ · nₖ ⊙ Kₖ(nₖ ⊙ Qᵗ)),   nₖ = (Kₖ 1)^(-1/2)

with ``K_bilateral`` on ``(x/θα, y/θα, c₀/θβ, c₁/θβ, c₂/θβ)`` and
``K_gaussian`` on ``(x/θγ, y/θγ)``, pixel ``x`` = column, ``y`` = row, and
``c`` the three colour channels in the order given.

Three uses share it, each with its own parameter set:

* :func:`maskcut_crf` / :func:`maskcut_crf_postprocess` - the MaskCut
  pseudo-labels of CutLER (Wang et al., "Cut and Learn for Unsupervised
  Object Detection and Instance Segmentation", CVPR 2023), ``MASKCUT_CRF``.
* :func:`stego_crf` - STEGO's inference-time CRF (Hamilton et al.,
  "Unsupervised Semantic Segmentation by Distilling Feature
  Correspondences", ICLR 2022), ``STEGO_CRF``.
* :func:`dsm_crf` - the object segmentation of Deep Spectral Methods
  (Melas-Kyriazi et al., CVPR 2022), ``DSM_CRF``.

The lattice follows the reference code's float32 arithmetic, so the outputs
match ``pydensecrf`` (checked against golden vectors produced with the
official CutLER and STEGO code). ``backend='pydensecrf'`` runs the compiled
package instead when it is installed (``pip install pydensecrf2``).
"""
import functools
import math
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from mmuol.utils.arrays import ArrayLike
from mmuol.utils.constants import IMAGENET_MEAN, IMAGENET_STD
from .dense_crf_lattice import PermutohedralLattice
from .utils import check_finite, check_int, mask_iou_or_nan

__all__ = [
    'DenseCRFParams', 'MASKCUT_CRF', 'STEGO_CRF', 'DSM_CRF', 'dense_crf', 'maskcut_crf',
    'MaskCutCRFResult', 'maskcut_crf_postprocess', 'batch_maskcut_crf_postprocess', 'stego_crf',
    'dsm_crf'
]


class DenseCRFParams(NamedTuple):
    """Parameters of the dense CRF (``pydensecrf`` names in brackets).

    Attributes:
        iterations (int): Mean-field iterations (``inference(n)``).
        gaussian_sxy (float): Position std of the smoothness kernel, pixels
            (``addPairwiseGaussian(sxy=)``, θγ).
        gaussian_compat (float): Potts weight of the smoothness kernel
            (``compat=``, w2).
        bilateral_sxy (float): Position std of the appearance kernel, pixels
            (``addPairwiseBilateral(sxy=)``, θα).
        bilateral_srgb (float): Colour std of the appearance kernel, in
            0-255 units (``srgb=``, θβ).
        bilateral_compat (float): Potts weight of the appearance kernel
            (``compat=``, w1).
        prob_clip (tuple[float, float]): ``(low, high)`` clip of the label
            probabilities before ``U = -log p``: ``(1e-5, 1.0)`` is
            ``pydensecrf.utils.unary_from_softmax``; SimpleCRF uses
            ``(0.01, 0.99)``.
    """
    iterations: int
    gaussian_sxy: float
    gaussian_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float
    prob_clip: Tuple[float, float] = (1e-5, 1.0)


#: CutLER ``maskcut/crf.py``: ``MAX_ITER=10, POS_W=7, POS_XY_STD=3, Bi_W=10,
#: Bi_XY_STD=50, Bi_RGB_STD=5``.
MASKCUT_CRF = DenseCRFParams(
    iterations=10,
    gaussian_sxy=3.,
    gaussian_compat=7.,
    bilateral_sxy=50.,
    bilateral_srgb=5.,
    bilateral_compat=10.)

#: STEGO ``src/crf.py``: ``MAX_ITER=10, POS_W=3, POS_XY_STD=1, Bi_W=4,
#: Bi_XY_STD=67, Bi_RGB_STD=3``.
STEGO_CRF = DenseCRFParams(
    iterations=10,
    gaussian_sxy=1.,
    gaussian_compat=3.,
    bilateral_sxy=67.,
    bilateral_srgb=3.,
    bilateral_compat=4.)

#: Deep Spectral Methods (object segmentation) through SimpleCRF's
#: ``denseCRF.densecrf(I, P, (w1, alpha, beta, w2, gamma, it))`` with
#: ``(10, 80, 13, 3, 3, 5)``. SimpleCRF builds the same pydensecrf model:
#: ``addPairwiseBilateral(alpha, alpha, beta, beta, beta, I, Potts(w1))`` and
#: ``addPairwiseGaussian(gamma, gamma, Potts(w2))``, ``map(it)``, unary
#: ``-log clip(P, 0.01, 0.99)``. So w1 -> ``bilateral_compat``, alpha ->
#: ``bilateral_sxy``, beta -> ``bilateral_srgb``, w2 -> ``gaussian_compat``,
#: gamma -> ``gaussian_sxy``, it -> ``iterations``. (SimpleCRF adds the
#: bilateral term first; the order only changes float rounding.)
DSM_CRF = DenseCRFParams(
    iterations=5,
    gaussian_sxy=3.,
    gaussian_compat=3.,
    bilateral_sxy=80.,
    bilateral_srgb=13.,
    bilateral_compat=10.,
    prob_clip=(0.01, 0.99))

_BACKENDS = ('builtin', 'pydensecrf')


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def _as_tensor(x: ArrayLike, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise ValueError(f'{name} must be a numeric array, got object dtype')
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor or numpy array, got {type(x).__name__}')
    return x.detach()


def _check_image(image: ArrayLike, name: str = 'image') -> Tensor:
    """``(H, W, 3)`` uint8 image as a tensor."""
    img = _as_tensor(image, name)
    if img.ndim != 3 or img.shape[-1] != 3:
        hint = ''
        if img.ndim == 3 and img.shape[0] == 3:
            hint = ' (channels first? pass image.permute(1, 2, 0) / transpose(1, 2, 0))'
        raise ValueError(f'{name} must have shape (H, W, 3), got {tuple(img.shape)}{hint}')
    if img.dtype != torch.uint8:
        hint = ''
        if img.is_floating_point():
            hint = (' (a float image: convert 0-255 values with .astype(uint8); for an '
                    'ImageNet-normalised tensor use stego_crf)')
        raise TypeError(f'{name} must be uint8, got {img.dtype}{hint}')
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f'{name} is empty: shape {tuple(img.shape)}')
    return img


def _check_params(params: DenseCRFParams) -> DenseCRFParams:
    if not isinstance(params, DenseCRFParams):
        raise TypeError('params must be a DenseCRFParams (e.g. MASKCUT_CRF, STEGO_CRF, DSM_CRF), '
                        f'got {type(params).__name__}')
    it = params.iterations
    if isinstance(it, bool) or not isinstance(it, (int, np.integer)) or it < 0:
        raise ValueError(f'params.iterations must be an int >= 0, got {it!r}')
    for field in ('gaussian_sxy', 'bilateral_sxy', 'bilateral_srgb'):
        v = float(getattr(params, field))
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f'params.{field} must be a positive std, got {v!r}')
    for field in ('gaussian_compat', 'bilateral_compat'):
        v = float(getattr(params, field))
        if not math.isfinite(v):
            raise ValueError(f'params.{field} must be finite, got {v!r}')
    lo, hi = (float(v) for v in params.prob_clip)
    if not 0 < lo < hi <= 1:
        raise ValueError(f'params.prob_clip must satisfy 0 < low < high <= 1, got '
                         f'{params.prob_clip!r}')
    return params


def _check_backend(backend: str) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f'backend must be one of {_BACKENDS}, got {backend!r}')
    return backend


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------
def _divide(x: Tensor, std: float) -> Tensor:
    # Divide by a same-device tensor: a Python scalar may become a reciprocal
    # multiply (CUDA), which would move some lattice points across rounding
    # boundaries compared with the reference's float division.
    return x / torch.tensor(float(std), dtype=torch.float32, device=x.device)


def _kernel(features: Tensor, compat: float) -> Tuple[PermutohedralLattice, Tensor, float]:
    lattice = PermutohedralLattice(features)
    ones = torch.ones(features.shape[0], 1, dtype=torch.float32, device=features.device)
    norm = 1.0 / torch.sqrt(lattice.filter(ones) + 1e-20)
    return lattice, norm, float(compat)


def _pixel_grid(h: int, w: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=device),
        torch.arange(w, dtype=torch.float32, device=device),
        indexing='ij')
    return xs.reshape(-1), ys.reshape(-1)


@functools.lru_cache(maxsize=4)
def _smoothness_kernel(h: int, w: int, sxy: float, compat: float, device: torch.device):
    # Depends on the image size only: reused across images of one size.
    xs, ys = _pixel_grid(h, w, device)
    return _kernel(torch.stack([_divide(xs, sxy), _divide(ys, sxy)], 1), compat)


def _lattices(image: Tensor,
              params: DenseCRFParams) -> List[Tuple[PermutohedralLattice, Tensor, float]]:
    """Build the two kernels for an ``(H, W, 3)`` uint8 image on its device.

    Returns:
        list[tuple]: ``(lattice, norm (N, 1), compat)`` for the smoothness
        and the appearance kernel.
    """
    h, w = image.shape[:2]
    dev = image.device
    smooth = _smoothness_kernel(h, w, float(params.gaussian_sxy), float(params.gaussian_compat),
                                dev)
    xs, ys = _pixel_grid(h, w, dev)
    rgb = image.reshape(-1, 3).to(torch.float32)
    bil = torch.stack([
        _divide(xs, params.bilateral_sxy),
        _divide(ys, params.bilateral_sxy),
        *(_divide(rgb[:, i], params.bilateral_srgb) for i in range(3)),
    ], 1)
    return [smooth, _kernel(bil, params.bilateral_compat)]


def _softmax_last(x: Tensor) -> Tensor:
    """Softmax over the short last (label) dimension, computed plane by
    plane (``torch.softmax`` is several times slower there on CPU); same
    steps as the reference: subtract the max, exponentiate, divide by the
    sum."""
    planes = x.unbind(-1)
    top = planes[0]
    for p in planes[1:]:
        top = torch.maximum(top, p)
    e = (x - top[..., None]).exp_()
    planes = e.unbind(-1)
    total = planes[0].clone()
    for p in planes[1:]:
        total += p
    return e.div_(total[..., None])


def _mean_field(unary: Tensor, kernels, iterations: int) -> Tensor:
    """Mean-field inference.

    Args:
        unary (Tensor): ``(N, B, C)`` float32 energies ``-log p``.
        kernels (list): Output of :func:`_lattices`.
        iterations (int): Number of updates.

    Returns:
        Tensor: ``(N, B, C)`` float32 marginals.
    """
    n, b, c = unary.shape
    neg_unary = -unary
    q = _softmax_last(neg_unary)
    for _ in range(iterations):
        energy = neg_unary.clone()
        for lattice, norm, compat in kernels:
            msg = lattice.filter(q.reshape(n, b * c) * norm)
            msg *= norm
            msg *= compat
            energy += msg.reshape(n, b, c)
        q = _softmax_last(energy)
    return q


def _unary(probs: Tensor, prob_clip: Tuple[float, float]) -> Tensor:
    # -log in the input precision, then float32 (as unary_from_softmax).
    lo, hi = prob_clip
    return (-torch.log(probs.clamp(lo, hi))).to(torch.float32)


def _pydensecrf_q(image: np.ndarray, probs: np.ndarray, params: DenseCRFParams) -> np.ndarray:
    """The same model through the compiled ``pydensecrf`` package."""
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("backend='pydensecrf' needs the compiled package: pip install "
                          "pydensecrf2 (builds from source), or use backend='builtin'") from exc
    c, h, w = probs.shape
    lo, hi = params.prob_clip
    unary = np.ascontiguousarray(-np.log(np.clip(probs, lo, hi)).reshape(c, -1), np.float32)
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(image),
        compat=params.bilateral_compat)
    return np.asarray(crf.inference(int(params.iterations)), np.float32).reshape(c, h, w)


def dense_crf(image: ArrayLike,
              probs: ArrayLike,
              params: DenseCRFParams,
              backend: str = 'builtin') -> Tensor:
    """Dense-CRF marginals of label probabilities on an image.

    Several probability maps of the same image (e.g. the masks MaskCut finds
    in one image) can be passed as a batch: the lattices are built once and
    all maps run through mean-field together.

    Args:
        image (Tensor | np.ndarray): ``(H, W, 3)`` uint8 colour image. The
            three channels are used in the order given (pass RGB unless a
            method's reference fed another order, as STEGO feeds BGR).
        probs (Tensor | np.ndarray): ``(C, H, W)`` or ``(B, C, H, W)`` label
            **probabilities** (not logits: apply a softmax first), ``C >= 2``,
            values in ``[0, 1]``; the unary is ``-log clip(probs)``
            (``params.prob_clip``). Its device is the compute device.
        params (DenseCRFParams): Model parameters, e.g. ``MASKCUT_CRF``.
        backend (str): ``'builtin'`` (this implementation; runs on the
            device of ``probs``, CPU or CUDA) or ``'pydensecrf'`` (the
            compiled reference package, CPU, if installed).

    Returns:
        Tensor: Marginals ``Q``, float32, same shape and device as ``probs``;
        sums to 1 over the label dimension.

    Raises:
        ValueError: On shape mismatches, ``C < 2``, NaN/inf or values outside
            ``[0, 1]``.
        TypeError: If ``image`` is not uint8.
    """
    params = _check_params(params)
    backend = _check_backend(backend)
    img = _check_image(image)
    p = _as_tensor(probs, 'probs')
    if p.ndim not in (3, 4):
        raise ValueError(f'probs must have shape (C, H, W) or (B, C, H, W), got {tuple(p.shape)}')
    batched = p.ndim == 4
    if not batched:
        p = p[None]
    if not p.is_floating_point():
        p = p.to(torch.float32)
    b, c, h, w = p.shape
    if c < 2:
        raise ValueError(f'probs has C={c} label(s); a CRF needs at least 2 (for a binary mask '
                         'm pass the two maps [1 - m, m])')
    if (h, w) != tuple(img.shape[:2]):
        raise ValueError(f'probs spatial size {(h, w)} does not match image size '
                         f'{tuple(img.shape[:2])}; resize the probabilities to the image first')
    check_finite(p, 'probs')
    if b > 0 and (float(p.min()) < -1e-6 or float(p.max()) > 1 + 1e-6):
        raise ValueError(f'probs must be probabilities in [0, 1], got values in '
                         f'[{float(p.min()):.3g}, {float(p.max()):.3g}] (logits? apply a '
                         'softmax over the label dimension first)')
    if b == 0:
        out = p.new_zeros(p.shape, dtype=torch.float32)
        return out if batched else out[0]

    if backend == 'pydensecrf':
        img_np = img.cpu().numpy()
        q = np.stack([_pydensecrf_q(img_np, pi, params) for pi in p.cpu().numpy()])
        out = torch.from_numpy(q).to(p.device)
    else:
        kernels = _lattices(img.to(p.device), params)
        unary = _unary(p, params.prob_clip).permute(2, 3, 0, 1).reshape(h * w, b, c)
        q = _mean_field(unary, kernels, int(params.iterations))
        out = q.reshape(h, w, b, c).permute(2, 3, 0, 1).contiguous()
    return out if batched else out[0]


# ---------------------------------------------------------------------------
# MaskCut (CutLER)
# ---------------------------------------------------------------------------
def _check_masks(mask: ArrayLike, name: str = 'mask') -> Tuple[Tensor, bool]:
    """``(h, w)`` or ``(N, h, w)`` {0, 1} masks as float64 ``(N, h, w)``."""
    m = _as_tensor(mask, name)
    if m.ndim not in (2, 3):
        raise ValueError(f'{name} must have shape (H, W) or (N, H, W), got {tuple(m.shape)}')
    single = m.ndim == 2
    m = m[None] if single else m
    if m.shape[-2] < 1 or m.shape[-1] < 1:
        raise ValueError(f'{name} is empty: shape {tuple(m.shape)}')
    m = m.to(torch.float64)
    check_finite(m, name)
    if m.numel() and (float(m.min()) < 0 or float(m.max()) > 1):
        raise ValueError(f'{name} must hold values in [0, 1] (a binary mask), got '
                         f'[{float(m.min()):.3g}, {float(m.max()):.3g}] (a 0/255 mask? divide '
                         'by 255)')
    return m, single


def maskcut_crf(image: ArrayLike,
                mask: ArrayLike,
                params: DenseCRFParams = MASKCUT_CRF,
                backend: str = 'builtin') -> Tensor:
    """MaskCut's CRF of binary masks (CutLER ``maskcut/crf.py::densecrf``).

    The {0, 1} mask itself is used as logits: ``probs = softmax([1 - m, m])``
    (0.731 / 0.269 on either side - a weak unary), bilinearly resized
    (``align_corners=False``) to the image size when the mask is smaller,
    then the CRF with ``MASKCUT_CRF``; the result is the MAP label (ties go
    to background).

    Args:
        image (Tensor | np.ndarray): ``(H, W, 3)`` uint8 RGB image (CutLER:
            the 480x480 resized image).
        mask (Tensor | np.ndarray): ``(h, w)`` mask or ``(N, h, w)`` masks of
            the same image, values in [0, 1] (normally 0/1, e.g. MaskCut's
            patch masks nearest-upsampled to the image).
        params (DenseCRFParams): Defaults to ``MASKCUT_CRF``.
        backend (str): See :func:`dense_crf`.

    Returns:
        Tensor: ``(H, W)`` or ``(N, H, W)`` bool MAP foreground, on the
        device of ``mask``.
    """
    img = _check_image(image)
    m, single = _check_masks(mask)
    if m.shape[0] == 0:
        return torch.zeros((0, ) + tuple(img.shape[:2]), dtype=torch.bool, device=m.device)
    logits = torch.stack([1 - m, m], 1)  # (N, 2, h, w) float64
    if logits.shape[-2:] != img.shape[:2]:
        logits = F.interpolate(
            logits, size=tuple(img.shape[:2]), mode='bilinear', align_corners=False)
    probs = torch.softmax(logits, dim=1)
    q = dense_crf(img, probs, params, backend=backend)
    fg = q[:, 1] > q[:, 0]
    return fg[0] if single else fg


class MaskCutCRFResult(NamedTuple):
    """Outcome of MaskCut's CRF glue for one mask.

    Attributes:
        mask (Tensor | None): ``(H, W)`` bool hole-filled CRF mask, or None
            when the IoU gate rejected it. Empty when the raw mask was empty
            (NaN IoU does not trigger the gate); CutLER's annotation step
            drops empty masks.
        iou (float): IoU of the raw mask (``> 0.5``) and the filled CRF mask;
            NaN when both are empty.
    """
    mask: Optional[Tensor]
    iou: float


def batch_maskcut_crf_postprocess(image: ArrayLike,
                                  masks: ArrayLike,
                                  iou_thresh: float = 0.5,
                                  params: DenseCRFParams = MASKCUT_CRF,
                                  backend: str = 'builtin') -> List[MaskCutCRFResult]:
    """:func:`maskcut_crf_postprocess` for the ``(N, H, W)`` masks of one
    image, sharing the CRF lattices (one mean-field run for all masks).

    Args:
        image (Tensor | np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        masks (Tensor | np.ndarray): ``(N, H, W)`` {0, 1} raw MaskCut masks
            at the image resolution (N may be 0).
        iou_thresh (float): Gate; CutLER uses 0.5.
        params (DenseCRFParams): Defaults to ``MASKCUT_CRF``.
        backend (str): See :func:`dense_crf`.

    Returns:
        list[MaskCutCRFResult]: One result per mask, in order.
    """
    img = _check_image(image)
    m, _ = _check_masks(masks, 'masks')
    if tuple(m.shape[-2:]) != tuple(img.shape[:2]):
        raise ValueError(f'masks size {tuple(m.shape[-2:])} must equal the image size '
                         f'{tuple(img.shape[:2])} (the IoU gate compares pixels); upsample '
                         'patch masks first (nearest, e.g. repeat_interleave)')
    if not math.isfinite(iou_thresh):
        raise ValueError(f'iou_thresh must be finite, got {iou_thresh!r}')
    crf = maskcut_crf(img, m, params, backend=backend).cpu().numpy()
    raw = (m > 0.5).cpu().numpy()
    out = []
    for raw_i, crf_i in zip(raw, crf):
        filled = ndimage.binary_fill_holes(crf_i)
        iou = mask_iou_or_nan(raw_i, filled)
        # NaN (both empty) never triggers the gate, as in CutLER.
        keep = not iou < iou_thresh
        out.append(MaskCutCRFResult(torch.from_numpy(filled).to(m.device) if keep else None, iou))
    return out


def maskcut_crf_postprocess(image: ArrayLike,
                            mask: ArrayLike,
                            iou_thresh: float = 0.5,
                            params: DenseCRFParams = MASKCUT_CRF,
                            backend: str = 'builtin') -> MaskCutCRFResult:
    """CutLER's per-mask pseudo-label glue: CRF, fill holes, IoU gate.

    ``crf = maskcut_crf(image, mask)``; ``filled = binary_fill_holes(crf)``;
    the mask is dropped when ``IoU(mask > 0.5, filled) < iou_thresh`` (a NaN
    IoU, i.e. an empty raw mask whose CRF is empty too, is not dropped).
    Resizing back to the original image and the annotation are the caller's.

    Args:
        image (Tensor | np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        mask (Tensor | np.ndarray): ``(H, W)`` {0, 1} raw MaskCut mask at the
            image resolution.
        iou_thresh (float): Gate; CutLER uses 0.5.
        params (DenseCRFParams): Defaults to ``MASKCUT_CRF``.
        backend (str): See :func:`dense_crf`.

    Returns:
        MaskCutCRFResult: ``(mask or None, iou)``.
    """
    m = _as_tensor(mask, 'mask')
    if m.ndim != 2:
        raise ValueError(f'mask must have shape (H, W), got {tuple(m.shape)} (for several '
                         'masks use batch_maskcut_crf_postprocess)')
    return batch_maskcut_crf_postprocess(image, m[None], iou_thresh, params, backend)[0]


# ---------------------------------------------------------------------------
# STEGO
# ---------------------------------------------------------------------------
def _stego_image(image: Tensor) -> Tensor:
    """STEGO's CRF image: ``(H, W, 3)`` uint8 BGR from a ``(3, H, W)``
    normalised float image or an ``(H, W, 3)`` uint8 RGB image."""
    if image.dtype == torch.uint8:
        return _check_image(image).flip(-1)
    if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
        raise ValueError('image must be an ImageNet-normalised float tensor (3, H, W) or a '
                         f'uint8 RGB image (H, W, 3), got {tuple(image.shape)} {image.dtype}')
    check_finite(image, 'image')
    # unnorm (x * std + mean, channel by channel), then to_pil_image's
    # mul(255).byte(): truncation; out-of-range values are clamped.
    chans = [
        image[i].to(torch.float32) * s + m
        for i, (m, s) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD))
    ]
    rgb = (torch.stack(chans, -1) * 255).clamp_(0, 255).to(torch.uint8)
    return rgb.flip(-1)


def stego_crf(image: ArrayLike,
              logits: ArrayLike,
              params: DenseCRFParams = STEGO_CRF,
              backend: str = 'builtin') -> Tensor:
    """STEGO's CRF (``src/crf.py::dense_crf(image_tensor, output_logits)``).

    The image is un-normalised (ImageNet mean/std), converted to uint8 by
    truncation and fed **BGR**; the logits are bilinearly upsampled
    (``align_corners=False``) to the image size and soft-maxed; then the CRF
    with ``STEGO_CRF``. A batch runs image by image.

    Args:
        image (Tensor | np.ndarray): ``(3, H, W)`` ImageNet-normalised float
            image (STEGO's input tensor) or an ``(H, W, 3)`` uint8 RGB
            image; or a batch ``(B, 3, H, W)`` / ``(B, H, W, 3)`` of them.
        logits (Tensor | np.ndarray): ``(C, h, w)`` (or ``(B, C, h, w)``)
            scores whose softmax over ``C`` gives the label probabilities
            (logits or log-probabilities, e.g. the cluster probe's
            ``alpha=2`` log-probs), ``C >= 2``.
        params (DenseCRFParams): Defaults to ``STEGO_CRF``.
        backend (str): See :func:`dense_crf`.

    Returns:
        Tensor: ``(C, H, W)`` (or ``(B, C, H, W)``) float32 marginals on the
        device of ``logits``.
    """
    img = _as_tensor(image, 'image')
    lg = _as_tensor(logits, 'logits')
    if lg.ndim not in (3, 4):
        raise ValueError(f'logits must have shape (C, h, w) or (B, C, h, w), got '
                         f'{tuple(lg.shape)}')
    batched = lg.ndim == 4
    if img.ndim != lg.ndim:
        raise ValueError(f'image {tuple(img.shape)} and logits {tuple(lg.shape)} must both be '
                         'single images or both batches')
    if not batched:
        img, lg = img[None], lg[None]
    if img.shape[0] != lg.shape[0] or lg.shape[0] == 0:
        raise ValueError(f'image batch ({img.shape[0]}) and logits batch ({lg.shape[0]}) must '
                         'be equal and non-empty')
    if not lg.is_floating_point():
        lg = lg.to(torch.float32)
    check_finite(lg, 'logits')
    out = []
    for img_i, lg_i in zip(img, lg):
        bgr = _stego_image(img_i)
        up = F.interpolate(
            lg_i[None], size=tuple(bgr.shape[:2]), mode='bilinear', align_corners=False)[0]
        out.append(dense_crf(bgr, torch.softmax(up, dim=0), params, backend=backend))
    return torch.stack(out) if batched else out[0]


# ---------------------------------------------------------------------------
# Deep Spectral Methods
# ---------------------------------------------------------------------------
def dsm_crf(image: ArrayLike,
            segmap: ArrayLike,
            num_classes: int = 2,
            params: DenseCRFParams = DSM_CRF,
            backend: str = 'builtin') -> Tensor:
    """DSM's CRF refinement of a label map (SimpleCRF on one-hot labels).

    The segmentation is one-hot encoded and used as probabilities (clipped
    to ``[0.01, 0.99]`` by ``DSM_CRF.prob_clip``, as SimpleCRF does), then the
    CRF's MAP label.

    Args:
        image (Tensor | np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        segmap (Tensor | np.ndarray): ``(H, W)`` integer labels in
            ``[0, num_classes)`` at the image resolution (DSM: the patch mask
            nearest-upsampled to the image).
        num_classes (int): ``C >= 2`` (2 for single-object segmentation).
        params (DenseCRFParams): Defaults to ``DSM_CRF``.
        backend (str): See :func:`dense_crf`.

    Returns:
        Tensor: ``(H, W)`` int64 MAP labels on the device of ``segmap``
        (lowest label on ties).
    """
    seg = _as_tensor(segmap, 'segmap')
    if seg.ndim != 2:
        raise ValueError(f'segmap must have shape (H, W), got {tuple(seg.shape)}')
    if seg.is_floating_point() or seg.dtype == torch.bool:
        if seg.is_floating_point():
            check_finite(seg, 'segmap')
            if not bool((seg == seg.round()).all()):
                raise ValueError('segmap must hold integer labels, got fractional values')
        seg = seg.to(torch.int64)
    num_classes = check_int(num_classes, 'num_classes', low=2)
    if seg.numel() and (int(seg.min()) < 0 or int(seg.max()) >= num_classes):
        raise ValueError(f'segmap labels must lie in [0, {num_classes}), got '
                         f'[{int(seg.min())}, {int(seg.max())}]')
    probs = F.one_hot(seg.long(), num_classes).permute(2, 0, 1).to(torch.float32)
    q = dense_crf(image, probs, params, backend=backend)
    return q.argmax(0)
