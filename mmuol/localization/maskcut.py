# Copyright (c) mmuol contributors. All rights reserved.
"""MaskCut (CutLER, Wang et al., CVPR 2023): iterative multi-object NCut.

Re-implemented from the paper (Wang et al., "Cut and Learn for Unsupervised
Object Detection and Instance Segmentation", CVPR 2023, §3.1) and the behaviour
of the official ``maskcut/maskcut.py::maskcut_forward``
(facebookresearch/CutLER) recorded in the MaskCut golden SPEC
(``tests/data/golden/maskcut/SPEC.md``); checked against golden vectors
produced with the official code. Method notes: ``configs/maskcut/README.md``.
CRF post-processing is not part of this function.
"""
import math
from typing import List, NamedTuple, Sequence

import torch
from torch import Tensor

from .ncut import MaskedNCut, check_graph_params, ncut_confidence
from .utils import (check_grid_hw, check_int, check_keys, check_real, component_containing,
                    first_argmax, grid_corners, mask_iou_or_nan)

__all__ = ['MaskCutStage', 'maskcut']


class MaskCutStage(NamedTuple):
    """One MaskCut stage (patch level, tensors on the input device).

    Attributes:
        mask (Tensor): ``(h, w)`` bool **official output** of the stage: the
            filtered component minus every earlier output (pairwise
            disjoint; empty if the stage was dropped or fully overlapped).
        seed (int): Flat patch index whose component was taken
            (``argmax`` of the oriented eigenvector; lowest index among
            entries tied within 1e-9 relative, see ``first_argmax``).
        eigvec (Tensor): ``(h, w)`` float64 second generalized eigenvector
            (``xᵀ D x = 1``), oriented so that the foreground side is the
            positive side: ``bipartition == eigvec > mean(eigvec)`` up to
            exact ties.
        eigvals (Tensor): ``(2,)`` float64 ``(λ2, λ3)`` of the stage's graph.
        bipartition (Tensor): ``(h, w)`` bool foreground side after the
            reversal decision.
        cc_mask (Tensor): ``(h, w)`` bool component of ``bipartition``
            containing the seed, before the filter.
        kept (bool): Whether ``cc_mask`` survived the filter (stage 0 always
            does).
        eigval (float): ``λ2`` (normalized-cut cost of the split).
        confidence (float): ``clip(1 - λ2 / λ3, 0, 1)`` (see
            :func:`ncut_confidence`); ~0 for featureless / noise graphs and
            for stages where nothing distinct is left.
        n_corners (int): Grid corners inside ``{x > mean}`` before the
            reversal decision, for the canonical eigenvector sign (corners
            of 1xN / Nx1 grids count twice).
        iou_prev (float): IoU of ``cc_mask`` with the previous stage's
            filtered mask (NaN for stage 0 or when both are empty, see
            :func:`~mmuol.localization.utils.mask_iou_or_nan`).
        solver (str): Eigensolver that ran.
        degree (Tensor): ``(N,)`` float64 node degrees of the stage's graph
            (``edges + (N - edges) * eps``).
    """
    mask: Tensor
    seed: int
    eigvec: Tensor
    eigvals: Tensor
    bipartition: Tensor
    cc_mask: Tensor
    kept: bool
    eigval: float
    confidence: float
    n_corners: int
    iou_prev: float
    solver: str
    degree: Tensor


def maskcut(keys: Tensor,
            grid_hw: Sequence[int],
            num_masks: int = 3,
            tau: float = 0.15,
            eps: float = 1e-5,
            solver: str = 'auto',
            backend: str = 'auto',
            iou_thresh: float = 0.5,
            min_area_ratio: float = 0.01) -> List[MaskCutStage]:
    """MaskCut on the patch keys of one image.

    For stage ``i = 0 .. num_masks - 1``:

    1. (``i >= 1``) Zero the features of every patch covered by an earlier
       kept mask. As in the official code (type promotion by its float64
       "painting" map), stage 0 runs in the keys' dtype and stages ``>= 1``
       in float64.
    2. Binary graph ``A = 1 if cos > tau else eps`` (masked patches get
       ``eps`` to everything, themselves included).
    3. ``x`` = second smallest eigenvector of ``(D - A) x = λ D x``.
    4. ``B = x > mean(x)``; ``seed0 = argmax |x|``; ``nc`` = number of the 4
       grid corners in ``B``. Reverse if ``nc >= 3``, else reverse iff
       ``seed0`` is not in ``B``. Reverse: ``B = ~B``, seed = ``argmax(-x)``;
       otherwise seed = ``argmax(x)``.
    5. Keep the 4-connected component of ``B`` containing the seed.
    6. (``i >= 1``) Drop it (all False) if its IoU with the previous stage's
       (filtered) mask is ``> iou_thresh`` or its area is ``<= min_area_ratio``
       of the grid.
    7. Output = the filtered mask minus all earlier outputs.

    The corner rule is applied before the reversal, so it is not symmetric
    under the eigenvector's sign, which LAPACK leaves arbitrary. We fix the
    sign so that the largest-magnitude entry is positive (``seed0`` always
    lies in ``B``): when ``B`` then holds >= 3 corners, the complement is
    returned. This matches the official output except when the official run
    happened to get the opposite sign on such a graph (golden
    ``three_corner_frame``).

    Differences from the official code: any ``h x w`` grid works (the
    official masking reshapes to a square and fails on non-square grids for
    ``num_masks >= 2``); the eigensolver (see :func:`ncut_bipartition`;
    ``solver='dense'`` runs the official dense scipy call); masks stay at
    patch level (the official upsamples them with nearest interpolation to
    the resized image, e.g. x8 to 480x480: ``mask.repeat_interleave``);
    graphs with all-equal entries (e.g. identical features) give the whole
    remaining grid with confidence 0. On the CPU the stages share one
    similarity product (:class:`~mmuol.localization.ncut.MaskedNCut`): the
    same graphs, bit for bit, at about a third of the cost.

    Args:
        keys (Tensor): ``(N, D)`` last-block keys of the patch tokens (no
            CLS), ``N = h * w`` row-major, any device. The official code
            takes ``(D, N)``: pass ``feats.T``.
        grid_hw (Sequence[int]): ``(h, w)`` patch grid.
        num_masks (int): Number of stages (``N`` in CutLER, 3).
        tau (float): Cosine threshold in ``[-1, 1)`` (0.15 in CutLER's
            pseudo-labels; the ``maskcut.py`` argparse default is 0.2).
        eps (float): Weight of non-edges, in ``(0, 1)`` (1e-5).
        solver (str): ``'auto'``, ``'dense'`` or ``'lanczos'``.
        backend (str): ``'auto'``, ``'scipy'`` or ``'torch'``.
        iou_thresh (float): Filter: max IoU with the previous stage's mask,
            in ``[0, 1]``.
        min_area_ratio (float): Filter: masks with area ``<=`` this fraction
            of the grid are dropped, in ``[0, 1)``.

    Returns:
        list[MaskCutStage]: ``num_masks`` stages in discovery order; the
        pseudo-masks are ``[s.mask for s in stages]``.

    Raises:
        ValueError: For invalid keys or a NaN/inf/out-of-range
            hyper-parameter.
        MemoryError: If the ``N x N`` graph cannot fit in memory (raised
            before allocating; resize the image).
    """
    h, w = grid_hw = check_grid_hw(grid_hw)
    keys = check_keys(keys, grid_hw)
    num_masks = check_int(num_masks, 'num_masks')
    check_graph_params(tau, eps)
    check_real(iou_thresh, 'iou_thresh', 0.0, 1.0)
    check_real(min_area_ratio, 'min_area_ratio', 0.0, 1.0, high_open=True)
    dev = keys.device
    n = h * w
    corners = list(grid_corners(grid_hw))
    painted = torch.zeros(n, dtype=torch.bool, device=dev)
    covered = torch.zeros(n, dtype=torch.bool, device=dev)  # earlier outputs
    prev_mask = None
    stages = []
    # One similarity product for all stages (see MaskedNCut).
    ncut = MaskedNCut(
        keys,
        tau=tau,
        eps=eps,
        channel_major=True,
        solver=solver,
        backend=backend,
        masked_calls=num_masks > 1)
    with ncut:  # gives the graph's memory back for the next image
        for i in range(num_masks):
            # Official: stage 0 in the keys' dtype; later stages zero the painted
            # features, in float64 (type promotion by the float64 painting map).
            cut = ncut() if i == 0 else ncut(painted)
            x, bip = cut.eigvec, cut.bipartition
            seed0 = first_argmax(x.abs())
            n_corners = int(bip[corners].sum())
            if n_corners >= 3 or not bool(bip[seed0]):
                x, bip = -x, ~bip
            seed = first_argmax(x)
            bip_hw = bip.reshape(h, w)
            cc = component_containing(bip_hw, seed).reshape(-1)
            kept, iou_prev = True, math.nan
            stage_mask = cc
            if i >= 1:
                iou_prev = mask_iou_or_nan(prev_mask, cc)
                # Same float64 expression as the official area ratio.
                ratio = float(cc.sum()) / h / w
                if iou_prev > iou_thresh or ratio <= min_area_ratio:
                    kept = False
                    stage_mask = torch.zeros_like(cc)
            prev_mask = stage_mask
            painted |= stage_mask
            out = stage_mask & ~covered
            covered |= out
            stages.append(
                MaskCutStage(
                    mask=out.reshape(h, w),
                    seed=seed,
                    eigvec=x.reshape(h, w),
                    eigvals=cut.eigvals,
                    bipartition=bip_hw,
                    cc_mask=cc.reshape(h, w),
                    kept=kept,
                    eigval=float(cut.eigvals[0]),
                    confidence=ncut_confidence(cut.eigvals),
                    n_corners=n_corners,
                    iou_prev=iou_prev,
                    solver=cut.solver,
                    degree=cut.degree))
    return stages
