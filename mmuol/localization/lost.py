# Copyright (c) mmuol contributors. All rights reserved.
"""LOST (Siméoni et al., BMVC 2021): seed-expansion object discovery.

Re-implemented from the paper ("Localizing Objects with Self-Supervised
Transformers and no Labels") and the behaviour of the official
``object_discovery.lost`` (valeoai/LOST); checked bit-exactly against golden
vectors produced with the official code. Method notes and results:
``configs/lost/README.md``.

The N x N similarity matrix of the official code is never held: degrees are
counted over row blocks of it and only the rows of the seed expansion are
computed, so memory grows linearly with the number of patches.
"""
from typing import NamedTuple, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from . import utils
from .utils import block_rows, check_grid_hw, check_int, check_keys, component_containing

__all__ = ['LOSTResult', 'lost']

# Bytes of one similarity block (and of its boolean copy).
_BLOCK_BYTES = 64 * 2**20


class LOSTResult(NamedTuple):
    """Result of :func:`lost` (tensors on the input device).

    Attributes:
        mask (Tensor): ``(h, w)`` bool, the 4-connected component of
            ``similarity_sum > 0`` containing the seed. All False means **no
            object** (the seed itself is not positive, e.g. all-zero
            features; the official code raises there): see
            :attr:`has_object`; such a mask has no box.
        seed (int): Flat index of the lowest-degree patch (lowest index on
            ties).
        degree (Tensor): ``(N,)`` int64, number of other patches with a
            positive dot product.
        scores (Tensor): ``(N,)`` ``-degree`` in the keys' dtype (what the
            official ``lost`` returns as scores).
        potentials (Tensor): ``(k,)`` int64, the ``k = min(k_patches, N)``
            lowest-degree patches, sorted ascending by index.
        similars (Tensor): int64 potentials with a positive dot product with
            the seed (the seed included), sorted ascending by index.
        similarity_sum (Tensor): ``(N,)`` ``M = Σ_{s ∈ similars} A[s, :]``
            with raw dot products (negatives kept); also available as ``M``.
        labels (Tensor): ``(h, w)`` int32 4-connected labels of
            ``similarity_sum > 0``.
    """
    mask: Tensor
    seed: int
    degree: Tensor
    scores: Tensor
    potentials: Tensor
    similars: Tensor
    similarity_sum: Tensor
    labels: Tensor

    @property
    def M(self) -> Tensor:  # noqa: N802 (the paper's and the code's name)
        """Alias of ``similarity_sum``."""
        return self.similarity_sum

    @property
    def has_object(self) -> bool:
        """Whether an object was found (``mask`` is not empty)."""
        return bool(self.mask.any())


def lost(keys: Tensor, grid_hw: Sequence[int], k_patches: int = 100) -> LOSTResult:
    """LOST on the patch keys of one image.

    1. ``A = keys @ keysᵀ`` (raw dot products, computed in the keys' dtype).
    2. ``degree_i = #{j != i : A_ij > 0}``.
    3. Patches sorted by ascending degree with a **stable** sort: the seed is
       the lowest-degree patch and the ``k_patches`` first ones are the
       potentials. (The official code uses ``torch.argsort``, which is not
       stable, so on ties its seed/potentials are implementation-defined; we
       take the lowest index first, which matches it whenever the result is
       tie-free.)
    4. ``similars`` = potentials with ``A[seed, p] > 0`` (the seed included),
       ``M = Σ_{s ∈ similars} A[s, :]``.
    5. ``mask`` = 4-connected component of ``M > 0`` containing the seed. The
       box is ``mask_to_box(mask, patch_size, image_hw)``.

    No object: when the seed itself has ``M <= 0`` (e.g. all-zero keys, where
    the official code raises) ``mask`` is all False and
    ``result.has_object`` is False; there is no box then.

    ``A`` is computed in row blocks (memory linear in N, no N x N matrix).

    Args:
        keys (Tensor): ``(N, D)`` last-block keys of the patch tokens (no
            CLS), ``N = h * w`` row-major; float32/float64, any device.
        grid_hw (Sequence[int]): ``(h, w)`` patch grid.
        k_patches (int): Number of lowest-degree patches used for the seed
            expansion (100 in LOST).

    Returns:
        LOSTResult: fields ``mask, seed, degree, scores, potentials,
        similars, similarity_sum, labels`` (plus ``M`` and ``has_object``).

    Raises:
        ValueError: For invalid keys or ``k_patches``.
    """
    h, w = grid_hw = check_grid_hw(grid_hw)
    keys = check_keys(keys, grid_hw)
    k = min(check_int(k_patches, 'k_patches'), keys.shape[0])
    if utils.use_numpy(keys):
        # numpy's sgemm / count are several times faster than torch's here.
        x = keys.contiguous().numpy()
        seed, degree, pot, sim, msum = _lost_numpy(x, k)
        degree, similarity_sum = torch.from_numpy(degree), torch.from_numpy(msum)
        potentials, similars = torch.from_numpy(pot), torch.from_numpy(sim)
    else:
        seed, degree, potentials, similars, similarity_sum = _lost_torch(keys, k)
    mask, labels = component_containing(
        (similarity_sum > 0).reshape(h, w), seed, return_labels=True)
    return LOSTResult(
        mask=mask,
        seed=seed,
        degree=degree,
        scores=-degree.to(keys.dtype),
        potentials=potentials,
        similars=similars,
        similarity_sum=similarity_sum,
        labels=labels)


def _block_rows(n: int) -> int:
    return block_rows(n, 4, _BLOCK_BYTES, n)


def _lost_numpy(x: np.ndarray,
                k: int) -> Tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """LOST on numpy keys: seed, degree, potentials, similars (sorted) and M."""
    n = x.shape[0]
    degree = np.empty(n, dtype=np.int64)
    block = _block_rows(n)
    for i0 in range(0, n, block):
        aff = x[i0:i0 + block] @ x.T
        pos = aff > 0
        degree[i0:i0 + block] = np.count_nonzero(pos, axis=1)
        # A patch is not its own neighbour.
        degree[i0:i0 + block] -= np.diagonal(pos, offset=i0)
    order = np.argsort(degree, kind='stable')
    seed = int(order[0])
    pot = order[:k]
    sim = pot[(x[pot] @ x[seed]) > 0]
    msum = (x[sim] @ x.T).sum(axis=0)
    return seed, degree, np.sort(pot), np.sort(sim), np.ascontiguousarray(msum)


def _lost_torch(x: Tensor, k: int) -> Tuple[int, Tensor, Tensor, Tensor, Tensor]:
    """LOST on torch keys (any device), same outputs as :func:`_lost_numpy`."""
    n = x.shape[0]
    degree = torch.empty(n, dtype=torch.int64, device=x.device)
    block = _block_rows(n)
    for i0 in range(0, n, block):
        pos = (x[i0:i0 + block] @ x.T) > 0
        degree[i0:i0 + block] = pos.sum(dim=1) - pos.diagonal(offset=i0).long()
    order = torch.sort(degree, stable=True).indices
    seed = int(order[0])
    pot = order[:k]
    sim = pot[(x[pot] @ x[seed]) > 0]
    msum = (x[sim] @ x.T).sum(dim=0)
    return seed, degree, torch.sort(pot).values, torch.sort(sim).values, msum
