# Copyright (c) mmuol contributors. All rights reserved.
"""Normalized-cut bipartition of a dense patch graph (TokenCut, MaskCut).

Both TokenCut and MaskCut solve the generalized symmetric-definite problem

    (D - A) x = λ D x,            D = diag(A 1),

and use ``x``, the eigenvector of the **second smallest** eigenvalue ``λ2``
(scipy's normalisation ``xᵀ D x = 1``), split at the mean of its entries. The
official code calls the dense ``scipy.linalg.eigh(D - A, D, subset_by_index=
[1, 2])`` (O(N³): 4-6 s for a 60x60 grid on one core).

Here the same vector comes from the symmetric normalised affinity
``M = D^-1/2 A D^-1/2``: its eigenvalues are ``μ = 1 - λ``, its top
eigenvector ``u = D^1/2 1 / ||D^1/2 1||`` (``μ = 1``, the trivial cut) is
known in closed form and is *deflated* by shifting it to ``μ = -2``
(``M - 3 u uᵀ``; the rest of the spectrum lies in ``[-1, 1]``), so the two
largest eigenpairs of the shifted matrix are exactly ``(1 - λ2, y2)`` and
``(1 - λ3, y3)``; ``x = D^-1/2 y2``. Only products with ``A`` are needed: a
Lanczos solver takes ~10-40 of them instead of a full dense decomposition.

**One representation per call.** Where a call enters (:func:`ncut_from_keys`,
:func:`ncut_bipartition`, :func:`cosine_affinity`) the backend is chosen once:
``'scipy'`` (CPU default) works on numpy arrays from the normalised features
to the eigenvector, ``'torch'`` (default elsewhere, e.g. CUDA) on tensors on
the input's device. The result is converted to tensors once, at the exit.

**Graph** (numpy backend). The binary graph ``A = 1 if cos > tau else eps`` is
held as its 0/1 edge matrix ``E`` (``A = eps + (1 - eps) E``), built in row
blocks; for the Lanczos solver only its lower triangle (half the products and
half the memory traffic) and the symmetric BLAS ``symv`` that reads it. A
float64 graph (MaskCut stages >= 1) is thresholded from a float32 product
with the few entries within float32 error of ``tau`` recomputed in float64, so
it equals the float64 graph at float32 cost. :class:`MaskedNCut` (MaskCut's
stages) builds one graph per image: the float64 graph of the float32 keys
differs from their float32 graph only at pairs whose float32 cosine lies
within rounding error of ``tau``, and zeroed (painted) patches only change
rows and columns, which the products mask instead of rebuilding the graph.
The ``N x N`` buffer is reused from one graph to the next (per thread).

Solvers (``solver=``):

* ``'dense'``: the exact reference. numpy: the official
  ``scipy.linalg.eigh(D - A, D, subset_by_index=[1, 2])``; torch:
  ``torch.linalg.eigh`` of the deflated ``M`` (float64).
* ``'lanczos'``: a thick-restart Lanczos solver with full
  re-orthogonalisation, written once for both backends, that checks
  convergence every product on large graphs (every few on small ones, where
  a check costs more than a product): residual ``||M y - μ y|| <= tol`` for
  ``y2``, ``<= sqrt(tol)`` for ``y3``, whose eigenvalue error is the square
  of it. Falls back to ``'dense'`` if it does not converge in ``max_iter``
  products.
* ``'auto'``: ``'dense'`` for small graphs (N <= 256 on CPU), else
  ``'lanczos'`` with a budget of ``max(16, N // 16)`` products: on a graph
  without a clear cut (noise, eigengap ~1e-4) Lanczos converges slowly, and
  past the budget the dense solve is the faster way (the budget costs
  about a tenth of the dense time; measured in
  ``tools/analysis/benchmark_localizers.py``, random keys).

Whatever the solver, the eigenvector sign is canonicalised so that the entry
of largest magnitude (lowest index among entries within 1e-9 relative of the
maximum, see :func:`first_argmax`) is positive; the official sign is
whatever LAPACK returns. TokenCut's seed/flip rule is sign-invariant, so this
only fixes the representation; MaskCut's corner rule is not (see
:func:`mmuol.localization.maskcut`).

Degenerate graphs: if every entry of ``A`` is the same (all patches identical,
or all patches orthogonal / zero), every non-trivial cut costs ``λ = 1`` and
the eigenvector is undefined; we return ``eigvec = 0``, ``eigvals = (1, 1)``
and an all-False bipartition (TokenCut/MaskCut then flip it into the whole
grid). With fewer than 3 nodes the missing eigenvalues are NaN.

Memory: the graph is ``N x N`` float64 (8 N² bytes; the dense solver ~40 N²);
:func:`~mmuol.localization.utils.check_graph_memory` fails early, before
allocating, when it cannot fit.
"""
import math
from typing import Callable, NamedTuple, Optional, Tuple, Union

import numpy as np
import scipy.linalg
import torch
from scipy.linalg import blas as scipy_blas
from torch import Tensor

from . import utils
from .utils import (as_float_tensor, block_rows, check_graph_memory, check_int, check_real,
                    first_argmax)

__all__ = [
    'NCutResult', 'MaskedNCut', 'cosine_affinity', 'ncut_bipartition', 'ncut_from_keys',
    'ncut_confidence'
]

SOLVERS = ('auto', 'dense', 'lanczos')
BACKENDS = ('auto', 'scipy', 'torch')
# Below this many nodes the dense solve is cheap (< ~10 ms) and exact.
_AUTO_DENSE_MAX_N = 256
# Shift that moves the trivial eigenvalue (μ = 1) below the rest of the
# spectrum of M (which lies in [-1, 1]).
_DEFLATION_SHIFT = 3.0
# Bytes of one float32 similarity block while building a graph.
_BLOCK_BYTES = 16 * 2**20
# F.normalize's clamp of the norms.
_NORM_EPS = 1e-12
# Pairs whose float64 cosine is recomputed at once.
_FIX_CHUNK = 512
# Above this bound on float32 cosine errors (keys whose float32 norms
# under/overflow) MaskedNCut builds the float64 graph in full.
_MAX_FLOAT32_MARGIN = 1e-3

Array = Union[np.ndarray, Tensor]


class NCutResult(NamedTuple):
    """Second generalized eigenpair of a patch graph.

    Attributes:
        eigvec (Tensor): ``(N,)`` float64, ``xᵀ D x = 1``, sign such that the
            largest-magnitude entry is positive (all zeros for a degenerate
            graph).
        eigvals (Tensor): ``(2,)`` float64 ``(λ2, λ3)``, the 2nd and 3rd
            smallest generalized eigenvalues (``λ1 = 0``).
        degree (Tensor): ``(N,)`` float64 node degrees ``A 1``.
        bipartition (Tensor): ``(N,)`` bool, ``eigvec > mean(eigvec)``.
        solver (str): What actually ran: ``'dense-scipy'``,
            ``'lanczos-scipy'``, ``'dense-torch'``, ``'lanczos-torch'`` or
            ``'degenerate'``.
    """
    eigvec: Tensor
    eigvals: Tensor
    degree: Tensor
    bipartition: Tensor
    solver: str


def ncut_confidence(eigvals) -> float:
    """Confidence that a graph has one well-defined salient partition.

    ``confidence = clip(1 - λ2 / λ3, 0, 1)``, the relative eigengap of the
    generalized problem (``λ1 = 0 <= λ2 <= λ3``; ``λ2`` is the relaxed
    normalized-cut cost of the best split, ``λ3`` that of the best split
    independent of it).

    * ~0: the best cut is no better than the next one - featureless,
      constant, noise-like or edge-less graphs (where ``λ2`` alone can be
      misleadingly small: an isolated patch is a "perfect" cluster), so the
      mask is arbitrary. Use it to reject images without an object (TokenCut
      issue #20).
    * ~1: one clearly separated object (``λ2 << λ3``).
    * Several distinct objects are each a good cut, which lowers the value
      (e.g. ~0.4 for two objects); MaskCut's later stages then recover them.

    Args:
        eigvals (Sequence[float] | Tensor): ``(λ2, λ3)``.

    Returns:
        float: In ``[0, 1]``; 0 if ``λ3`` is missing (NaN) or not positive.
    """
    lam2, lam3 = (float(v) for v in eigvals[:2])
    if not (math.isfinite(lam2) and math.isfinite(lam3)) or lam3 <= 0:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - lam2 / lam3)))


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------
def _check_solver(solver: str, backend: str) -> None:
    if solver not in SOLVERS:
        raise ValueError(f'solver must be one of {SOLVERS}, got {solver!r}')
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')


def check_graph_params(tau: float, eps: float, binary_graph: bool = True) -> Tuple[float, float]:
    """Validate the graph hyper-parameters of TokenCut / MaskCut.

    Args:
        tau (float): Cosine threshold: ``[-1, 1)`` for the binary graph
            (``cos > tau`` is an edge; ``tau >= 1`` leaves no edge), ``[0, 1)``
            for the weighted graph (negative weights are not a graph).
        eps (float): Weight of non-edges, in ``(0, 1)`` (0 disconnects the
            graph; the official value is 1e-5).
        binary_graph (bool): Which graph.

    Returns:
        tuple[float, float]: ``(tau, eps)`` as floats.

    Raises:
        ValueError: For NaN/inf or out-of-range values.
    """
    tau = check_real(
        tau,
        'tau',
        0.0 if not binary_graph else -1.0,
        1.0,
        high_open=True,
        hint='it is a cosine-similarity threshold (TokenCut: 0.2, MaskCut: 0.15)')
    eps = check_real(
        eps,
        'eps',
        0.0,
        1.0,
        low_open=True,
        high_open=True,
        hint='it is the weight of non-edges that keeps the graph connected (official: 1e-5)')
    return tau, eps


def _resolve_backend(backend: str, x: Tensor) -> str:
    if backend == 'auto':
        return 'scipy' if utils.use_numpy(x) else 'torch'
    if backend == 'scipy' and x.device.type != 'cpu':
        raise ValueError(f"backend='scipy' needs CPU inputs, got a tensor on {x.device}")
    return backend


def _resolve_solver(solver: str, n: int, backend: str) -> str:
    if solver == 'auto':
        return 'dense' if n <= _AUTO_DENSE_MAX_N and backend == 'scipy' else 'lanczos'
    return solver


def _auto_budget(n: int) -> int:
    """Lanczos products allowed to ``solver='auto'`` before the dense solve:
    a product costs ~N² and the dense solve ~N³, so N // 16 products cost a
    fixed fraction of the dense solve (measured: about a tenth on one core;
    graphs with a clear cut need 3-20 products, noise graphs hundreds)."""
    return max(16, n // 16)


def _check_every(n: int) -> int:
    """Products between two convergence checks: a check (eigh of the small
    projected matrix, Ritz vectors) costs about one product at N ~ 1700, so
    small graphs check less often (at most 7 products wasted)."""
    return int(min(8, max(1, math.ceil(3e6 / n**2))))


# ---------------------------------------------------------------------------
# Features and graphs
# ---------------------------------------------------------------------------
def _normalise_rows(keys: Tensor, channel_major: bool) -> Tensor:
    """L2-normalised rows, computed in torch as the official code does (so
    that similarities at ``cos ≈ tau`` round the same way)."""
    return _normalise_rows_and_norms(keys, channel_major)[0]


def _normalise_rows_and_norms(keys: Tensor, channel_major: bool) -> Tuple[Tensor, Tensor]:
    """:func:`_normalise_rows` and the ``(N,)`` clamped norms it divided by."""
    if channel_major:
        # F.normalize(keys.T, dim=0).T bit for bit (norms reduced on the
        # (D, N) layout, element-wise division), without transposed copies.
        norms = keys.T.contiguous().norm(2, 0, keepdim=True).clamp_min(_NORM_EPS).T
    else:
        norms = keys.norm(2, 1, keepdim=True).clamp_min(_NORM_EPS)
    return keys / norms, norms[:, 0]


def _block_rows(n: int) -> int:
    # float32 similarities; blocks of <= 512 rows keep the lower triangle
    # close to half of the products.
    return block_rows(n, 4, _BLOCK_BYTES, min(n, 512))


def _float32_margin(d: int) -> float:
    """Bound on ``|float32 cosine - float64 cosine|`` of float64 unit
    ``d``-vectors rounded to float32 (a float32 dot product of unit vectors
    is within ``(d + 2) 2^-24`` of the exact one): only entries this close to
    ``tau`` can fall on different sides of it."""
    return 4.0 * (d + 2) * 2.0**-24


def _near_tau(sim: np.ndarray, tau: float, margin: float) -> np.ndarray:
    """Flat indices of the entries of ``sim`` within ``margin`` of ``tau``
    (a superset: the bounds are widened by one float32 step)."""
    lo = np.nextafter(sim.dtype.type(tau - margin), -np.inf)
    hi = np.nextafter(sim.dtype.type(tau + margin), np.inf)
    # Two comparisons instead of |sim - tau| <= margin: no float temporary.
    # flatnonzero is ~10x faster than a 2-D nonzero on this mask.
    return np.flatnonzero((sim > lo) & (sim <= hi))


def _edges_np(feats: np.ndarray,
              tau: float,
              lower: bool,
              near: Optional[list] = None,
              near_margin: float = 0.0,
              out: Optional[np.ndarray] = None) -> np.ndarray:
    """0/1 float64 edge matrix ``E = [F Fᵀ > tau]`` of unit-row features.

    With ``lower`` only ``j <= i`` is computed and written; the strict upper
    triangle is left uninitialised (only read through ``symv``, which reads
    the lower one). Float64 features: see the module docstring.

    ``near`` (float32 features only): a list that receives the flat indices
    (``i * N + j``) of the computed entries within ``near_margin`` of
    ``tau``. ``out``: an ``(N, N)`` float64 array to write to.
    """
    n, d = feats.shape
    if out is None:
        out = np.empty((n, n), dtype=np.float64)
    block = _block_rows(n)
    exact64 = feats.dtype == np.float64
    if exact64:
        f32 = feats.astype(np.float32)
        margin = _float32_margin(d)
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        c1 = i1 if lower else n
        dst = out[i0:i1, :c1]
        if exact64:
            sim = f32[i0:i1] @ f32[:c1].T
            np.greater(sim, np.float32(tau), out=dst, casting='unsafe')
            rows, cols = np.divmod(_near_tau(sim, tau, margin), sim.shape[1])
            if rows.size:
                exact = np.einsum('ij,ij->i', feats[i0 + rows], feats[cols])
                dst[rows, cols] = exact > tau
        else:
            sim = feats[i0:i1] @ feats[:c1].T
            np.greater(sim, sim.dtype.type(tau), out=dst, casting='unsafe')
            if near is not None:
                rows, cols = np.divmod(_near_tau(sim, tau, near_margin), sim.shape[1])
                near.append((rows + i0) * n + cols)
        del sim
    return out


def _binary_graph_np(feats: np.ndarray,
                     tau: float,
                     eps: float,
                     lower: bool,
                     ops: '_Ops',
                     out: Optional[np.ndarray] = None) -> Tuple['_Graph', np.ndarray]:
    """The binary graph ``A = eps + (1 - eps) E`` and its edge counts
    (``E`` written to ``out`` if given)."""
    n = feats.shape[0]
    e = _edges_np(feats, tau, lower, out=out)
    if lower:
        # Row sums of the symmetric E from its lower triangle (exact: 0/1).
        symv = scipy_blas.get_blas_funcs('symv', (e, ))
        edges = symv(1.0, e.T, np.ones(n))
    else:
        edges = e.sum(axis=1)
    return _Graph(e, eps, 1.0 - eps, edges + (n - edges) * eps, lower, ops), edges


def _weighted_np(feats: np.ndarray, tau: float, eps: float) -> np.ndarray:
    """Full weighted graph ``A = cos`` with ``A[cos < tau] = eps`` (float64)."""
    n = feats.shape[0]
    out = np.empty((n, n), dtype=np.float64)
    block = _block_rows(n)
    for i0 in range(0, n, block):
        sim = feats[i0:i0 + block] @ feats.T
        dst = out[i0:i0 + block]
        dst[...] = sim
        dst[sim < sim.dtype.type(tau)] = eps
    return out


def _complete_lower(mat: np.ndarray) -> np.ndarray:
    """Copy the lower triangle onto the upper one, in place, in blocks."""
    n = mat.shape[0]
    block = _block_rows(n)
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        diag = mat[i0:i1, i0:i1]
        iu = np.triu_indices(i1 - i0, 1)
        diag[iu] = diag.T[iu]
        mat[i0:i1, i1:] = mat[i1:, i0:i1].T
    return mat


def _edges_to_affinity(edges: np.ndarray, eps: float) -> np.ndarray:
    """``A = 1 if E else eps``, in place (exact ones, as the official graph)."""
    np.copyto(edges, eps, where=edges == 0)
    return edges


# ---------------------------------------------------------------------------
# Backends: the few array operations the solver needs, per representation
# ---------------------------------------------------------------------------
class _Ops(NamedTuple):
    name: str  # 'scipy' or 'torch'
    zeros: Callable[[Tuple[int, ...]], Array]
    randn: Callable[[int, int], Array]  # (n, seed): deterministic
    eigh: Callable[[Array], Tuple[Array, Array]]  # ascending
    to_tensor: Callable[[Array], Tensor]


def _numpy_ops(device: torch.device) -> _Ops:
    return _Ops(
        name='scipy',
        zeros=lambda shape: np.zeros(shape),
        randn=lambda n, seed: np.random.default_rng(seed).standard_normal(n),
        eigh=np.linalg.eigh,
        to_tensor=lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device))


def _torch_ops(device: torch.device) -> _Ops:

    def randn(n: int, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(n, generator=gen, dtype=torch.float64).to(device)

    return _Ops(
        name='torch',
        zeros=lambda shape: torch.zeros(shape, dtype=torch.float64, device=device),
        randn=randn,
        eigh=torch.linalg.eigh,
        to_tensor=lambda a: a)


class _Graph(NamedTuple):
    """``A = c0 + c1 G`` (``G`` = the edge matrix E, or A itself) and its
    degrees, in one backend's representation.

    With ``keep`` (numpy only) the graph is ``G`` with the rows and columns
    of the nodes where ``keep == 0`` replaced by ``fill``: the graph of
    features zeroed at those nodes (cosine 0 to everything), without
    writing ``G`` (shared by the stages of :class:`MaskedNCut`).
    """
    g: Array  # (N, N) float64; with `lower`, only its lower triangle is valid
    c0: float
    c1: float
    degree: Array  # (N,) float64
    lower: bool
    ops: _Ops
    owned: bool = True  # False: `g` is the caller's matrix, never written
    keep: Optional[np.ndarray] = None  # (N,) float64 0/1: the nodes kept
    fill: float = 0.0  # G's value between a dropped node and any node

    def matvec(self) -> Callable[[Array], Array]:
        g, c0, c1 = self.g, self.c0, self.c1
        if self.ops.name == 'scipy':
            # symv reads one triangle only (the lower one of the C-ordered
            # `g`, i.e. the upper one of its Fortran-ordered view g.T).
            symv = scipy_blas.get_blas_funcs('symv', (g, ))
            g_f = g.T
            keep, fill = self.keep, self.fill
            if keep is not None:
                # keep * G (keep * x): the dropped rows/columns contribute
                # exact zeros, so this equals the product with the explicit
                # graph bit for bit.
                def mv(x):
                    y = symv(c1, g_f, keep * x)
                    y *= keep
                    if fill:
                        y += (c1 * fill) * (x.sum() - keep * float(keep @ x))
                    return y + c0 * x.sum() if c0 else y

                return mv

            def mv(x):
                y = symv(c1, g_f, x)
                return y + c0 * x.sum() if c0 else y
        else:

            def mv(x):
                y = g @ x
                if c1 != 1.0:
                    y = c1 * y
                return y + c0 * x.sum() if c0 else y

        return mv

    def dense_affinity(self) -> Tuple[Array, bool]:
        """The full ``A`` and whether the caller may overwrite it (``g``
        itself when the graph owns it, else a copy when ``A`` differs from
        ``g``, else ``g`` read-only)."""
        g = self.g
        changes = self.lower or self.keep is not None or not (self.c0 == 0.0 and self.c1 == 1.0)
        if not changes:
            return g, self.owned
        if not self.owned:
            g = g.copy() if self.ops.name == 'scipy' else g.clone()
        if self.lower:
            g = _complete_lower(g)
        if self.keep is not None:
            drop = self.keep == 0
            g[drop, :] = self.fill
            g[:, drop] = self.fill
        if self.c0 == 0.0 and self.c1 == 1.0:
            return g, True
        if self.ops.name == 'scipy':
            return _edges_to_affinity(g, self.c0), True
        return torch.where(g != 0, torch.ones_like(g), torch.full_like(g, self.c0)), True


class _NotConverged(RuntimeError):
    pass


# ---------------------------------------------------------------------------
# Solvers. Each returns (lam (k,), x (N, k)) for the k <= 2 smallest
# non-trivial generalized eigenpairs, in the graph's representation.
# ---------------------------------------------------------------------------
def _dense_official(graph: _Graph) -> Tuple[np.ndarray, np.ndarray]:
    """The official call: generalized dense eigh, eigenvalues #1 and #2."""
    aff, writable = graph.dense_affinity()
    deg = graph.degree
    lap = np.negative(aff, out=aff if writable else None)
    lap[np.diag_indices_from(lap)] += deg
    return scipy.linalg.eigh(lap, np.diag(deg), subset_by_index=[1, 2], check_finite=False)


def _dense_deflated(graph: _Graph) -> Tuple[Array, Array]:
    """Full eigendecomposition of the deflated ``M`` (torch, or tiny graphs)."""
    aff, _ = graph.dense_affinity()
    deg = graph.degree
    n = deg.shape[0]
    s = deg**-0.5
    u = deg**0.5
    u = u / (u * u).sum()**0.5
    m = s[:, None] * aff * s[None, :] - _DEFLATION_SHIFT * (u[:, None] * u[None, :])
    m = 0.5 * (m + m.T)
    mu, vecs = graph.ops.eigh(-m)  # ascending in -mu = descending in mu
    k = min(2, n - 1)
    return 1.0 + mu[:k], s[:, None] * vecs[:, :k]


def _lanczos(graph: _Graph,
             tol: float,
             max_products: int,
             basis_size: int = 40,
             k: int = 2) -> Tuple[Array, Array]:
    """Thick-restart Lanczos with full re-orthogonalisation, either backend.

    Keeps the Krylov basis ``V``, ``W = Op V`` and ``H = Vᵀ W`` (built
    column by column from the orthogonalisation coefficients); every
    :func:`_check_every` products a Rayleigh-Ritz step on ``H`` gives the
    Ritz pairs and their residuals. On restart the best Ritz vectors (with
    their images, so no extra products) plus the continuation vector are
    kept. A Krylov breakdown (invariant subspace) continues with a fresh
    random direction so that repeated eigenvalues are not missed.

    Raises:
        _NotConverged: After ``max_products`` products.
    """
    ops = graph.ops
    deg = graph.degree
    n = deg.shape[0]
    mv = graph.matvec()
    s = deg**-0.5
    u = deg**0.5
    u = u / (u * u).sum()**0.5

    def op(x):
        y = s * mv(s * x)
        return y - (_DEFLATION_SHIFT * float((u * x).sum())) * u

    m = min(n, basis_size)
    keep = min(m - 2, k + 8)
    every = _check_every(n)
    tol_second = max(tol, math.sqrt(tol))
    V = ops.zeros((n, m + 1))
    W = ops.zeros((n, m))
    H = ops.zeros((m, m))
    v = ops.randn(n, 0)
    V[:, 0] = v / float((v * v).sum())**0.5
    j = 0  # columns of V whose image is in W
    n_products = 0
    n_fresh = 0  # random restarts after breakdowns
    while True:
        w = op(V[:, j])
        n_products += 1
        W[:, j] = w
        basis = V[:, :j + 1]
        h = basis.T @ w
        H[:j + 1, j] = h
        H[j, :j + 1] = h
        q = w - basis @ h
        q = q - basis @ (basis.T @ q)
        j += 1
        norm_q = float((q * q).sum())**0.5
        if j < n and norm_q <= 1e-10 * max(1.0, float((w * w).sum())**0.5):
            # Invariant subspace: continue with a new random direction.
            for _ in range(3):
                n_fresh += 1
                q = ops.randn(n, n_fresh)
                q = q - basis @ (basis.T @ q)
                q = q - basis @ (basis.T @ q)
                norm_q = float((q * q).sum())**0.5
                if norm_q > 1e-8:
                    break
        if j < n:
            V[:, j] = q / norm_q
        if j >= k and (j % every == 0 or j >= m or j >= n or n_products >= max_products):
            neg_theta, S = ops.eigh(-H[:j, :j])
            theta = -neg_theta  # descending
            Y = V[:, :j] @ S[:, :k]
            R = W[:, :j] @ S[:, :k] - Y * theta[:k]
            res = (R * R).sum(0)**0.5
            if j >= n or (float(res[0]) <= tol and float(res[1]) <= tol_second):
                return 1.0 - theta[:k], s[:, None] * Y
            if j >= m:
                # Thick restart: best `keep` Ritz vectors + continuation.
                p = keep
                cont = V[:, j] * 1.0
                V[:, :p] = V[:, :j] @ S[:, :p]
                W[:, :p] = W[:, :j] @ S[:, :p]
                H[:, :] = 0.0
                for i in range(p):
                    H[i, i] = theta[i]
                V[:, p] = cont
                j = p
        if n_products >= max_products:
            raise _NotConverged(f'Lanczos did not converge in {n_products} products')


def _solve(graph: _Graph, solver: str, tol: float, max_iter: Optional[int],
           auto: bool) -> Tuple[Array, Array, str]:
    """Run the requested solver (with the dense fallback) on a graph."""
    n = graph.degree.shape[0]
    name = graph.ops.name
    if solver == 'lanczos' and n >= 4:
        if max_iter is None:
            max_iter = _auto_budget(n) if auto else max(3000, 10 * n)
        try:
            lam, vecs = _lanczos(graph, tol, int(max_iter))
            return lam, vecs, f'lanczos-{name}'
        except _NotConverged:
            pass  # fall back to the exact dense solver below
        check_graph_memory(n, 'ncut', _device_of(graph), solver='dense')
    if name == 'scipy' and n >= 3:
        lam, vecs = _dense_official(graph)
    else:
        # Torch, or too small for eigh's subset [1, 2].
        lam, vecs = _dense_deflated(graph)
    return lam, vecs, f'dense-{name}'


def _device_of(graph: _Graph) -> torch.device:
    return graph.g.device if isinstance(graph.g, Tensor) else torch.device('cpu')


def _is_uniform(graph: _Graph, edges: Optional[Array]) -> bool:
    """All entries of ``A`` equal: every cut costs the same (degenerate)."""
    if edges is not None:
        n = edges.shape[0]
        return bool((edges == n).all()) or bool((edges == 0).all())
    g = graph.g
    return bool(g.max() == g.min())


def _pack(graph: _Graph, x: Optional[Array], lam, used: str) -> NCutResult:
    """D-normalise and orient the eigenvector, split it, convert to tensors
    once (in the graph's representation until here)."""
    ops, deg = graph.ops, graph.degree
    n = deg.shape[0]
    lam = [float(v) for v in lam][:2]
    lam += [math.nan] * (2 - len(lam))
    if x is None:
        x = ops.zeros((n, ))
    elif float(abs(x).max()) > 0:
        x = x / float((deg * x * x).sum())**0.5
        if float(x[first_argmax(abs(x))]) < 0:
            x = -x
    dev = _device_of(graph)
    eigvec = ops.to_tensor(x)
    return NCutResult(
        eigvec=eigvec,
        eigvals=torch.tensor(lam, dtype=torch.float64, device=dev),
        degree=ops.to_tensor(deg),
        bipartition=ops.to_tensor(x > x.mean()),
        solver=used)


def _run(graph: _Graph,
         solver: str,
         tol: float,
         max_iter: Optional[int],
         auto: bool,
         edges: Optional[Array] = None) -> NCutResult:
    deg = graph.degree
    n = deg.shape[0]
    if not bool((deg > 0).all()):
        raise ValueError('affinity has a node with non-positive degree; the normalized cut is '
                         'undefined')
    if n == 1 or _is_uniform(graph, edges):
        return _pack(graph, None, [1.0 if i < n - 1 else math.nan for i in range(2)], 'degenerate')
    lam, vecs, used = _solve(graph, solver, tol, max_iter, auto)
    return _pack(graph, vecs[:, 0], lam, used)


def _check_tol(tol: float, max_iter: Optional[int]) -> None:
    check_real(tol, 'tol', 0.0, 1.0, low_open=True)
    if max_iter is not None:
        check_int(max_iter, 'max_iter')


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------
def cosine_affinity(keys: Tensor,
                    tau: float = 0.2,
                    eps: float = 1e-5,
                    binary_graph: bool = True,
                    channel_major: bool = False) -> Tensor:
    """TokenCut / MaskCut patch graph from patch features.

    Each row of ``keys`` is L2-normalised (zero rows stay zero, as
    ``F.normalize``), ``cos = F Fᵀ`` is computed in the dtype of ``keys``
    (float32 keys -> float32 similarities, as the official code) and then

    * ``binary_graph=True``: ``A = 1 if cos > tau else eps``;
    * ``binary_graph=False``: ``A = cos`` with ``A[A < tau] = eps``.

    Args:
        keys (Tensor): ``(N, D)`` patch features (no CLS token).
        tau (float): Similarity threshold (see :func:`check_graph_params`).
        eps (float): Weight of non-edges (keeps the graph connected).
        binary_graph (bool): Binary (default) or weighted graph.
        channel_major (bool): Compute the L2 norms on a ``(D, N)`` copy of
            the features, the layout MaskCut's official code normalises
            (``F.normalize(feats, dim=0)``). Mathematically identical; it
            reproduces the official float32 rounding, hence the same edges
            at ``cos ≈ tau``. TokenCut normalises ``(N, D)`` rows (False).

    Returns:
        Tensor: ``(N, N)`` float64 affinity on the device of ``keys``.

    Raises:
        ValueError: For invalid ``tau``/``eps``.
        MemoryError: If the ``N x N`` graph cannot fit (before allocating).
    """
    tau, eps = check_graph_params(tau, eps, binary_graph)
    keys = as_float_tensor(keys, 'keys')
    check_graph_memory(keys.shape[0], 'ncut', keys.device, solver='lanczos')
    feats = _normalise_rows(keys, channel_major)
    if utils.use_numpy(feats):
        f = feats.contiguous().numpy()
        aff = _edges_to_affinity(_edges_np(f, tau, lower=False), eps) if binary_graph \
            else _weighted_np(f, tau, eps)
        return torch.from_numpy(aff)
    cos = feats @ feats.T
    if binary_graph:
        one = torch.ones((), dtype=torch.float64, device=cos.device)
        return torch.where(cos > tau, one, one * eps)
    aff = cos.to(torch.float64)
    aff[cos < tau] = eps
    return aff


def ncut_bipartition(affinity: Tensor,
                     solver: str = 'auto',
                     backend: str = 'auto',
                     tol: float = 1e-10,
                     max_iter: Optional[int] = None,
                     check_finite: bool = True) -> NCutResult:
    """Second smallest generalized eigenvector of ``(D - A) x = λ D x`` and
    the mean split of its entries.

    Args:
        affinity (Tensor | np.ndarray): ``(N, N)`` symmetric non-negative
            affinity ``A`` with positive row sums (e.g. from
            :func:`cosine_affinity`); used in float64.
        solver (str): ``'auto'``, ``'dense'`` (exact reference) or
            ``'lanczos'`` (iterative; falls back to dense if it fails). See
            the module docstring.
        backend (str): ``'auto'`` (numpy/scipy on CPU, torch elsewhere),
            ``'scipy'`` (CPU only) or ``'torch'`` (stays on the device).
        tol (float): Residual tolerance of the Lanczos solver
            (``||M y - μ y||``; the eigenvector error is about
            ``tol / eigengap``).
        max_iter (int, optional): Cap on the Lanczos matrix-vector products
            before the dense fallback (default: ``max(16, N // 16)`` for
            ``solver='auto'``, ``max(3000, 10 N)`` for ``'lanczos'``).
        check_finite (bool): Check the affinity for NaN/inf.

    Returns:
        NCutResult: ``eigvec (N,)``, ``eigvals (2,)``, ``degree (N,)``,
        ``bipartition (N,)`` and the solver used, on the affinity's device.

    Raises:
        ValueError: For a non-square/empty/non-finite affinity, a node with a
            non-positive degree, or an unknown solver/backend.
        MemoryError: If the dense solver's memory cannot fit.
    """
    _check_solver(solver, backend)
    _check_tol(tol, max_iter)
    aff = as_float_tensor(affinity, 'affinity').to(torch.float64)
    if aff.ndim != 2 or aff.shape[0] != aff.shape[1]:
        raise ValueError(f'affinity must be a square (N, N) matrix, got {tuple(aff.shape)}')
    n = aff.shape[0]
    if n == 0:
        raise ValueError('affinity is empty (N = 0)')
    if check_finite:
        utils.check_finite(aff, 'affinity')
    backend = _resolve_backend(backend, aff)
    auto = solver == 'auto'
    solver = _resolve_solver(solver, n, backend)
    if solver == 'dense':
        check_graph_memory(n, 'ncut', aff.device, solver='dense')
    # The caller's matrix is only read (owned=False).
    if backend == 'scipy':
        a = aff.cpu().numpy()
        graph = _Graph(a, 0.0, 1.0, a.sum(axis=1), False, _numpy_ops(aff.device), owned=False)
    else:
        graph = _Graph(aff, 0.0, 1.0, aff.sum(dim=1), False, _torch_ops(aff.device), owned=False)
    return _run(graph, solver, tol, max_iter, auto)


def ncut_from_keys(keys: Tensor,
                   tau: float = 0.2,
                   eps: float = 1e-5,
                   binary_graph: bool = True,
                   channel_major: bool = False,
                   solver: str = 'auto',
                   backend: str = 'auto',
                   tol: float = 1e-10,
                   max_iter: Optional[int] = None) -> NCutResult:
    """:func:`cosine_affinity` followed by :func:`ncut_bipartition`, in one
    representation from the features to the eigenvector.

    Same result, but cheaper: on CPU the binary graph is kept as its 0/1
    edge matrix and, for the Lanczos solver, as its lower triangle only
    (half the similarity products and half the memory traffic of every
    matrix-vector product). Used by :func:`tokencut` and :func:`maskcut`.

    Args:
        keys (Tensor): ``(N, D)`` patch features (validated: finite).
        tau, eps, binary_graph, channel_major: See :func:`cosine_affinity`.
        solver, backend, tol, max_iter: See :func:`ncut_bipartition`.

    Returns:
        NCutResult: As :func:`ncut_bipartition`.

    Raises:
        ValueError: For invalid arguments.
        MemoryError: If the ``N x N`` graph cannot fit (before allocating).
    """
    _check_solver(solver, backend)
    _check_tol(tol, max_iter)
    tau, eps = check_graph_params(tau, eps, binary_graph)
    keys = as_float_tensor(keys, 'keys')
    n = keys.shape[0]
    backend = _resolve_backend(backend, keys)
    auto = solver == 'auto'
    solver = _resolve_solver(solver, n, backend)
    check_graph_memory(n, 'ncut', keys.device, solver=solver)
    feats = _normalise_rows(keys, channel_major)
    if backend == 'scipy':
        ops = _numpy_ops(keys.device)
        f = feats.cpu().contiguous().numpy()
        if binary_graph:
            work = utils._take_workspace((n, n), np.float64)
            try:
                graph, edges = _binary_graph_np(f, tau, eps, solver == 'lanczos' and n >= 4, ops,
                                                work)
                return _run(graph, solver, tol, max_iter, auto, edges)
            finally:
                utils._give_back_workspace(work)
        a = _weighted_np(f, tau, eps)
        return _run(_Graph(a, 0.0, 1.0, a.sum(axis=1), False, ops), solver, tol, max_iter, auto)
    ops = _torch_ops(keys.device)
    cos = feats @ feats.T
    if binary_graph:
        e = (cos > tau).to(torch.float64)
        del cos
        edges = e.sum(dim=1)
        graph = _Graph(e, eps, 1.0 - eps, edges + (n - edges) * eps, False, ops)
        return _run(graph, solver, tol, max_iter, auto, edges)
    a = cos.to(torch.float64)
    a[cos < tau] = eps
    del cos
    return _run(_Graph(a, 0.0, 1.0, a.sum(dim=1), False, ops), solver, tol, max_iter, auto)


class MaskedNCut:
    """Normalized cuts of one set of patch keys with nodes masked out, the
    graph built once: MaskCut's stages.

    ``cut = MaskedNCut(keys, tau, ...)``; then

    * ``cut()`` equals ``ncut_from_keys(keys, tau, ...)`` (the graph in the
      keys' dtype, e.g. float32: MaskCut's stage 0);
    * ``cut(masked)`` equals ``ncut_from_keys(keys.double().masked_fill(
      masked[:, None], 0), tau, ...)``: masked patches have zero features,
      cosine 0 to every patch (themselves included), so ``eps`` edges
      (``tau >= 0``); the graph is float64 (MaskCut's stages ``>= 1``, whose
      official painting map promotes the features).

    On the CPU (scipy backend) the similarity product is computed once: the
    float64 graph equals the float32 one except at the few pairs whose
    float32 cosine lies within rounding error of ``tau`` (recomputed in
    float64, as :func:`ncut_from_keys` does for float64 features), and a
    masked graph is never materialised: its products read the shared edge
    matrix with the masked rows and columns zeroed in the vector. The
    results equal the per-call ones bit for bit (for ``tau < 0``, where a
    masked pair is an edge, up to rounding). Other backends build each
    graph as :func:`ncut_from_keys` does.

    Args:
        keys (Tensor): ``(N, D)`` patch features.
        tau, eps, channel_major: See :func:`cosine_affinity` (binary graph).
        solver, backend, tol, max_iter: See :func:`ncut_bipartition`.
        masked_calls (bool): Whether masked calls will follow (False skips
            finding the pairs near ``tau``, e.g. MaskCut with one stage).

    Raises:
        ValueError: For invalid arguments.
        MemoryError: If the ``N x N`` graph cannot fit (before allocating).
    """

    def __init__(self,
                 keys: Tensor,
                 tau: float = 0.2,
                 eps: float = 1e-5,
                 channel_major: bool = False,
                 solver: str = 'auto',
                 backend: str = 'auto',
                 tol: float = 1e-10,
                 max_iter: Optional[int] = None,
                 masked_calls: bool = True) -> None:
        _check_solver(solver, backend)
        _check_tol(tol, max_iter)
        self.tau, self.eps = check_graph_params(tau, eps, True)
        self.keys = as_float_tensor(keys, 'keys')
        n = self.keys.shape[0]
        self.channel_major = channel_major
        self.backend = _resolve_backend(backend, self.keys)
        self._auto = solver == 'auto'
        self._solver_arg = solver
        self.solver = _resolve_solver(solver, n, self.backend)
        self.tol, self.max_iter = tol, max_iter
        check_graph_memory(n, 'ncut', self.keys.device, solver=self.solver)
        # Shared edge matrix (scipy backend) and which graph it holds now.
        self._e: Optional[np.ndarray] = None
        self._e_kind = ''
        self._fixes: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None
        if self.backend == 'scipy':
            self._build(masked_calls)

    # -- shared graph (scipy) ----------------------------------------------
    def _lower(self) -> bool:
        return self.solver == 'lanczos' and self.keys.shape[0] >= 4

    def _features_are_float64(self) -> bool:
        return self.keys.dtype == torch.float64

    def _features(self, float64: bool) -> np.ndarray:
        keys = self.keys.to(torch.float64) if float64 else self.keys
        return _normalise_rows(keys, self.channel_major).cpu().contiguous().numpy()

    def _build(self, masked_calls: bool) -> None:
        """The native graph, and the pairs where the float64 one differs."""
        feats, norms = _normalise_rows_and_norms(self.keys, self.channel_major)
        f = feats.cpu().contiguous().numpy()
        n, d = f.shape
        self._e = utils._take_workspace((n, n), np.float64)
        self._e_kind = 'native'
        if f.dtype == np.float64 or not masked_calls:
            _edges_np(f, self.tau, self._lower(), out=self._e)
            return
        # The float32 cosine of rows a, b is within (d + 2) 2^-24 (product)
        # + delta_a + delta_b (normalisation) of the float64 one; delta = the
        # relative error of the row's float32 norm (+ the division's rounding
        # and the float64 norm's own error).
        keys = self.keys.cpu().numpy()
        norms64 = np.maximum(
            np.sqrt(np.einsum('ij,ij->i', keys, keys, dtype=np.float64)), _NORM_EPS)
        delta = np.abs(norms64 / norms.cpu().numpy().astype(np.float64) - 1.0)
        delta += 2.0**-24 + (d + 2) * 2.0**-52
        margin = (d + 2) * 2.0**-24 + 2.0 * float(delta.max())
        near: list = []
        _edges_np(f, self.tau, self._lower(), near if margin <= _MAX_FLOAT32_MARGIN else None,
                  margin, self._e)
        if margin > _MAX_FLOAT32_MARGIN:
            return  # no correction list: the float64 graph is rebuilt
        rows, cols = np.divmod(np.concatenate(near), n)
        vals = np.empty(rows.size)
        for c0 in range(0, rows.size, _FIX_CHUNK):  # chunks: the gathers stay in cache
            r, c = rows[c0:c0 + _FIX_CHUNK], cols[c0:c0 + _FIX_CHUNK]
            # Float64 cosine of the float64-normalised keys (float32 products
            # are exact in float64).
            dots = np.einsum('ij,ij->i', keys[r], keys[c], dtype=np.float64)
            vals[c0:c0 + _FIX_CHUNK] = dots / (norms64[r] * norms64[c]) > self.tau
        flip = vals != self._e[rows, cols]
        self._fixes = (rows[flip], cols[flip], vals[flip])

    def _edges(self, kind: str) -> np.ndarray:
        """The shared edge matrix holding the ``'native'`` or ``'float64'``
        graph (toggled through the correction list, or rebuilt)."""
        if self._features_are_float64():
            return self._e
        if self._e_kind != kind:
            if self._fixes is not None:
                rows, cols, vals = self._fixes
                self._e[rows, cols] = vals if kind == 'float64' else 1.0 - vals
            else:
                _edges_np(self._features(kind == 'float64'), self.tau, self._lower(), out=self._e)
            self._e_kind = kind
        return self._e

    def close(self) -> None:
        """Give the graph's memory back for the next graph (see
        :func:`~mmuol.localization.utils._take_workspace`); later calls
        fail."""
        utils._give_back_workspace(self._e)
        self._e = None
        self._e_kind = 'closed'

    def __enter__(self) -> 'MaskedNCut':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- calls --------------------------------------------------------------
    def __call__(self, masked: Optional[Tensor] = None) -> NCutResult:
        """The cut with the patches where ``masked`` is True zeroed.

        Args:
            masked (Tensor, optional): ``(N,)`` bool; None: the keys as they
                are, in their dtype (an all-False mask still gives the
                float64 graph).

        Returns:
            NCutResult: As :func:`ncut_bipartition`.
        """
        if self._e_kind == 'closed':
            raise RuntimeError('MaskedNCut was closed')
        n = self.keys.shape[0]
        if masked is not None:
            masked = torch.as_tensor(masked, dtype=torch.bool).reshape(-1)
            if masked.numel() != n:
                raise ValueError(f'masked must have N={n} entries, got {masked.numel()}')
        if self.backend != 'scipy':
            feats = self.keys
            if masked is not None:
                feats = self.keys.to(torch.float64).masked_fill(
                    masked.to(self.keys.device)[:, None], 0.0)
            return ncut_from_keys(
                feats,
                tau=self.tau,
                eps=self.eps,
                binary_graph=True,
                channel_major=self.channel_major,
                solver=self._solver_arg,
                backend=self.backend,
                tol=self.tol,
                max_iter=self.max_iter)
        e = self._edges('native' if masked is None else 'float64')
        lower = self._lower()
        ops = _numpy_ops(self.keys.device)
        keep, fill = None, 0.0
        if masked is not None:
            keep = (~masked).cpu().numpy().astype(np.float64)
            fill = 1.0 if 0.0 > self.tau else 0.0
        if lower:
            symv = scipy_blas.get_blas_funcs('symv', (e, ))
            edges = symv(1.0, e.T, np.ones(n) if keep is None else keep)
        else:
            edges = e.sum(axis=1) if keep is None else e @ keep
        if keep is not None:
            # Exact integer counts, as the explicit graph's row sums.
            edges *= keep
            if fill:
                edges += fill * (n - keep * keep.sum())
        degree = edges + (n - edges) * self.eps
        graph = _Graph(e, self.eps, 1.0 - self.eps, degree, lower, ops, False, keep, fill)
        return _run(graph, self.solver, self.tol, self.max_iter, self._auto, edges)
