# Copyright (c) mmuol contributors. All rights reserved.
"""FOUND stage 1 (Siméoni et al., CVPR 2023): coarse background mask.

Re-implemented from the description of the official
``bkg_seg.compute_img_bkg_seg`` (valeoai/FOUND) in
``docs/found_lost_tokencut.md`` §4; checked against golden vectors produced
with the official code.
"""
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .utils import check_cls_attn, check_grid_hw, check_keys

__all__ = ['FoundBackgroundResult', 'found_background']


class FoundBackgroundResult(NamedTuple):
    """Result of :func:`found_background` (tensors on the input device).

    Attributes:
        mask (Tensor): ``(h, w)`` bool **background** mask (True =
            background), ``cos(seed, ·) > tau``.
        seed (int): Flat index of the background seed (the least attended
            patch, first on ties).
        object_mask (Tensor): ``(h, w)`` bool, ``~mask``: FOUND's object
            pseudo-mask.
        threshold (Tensor): ``()`` mean CLS attention over heads and patches.
        Q (Tensor): ``(nh,)`` fraction of patches above ``threshold`` per
            head.
        beta (Tensor): ``(nh,)`` head weights
            ``log(Σ_h (Q_h + 1e-10) / (Q_h + 1e-10))`` (sparse heads weigh
            more).
        weighted_att_sum (Tensor): ``(N,)`` ``Σ_h beta_h att_h`` (plain
            ``Σ_h att_h`` without head weights).
        cos_row (Tensor): ``(N,)`` cosine similarity of every patch to the
            seed in the (head-weighted) key space.
    """
    mask: Tensor
    seed: int
    object_mask: Tensor
    threshold: Tensor
    Q: Tensor
    beta: Tensor
    weighted_att_sum: Tensor
    cos_row: Tensor


def found_background(cls_attn: Tensor,
                     keys: Tensor,
                     grid_hw: Sequence[int],
                     tau: float = 0.3,
                     head_weights: bool = True) -> FoundBackgroundResult:
    """FOUND's coarse background mask for one image.

    1. ``threshold = mean(cls_attn)``; ``Q_h`` = fraction of patches of head
       ``h`` above it; ``beta_h = log(Σ_h' (Q_h' + 1e-10) / (Q_h + 1e-10))``.
    2. Keys split per head (head-major, ``dh = D // num_heads``), multiplied
       by ``beta_h`` (if ``head_weights``), concatenated, L2-normalised.
    3. Background seed ``= argmin_i Σ_h beta_h att_h(i)`` (``Σ_h att_h(i)``
       when ``head_weights`` is False, as in the official code).
    4. ``mask = cos(seed, ·) > tau`` (True = background).

    Only the seed's row of the cosine matrix is needed, so the cost is
    O(N·D) instead of the official O(N²·D).

    Args:
        cls_attn (Tensor): ``(num_heads, N)`` last-block attention of the CLS
            query to the patch tokens (no CLS column).
        keys (Tensor): ``(N, D)`` last-block keys of the patch tokens (no
            CLS), head-major, ``D`` divisible by ``num_heads``.
        grid_hw (Sequence[int]): ``(h, w)`` patch grid, ``N = h * w``.
        tau (float): Background similarity threshold (``found.bkg_th`` 0.3).
        head_weights (bool): Weight the heads by ``beta`` (the official
            ``apply_weights``).

    Returns:
        FoundBackgroundResult: fields ``mask, seed, object_mask, threshold,
        Q, beta, weighted_att_sum, cos_row``.
    """
    h, w = grid_hw = check_grid_hw(grid_hw)
    att = check_cls_attn(cls_attn, grid_hw)
    keys = check_keys(keys, grid_hw)
    if att.device != keys.device:
        raise ValueError(f'cls_attn is on {att.device} but keys on '
                         f'{keys.device}')
    nh = att.shape[0]
    n, d = keys.shape
    if d % nh != 0:
        raise ValueError(f'keys dim D={d} is not divisible by the number of '
                         f'heads {nh} (cls_attn.shape[0])')
    threshold = att.mean()
    q_frac = (att > threshold).to(att.dtype).mean(dim=1)
    q_eps = q_frac + 1e-10
    beta = torch.log(q_eps.sum() / q_eps)
    # Official: the head weights enter the seed choice only when they are
    # applied to the keys too (apply_weights); otherwise a plain head sum.
    if head_weights:
        weighted_att_sum = (beta[:, None] * att).sum(dim=0)
    else:
        weighted_att_sum = att.sum(dim=0)
    # torch.argmin returns the first minimal index on ties.
    seed = int(torch.argmin(weighted_att_sum))
    feats = keys
    if head_weights:
        feats = (keys.reshape(n, nh, d // nh) *
                 beta.to(keys.dtype)[None, :, None]).reshape(n, d)
    feats = F.normalize(feats, p=2, dim=1)
    cos_row = feats @ feats[seed]
    mask = (cos_row > tau).reshape(h, w)
    return FoundBackgroundResult(
        mask=mask,
        seed=seed,
        object_mask=~mask,
        threshold=threshold,
        Q=q_frac,
        beta=beta,
        weighted_att_sum=weighted_att_sum,
        cos_row=cos_row)
