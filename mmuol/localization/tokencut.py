# Copyright (c) mmuol contributors. All rights reserved.
"""TokenCut (Wang et al., CVPR 2022): object discovery by normalized cut.

Re-implemented from the paper (Wang et al., "Self-Supervised Transformers for
Unsupervised Object Discovery using Normalized Cut", CVPR 2022) and the
behaviour of the official ``object_discovery.ncut`` (YangtaoWANG95/TokenCut);
checked against golden vectors produced with the official code. Method notes
and results: ``configs/tokencut/README.md``.
"""
from typing import NamedTuple, Sequence

from torch import Tensor

from .ncut import ncut_confidence, ncut_from_keys
from .utils import check_grid_hw, check_keys, component_containing, first_argmax

__all__ = ['TokenCutResult', 'tokencut']


class TokenCutResult(NamedTuple):
    """Result of :func:`tokencut` (masks on the input device).

    Attributes:
        mask (Tensor): ``(h, w)`` bool, the 4-connected component of
            ``bipartition`` that contains ``seed`` (the object).
        seed (int): Flat patch index ``argmax |eigvec|`` (lowest index among
            entries tied within 1e-9 relative, see ``first_argmax``).
        eigvec (Tensor): ``(h, w)`` float64 second generalized eigenvector,
            ``xᵀ D x = 1``, oriented so that ``eigvec[seed] > 0`` (after the
            official flip).
        eigvals (Tensor): ``(2,)`` float64 ``(λ2, λ3)``.
        bipartition (Tensor): ``(h, w)`` bool foreground side
            ``eigvec > mean(eigvec)`` (after the flip).
        degree (Tensor): ``(N,)`` float64 node degrees of the graph.
        labels (Tensor): ``(h, w)`` int32 4-connected labels of
            ``bipartition``.
        eigval (float): ``λ2``, the relaxed normalized-cut cost of the split
            (lower = better separated).
        confidence (float): ``clip(1 - λ2 / λ3, 0, 1)`` (relative eigengap,
            see :func:`ncut_confidence`): ~0 for featureless / noise-like
            inputs (reject the image), ~1 for one clearly separated object.
        solver (str): Eigensolver that ran (see :class:`NCutResult`).
    """
    mask: Tensor
    seed: int
    eigvec: Tensor
    eigvals: Tensor
    bipartition: Tensor
    degree: Tensor
    labels: Tensor
    eigval: float
    confidence: float
    solver: str


def tokencut(keys: Tensor,
             grid_hw: Sequence[int],
             tau: float = 0.2,
             eps: float = 1e-5,
             binary_graph: bool = True,
             solver: str = 'auto',
             backend: str = 'auto') -> TokenCutResult:
    """TokenCut on the patch keys of one image.

    1. L2-normalise the keys, ``cos = F Fᵀ``; graph ``A = 1 if cos > tau else
       eps`` (``binary_graph=False``: ``A = cos`` with ``A[A < tau] = eps``).
    2. ``x`` = second smallest eigenvector of ``(D - A) x = λ D x``
       (:func:`ncut_bipartition`, D-normalised like scipy).
    3. ``bipartition = x > mean(x)``; ``seed = argmax |x|``; if the seed is
       not in the bipartition, flip ``x`` and the bipartition.
    4. ``mask`` = 4-connected component of the bipartition containing the
       seed. The box is ``mask_to_box(mask, patch_size, image_hw)``.

    Differences from the official code: the eigensolver (same vector, up to
    ~1e-10, from a Lanczos solver for large grids; ``solver='dense'`` runs
    the official dense ``scipy.linalg.eigh``); the ``binary_graph=False``
    graph is solved in float64 (the official code solves that graph in
    float32, so its eigenvalues carry ~1e-4 relative float32 error); graphs
    whose entries are all equal (e.g. identical features) return the whole
    grid with confidence 0 instead of an arbitrary split.

    Args:
        keys (Tensor): ``(N, D)`` last-block keys of the patch tokens (no
            CLS), ``N = h * w`` row-major; float32/float64, any device (numpy
            arrays are accepted).
        grid_hw (Sequence[int]): ``(h, w)`` patch grid.
        tau (float): Cosine-similarity threshold (0.2 in TokenCut), in
            ``[-1, 1)`` (``[0, 1)`` with ``binary_graph=False``).
        eps (float): Weight of non-edges, in ``(0, 1)`` (1e-5).
        binary_graph (bool): False = TokenCut's ``--no-binary-graph``.
        solver (str): ``'auto'``, ``'dense'`` or ``'lanczos'``.
        backend (str): ``'auto'``, ``'scipy'`` or ``'torch'``.

    Returns:
        TokenCutResult: fields ``mask, seed, eigvec, eigvals, bipartition,
        degree, labels, eigval, confidence, solver``.

    Raises:
        ValueError: For invalid keys or a NaN/inf/out-of-range ``tau`` or
            ``eps``.
        MemoryError: If the ``N x N`` graph cannot fit in memory (raised
            before allocating; resize the image).
    """
    h, w = grid_hw = check_grid_hw(grid_hw)
    keys = check_keys(keys, grid_hw)
    cut = ncut_from_keys(
        keys, tau=tau, eps=eps, binary_graph=binary_graph, solver=solver, backend=backend)
    x = cut.eigvec
    bip = cut.bipartition
    seed = first_argmax(x.abs())
    if not bool(bip[seed]):
        # The seed (strongest eigenvector entry) marks the foreground side.
        x = -x
        bip = ~bip
    bip_hw = bip.reshape(h, w)
    mask, labels = component_containing(bip_hw, seed, return_labels=True)
    lam2 = float(cut.eigvals[0])
    return TokenCutResult(
        mask=mask,
        seed=seed,
        eigvec=x.reshape(h, w),
        eigvals=cut.eigvals,
        bipartition=bip_hw,
        degree=cut.degree,
        labels=labels,
        eigval=lam2,
        confidence=ncut_confidence(cut.eigvals),
        solver=cut.solver)
