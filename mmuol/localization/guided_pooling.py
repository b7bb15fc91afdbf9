# Copyright (c) mmuol contributors. All rights reserved.
"""Correlation-guided pooling of dense features (CLIP-DINOiser) and the
FOUND-like background rule.

CLIP-DINOiser (Wysoczańska et al., ECCV 2024) refines MaskCLIP's noisy patch
features by averaging, for every patch, the features of the patches it
correlates with. The correlations are cosine similarities of either DINO
last-block *value* features ("MaskCLIP + DINO refinement") or of a learned
``3x3`` convolution on CLIP features (CLIP-DINOiser), thresholded at
``gamma``. The pooling is one ``(C, N) x (N, N)`` batched matrix product per
image (``N = h * w``), never a loop over patches.

Everything here is pure torch (no mmdet/mmseg import); the mmseg adapter is
``mmuol.seg.clip_dinoiser.DINOiserHead``. See ``configs/clip_dinoiser/README.md``.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'patch_correlations', 'threshold_correlations', 'guided_pool', 'background_rule', 'POOL_EPS'
]

#: Added to the correlation sums of :func:`guided_pool` (official value).
POOL_EPS = 1e-6


def _flatten_patches(features: Tensor) -> Tensor:
    """``(B, C, h, w)`` or ``(B, C, N)`` -> ``(B, C, N)``."""
    if features.dim() == 4:
        return features.flatten(2)
    if features.dim() == 3:
        return features
    raise ValueError(f'features must be (B, C, h, w) or (B, C, N), got shape '
                     f'{tuple(features.shape)}')


def patch_correlations(features: Tensor, gamma: Optional[float] = None) -> Tensor:
    """Cosine similarities between all patches of each image.

    Args:
        features (Tensor): ``(B, C, h, w)`` patch features, or ``(B, C, N)``
            with the patches row-major over the grid (no CLS token).
        gamma (float, optional): If given, entries ``< gamma`` (negatives
            included) are set to 0, as :func:`threshold_correlations`.

    Returns:
        Tensor: ``(B, N, N)`` with ``corrs[b, n, m] = cos(f_n, f_m)``
        (symmetric, diagonal 1 for non-zero features). ``corrs.view(B, N, h,
        w)`` is the official ``(B, N, h, w)`` layout.
    """
    flat = _flatten_patches(features)
    normed = F.normalize(flat, p=2, dim=1)
    corrs = torch.bmm(normed.transpose(1, 2), normed)
    if gamma is not None:
        corrs = threshold_correlations(corrs, gamma)
    return corrs


def threshold_correlations(corrs: Tensor, gamma: float) -> Tensor:
    """Zero the correlations below ``gamma`` (official ``corrs[corrs < gamma] = 0``).

    Args:
        corrs (Tensor): Correlations of any shape.
        gamma (float): Threshold (0.2 in CLIP-DINOiser); negatives are zeroed
            too for any ``gamma >= 0``.

    Returns:
        Tensor: A new tensor of the same shape.
    """
    return corrs.masked_fill(corrs < gamma, 0.0)


def guided_pool(features: Tensor,
                corrs: Tensor,
                grid_hw: Optional[Sequence[int]] = None,
                eps: float = POOL_EPS) -> Tensor:
    """Correlation-weighted average of patch features.

    ``pooled[:, n] = sum_m corrs[n, m] * f[:, m] / (sum_m corrs[n, m] + eps)``.
    Features on another grid than the correlations are first resized to it
    (bilinear, ``align_corners=False``), as the official
    ``compute_weighted_pool``.

    Args:
        features (Tensor): ``(B, C, h', w')`` features to pool (CLIP-DINOiser:
            the projected MaskCLIP features).
        corrs (Tensor): ``(B, N, N)`` (or official ``(B, N, h, w)``)
            non-negative weights; row ``n`` weighs the patches pooled into
            patch ``n``.
        grid_hw (Sequence[int], optional): ``(h, w)`` grid of ``corrs``
            (``N = h * w``). Required for ``(B, N, N)`` correlations when
            ``features`` is on another grid; defaults to the features' grid.
        eps (float): Added to the weight sums. Defaults to 1e-6.

    Returns:
        Tensor: ``(B, C, h, w)`` pooled features.

    Raises:
        ValueError: Inconsistent shapes (batch, ``N != h * w``).
    """
    if features.dim() != 4:
        raise ValueError(f'features must be (B, C, h, w), got shape {tuple(features.shape)}')
    b, c = features.shape[:2]
    if corrs.dim() == 4:
        grid_hw = tuple(int(s) for s in corrs.shape[-2:])
        corrs = corrs.reshape(corrs.shape[0], corrs.shape[1], -1)
    if corrs.dim() != 3 or corrs.shape[1] != corrs.shape[2]:
        raise ValueError(f'corrs must be (B, N, N) or (B, N, h, w), got shape '
                         f'{tuple(corrs.shape)}')
    if corrs.shape[0] != b:
        raise ValueError(f'features have batch {b} but corrs {corrs.shape[0]}')
    n = corrs.shape[1]
    if grid_hw is None:
        grid_hw = tuple(int(s) for s in features.shape[-2:])
    h, w = (int(s) for s in grid_hw)
    if h * w != n:
        raise ValueError(f'corrs cover N={n} patches but the grid is {h}x{w}; pass grid_hw')
    if tuple(features.shape[-2:]) != (h, w):
        features = F.interpolate(features, size=(h, w), mode='bilinear', align_corners=False)
    corrs = corrs.to(features.dtype)
    # (B, C, N) @ (B, N, N)^T: one batched product instead of a loop over patches.
    pooled = torch.bmm(features.reshape(b, c, n), corrs.transpose(1, 2))
    pooled = pooled / (corrs.sum(dim=2)[:, None, :] + eps)
    return pooled.reshape(b, c, h, w)


def background_rule(probs: Tensor,
                    bkg_logits: Tensor,
                    delta: float = 0.99,
                    background_index: int = 0,
                    fg_threshold: float = 0.5) -> Tensor:
    """CLIP-DINOiser's FOUND-like background rule.

    Wherever the classifier is uncertain (``max_k probs < delta``) and the
    background head says "not an object" (``sigmoid(bkg_logit) <=
    fg_threshold``), the background class gets probability 1.0; the other
    entries are kept (those columns no longer sum to 1, as upstream). The
    official code handles one image and background index 0; this works on
    batches and any background index.

    Args:
        probs (Tensor): ``(B, K, h, w)`` class probabilities.
        bkg_logits (Tensor): ``(B, 1, h', w')`` objectness logits (resized
            bilinearly to ``(h, w)`` if needed).
        delta (float): Certainty threshold. Defaults to 0.99.
        background_index (int): Index of the background class. Defaults to 0.
        fg_threshold (float): Foreground threshold on the sigmoid. Defaults to
            0.5.

    Returns:
        Tensor: ``(B, K, h, w)`` probabilities (a new tensor).
    """
    if probs.dim() != 4 or bkg_logits.dim() != 4 or bkg_logits.shape[1] != 1:
        raise ValueError(f'expected probs (B, K, h, w) and bkg_logits (B, 1, h, w), got '
                         f'{tuple(probs.shape)} and {tuple(bkg_logits.shape)}')
    if bkg_logits.shape[0] != probs.shape[0]:
        raise ValueError(f'probs have batch {probs.shape[0]} but bkg_logits '
                         f'{bkg_logits.shape[0]}')
    k = probs.shape[1]
    if not -k <= background_index < k:
        raise ValueError(f'background_index {background_index} is out of range for {k} classes')
    if tuple(bkg_logits.shape[-2:]) != tuple(probs.shape[-2:]):
        bkg_logits = F.interpolate(
            bkg_logits, size=probs.shape[-2:], mode='bilinear', align_corners=False)
    uncertain = probs.max(dim=1).values < delta
    foreground = bkg_logits[:, 0].sigmoid() > fg_threshold
    out = probs.clone()
    out[:, background_index] = torch.where(uncertain & ~foreground, torch.ones_like(probs[:, 0]),
                                           probs[:, background_index])
    return out
