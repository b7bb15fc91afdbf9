# Copyright (c) mmuol contributors. All rights reserved.
"""Deep Spectral Methods (Melas-Kyriazi et al., "Deep Spectral Methods: A
Surprisingly Strong Baseline for Unsupervised Semantic Segmentation and
Localization", CVPR 2022): Laplacian eigenvectors of a patch graph, and the
masks, boxes and segments DSM derives from them.

**Eigenvectors** (:func:`dsm_eigenvectors`). From the last-block keys
``k`` ``(N, D)`` of one image:

* ``F = normalize(k)`` (rows), optionally bilinearly up-sampled to a finer
  grid (``image_downsample_factor < patch_size``);
* ``W_feat = F Fᵀ``, negative entries set to 0, divided by its maximum;
* optionally ``W = W_feat + image_color_lambda * W_color`` with the KNN
  colour affinity of the image down-sampled to the same grid
  (:func:`knn_color_affinity`; the released pipeline uses ``lambda = 0``);
* ``D = diag(W 1)`` (degrees below 1e-12 set to 1) and the ``K`` smallest
  eigenpairs of the generalized problem ``(D - W) x = λ D x``, eigenvectors
  ``D``-orthonormal (``xᵀ D x = 1``), eigenvalues ascending;
* the official sign rule: a vector whose positive entries are more than half
  (but not all) of them is negated, so an object is the positive side.

``which_matrix='affinity'`` instead returns the ``K`` largest-magnitude
eigenpairs of the thresholded (not max-normalised) ``W_feat``, eigenvalues
ascending but eigenvectors in *descending* order (``eigenvectors[0]`` is the
largest eigenvalue's), as the official code stores them.

**Solvers.** The official code calls ARPACK in shift-invert mode
(``eigsh(D - W, K, M=D, sigma=0)``) on dense float32 arrays. ``D - W`` is
singular: when the last pivot of its float32 LU rounds to exactly 0 (it
depends on the input and on the BLAS kernels) the factorisation fails and
the code silently falls back to ``which='SM'`` (deep-spectral-segmentation
issue #3: ~10 s per image); otherwise the tiny pivot "succeeds".
Here the problem is solved on ``M = D^-1/2 W D^-1/2`` (eigenvalues
``μ = 1 - λ``, ``x = D^-1/2 y``) whose top eigenvector ``u ∝ D^1/2 1``
(``λ = 0``) is known in closed form and deflated:

* ``'dense'``: ``scipy.linalg.eigh`` of ``M`` (float64, the ``K`` largest
  eigenvalues) on CPU, ``torch.linalg.eigh`` on other devices;
* ``'lanczos'``: a thick-restart Lanczos solver (full re-orthogonalisation)
  on the deflated ``M``, whose only use of ``W`` is a symmetric
  matrix-vector product on its lower triangle (float32 products as the
  official code, kept in float32 and not max-normalised since ``M`` does
  not depend on the scale; float64 vectors; the ``N x N`` buffer is reused
  from one image to the next), stopped when every residual
  ``||M y - μ y||`` is below ``tol`` (default 1e-6, never below the float32
  floor ``3e-8 sqrt(N)``; eigenvalue errors are below the residual,
  eigenvector errors about residual / eigengap); a short second run from a
  new random vector checks that no eigenvalue was missed (an exactly
  repeated eigenvalue is invisible to a single Krylov sequence) and any
  failure falls back to ``'dense'``;
* ``'auto'``: ``'dense'`` up to 256 patches or off the CPU, else
  ``'lanczos'``.

The vectors equal the official ones up to the official solver's float32
error (eigenvalues ~1e-7, well-separated eigenvectors ~1e-6 relative, see
``tests/test_localization/test_dsm.py``); eigenvectors of eigenvalues closer
than ~1e-3 to another one (e.g. the cluster of eigenvalues ~1 of a nearly
disconnected graph) are not determined by the problem and differ between any
two solvers; only their eigenvalues are comparable. Before the official sign
rule every vector is oriented so that its largest-magnitude entry is
positive, so the constant first eigenvector is positive (ARPACK's sign is
arbitrary).

Degenerate inputs: if every affinity is equal (e.g. all patches identical)
every non-trivial eigenvalue is 1 and no eigenvector is defined: the
eigenvalues are returned as ``(0, 1, ..., 1)`` and the non-trivial vectors as
zeros (so the Fiedler mask is empty and :func:`dsm_localize` returns the
whole grid, the official rule for an empty mask). Features whose affinities
are all zero raise a ``ValueError``.

**Uses.** :func:`dsm_localize` (object discovery: Fiedler vector ``> 0``,
reversed if it covers more than half of the grid or nothing, largest
8-connected component, its box), :func:`dsm_single_region` (single-object
segmentation), :func:`dsm_multi_region` (k-means on the eigenvectors,
background = the segment with the largest border fraction) and
:func:`dsm_segment_boxes` (eroded / dilated boxes of the segments, for the
semantic segmentation pipeline). :func:`kmeans` and :func:`pca_reduce` are
the small numpy clustering tools these use. Protocols and numbers:
``configs/dsm/README.md``.
"""
from numbers import Integral
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import scipy.linalg
import scipy.sparse
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.linalg import blas as scipy_blas
from scipy.spatial import cKDTree
from torch import Tensor

from mmuol.utils.arrays import ArrayLike, to_numpy
from .utils import (_give_back_workspace, _take_workspace, check_grid_hw, check_keys, check_real,
                    first_argmax, mask_to_box)

__all__ = [
    'DSM_MATRICES', 'DSM_SOLVERS', 'DSM_BACKENDS', 'DSMEigenvectors', 'DSMLocalization',
    'DSMSegmentBoxes', 'dsm_feature_affinity', 'knn_color_affinity', 'resize_color_image',
    'dsm_eigenvectors', 'official_sign_rule', 'dsm_localize', 'dsm_single_region',
    'adaptive_num_segments', 'border_fractions', 'dsm_multi_region', 'dsm_segment_boxes',
    'upsample_patch_labels', 'kmeans', 'pca_reduce'
]

DSM_MATRICES = ('laplacian', 'affinity')
DSM_SOLVERS = ('auto', 'dense', 'lanczos')
DSM_BACKENDS = ('auto', 'scipy', 'torch')
# Below this many patches the dense solve takes milliseconds and is exact.
_AUTO_DENSE_MAX_N = 256
# The Lanczos solver keeps W in float32 (as the official arrays; half the
# memory traffic of a float64 product): its residuals bottom out near
# _F32_FLOOR * sqrt(N), so the tolerance is never set below that.
_F32_FLOOR = 3e-8
# Rows of the diagonal blocks of W computed whole (see _lower_gram), and
# the largest graph built by one syrk instead.
_GRAM_LEAF = 512
_SYRK_MAX_N = 1024
# Shift that moves the trivial eigenvalue of M (μ = 1) below the rest of its
# spectrum ([-1, 1]).
_DEFLATION_SHIFT = 3.0
# The official degree clamp (``get_diagonal``: D < 1e-12 -> 1).
_DEGREE_EPS = 1e-12
#: Official KNN colour-affinity settings (``extract_utils.knn_affinity``).
KNN_NEIGHBORS = (20, 10)
KNN_DISTANCE_WEIGHTS = (2.0, 0.1)


class DSMEigenvectors(NamedTuple):
    """What :func:`dsm_eigenvectors` returns.

    Attributes:
        eigenvalues (Tensor): ``(K,)`` float64, ascending.
        eigenvectors (Tensor): ``(K, N')`` float64, one vector per row
            (``'laplacian'``: ``D``-orthonormal, row ``i`` belongs to
            ``eigenvalues[i]``; ``'affinity'``: unit norm, row ``i`` belongs
            to ``eigenvalues[K - 1 - i]``), after the official sign rule.
        grid_hw (tuple[int, int]): Grid ``(h', w')`` of the vectors
            (``N' = h' * w'``, row-major): the patch grid, or the finer grid
            of up-sampled features.
        cell_size (int): Pixels per grid cell: the patch size, or
            ``image_downsample_factor`` for a resampled grid.
        solver (str): ``'dense-scipy'``, ``'lanczos-scipy'``,
            ``'dense-torch'`` or ``'degenerate'``.
    """
    eigenvalues: Tensor
    eigenvectors: Tensor
    grid_hw: Tuple[int, int]
    cell_size: int
    solver: str


class DSMLocalization(NamedTuple):
    """What :func:`dsm_localize` returns.

    Attributes:
        mask (Tensor): ``(h, w)`` bool, the largest 8-connected component of
            the (possibly reversed) patch mask: the object.
        patch_mask (Tensor): ``(h, w)`` bool, ``eigenvector > 0`` as
            computed (before the reversal).
        reversed (bool): Whether the patch mask was reversed (it covered more
            than half of the grid, or nothing).
        box (Tensor): ``(4,)`` int64 ``[x0, y0, x1, y1]`` (x1/y1 exclusive)
            in pixels, clipped to ``image_hw`` when given.
    """
    mask: Tensor
    patch_mask: Tensor
    reversed: bool
    box: Tensor


class DSMSegmentBoxes(NamedTuple):
    """What :func:`dsm_segment_boxes` returns (``S`` segments).

    Attributes:
        segment_indices (Tensor): ``(S,)`` int64 segment ids, ascending.
        boxes_patch (Tensor): ``(S, 4)`` int64 ``[x0, y0, x1, y1]`` in grid
            cells (x1/y1 exclusive).
        boxes (Tensor): ``(S, 4)`` int64, ``boxes_patch * patch_size``
            (pixels; not clipped, as the official ``bboxes_original_
            resolution``).
    """
    segment_indices: Tensor
    boxes_patch: Tensor
    boxes: Tensor


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------
def _positive_int(value, name: str, hint: str = '') -> int:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < 1:
        raise ValueError(
            f'{name} must be a positive int, got {value!r}{"; " + hint if hint else ""}')
    return int(value)


def _lowres_grid(grid_hw: Tuple[int, int], patch_size: int,
                 image_downsample_factor: Optional[int]) -> Tuple[int, int]:
    """Grid of the eigenvectors: ``(h * P // ds, w * P // ds)``."""
    if image_downsample_factor is None:
        return grid_hw
    ds = _positive_int(image_downsample_factor, 'image_downsample_factor')
    h, w = grid_hw
    out = (h * patch_size // ds, w * patch_size // ds)
    if min(out) < 1:
        raise ValueError(f'image_downsample_factor={ds} leaves an empty grid {out} for a '
                         f'{h}x{w} grid of {patch_size}-pixel patches')
    return out


def _as_image(image: ArrayLike, name: str = 'image') -> np.ndarray:
    img = to_numpy(image)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f'{name} must be an (H, W, 3) RGB array, got shape {tuple(img.shape)}')
    if img.dtype != np.uint8:
        raise ValueError(f'{name} must be uint8 (the decoded image), got {img.dtype}')
    return img


# ---------------------------------------------------------------------------
# Affinities
# ---------------------------------------------------------------------------
def _unit_features(keys: Tensor, grid_hw: Tuple[int, int], out_hw: Tuple[int, int],
                   normalize: bool) -> Tensor:
    """Row-normalised float32 features, bilinearly resampled to ``out_hw``
    (normalised *before* resampling, as the official code)."""
    feats = keys.to(torch.float32)
    if normalize:
        feats = F.normalize(feats, p=2, dim=-1)
    if tuple(out_hw) != tuple(grid_hw):
        h, w = grid_hw
        fmap = feats.T.reshape(1, -1, h, w)
        fmap = F.interpolate(fmap, size=tuple(out_hw), mode='bilinear', align_corners=False)
        feats = fmap.reshape(feats.shape[1], -1).T
    return feats.contiguous()


def dsm_feature_affinity(keys: ArrayLike,
                         grid_hw: Sequence[int],
                         out_hw: Optional[Sequence[int]] = None,
                         normalize: bool = True,
                         threshold_at_zero: bool = True,
                         max_normalize: bool = True) -> Tensor:
    """DSM's feature affinity ``W_feat`` (dense, float32).

    Args:
        keys (Tensor | np.ndarray): ``(N, D)`` last-block keys, row-major over
            ``grid_hw``, no CLS token.
        grid_hw (Sequence[int]): Patch grid ``(h, w)``.
        out_hw (Sequence[int], optional): Grid to resample the features to
            (bilinear, ``align_corners=False``); default ``grid_hw``.
        normalize (bool): L2-normalise the rows first. Defaults to True.
        threshold_at_zero (bool): Set negative affinities to 0. Defaults to
            True.
        max_normalize (bool): Divide by the largest affinity (the
            ``'laplacian'`` matrix; ``'affinity'`` does not). Defaults to True.

    Returns:
        Tensor: ``(N', N')`` float32 on the device of ``keys``.

    Raises:
        ValueError: For invalid keys, or if every affinity is zero while
            ``max_normalize`` is set.
    """
    grid = check_grid_hw(grid_hw)
    keys = check_keys(keys, grid)
    out = grid if out_hw is None else check_grid_hw(out_hw)
    feats = _unit_features(keys, grid, out, normalize)
    aff = feats @ feats.T
    if threshold_at_zero:
        aff = aff.clamp_(min=0)
    if max_normalize:
        aff = aff / _positive_top(float(aff.max()))
    return aff


def resize_color_image(image: ArrayLike, out_hw: Sequence[int]) -> np.ndarray:
    """The colour image DSM's KNN affinity reads.

    The whole decoded image (not only its patch-aligned part) resized with
    PIL's bilinear filter to ``out_hw`` and scaled to ``[0, 1]``, as the
    official ``Image.open(f).resize((W_lr, H_lr), BILINEAR)`` ``/ 255``.

    Args:
        image (Tensor | np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        out_hw (Sequence[int]): ``(h, w)`` of the eigenvector grid.

    Returns:
        np.ndarray: ``(h, w, 3)`` float64 in ``[0, 1]``.
    """
    from PIL import Image
    img = _as_image(image)
    h, w = check_grid_hw(out_hw)
    small = Image.fromarray(np.ascontiguousarray(img)).resize((w, h), Image.BILINEAR)
    return np.asarray(small, dtype=np.float64) / 255.0


def knn_color_affinity(
        image: ArrayLike,
        n_neighbors: Sequence[int] = KNN_NEIGHBORS,
        distance_weights: Sequence[float] = KNN_DISTANCE_WEIGHTS) -> scipy.sparse.csr_matrix:
    """KNN colour affinity of an image (DSM's ``knn_affinity``).

    For each ``(k, dw)``, every pixel is linked to its ``k`` nearest
    neighbours (itself included) in ``[r, g, b, dw * x, dw * y]``
    (float32; ``x``, ``y`` = ``linspace(0, 1)`` over columns / rows); each
    link ``(i, j)`` adds 1 at ``(i, j)`` and at ``(j, i)``, so entries can be
    2, 3 or 4. Neighbours come from ``scipy.spatial.cKDTree``; the official
    code uses pymatting's KD-tree, which breaks distance ties (frequent on a
    pixel grid) differently: ~1e-3 of the entries differ, the total and more
    than 99.9% of the entries are equal. ``k`` larger than the number of
    pixels is reduced to it (the official code fails there).

    Args:
        image (Tensor | np.ndarray): ``(h, w, 3)`` float colours (DSM:
            :func:`resize_color_image`).
        n_neighbors (Sequence[int]): Neighbours per pass. Defaults to
            ``(20, 10)``.
        distance_weights (Sequence[float]): Weight of the position per pass.
            Defaults to ``(2.0, 0.1)``.

    Returns:
        scipy.sparse.csr_matrix: ``(h * w, h * w)`` float64 symmetric.
    """
    img = np.asarray(to_numpy(image), dtype=np.float64)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f'image must have shape (h, w, 3), got {tuple(img.shape)}')
    if len(n_neighbors) != len(distance_weights) or not len(n_neighbors):
        raise ValueError('n_neighbors and distance_weights must be non-empty and of equal length')
    h, w = img.shape[:2]
    n = h * w
    rgb = img.reshape(-1, 3)
    xs = np.tile(np.linspace(0, 1, w), h)
    ys = np.repeat(np.linspace(0, 1, h), w)
    rows, cols = [], []
    for k, dw in zip(n_neighbors, distance_weights):
        k = min(_positive_int(k, 'n_neighbors'), n)
        pts = np.empty((n, 5), dtype=np.float32)
        pts[:, :3] = rgb
        pts[:, 3] = dw * xs
        pts[:, 4] = dw * ys
        _, nbrs = cKDTree(pts).query(pts, k=k)
        nbrs = np.asarray(nbrs).reshape(n, k)
        rows.append(np.repeat(np.arange(n), k))
        cols.append(nbrs.reshape(-1))
    src = np.concatenate(rows + cols)
    dst = np.concatenate(cols + rows)
    return scipy.sparse.csr_matrix((np.ones(src.size), (src, dst)), shape=(n, n))


# ---------------------------------------------------------------------------
# Lanczos on the deflated normalised affinity
# ---------------------------------------------------------------------------
class _NotConverged(RuntimeError):
    pass


def _lanczos_top(op, n: int, k: int, tol: float, max_products: int, seed: int,
                 basis_size: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """``k`` largest eigenpairs of a symmetric operator (thick restart).

    Keeps the basis ``V``, its image ``Wv = op(V)`` and ``H = Vᵀ op V``
    (filled column by column from the orthogonalisation coefficients, so a
    restart needs no extra product); every product (every few on graphs
    below ~1200 nodes) a Rayleigh-Ritz step gives the Ritz pairs and their
    residuals. A Krylov breakdown continues with a fresh random vector.

    Returns:
        tuple: Ritz values ``(k,)`` descending, vectors ``(n, k)``, products.

    Raises:
        _NotConverged: After ``max_products`` products.
    """
    rng = np.random.default_rng(seed)
    m = min(n, basis_size)
    keep = min(m - 2, 2 * k + 4)
    # Products between two Rayleigh-Ritz checks: a check costs about a
    # product at N ~ 1000, so small graphs check less often.
    every = int(min(4, max(1, np.ceil(1.5e6 / n**2))))
    # Column-major: the basis is read as its first columns.
    V = np.zeros((n, m + 1), order='F')
    Wv = np.zeros((n, m), order='F')
    H = np.zeros((m, m))
    v = rng.standard_normal(n)
    V[:, 0] = v / np.linalg.norm(v)
    j = products = 0
    while True:
        w = op(V[:, j])
        products += 1
        Wv[:, j] = w
        basis = V[:, :j + 1]
        coef = basis.T @ w
        H[:j + 1, j] = coef
        H[j, :j + 1] = coef
        q = w - basis @ coef
        q -= basis @ (basis.T @ q)
        j += 1
        norm_q = float(np.linalg.norm(q))
        if j < n and norm_q <= 1e-10 * max(1.0, float(np.linalg.norm(w))):
            # Invariant subspace: go on with a random direction.
            for _ in range(3):
                q = rng.standard_normal(n)
                q -= basis @ (basis.T @ q)
                q -= basis @ (basis.T @ q)
                norm_q = float(np.linalg.norm(q))
                if norm_q > 1e-8:
                    break
        if j < n:
            V[:, j] = q / norm_q
        if j >= k and (j % every == 0 or j >= m or j >= n or products >= max_products):
            theta, S = np.linalg.eigh(H[:j, :j])
            # Descending, copied: a reversed view would keep matmul off BLAS.
            theta, S = theta[::-1], np.ascontiguousarray(S[:, ::-1])
            Y = V[:, :j] @ S[:, :k]
            R = Wv[:, :j] @ S[:, :k] - Y * theta[:k]
            if j >= n or float(np.sqrt((R * R).sum(0)).max()) <= tol:
                return theta[:k].copy(), Y, products
            if j >= m:
                cont = V[:, j].copy()
                V[:, :keep] = V[:, :j] @ S[:, :keep]
                Wv[:, :keep] = Wv[:, :j] @ S[:, :keep]
                H[:] = 0.0
                H[np.arange(keep), np.arange(keep)] = theta[:keep]
                V[:, keep] = cont
                j = keep
        if products >= max_products:
            raise _NotConverged(f'Lanczos did not converge in {products} products')


class _Graph(NamedTuple):
    """``W = lower-triangle float matrix (+ lam * sparse colour)`` and the
    quantities of ``M = S W S`` (``S = D^-1/2``, clamped degrees).

    ``W`` may be the official matrix times a constant ``top`` (the
    max-normalisation left out: ``M`` does not change); the official
    ``x = D^-1/2 y`` is then ``scale * s * y`` with ``scale = sqrt(top)``.
    """
    low: np.ndarray  # (N, N); only the lower triangle is valid
    color: Optional[scipy.sparse.csr_matrix]  # lam * W_color (* top), or None
    degree: np.ndarray  # (N,) float64, W 1 (unclamped)
    s: np.ndarray  # (N,) float64, clamped D^-1/2
    u: np.ndarray  # (N,) unit trivial eigenvector of M, ∝ sqrt(degree)
    scale: float = 1.0  # sqrt(top)

    def vectors(self, y: np.ndarray) -> np.ndarray:
        """The generalized eigenvectors ``(N, k)`` (``xᵀ D x = 1``, official
        units) of unit eigenvectors ``y`` ``(N, k)`` of ``M``."""
        return (self.scale * self.s)[:, None] * y

    def matvec_w(self):
        symv = scipy_blas.get_blas_funcs('symv', (self.low, ))
        low_f = self.low.T  # symv reads the upper triangle of the F-ordered view
        dtype = self.low.dtype

        def mv(x: np.ndarray) -> np.ndarray:
            y = symv(1.0, low_f, x.astype(dtype, copy=False)).astype(np.float64)
            if self.color is not None:
                y += self.color @ x
            return y

        return mv

    def dense_m(self) -> np.ndarray:
        full = np.tril(self.low).astype(np.float64)
        full += np.tril(full, -1).T
        if self.color is not None:
            full += self.color.toarray()
        return self.s[:, None] * full * self.s[None, :]


def _lower_affinity(feats: np.ndarray, max_normalize: bool, threshold_at_zero: bool,
                    dtype) -> np.ndarray:
    """Lower triangle of ``F Fᵀ`` (one ``syrk``), thresholded and scaled."""
    low = _syrk_lower(np.asarray(feats, dtype=np.float32))
    if threshold_at_zero:
        np.maximum(low, 0, out=low)
    if max_normalize:
        low /= np.float32(_positive_top(float(low.max())))
    return np.ascontiguousarray(low, dtype=dtype)


def _syrk_lower(f: np.ndarray) -> np.ndarray:
    """``F Fᵀ`` of float32 ``F`` by one ``syrk``: C-ordered, lower triangle
    valid, strict upper triangle zero."""
    syrk = scipy_blas.get_blas_funcs('syrk', (f, ))
    # C-ordered F is the Fortran-ordered Fᵀ: syrk(trans=1) writes the upper
    # triangle of F Fᵀ (Fortran order) and leaves the other one zero; its
    # transpose is C-ordered with the lower triangle valid.
    return syrk(1.0, f.T, trans=1, lower=0).T


def _positive_top(top: float) -> float:
    """``top``, the largest affinity, checked to be positive (else the
    graph has no edge)."""
    if not top > 0:
        raise ValueError('every feature affinity is zero (all-zero or mutually '
                         'anti-correlated features): the patch graph has no edge')
    return top


def _lower_gram(feats: np.ndarray, threshold_at_zero: bool) -> Tuple[np.ndarray, float]:
    """``F Fᵀ`` (negatives zeroed) as a float32 lower triangle, and its
    largest entry.

    Float32 products as the official code, not max-normalised (the
    eigenvectors do not depend on the scale; see :class:`_Graph`). The lower
    triangle is split recursively into rectangles computed by one GEMM each
    and diagonal blocks of at most ``_GRAM_LEAF`` rows computed whole; the
    rest of the strict upper triangle is left unset (``symv`` reads the
    lower one); up to ``_SYRK_MAX_N`` nodes one ``syrk``.
    """
    f = np.ascontiguousarray(feats, dtype=np.float32)
    n = f.shape[0]
    if n <= _SYRK_MAX_N:
        out = _syrk_lower(f)  # one syrk is faster on small graphs
        if threshold_at_zero:
            np.maximum(out, 0, out=out)
        return out, _gram_top(out)
    out = _take_workspace((n, n), np.float32)

    def block(r0: int, r1: int, c0: int, c1: int) -> None:
        dst = out[r0:r1, c0:c1]
        np.matmul(f[r0:r1], f[c0:c1].T, out=dst)
        if threshold_at_zero:
            np.maximum(dst, 0, out=dst)

    def lower(lo: int, hi: int) -> None:
        if hi - lo <= _GRAM_LEAF:
            block(lo, hi, lo, hi)
            return
        mid = (lo + hi) // 2
        lower(lo, mid)
        lower(mid, hi)
        block(mid, hi, lo, mid)

    lower(0, n)
    try:
        return out, _gram_top(out)
    except ValueError:
        _give_back_workspace(out)
        raise


def _gram_top(gram: np.ndarray) -> float:
    """The largest entry of a Gram matrix: on its diagonal (Cauchy-Schwarz),
    so no pass over the matrix looks for it."""
    return _positive_top(float(np.diagonal(gram).max()))


def _graph(low: np.ndarray, color: Optional[scipy.sparse.csr_matrix], top: float = 1.0) -> _Graph:
    """Degrees and ``M``'s quantities of ``W = low (+ color)`` that equals
    ``top`` times the official (max-normalised) matrix."""
    symv = scipy_blas.get_blas_funcs('symv', (low, ))
    deg = symv(1.0, low.T, np.ones(low.shape[0], dtype=low.dtype)).astype(np.float64)
    if color is not None:
        deg += np.asarray(color.sum(axis=1)).reshape(-1)
    tiny = deg < _DEGREE_EPS * top  # the official clamp, in official units
    clamped = np.where(tiny, top, deg)
    u = np.sqrt(np.where(tiny, 0.0, deg))
    u /= np.linalg.norm(u)
    return _Graph(low, color, deg, clamped**-0.5, u, float(np.sqrt(top)))


def _solve_lanczos(graph: _Graph, K: int, tol: float,
                   max_products: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """The ``K - 1`` largest non-trivial eigenpairs of ``M`` via Lanczos on
    the deflated operator: ``(K - 1,)`` descending μ, ``(N, K - 1)`` unit
    ``y`` and the number of products.

    Raises:
        _NotConverged: Budget exhausted, or an eigenvalue was missed.
    """
    mv_w = graph.matvec_w()
    s, u = graph.s, graph.u
    n = s.shape[0]

    def op(x):
        y = s * mv_w(s * x)
        return y - (_DEFLATION_SHIFT * float(u @ x)) * u

    k = K - 1
    basis = max(32, 2 * k + 12)
    mu, Y, used = _lanczos_top(op, n, k, tol, max_products, seed=0, basis_size=basis)
    # Check for an eigenvalue a single Krylov sequence cannot see (an exact
    # repeat): the top of M on the complement of [u, Y] must not exceed the
    # smallest accepted μ.
    Q = np.concatenate([u[:, None], Y], axis=1)
    Q, _ = np.linalg.qr(Q)

    def op_rest(x):
        x = x - Q @ (Q.T @ x)
        y = s * mv_w(s * x)
        return y - Q @ (Q.T @ y)

    if n - Q.shape[1] >= 2:
        top = _ritz_after(op_rest, n, min(n - Q.shape[1], 8))
        if float(top[0]) > float(mu[-1]) + max(10 * tol, 1e-9):
            raise _NotConverged('an eigenvalue was missed (repeated eigenvalue)')
    return mu, Y, used


def _ritz_after(op, n: int, steps: int) -> np.ndarray:
    """Largest Ritz value after ``steps`` plain Lanczos products."""
    rng = np.random.default_rng(1)
    V = np.zeros((n, steps + 1))
    v = rng.standard_normal(n)
    V[:, 0] = v / np.linalg.norm(v)
    H = np.zeros((steps, steps))
    j = 0
    for j in range(steps):
        w = op(V[:, j])
        basis = V[:, :j + 1]
        coef = basis.T @ w
        H[:j + 1, j] = coef
        H[j, :j + 1] = coef
        q = w - basis @ coef
        q -= basis @ (basis.T @ q)
        nq = float(np.linalg.norm(q))
        if nq <= 1e-12:
            j += 1
            break
        V[:, j + 1] = q / nq
    else:
        j = steps
    return np.linalg.eigvalsh(H[:j, :j])[::-1]


def _orient(vecs: np.ndarray) -> np.ndarray:
    """Columns with their largest-magnitude entry positive (deterministic
    sign before the official rule)."""
    for i in range(vecs.shape[1]):
        v = vecs[:, i]
        if np.abs(v).max() > 0 and v[first_argmax(np.abs(v))] < 0:
            vecs[:, i] = -v
    return vecs


def official_sign_rule(eigenvectors: ArrayLike) -> Tensor:
    """DSM's sign rule: negate a vector whose positive fraction lies in
    ``(0.5, 1)`` (the positive side becomes the minority; an all-positive or
    all-negative vector is kept).

    Args:
        eigenvectors (Tensor | np.ndarray): ``(K, N)`` one vector per row.

    Returns:
        Tensor: ``(K, N)`` float64 copy with the rule applied.
    """
    vecs = torch.as_tensor(to_numpy(eigenvectors), dtype=torch.float64).clone()
    frac = (vecs > 0).to(torch.float64).mean(dim=1)
    flip = (frac > 0.5) & (frac < 1.0)
    vecs[flip] = -vecs[flip]
    return vecs


def _solve_numpy(feats: np.ndarray, color: Optional[scipy.sparse.csr_matrix], K: int,
                 which_matrix: str, threshold_at_zero: bool, lapnorm: bool, solver: str, tol: float,
                 max_iter: Optional[int]) -> Tuple[np.ndarray, np.ndarray, str]:
    """Eigenpairs on the CPU: ``(K,)`` ascending values, ``(N, K)`` vectors."""
    if which_matrix == 'affinity':
        low = _lower_affinity(feats, False, threshold_at_zero, np.float64)
        full = low + np.tril(low, -1).T
        vals, vecs = scipy.linalg.eigh(full, check_finite=False)
        order = np.argsort(-np.abs(vals), kind='stable')[:K]
        order = order[np.argsort(vals[order], kind='stable')]  # ascending
        return vals[order], _orient(vecs[:, order]), 'dense-scipy'
    if not lapnorm:
        low = _lower_affinity(feats, True, threshold_at_zero, np.float64)
        graph = _graph(low, color)
        full = np.tril(low)
        full += np.tril(full, -1).T
        if color is not None:
            full += color.toarray()
        lap = np.diag(np.where(graph.degree < _DEGREE_EPS, 1.0, graph.degree)) - full
        vals, vecs = scipy.linalg.eigh(lap, subset_by_index=[0, K - 1], check_finite=False)
        return vals, _orient(vecs), 'dense-scipy'
    if solver != 'lanczos':
        graph = _graph(_lower_affinity(feats, True, threshold_at_zero, np.float64), color)
        return _solve_laplacian(graph, K, solver, tol, max_iter)
    # float32 W as the official arrays (half the memory traffic of a float64
    # product), not max-normalised; float64 vectors.
    low, top = _lower_gram(feats, threshold_at_zero)
    try:
        graph = _graph(low, None if color is None else color * top, top)
        return _solve_laplacian(graph, K, solver, tol, max_iter)
    finally:
        _give_back_workspace(low)


def _solve_laplacian(graph: _Graph, K: int, solver: str, tol: float,
                     max_iter: Optional[int]) -> Tuple[np.ndarray, np.ndarray, str]:
    """The ``K`` smallest generalized eigenpairs of a graph (Lanczos with the
    dense fallback, or dense): ``(K,)`` ascending values, ``(N, K)``
    vectors."""
    n = graph.s.shape[0]
    if _uniform(graph.low):
        return _degenerate(graph, K)
    if solver == 'lanczos' and K >= 2 and n >= 8:
        budget = max_iter if max_iter is not None else max(300, n // 4)
        eff_tol = max(tol, _F32_FLOOR * np.sqrt(n))
        try:
            mu, Y, _ = _solve_lanczos(graph, K, eff_tol, int(budget))
            mu = np.concatenate([[1.0], mu])
            Y = np.concatenate([graph.u[:, None], Y], axis=1)
            return 1.0 - mu, _orient(graph.vectors(Y)), 'lanczos-scipy'
        except _NotConverged:
            pass  # the exact dense solve below
    m = graph.dense_m()
    mu, Y = scipy.linalg.eigh(m, subset_by_index=[n - K, n - 1], check_finite=False)
    return 1.0 - mu[::-1], _orient(graph.vectors(Y[:, ::-1])), 'dense-scipy'


def _uniform(low: np.ndarray) -> bool:
    """Every affinity equal (to the largest one): the first column and the
    diagonal are tested first (O(N)), the whole lower triangle only if they
    are constant."""
    v = low[0, 0]
    if not ((low[:, 0] == v).all() and (np.diagonal(low) == v).all()):
        return False
    n = low.shape[0]
    return int(np.count_nonzero(np.tril(low) == v)) == n * (n + 1) // 2


def _degenerate(graph: _Graph, K: int) -> Tuple[np.ndarray, np.ndarray, str]:
    n = graph.s.shape[0]
    vecs = np.zeros((n, K))
    vecs[:, 0] = graph.vectors(graph.u[:, None])[:, 0]
    vals = np.ones(K)
    vals[0] = 0.0
    return vals, vecs, 'degenerate'


def _solve_torch(feats: Tensor, color: Optional[scipy.sparse.csr_matrix], K: int, which_matrix: str,
                 threshold_at_zero: bool, lapnorm: bool) -> Tuple[Tensor, Tensor, str]:
    """Dense eigenpairs with torch on the features' device (float64)."""
    dev = feats.device
    aff = feats @ feats.T
    if threshold_at_zero:
        aff = aff.clamp(min=0)
    if which_matrix == 'affinity':
        vals, vecs = torch.linalg.eigh(aff.to(torch.float64))
        order = torch.argsort(-vals.abs(), stable=True)[:K]
        order = order[torch.argsort(vals[order], stable=True)]
        return vals[order], _orient_t(vecs[:, order]), 'dense-torch'
    w = (aff / _positive_top(float(aff.max()))).to(torch.float64)
    if color is not None:
        w = w + torch.from_numpy(color.toarray()).to(dev)
    deg = w.sum(dim=1)
    clamped = torch.where(deg < _DEGREE_EPS, torch.ones_like(deg), deg)
    n = w.shape[0]
    if not lapnorm:
        vals, vecs = torch.linalg.eigh(torch.diag(clamped) - w)
        return vals[:K], _orient_t(vecs[:, :K]), 'dense-torch'
    if bool((w == w[0, 0]).all()):
        s = clamped**-0.5
        u = deg.clamp(min=0).sqrt()
        vecs = torch.zeros((n, K), dtype=torch.float64, device=dev)
        vecs[:, 0] = s * u / u.norm()
        vals = torch.ones(K, dtype=torch.float64, device=dev)
        vals[0] = 0.0
        return vals, vecs, 'degenerate'
    s = clamped**-0.5
    m = s[:, None] * w * s[None, :]
    mu, y = torch.linalg.eigh(0.5 * (m + m.T))
    mu, y = mu.flip(0)[:K], y.flip(1)[:, :K]
    return 1.0 - mu, _orient_t(s[:, None] * y), 'dense-torch'


def _orient_t(vecs: Tensor) -> Tensor:
    idx = vecs.abs().argmax(dim=0)
    signs = torch.sign(vecs.gather(0, idx[None]))[0]
    signs[signs == 0] = 1
    return vecs * signs


def dsm_eigenvectors(keys: ArrayLike,
                     grid_hw: Sequence[int],
                     K: int = 5,
                     which_matrix: str = 'laplacian',
                     image: Optional[ArrayLike] = None,
                     image_color_lambda: float = 0.0,
                     patch_size: int = 16,
                     image_downsample_factor: Optional[int] = None,
                     normalize: bool = True,
                     threshold_at_zero: bool = True,
                     lapnorm: bool = True,
                     color_affinity=None,
                     n_neighbors: Sequence[int] = KNN_NEIGHBORS,
                     distance_weights: Sequence[float] = KNN_DISTANCE_WEIGHTS,
                     solver: str = 'auto',
                     backend: str = 'auto',
                     tol: float = 1e-6,
                     max_iter: Optional[int] = None) -> DSMEigenvectors:
    """DSM's spectral decomposition of one image (``extract_eigs``).

    See the module docstring for the matrices, solvers and degenerate cases.

    Args:
        keys (Tensor | np.ndarray): ``(N, D)`` last-block keys (heads
            concatenated, no CLS token), row-major over ``grid_hw``.
        grid_hw (Sequence[int]): Patch grid ``(h, w)``.
        K (int): Number of eigenpairs (README: 5 for localization and
            semantic segmentation, 2 for single-object segmentation; the
            function default of the official code is 20). At most ``N'``.
        which_matrix (str): ``'laplacian'`` (default) or ``'affinity'``.
        image (Tensor | np.ndarray, optional): ``(H, W, 3)`` uint8 RGB image
            (the whole decoded image), needed when ``image_color_lambda > 0``
            and no ``color_affinity`` is given.
        image_color_lambda (float): Weight of the KNN colour affinity.
            Defaults to 0 (the released pipeline).
        patch_size (int): Patch size ``P`` (with ``image_downsample_factor``).
        image_downsample_factor (int, optional): Pixels per cell of the
            eigenvector grid ``(h * P // ds, w * P // ds)``; ``None`` = ``P``
            (the patch grid). 8 with ``P = 16`` doubles the resolution.
        normalize (bool): L2-normalise the keys. Defaults to True.
        threshold_at_zero (bool): Drop negative affinities. Defaults to True.
        lapnorm (bool): Generalized problem ``(D - W) x = λ D x`` (default);
            False: the standard problem ``(D - W) x = λ x`` (dense solver).
        color_affinity (scipy.sparse matrix | np.ndarray, optional):
            Precomputed ``(N', N')`` colour affinity (replaces the KNN on
            ``image``).
        n_neighbors, distance_weights: See :func:`knn_color_affinity`.
        solver (str): ``'auto'``, ``'dense'`` or ``'lanczos'`` (see the
            module docstring); ``'affinity'`` and ``lapnorm=False`` always
            solve densely.
        backend (str): ``'auto'`` (numpy/scipy for CPU keys, torch
            otherwise), ``'scipy'`` (CPU keys only) or ``'torch'`` (dense
            ``torch.linalg.eigh`` on the keys' device).
        tol (float): Lanczos residual tolerance (``||M y - μ y||``), at
            least ``3e-8 * sqrt(N')`` (float32 products). Defaults to 1e-6.
        max_iter (int, optional): Lanczos product budget before the dense
            fallback (default ``max(300, N' // 4)``).

    Returns:
        DSMEigenvectors: Eigenvalues ``(K,)``, eigenvectors ``(K, N')``, the
        eigenvector grid and the solver used, on the device of ``keys``.

    Raises:
        ValueError: For invalid arguments, ``K`` larger than the number of
            patches, a missing image with ``image_color_lambda > 0``, or a
            graph without edges.
    """
    grid = check_grid_hw(grid_hw)
    keys = check_keys(keys, grid)
    if which_matrix not in DSM_MATRICES:
        raise ValueError(f'which_matrix must be one of {DSM_MATRICES}, got {which_matrix!r}')
    if solver not in DSM_SOLVERS:
        raise ValueError(f'solver must be one of {DSM_SOLVERS}, got {solver!r}')
    if backend not in DSM_BACKENDS:
        raise ValueError(f'backend must be one of {DSM_BACKENDS}, got {backend!r}')
    if backend == 'scipy' and keys.device.type != 'cpu':
        raise ValueError(f"backend='scipy' needs CPU keys, got a tensor on {keys.device}")
    K = _positive_int(K, 'K', 'the number of eigenvectors')
    patch_size = _positive_int(patch_size, 'patch_size')
    lam = check_real(image_color_lambda, 'image_color_lambda', 0.0)
    check_real(tol, 'tol', 0.0, 1.0, low_open=True)
    out_hw = grid if which_matrix == 'affinity' else _lowres_grid(grid, patch_size,
                                                                  image_downsample_factor)
    n = out_hw[0] * out_hw[1]
    if K > n:
        raise ValueError(f'K={K} eigenvectors requested but the graph has only {n} nodes '
                         f'({out_hw[0]}x{out_hw[1]} grid); use K <= {n}')
    color = None
    if lam > 0 and which_matrix == 'laplacian':
        if color_affinity is None:
            if image is None:
                raise ValueError('image_color_lambda > 0 needs the image (or color_affinity)')
            color_affinity = knn_color_affinity(
                resize_color_image(image, out_hw), n_neighbors, distance_weights)
        color = scipy.sparse.csr_matrix(color_affinity, dtype=np.float64)
        if color.shape != (n, n):
            raise ValueError(f'color_affinity must be ({n}, {n}) for the {out_hw} grid, got '
                             f'{color.shape}')
        color = color * lam
    feats = _unit_features(keys, grid, out_hw, normalize)
    device = keys.device
    if backend == 'auto':
        backend = 'scipy' if device.type == 'cpu' else 'torch'
    if backend == 'scipy':
        if solver == 'auto':
            solver = 'dense' if n <= _AUTO_DENSE_MAX_N else 'lanczos'
        vals, vecs, used = _solve_numpy(feats.numpy(), color, K, which_matrix, threshold_at_zero,
                                        lapnorm, solver, tol, max_iter)
        vals_t = torch.from_numpy(np.ascontiguousarray(vals, dtype=np.float64))
        vecs_t = torch.from_numpy(np.ascontiguousarray(vecs.T, dtype=np.float64))
    else:
        vals_t, vecs_t, used = _solve_torch(feats, color, K, which_matrix, threshold_at_zero,
                                            lapnorm)
        vecs_t = vecs_t.T.contiguous()
    if which_matrix == 'affinity':
        vecs_t = vecs_t.flip(0)  # official: eigenvectors in descending order
    vecs_t = official_sign_rule(vecs_t).to(device)
    cell = patch_size if tuple(out_hw) == grid else int(image_downsample_factor)
    return DSMEigenvectors(vals_t.to(device), vecs_t, tuple(out_hw), cell, used)


# ---------------------------------------------------------------------------
# Masks, boxes and segments
# ---------------------------------------------------------------------------
_EIGHT = np.ones((3, 3), dtype=bool)
_CROSS = ndimage.generate_binary_structure(2, 1)


def _vectors(eigenvectors, grid_hw) -> Tuple[np.ndarray, Tuple[int, int]]:
    """``(K, N)`` float64 numpy vectors and their grid."""
    if isinstance(eigenvectors, DSMEigenvectors):
        grid_hw = eigenvectors.grid_hw if grid_hw is None else grid_hw
        eigenvectors = eigenvectors.eigenvectors
    if grid_hw is None:
        raise ValueError('grid_hw is required with a plain eigenvector array')
    grid = check_grid_hw(grid_hw)
    vecs = np.asarray(to_numpy(eigenvectors), dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[1] != grid[0] * grid[1]:
        raise ValueError(f'eigenvectors must have shape (K, h*w) = (K, {grid[0] * grid[1]}) '
                         f'for grid {grid}, got {tuple(vecs.shape)}')
    return vecs, grid


def _device_of(eigenvectors) -> torch.device:
    if isinstance(eigenvectors, DSMEigenvectors):
        eigenvectors = eigenvectors.eigenvectors
    return eigenvectors.device if isinstance(eigenvectors, Tensor) else torch.device('cpu')


def _largest_component8(mask: np.ndarray) -> np.ndarray:
    """Largest 8-connected component (ties: the one met first in raster
    order, as ``skimage.measure.label`` + ``argmax``)."""
    labels, num = ndimage.label(mask, structure=_EIGHT)
    if num == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.reshape(-1))[1:]
    return labels == int(np.argmax(sizes)) + 1


def dsm_localize(eigenvectors,
                 grid_hw: Optional[Sequence[int]] = None,
                 patch_size: Optional[int] = None,
                 image_hw: Optional[Sequence[int]] = None,
                 which_matrix: str = 'laplacian',
                 index: Optional[int] = None) -> DSMLocalization:
    """DSM's object localization (``--eigenseg``, ``get_bbox_from_patch_mask``).

    ``patch_mask = eigenvectors[index] > 0`` (index 1 for ``'laplacian'``,
    the Fiedler vector; 0 for ``'affinity'``); reversed if it covers more
    than half of the grid (but not all of it) or nothing; its largest
    8-connected component is the object and gives the box
    ``[xmin, ymin, xmax + 1, ymax + 1] * patch_size`` clipped to the image.
    (The official code infers the cell size from the mask size, trying 8
    before 16; here it is given, or read from a ``DSMEigenvectors``.)

    Args:
        eigenvectors (DSMEigenvectors | Tensor | np.ndarray): The output of
            :func:`dsm_eigenvectors`, or ``(K, h * w)`` vectors.
        grid_hw (Sequence[int], optional): ``(h, w)``; taken from a
            ``DSMEigenvectors`` when omitted.
        patch_size (int, optional): Pixels per grid cell (the patch size,
            or ``image_downsample_factor`` for up-sampled features); default:
            ``eigenvectors.cell_size``, required for plain arrays.
        image_hw (Sequence[int], optional): ``(H, W)`` to clip the box to.
        which_matrix (str): Which decomposition the vectors come from.
        index (int, optional): Override the vector index.

    Returns:
        DSMLocalization: Object mask, raw patch mask, reversal flag and box,
        on the device of the eigenvectors.
    """
    if which_matrix not in DSM_MATRICES:
        raise ValueError(f'which_matrix must be one of {DSM_MATRICES}, got {which_matrix!r}')
    vecs, (h, w) = _vectors(eigenvectors, grid_hw)
    idx = (1 if which_matrix == 'laplacian' else 0) if index is None else int(index)
    if not 0 <= idx < vecs.shape[0]:
        raise ValueError(f'eigenvector index {idx} needs at least {idx + 1} eigenvectors, got '
                         f'{vecs.shape[0]} (use K >= 2 for the laplacian)')
    if patch_size is None:
        if not isinstance(eigenvectors, DSMEigenvectors):
            raise ValueError('patch_size is required with a plain eigenvector array')
        patch_size = eigenvectors.cell_size
    raw = (vecs[idx] > 0).reshape(h, w)
    frac = float(raw.mean())
    flip = (0.5 < frac < 1.0) or not raw.any()
    mask = _largest_component8(~raw if flip else raw)
    dev = _device_of(eigenvectors)
    mask_t = torch.from_numpy(mask).to(dev)
    box = mask_to_box(mask_t, patch_size, image_hw)
    return DSMLocalization(mask_t, torch.from_numpy(raw).to(dev), bool(flip), box)


def dsm_single_region(eigenvectors,
                      grid_hw: Optional[Sequence[int]] = None,
                      threshold: float = 0.0,
                      index: int = 1) -> Tensor:
    """DSM's single-region segmentation: ``eigenvectors[index] > threshold``.

    No reversal or component selection (``extract_single_region_
    segmentations``); the official sign rule already made the positive side
    the smaller one.

    Args:
        eigenvectors (DSMEigenvectors | Tensor | np.ndarray): ``(K, h * w)``.
        grid_hw (Sequence[int], optional): ``(h, w)``.
        threshold (float): Defaults to 0.
        index (int): Eigenvector index. Defaults to 1 (Fiedler vector).

    Returns:
        Tensor: ``(h, w)`` bool on the device of the eigenvectors.
    """
    vecs, (h, w) = _vectors(eigenvectors, grid_hw)
    if not 0 <= index < vecs.shape[0]:
        raise ValueError(f'eigenvector index {index} needs at least {index + 1} eigenvectors, '
                         f'got {vecs.shape[0]}')
    thr = check_real(threshold, 'threshold')
    mask = (vecs[index] > thr).reshape(h, w)
    return torch.from_numpy(mask).to(_device_of(eigenvectors))


def adaptive_num_segments(eigenvalues: ArrayLike) -> int:
    """DSM's eigengap rule for the number of segments (``adaptive=True``).

    The gaps ``diff(eigenvalues)`` are ordered from largest to smallest
    (numpy's ``argsort`` reversed, as the official code); the first gap index
    other than 0 plus one is the number of segments.

    Args:
        eigenvalues (Tensor | np.ndarray): ``(K,)`` ascending, ``K >= 3``.

    Returns:
        int: Number of segments, in ``[2, K - 1]``.
    """
    ev = np.asarray(to_numpy(eigenvalues), dtype=np.float64).reshape(-1)
    if ev.size < 3:
        raise ValueError(f'the eigengap rule needs at least 3 eigenvalues, got {ev.size}')
    order = np.argsort(np.diff(ev))[::-1]
    return int(order[order != 0][0]) + 1


def border_fractions(segmap: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """Fraction of the grid border held by each segment (``get_border_
    fraction``): cells on the first/last row and column, corners counted
    twice, over ``2 * (h + w)``.

    Args:
        segmap (Tensor | np.ndarray): ``(h, w)`` integer segment ids.

    Returns:
        tuple[np.ndarray, np.ndarray]: The sorted segment ids and their
        border fractions.
    """
    seg = np.asarray(to_numpy(segmap))
    if seg.ndim != 2:
        raise ValueError(f'segmap must be 2-D, got shape {tuple(seg.shape)}')
    ids = np.unique(seg)
    border = np.concatenate([seg[:, 0], seg[:, -1], seg[0, :], seg[-1, :]])
    counts = np.array([np.count_nonzero(border == i) for i in ids], dtype=np.float64)
    return ids, counts / (2 * (seg.shape[0] + seg.shape[1]))


def dsm_multi_region(eigenvectors,
                     grid_hw: Optional[Sequence[int]] = None,
                     num_segments: int = 4,
                     num_eigenvectors: Optional[int] = None,
                     adaptive: bool = False,
                     eigenvalues: Optional[ArrayLike] = None,
                     infer_bg_index: bool = True,
                     seed: int = 0,
                     n_init: int = 10) -> Tensor:
    """DSM's multi-region segmentation (``extract_multi_region_
    segmentations``).

    k-means (:func:`kmeans`, k-means++ with a fixed ``seed``; the official
    code uses sklearn's ``KMeans`` without a seed) on the non-constant
    eigenvectors ``eigenvectors[1:1 + num_eigenvectors]`` (one point per
    patch); clusters are numbered in the order they first appear in the
    grid (raster order); then the segment with the largest border fraction
    (:func:`border_fractions`; ties: the lowest id) swaps its id with 0, so
    0 is the background.

    Args:
        eigenvectors (DSMEigenvectors | Tensor | np.ndarray): ``(K, h * w)``,
            ``K >= 2``.
        grid_hw (Sequence[int], optional): ``(h, w)``.
        num_segments (int): Number of segments (README: 15 for VOC semantic
            segmentation; official default 4).
        num_eigenvectors (int, optional): How many non-constant vectors to
            use (default: all).
        adaptive (bool): Choose the number of segments with
            :func:`adaptive_num_segments` (needs ``eigenvalues``).
        eigenvalues (Tensor | np.ndarray, optional): For ``adaptive``; taken
            from a ``DSMEigenvectors`` when omitted.
        infer_bg_index (bool): Make the border segment 0. Defaults to True.
        seed (int): k-means seed. Defaults to 0.
        n_init (int): k-means restarts. Defaults to 10.

    Returns:
        Tensor: ``(h, w)`` int64 segment ids in ``[0, num_segments)``.
    """
    if eigenvalues is None and isinstance(eigenvectors, DSMEigenvectors):
        eigenvalues = eigenvectors.eigenvalues
    vecs, (h, w) = _vectors(eigenvectors, grid_hw)
    if vecs.shape[0] < 2:
        raise ValueError('multi-region segmentation needs K >= 2 eigenvectors (the first one is '
                         'constant)')
    if adaptive:
        if eigenvalues is None:
            raise ValueError('adaptive=True needs the eigenvalues')
        num_segments = adaptive_num_segments(eigenvalues)
    num_segments = _positive_int(num_segments, 'num_segments')
    if num_segments > h * w:
        raise ValueError(f'num_segments={num_segments} exceeds the {h * w} patches of the '
                         f'{h}x{w} grid')
    stop = vecs.shape[0] if num_eigenvectors is None else 1 + _positive_int(
        num_eigenvectors, 'num_eigenvectors')
    labels, _ = kmeans(vecs[1:stop].T, num_segments, seed=seed, n_init=n_init)
    segmap = _relabel_by_appearance(labels).reshape(h, w)
    if infer_bg_index:
        ids, frac = border_fractions(segmap)
        bg = int(ids[int(np.argmax(frac))])
        if bg != 0:
            is_bg, is_zero = segmap == bg, segmap == 0
            segmap[is_bg] = 0
            segmap[is_zero] = bg
    return torch.from_numpy(segmap.astype(np.int64)).to(_device_of(eigenvectors))


def _relabel_by_appearance(labels: np.ndarray) -> np.ndarray:
    ids, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    lut = np.empty(int(labels.max()) + 1, dtype=np.int64)
    lut[ids[order]] = np.arange(order.size)
    return lut[labels]


def _erode_or_dilate(mask: np.ndarray, steps: int, erode: bool) -> np.ndarray:
    """``steps`` cross-shaped erosions (border cells are not eroded, as
    skimage's ``binary_erosion``) or dilations; a step that would empty the
    mask is skipped."""
    for _ in range(steps):
        if erode:
            new = ndimage.binary_erosion(mask, _CROSS, border_value=1)
        else:
            new = ndimage.binary_dilation(mask, _CROSS)
        if new.any():
            mask = new
    return mask


def dsm_segment_boxes(segmap: ArrayLike,
                      num_erode: int = 2,
                      num_dilate: int = 5,
                      patch_size: int = 16,
                      skip_background: bool = True) -> DSMSegmentBoxes:
    """Boxes of the segments (``extract_bboxes``): each segment's mask is
    eroded ``num_erode`` times then dilated ``num_dilate`` times (3x3 cross;
    a step that would empty it is skipped) and boxed.

    Args:
        segmap (Tensor | np.ndarray): ``(h, w)`` integer segment ids.
        num_erode (int): Erosions. Defaults to 2 (README).
        num_dilate (int): Dilations. Defaults to 5 (README; the function
            default of the official code is 3).
        patch_size (int): Pixels per grid cell, for ``boxes``.
        skip_background (bool): Skip segment 0. Defaults to True.

    Returns:
        DSMSegmentBoxes: Segment ids, grid boxes and pixel boxes (CPU).
    """
    seg = np.asarray(to_numpy(segmap))
    if seg.ndim != 2:
        raise ValueError(f'segmap must be 2-D, got shape {tuple(seg.shape)}')
    for name, v in (('num_erode', num_erode), ('num_dilate', num_dilate)):
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 0:
            raise ValueError(f'{name} must be a non-negative int, got {v!r}')
    patch_size = _positive_int(patch_size, 'patch_size')
    ids, boxes = [], []
    for sid in np.unique(seg).tolist():
        if skip_background and sid == 0:
            continue
        mask = _erode_or_dilate(seg == sid, int(num_erode), True)
        mask = _erode_or_dilate(mask, int(num_dilate), False)
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        ids.append(sid)
        boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    ids_t = torch.tensor(ids, dtype=torch.int64)
    boxes_t = torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4)
    return DSMSegmentBoxes(ids_t, boxes_t, boxes_t * patch_size)


def upsample_patch_labels(labels: np.ndarray, cell: int, out_hw: Tuple[int, int]) -> np.ndarray:
    """Nearest up-sampling of a cell-level map to an image.

    Pixel ``(y, x)`` takes cell ``(min(y // cell, h - 1), min(x // cell,
    w - 1))``: the covered ``h * cell x w * cell`` area is an exact
    repetition, the strip beyond it (the pixels DSM's features never saw)
    repeats the last row/column, which is what the official
    ``cv2.resize(INTER_NEAREST)`` pair gives.

    Args:
        labels (np.ndarray): ``(h, w)`` map (cell level).
        cell (int): Pixels per cell.
        out_hw (tuple[int, int]): ``(H, W)``, at least ``(h * cell, w * cell)``
            minus one cell.

    Returns:
        np.ndarray: ``(H, W)`` map, same dtype.
    """
    h, w = labels.shape
    rows = np.minimum(np.arange(out_hw[0]) // cell, h - 1)
    cols = np.minimum(np.arange(out_hw[1]) // cell, w - 1)
    return labels[rows[:, None], cols[None, :]]


# ---------------------------------------------------------------------------
# Clustering tools (numpy)
# ---------------------------------------------------------------------------
def _sq_dists(x: np.ndarray, centers: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    d = x_sq[:, None] - 2.0 * (x @ centers.T) + (centers * centers).sum(1)[None]
    return np.maximum(d, 0.0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator, x_sq: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]
    closest = _sq_dists(x, centers[:1], x_sq)[:, 0]
    for i in range(1, k):
        total = closest.sum()
        if total <= 0:
            idx = rng.integers(n)  # every point sits on a center
        else:
            idx = int(np.searchsorted(np.cumsum(closest), rng.random() * total, side='right'))
            idx = min(idx, n - 1)
        centers[i] = x[idx]
        closest = np.minimum(closest, _sq_dists(x, centers[i:i + 1], x_sq)[:, 0])
    return centers


def kmeans(x: ArrayLike,
           n_clusters: int,
           seed: int = 0,
           n_init: int = 10,
           max_iter: int = 300,
           tol: float = 1e-4) -> Tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding (numpy, deterministic).

    ``n_init`` runs from ``numpy.random.default_rng(seed)``; the run with
    the lowest inertia wins. A run stops when no label changes or the
    centers move less than ``tol`` times the mean feature variance (sklearn's
    rule). An empty cluster takes the point farthest from its center.

    Args:
        x (Tensor | np.ndarray): ``(n, d)`` points.
        n_clusters (int): ``k <= n``.
        seed (int): RNG seed. Defaults to 0.
        n_init (int): Restarts. Defaults to 10.
        max_iter (int): Lloyd iterations per run. Defaults to 300.
        tol (float): Relative center-shift tolerance. Defaults to 1e-4.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(n,)`` int64 labels and ``(k, d)``
        float64 centers.
    """
    pts = np.asarray(to_numpy(x), dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] == 0:
        raise ValueError(f'x must be a non-empty (n, d) array, got shape {tuple(pts.shape)}')
    if not np.isfinite(pts).all():
        raise ValueError('x contains NaN or inf values')
    k = _positive_int(n_clusters, 'n_clusters')
    n = pts.shape[0]
    if k > n:
        raise ValueError(f'n_clusters={k} exceeds the number of points ({n})')
    n_init = _positive_int(n_init, 'n_init')
    max_iter = _positive_int(max_iter, 'max_iter')
    rng = np.random.default_rng(seed)
    x_sq = (pts * pts).sum(1)
    thresh = tol * float(pts.var(axis=0).mean())
    best = None
    for _ in range(n_init):
        centers = _kmeans_pp(pts, k, rng, x_sq)
        labels = None
        for _ in range(max_iter):
            dist = _sq_dists(pts, centers, x_sq)
            new = dist.argmin(axis=1)
            counts = np.bincount(new, minlength=k)
            for empty in np.flatnonzero(counts == 0):
                far = int(dist[np.arange(n), new].argmax())
                new[far] = empty
                dist[far] = 0.0
                counts = np.bincount(new, minlength=k)
            moved = np.zeros_like(centers)
            np.add.at(moved, new, pts)
            moved /= counts[:, None]
            shift = float(((moved - centers)**2).sum())
            centers = moved
            if labels is not None and np.array_equal(new, labels):
                labels = new
                break
            labels = new
            if shift <= thresh:
                break
        dist = _sq_dists(pts, centers, x_sq)
        labels = dist.argmin(axis=1)
        inertia = float(dist[np.arange(n), labels].sum())
        if best is None or inertia < best[0] - 1e-12 * max(1.0, abs(best[0])):
            best = (inertia, labels.astype(np.int64), centers)
    return best[1], best[2]


def pca_reduce(x: ArrayLike, dim: int) -> np.ndarray:
    """Project points on their ``dim`` principal components (sklearn's
    ``PCA(dim).fit_transform`` without whitening; component signs may differ,
    which k-means does not see).

    Args:
        x (Tensor | np.ndarray): ``(n, d)`` points.
        dim (int): Output dimension, at most ``min(n, d)``.

    Returns:
        np.ndarray: ``(n, dim)`` float64.
    """
    pts = np.asarray(to_numpy(x), dtype=np.float64)
    if pts.ndim != 2:
        raise ValueError(f'x must be (n, d), got shape {tuple(pts.shape)}')
    dim = _positive_int(dim, 'dim')
    if dim > min(pts.shape):
        raise ValueError(f'PCA to {dim} dimensions needs at least {dim} points and features, '
                         f'got {pts.shape}')
    centred = pts - pts.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dim].T
