# Copyright (c) mmuol contributors. All rights reserved.
"""DINO-seg: LOST's attention-map baseline (``object_discovery.dino_seg``).

Re-implemented from the LOST paper (Siméoni et al., BMVC 2021, the "DINO-seg"
baseline) and the behaviour of the official ``object_discovery.dino_seg``
(valeoai/LOST) recorded in ``tests/data/golden/found_lost_tokencut/SPEC.md``;
checked against golden vectors produced with the official code. Method notes:
``configs/dinoseg/README.md``.
"""
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from .utils import check_cls_attn, check_grid_hw, check_int, check_real, connected_components

__all__ = ['DinoSegResult', 'dino_seg']


class DinoSegResult(NamedTuple):
    """Result of :func:`dino_seg` (tensors on the input device).

    Attributes:
        mask (Tensor): ``(h, w)`` bool, ``labels == component``. Its box in
            LOST is **not** clipped: ``mask_to_box(mask, ps, None)``.
        seed (int): Flat index of the most attended patch of ``head`` (first
            on ties). DINO-seg itself has no seed; this is informative only
            and, with ``official_quirks=True``, may lie outside ``mask``.
        th_attn (Tensor): ``(nh, h, w)`` bool, per head the patches holding
            the top ``keep`` fraction of the attention mass.
        labels (Tensor): ``(h, w)`` int32 4-connected labels of
            ``th_attn[head]``.
        component (int): Selected label (0 = the background, see the quirks).
    """
    mask: Tensor
    seed: int
    th_attn: Tensor
    labels: Tensor
    component: int


def dino_seg(cls_attn: Tensor,
             grid_hw: Sequence[int],
             head: int = 4,
             keep: float = 0.6,
             official_quirks: bool = True) -> DinoSegResult:
    """DINO-seg baseline: biggest blob of one head's thresholded attention.

    Per head, the patch attentions are sorted ascending (stable sort),
    divided by their sum and accumulated; patches whose cumulative mass is
    ``> 1 - keep`` are kept (the top ``keep`` fraction of the mass) ->
    ``th_attn``. ``th_attn[head]`` is labelled (4-connectivity) and one
    component is selected.

    Official component selection (``official_quirks=True``, reproduces LOST's
    boxes): sizes are computed for labels ``0 .. max_label - 1`` only (the
    last label is never a candidate) and the argmax is taken over labels
    ``1 .. max_label - 1``; when the list has a single entry (one foreground
    component) label **0, the background**, is selected.
    ``official_quirks=False`` selects the truly largest foreground component
    (ties -> lowest label).

    Args:
        cls_attn (Tensor): ``(num_heads, N)`` last-block CLS->patch attention
            (no CLS column), ``N = h * w`` row-major.
        grid_hw (Sequence[int]): ``(h, w)`` patch grid.
        head (int): Head whose attention is used (4 in LOST's CLI).
        keep (float): Fraction of the attention mass kept (0.6).
        official_quirks (bool): Reproduce the official component selection.

    Returns:
        DinoSegResult: fields ``mask, seed, th_attn, labels, component``.
    """
    h, w = grid_hw = check_grid_hw(grid_hw)
    att = check_cls_attn(cls_attn, grid_hw)
    nh = att.shape[0]
    head = check_int(head, 'head', 0, nh)
    keep = check_real(
        keep,
        'keep',
        0.0,
        1.0,
        low_open=True,
        hint='it is the fraction of the attention mass kept (LOST: 0.6)')
    val, idx = torch.sort(att, dim=1, stable=True)
    val = val / val.sum(dim=1, keepdim=True)
    kept_sorted = torch.cumsum(val, dim=1) > (1 - keep)
    th = torch.zeros_like(kept_sorted).scatter_(1, idx, kept_sorted)
    th_attn = th.reshape(nh, h, w)
    labels, num = connected_components(th_attn[head])
    lab = labels.reshape(-1).cpu().numpy()
    if official_quirks:
        sizes = np.bincount(lab, minlength=num + 1)[:num]  # labels 0..max-1
        component = int(np.argmax(sizes[1:]) + 1) if len(sizes) > 1 else 0
    elif num > 0:
        component = int(np.bincount(lab[lab > 0]).argmax())
    else:
        component = 0
    if official_quirks or num > 0:
        mask = labels == component
    else:
        mask = torch.zeros((h, w), dtype=torch.bool, device=att.device)
    seed = int(np.argmax(att[head].cpu().numpy()))
    return DinoSegResult(mask=mask, seed=seed, th_attn=th_attn, labels=labels, component=component)
