# Copyright (c) mmuol contributors. All rights reserved.
"""Normalized-cut bipartition of a dense patch graph (TokenCut, MaskCut).

Both TokenCut and MaskCut solve the generalized symmetric-definite problem

    (D - A) x = λ D x,            D = diag(A 1),

and use ``x``, the eigenvector of the **second smallest** eigenvalue ``λ2``
(scipy's normalisation ``xᵀ D x = 1``), split at the mean of its entries. The
official code calls the dense ``scipy.linalg.eigh(D - A, D, subset_by_index=
[1, 2])`` (O(N³): 5-7 s for a 60x60 grid on one core).

Here the same vector comes from the symmetric normalised affinity
``M = D^-1/2 A D^-1/2``: its eigenvalues are ``μ = 1 - λ``, its top
eigenvector ``u = D^1/2 1 / ||D^1/2 1||`` (``μ = 1``, the trivial cut) is
known in closed form and is *deflated* by shifting it to ``μ = -2``
(``M - 3 u uᵀ``; the rest of the spectrum lies in ``[-1, 1]``), so the two
largest eigenpairs of the shifted matrix are exactly ``(1 - λ2, y2)`` and
``(1 - λ3, y3)``; ``x = D^-1/2 y2``.
Only matrix-vector products with ``A`` are needed, so a Lanczos solver takes
~20 products (~0.1 s at N = 3600) instead of a full dense decomposition.

On CPU, :func:`ncut_from_keys` (what TokenCut and MaskCut call) builds only
the lower triangle of the binary graph and its degrees from edge counts, and
multiplies with a symmetric BLAS ``symv`` that reads that triangle only. A
float64 graph (MaskCut stages >= 1) is thresholded from a float32 product
with the few entries within float32 error of ``tau`` recomputed in float64,
so it equals the float64 graph at float32 cost.

Solvers (``solver=``):

* ``'dense'``: the exact reference. CPU: the official
  ``scipy.linalg.eigh(D - A, D, subset_by_index=[1, 2])``; CUDA:
  ``torch.linalg.eigh`` of the deflated ``M`` (float64).
* ``'lanczos'``: CPU: ``scipy.sparse.linalg.eigsh`` (ARPACK, implicitly
  restarted Lanczos) on the deflated ``M`` with a symmetric BLAS ``symv``;
  CUDA (or ``backend='torch'``): a thick-restart Lanczos written in torch with
  full re-orthogonalisation, so the whole solve stays on the device.
  Falls back to ``'dense'`` if it does not converge.
* ``'auto'``: ``'dense'`` for small graphs (N <= 256 on CPU), else
  ``'lanczos'``.

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
"""
from typing import Callable, NamedTuple, Optional, Tuple

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla
import torch
import torch.nn.functional as F
from scipy.linalg import blas as scipy_blas
from torch import Tensor

from . import utils
from .utils import as_float_tensor, first_argmax

__all__ = [
    'NCutResult', 'cosine_affinity', 'ncut_bipartition', 'ncut_from_keys'
]

SOLVERS = ('auto', 'dense', 'lanczos')
BACKENDS = ('auto', 'scipy', 'torch')
# Below this many nodes the dense solve is cheap (< ~10 ms) and exact.
_AUTO_DENSE_MAX_N = 256
# Shift that moves the trivial eigenvalue (μ = 1) below the rest of the
# spectrum of M (which lies in [-1, 1]).
_DEFLATION_SHIFT = 3.0


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


# ---------------------------------------------------------------------------
# Affinity
# ---------------------------------------------------------------------------
def _gram(x: Tensor) -> Tensor:
    """``x @ x.T`` in x's dtype. On CPU numpy's BLAS is used: on the machines
    we measured it was ~2x faster than torch's single-threaded sgemm."""
    if utils.use_numpy(x):
        xn = x.contiguous().numpy()
        return torch.from_numpy(xn @ xn.T)
    return x @ x.T


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
        tau (float): Similarity threshold.
        eps (float): Weight of non-edges (keeps the graph connected).
        binary_graph (bool): Binary (default) or weighted graph.
        channel_major (bool): Compute the L2 norms on a ``(D, N)`` copy of
            the features, the layout MaskCut's official code normalises
            (``F.normalize(feats, dim=0)``). Mathematically identical; it
            reproduces the official float32 rounding, hence the same edges
            at ``cos ≈ tau``. TokenCut normalises ``(N, D)`` rows (False).

    Returns:
        Tensor: ``(N, N)`` float64 affinity on the device of ``keys``.
    """
    keys = as_float_tensor(keys, 'keys')
    feats = _normalise_rows(keys, channel_major)
    cos = _gram(feats)
    if binary_graph:
        if utils.use_numpy(cos):
            # numpy's where is ~3x faster than torch's on one thread.
            return torch.from_numpy(
                np.where(cos.numpy() > tau, 1.0, float(eps)))
        one = torch.ones((), dtype=torch.float64, device=cos.device)
        return torch.where(cos > tau, one, one * eps)
    aff = cos.to(torch.float64)
    aff[cos < tau] = eps
    return aff


# ---------------------------------------------------------------------------
# Solvers. Each returns (mu (k,) descending, y (N, k)) for the k <= 2 largest
# eigenpairs of the deflated normalised affinity (numpy or torch).
# ---------------------------------------------------------------------------
def _dense_scipy(aff: np.ndarray, deg: np.ndarray) -> Tuple[np.ndarray,
                                                            np.ndarray]:
    """The official call: generalized dense eigh, eigenvalues #1 and #2."""
    lap = -aff
    lap[np.diag_indices_from(lap)] += deg
    lam, vecs = scipy.linalg.eigh(
        lap, np.diag(deg), subset_by_index=[1, 2], check_finite=False)
    return lam, vecs


def _lanczos_scipy(aff: np.ndarray, deg: np.ndarray, tol: float,
                   max_iter: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    n = aff.shape[0]
    s = 1.0 / np.sqrt(deg)
    u = np.sqrt(deg)
    u /= np.linalg.norm(u)
    # symv reads one triangle only (the lower one of the C-ordered `aff`,
    # i.e. the upper one of its Fortran-ordered view aff.T, no copy): an
    # exactly symmetric operator, and `aff` may hold only that triangle.
    symv = scipy_blas.get_blas_funcs('symv', (aff, ))
    aff_f = aff.T

    def matvec(x):
        x = np.ravel(x)
        y = s * symv(1.0, aff_f, s * x)
        y -= _DEFLATION_SHIFT * np.dot(u, x) * u
        return y

    op = spla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    mu, y = spla.eigsh(
        op, k=2, which='LA', v0=v0, ncv=min(n, 20), tol=tol,
        maxiter=max_iter)
    order = np.argsort(-mu)
    y = s[:, None] * y[:, order]
    return 1.0 - mu[order], y


def _normalised_operator(aff: Tensor,
                         deg: Tensor) -> Tuple[Callable, Tensor, Tensor]:
    s = deg.rsqrt()
    u = deg.sqrt()
    u = u / u.norm()

    def matvec(x: Tensor) -> Tensor:
        y = s * (aff @ (s * x))
        return y - _DEFLATION_SHIFT * torch.dot(u, x) * u

    return matvec, s, u


def _dense_torch(aff: Tensor, deg: Tensor) -> Tuple[Tensor, Tensor]:
    n = aff.shape[0]
    _, s, u = _normalised_operator(aff, deg)
    m = s[:, None] * aff * s[None, :]
    m = m - _DEFLATION_SHIFT * torch.outer(u, u)
    m = 0.5 * (m + m.T)
    mu, vecs = torch.linalg.eigh(m)
    k = min(2, n - 1)
    mu = mu.flip(0)[:k]
    vecs = vecs.flip(1)[:, :k]
    return 1.0 - mu, s[:, None] * vecs


def _lanczos_torch(aff: Tensor,
                   deg: Tensor,
                   tol: float,
                   max_iter: Optional[int],
                   basis_size: int = 40,
                   check_every: int = 10) -> Tuple[Tensor, Tensor]:
    """Thick-restart Lanczos with full re-orthogonalisation (device-agnostic).

    Keeps the Krylov basis ``V`` and ``W = Op V``; Rayleigh-Ritz on
    ``Vᵀ W`` every ``check_every`` steps; on restart keeps the best Ritz
    vectors (with their images, so no extra products) plus the continuation
    vector. A Krylov breakdown (invariant subspace) is continued with a fresh
    random direction so that repeated eigenvalues are not missed.
    """
    n = aff.shape[0]
    k = 2
    matvec, s, _ = _normalised_operator(aff, deg)
    dev, dt = aff.device, aff.dtype
    m = min(n, basis_size)
    keep = min(m - 2, k + 8)
    max_mv = max_iter if max_iter is not None else max(3000, 10 * n)
    gen = torch.Generator().manual_seed(0)

    def rand_vec() -> Tensor:
        return torch.randn(n, generator=gen, dtype=dt).to(dev)

    V = torch.zeros(n, m + 1, dtype=dt, device=dev)
    W = torch.zeros(n, m, dtype=dt, device=dev)
    v = rand_vec()
    V[:, 0] = v / v.norm()
    j = 0  # columns of V whose image is in W
    n_mv = 0
    while True:
        w = matvec(V[:, j])
        n_mv += 1
        W[:, j] = w
        basis = V[:, :j + 1]
        q = w - basis @ (basis.T @ w)
        q = q - basis @ (basis.T @ q)
        j += 1
        norm_q = q.norm()
        if j < n and float(norm_q) <= 1e-10 * max(1.0, float(w.norm())):
            # Invariant subspace: continue with a new random direction.
            for _ in range(3):
                q = rand_vec()
                q = q - basis @ (basis.T @ q)
                q = q - basis @ (basis.T @ q)
                norm_q = q.norm()
                if float(norm_q) > 1e-8:
                    break
        if j < n:
            V[:, j] = q / norm_q
        full = j >= m or j >= n
        if full or j % check_every == 0 or n_mv >= max_mv:
            h = V[:, :j].T @ W[:, :j]
            h = 0.5 * (h + h.T)
            theta, S = torch.linalg.eigh(h)
            theta, S = theta.flip(0), S.flip(1)  # descending
            kk = min(k, j)
            Y = V[:, :j] @ S[:, :kk]
            R = W[:, :j] @ S[:, :kk] - Y * theta[:kk]
            res = R.norm(dim=0)
            if j >= n or (kk == k and bool((res <= tol).all())):
                return 1.0 - theta[:kk], s[:, None] * Y
            if n_mv >= max_mv:
                raise RuntimeError(
                    f'Lanczos did not converge in {n_mv} products '
                    f'(residuals {res.tolist()})')
            if full:
                # Thick restart: best `keep` Ritz vectors + continuation.
                p = min(keep, j)
                cont = V[:, j].clone()
                V[:, :p] = V[:, :j] @ S[:, :p]
                W[:, :p] = W[:, :j] @ S[:, :p]
                V[:, p] = cont
                V[:, p + 1:] = 0
                W[:, p:] = 0
                j = p


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------
def _check_affinity(affinity, check_finite: bool) -> Tensor:
    aff = as_float_tensor(affinity, 'affinity').to(torch.float64)
    if aff.ndim != 2 or aff.shape[0] != aff.shape[1]:
        raise ValueError(f'affinity must be a square (N, N) matrix, got '
                         f'{tuple(aff.shape)}')
    if aff.shape[0] == 0:
        raise ValueError('affinity is empty (N = 0)')
    if check_finite and not bool(torch.isfinite(aff).all()):
        raise ValueError('affinity contains NaN or inf values')
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
        affinity (Tensor): ``(N, N)`` symmetric non-negative affinity ``A``
            with positive row sums (e.g. from :func:`cosine_affinity`); it is
            used in float64 on its own device.
        solver (str): ``'auto'``, ``'dense'`` (exact reference) or
            ``'lanczos'`` (iterative; falls back to dense if it fails). See
            the module docstring.
        backend (str): ``'auto'`` (scipy on CPU, torch on CUDA), ``'scipy'``
            (CPU only) or ``'torch'`` (stays on the tensor's device).
        tol (float): Residual tolerance of the Lanczos solvers
            (``||M y - μ y||``; the eigenvector error is about
            ``tol / eigengap``).
        max_iter (int, optional): Iteration cap for the Lanczos solvers.
        check_finite (bool): Check the affinity for NaN/inf (skipped by
            callers that built it from validated features).

    Returns:
        NCutResult: ``eigvec (N,)``, ``eigvals (2,)``, ``degree (N,)``,
        ``bipartition (N,)`` and the solver used, on the affinity's device.

    Raises:
        ValueError: For a non-square/empty/non-finite affinity, a node with a
            non-positive degree, or an unknown solver/backend.
    """
    if solver not in SOLVERS:
        raise ValueError(f'solver must be one of {SOLVERS}, got {solver!r}')
    if backend not in BACKENDS:
        raise ValueError(
            f'backend must be one of {BACKENDS}, got {backend!r}')
    aff = _check_affinity(affinity, check_finite)
    dev = aff.device
    n = aff.shape[0]
    if backend == 'auto':
        backend = 'scipy' if dev.type == 'cpu' else 'torch'
    if backend == 'scipy' and dev.type != 'cpu':
        raise ValueError("backend='scipy' needs a CPU affinity")
    if utils.use_numpy(aff):
        deg = torch.from_numpy(aff.numpy().sum(axis=1))
    else:
        deg = aff.sum(dim=1)
    deg_np = deg.numpy() if backend == 'scipy' else None
    if not bool((deg > 0).all()):
        raise ValueError('affinity has a node with non-positive degree; the '
                         'normalized cut is undefined')

    def result(eigvec, eigvals, used):
        return _result(eigvec, eigvals, deg, used)

    # Degenerate graph: complete (or empty) with uniform weights.
    if utils.use_numpy(aff):
        flat = aff.numpy().reshape(-1)
        uniform = bool(flat.max() == flat.min())
    else:
        uniform = bool(aff.max() == aff.min())
    if n == 1 or uniform:
        return _degenerate(n, deg)

    if solver == 'auto':
        small = n <= _AUTO_DENSE_MAX_N and backend == 'scipy'
        solver = 'dense' if small else 'lanczos'
    if n < 4:
        # Too small for Lanczos (and eigh's subset [1, 2] needs n >= 3).
        solver, backend = 'dense', 'torch'

    if solver == 'lanczos':
        try:
            if backend == 'scipy':
                lam, vecs = _lanczos_scipy(aff.numpy(), deg_np, tol, max_iter)
                used = 'lanczos-scipy'
            else:
                lam, vecs = _lanczos_torch(aff, deg, tol, max_iter)
                used = 'lanczos-torch'
            ok = bool(np.all(np.isfinite(np.asarray(torch.as_tensor(
                lam).cpu()))))
            if ok:
                return result(vecs[:, 0], _pad2(lam), used)
        except (spla.ArpackNoConvergence, spla.ArpackError, RuntimeError,
                ValueError):
            pass  # fall back to the exact dense solver below
    if backend == 'scipy':
        lam, vecs = _dense_scipy(aff.numpy(), deg_np)
        return result(vecs[:, 0], lam, 'dense-scipy')
    lam, vecs = _dense_torch(aff, deg)
    return result(vecs[:, 0], _pad2(lam), 'dense-torch')


def _result(eigvec, eigvals, deg: Tensor, used: str) -> NCutResult:
    dev = deg.device
    eigvec = torch.as_tensor(eigvec, dtype=torch.float64).to(dev)
    eigvals = torch.as_tensor(eigvals, dtype=torch.float64).to(dev)
    if eigvec.abs().max() > 0:
        # D-normalise (xᵀ D x = 1) and fix the sign.
        eigvec = eigvec / torch.sqrt(torch.dot(deg * eigvec, eigvec))
        if eigvec[first_argmax(eigvec.abs())] < 0:
            eigvec = -eigvec
    return NCutResult(eigvec, eigvals, deg, eigvec > eigvec.mean(), used)


def _degenerate(n: int, deg: Tensor) -> NCutResult:
    lam = [1.0 if i < n - 1 else float('nan') for i in range(2)]
    return _result(torch.zeros(n, dtype=torch.float64), lam, deg, 'degenerate')


def _normalise_rows(keys: Tensor, channel_major: bool) -> Tensor:
    if channel_major:
        return F.normalize(keys.T.contiguous(), p=2, dim=0).T
    return F.normalize(keys, p=2, dim=1)


def _lower_binary_graph(feats: np.ndarray, tau: float, eps: float,
                        block: int = 512) -> Tuple[np.ndarray, np.ndarray]:
    """Lower triangle (diagonal included) of ``A = 1 if F Fᵀ > tau else eps``
    and the full edge count per row.

    Only ``j <= i`` is computed (half the flops and half the writes of the
    full matrix); the strict upper triangle of the returned array is left
    uninitialised and must not be read (``symv`` only reads one triangle).
    """
    n, d = feats.shape
    aff = np.empty((n, n), dtype=np.float64)
    edges = np.zeros(n, dtype=np.int64)
    col_edges = np.zeros(n, dtype=np.int64)
    diag = np.zeros(n, dtype=bool)
    exact64 = feats.dtype == np.float64
    if exact64:
        # Float64 graph at float32 cost: a float32 product of unit vectors
        # is within (d + 2) * 2^-24 of the float64 one, so only entries
        # that close to tau can flip; those are recomputed in float64.
        f32 = feats.astype(np.float32)
        margin = 4.0 * (d + 2) * 2.0**-24
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        if exact64:
            sim = f32[i0:i1] @ f32[:i1].T
            edge = sim > tau  # (b, i1)
            rows, cols = np.nonzero(np.abs(sim - np.float32(tau)) <= margin)
            if rows.size:
                exact = np.einsum('ij,ij->i', feats[i0 + rows], feats[cols])
                edge[rows, cols] = exact > tau
            del sim
        else:
            edge = (feats[i0:i1] @ feats[:i1].T) > tau  # (b, i1)
        blk = edge[:, i0:i1]
        diag[i0:i1] = np.diagonal(blk)
        blk[np.triu_indices(i1 - i0, 1)] = False  # keep j <= i only
        aff[i0:i1, :i1] = np.where(edge, 1.0, float(eps))
        edges[i0:i1] += np.count_nonzero(edge, axis=1)
        col_edges[:i1] += np.count_nonzero(edge, axis=0)
    # row i: its lower part + the column below it, diagonal counted once
    return aff, edges + col_edges - diag


def ncut_from_keys(keys: Tensor,
                   tau: float = 0.2,
                   eps: float = 1e-5,
                   binary_graph: bool = True,
                   channel_major: bool = False,
                   solver: str = 'auto',
                   backend: str = 'auto',
                   tol: float = 1e-10) -> NCutResult:
    """:func:`cosine_affinity` followed by :func:`ncut_bipartition`.

    Same result, but on CPU with the Lanczos solver and a binary graph only
    the lower triangle of the graph is built and used (symmetric ``symv``),
    which halves the cost of the similarity matrix, of the graph and of
    every matrix-vector product. Used by :func:`tokencut` and
    :func:`maskcut`.

    Args:
        keys (Tensor): ``(N, D)`` validated patch features.
        tau, eps, binary_graph, channel_major: See :func:`cosine_affinity`.
        solver, backend, tol: See :func:`ncut_bipartition`.

    Returns:
        NCutResult: As :func:`ncut_bipartition`.
    """
    if solver not in SOLVERS:
        raise ValueError(f'solver must be one of {SOLVERS}, got {solver!r}')
    if backend not in BACKENDS:
        raise ValueError(
            f'backend must be one of {BACKENDS}, got {backend!r}')
    n = keys.shape[0]
    fast = (utils.use_numpy(keys) and binary_graph
            and backend in ('auto', 'scipy') and n >= 4
            and (solver == 'lanczos' or
                 (solver == 'auto' and n > _AUTO_DENSE_MAX_N)))
    if not fast:
        aff = cosine_affinity(keys, tau=tau, eps=eps,
                              binary_graph=binary_graph,
                              channel_major=channel_major)
        return ncut_bipartition(aff, solver=solver, backend=backend, tol=tol,
                                check_finite=False)
    feats = _normalise_rows(as_float_tensor(keys), channel_major)
    aff_low, edges = _lower_binary_graph(feats.contiguous().numpy(), tau, eps)
    deg_np = edges + (n - edges) * float(eps)
    deg = torch.from_numpy(deg_np)
    if not (deg_np > 0).all():
        raise ValueError('affinity has a node with non-positive degree; the '
                         'normalized cut is undefined')
    if (edges == n).all() or (edges == 0).all():
        return _degenerate(n, deg)
    try:
        lam, vecs = _lanczos_scipy(aff_low, deg_np, tol, None)
        if np.all(np.isfinite(lam)):
            return _result(vecs[:, 0], lam, deg, 'lanczos-scipy')
    except (spla.ArpackNoConvergence, spla.ArpackError, ValueError):
        pass
    # Rare: complete the matrix and use the exact dense solver.
    aff = np.tril(aff_low) + np.tril(aff_low, -1).T
    lam, vecs = _dense_scipy(aff, aff.sum(axis=1))
    return _result(vecs[:, 0], lam, deg, 'dense-scipy')


def _pad2(lam) -> Tensor:
    lam = torch.as_tensor(lam, dtype=torch.float64).reshape(-1).cpu()
    if lam.numel() < 2:
        lam = torch.cat(
            [lam, torch.full((2 - lam.numel(), ), float('nan'),
                             dtype=torch.float64)])
    return lam[:2]
