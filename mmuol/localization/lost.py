# Copyright (c) mmuol contributors. All rights reserved.
"""LOST (Siméoni et al., BMVC 2021): seed-expansion object discovery.

Re-implemented from the description of the official ``object_discovery.lost``
(valeoai/LOST) in ``docs/found_lost_tokencut.md`` §2; checked bit-exactly
against golden vectors produced with the official code.
"""
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from . import utils
from .utils import check_grid_hw, check_keys, connected_components

__all__ = ['LOSTResult', 'lost']


class LOSTResult(NamedTuple):
    """Result of :func:`lost` (tensors on the input device).

    Attributes:
        mask (Tensor): ``(h, w)`` bool, the 4-connected component of
            ``similarity_sum > 0`` containing the seed (all False in the
            corner case where the seed itself is not positive, e.g. all-zero
            features; the official code raises there).
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


def lost(keys: Tensor,
         grid_hw: Sequence[int],
         k_patches: int = 100) -> LOSTResult:
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

    Args:
        keys (Tensor): ``(N, D)`` last-block keys of the patch tokens (no
            CLS), ``N = h * w`` row-major; float32/float64, any device.
        grid_hw (Sequence[int]): ``(h, w)`` patch grid.
        k_patches (int): Number of lowest-degree patches used for the seed
            expansion (100 in LOST).

    Returns:
        LOSTResult: fields ``mask, seed, degree, scores, potentials,
        similars, similarity_sum, labels`` (plus the alias ``M``).
    """
    h, w = grid_hw = check_grid_hw(grid_hw)
    keys = check_keys(keys, grid_hw)
    if isinstance(k_patches, bool) or int(k_patches) != k_patches \
            or k_patches < 1:
        raise ValueError(f'k_patches must be a positive int, got {k_patches}')
    dev = keys.device
    n = keys.shape[0]
    k = min(int(k_patches), n)
    if utils.use_numpy(keys):
        # numpy's sgemm/count are several times faster than torch's here.
        x = keys.contiguous().numpy()
        aff = x @ x.T
        degree_np = np.count_nonzero(aff > 0, axis=1).astype(np.int64)
        degree_np -= (np.diagonal(aff) > 0)
        order = np.argsort(degree_np, kind='stable')
        seed = int(order[0])
        pot = order[:k]
        sim = pot[aff[seed, pot] > 0]
        msum = aff[sim].sum(axis=0)
        degree = torch.from_numpy(degree_np)
        potentials = torch.from_numpy(np.sort(pot))
        similars = torch.from_numpy(np.sort(sim))
        similarity_sum = torch.from_numpy(np.ascontiguousarray(msum))
    else:
        aff = keys @ keys.T
        pos = aff > 0
        degree = pos.sum(dim=1) - pos.diagonal().long()
        order = torch.sort(degree, stable=True).indices
        seed = int(order[0])
        pot = order[:k]
        sim = pot[aff[seed, pot] > 0]
        similarity_sum = aff[sim].sum(dim=0)
        potentials = torch.sort(pot).values
        similars = torch.sort(sim).values
    labels, _ = connected_components((similarity_sum > 0).reshape(h, w))
    seed_label = labels.reshape(-1)[seed]
    if int(seed_label) == 0:
        mask = torch.zeros((h, w), dtype=torch.bool, device=dev)
    else:
        mask = labels == seed_label
    return LOSTResult(
        mask=mask,
        seed=seed,
        degree=degree,
        scores=-degree.to(keys.dtype),
        potentials=potentials,
        similars=similars,
        similarity_sum=similarity_sum,
        labels=labels)
