# Copyright (c) mmuol contributors. All rights reserved.
"""CLIP-DINOiser training targets and losses (pure torch).

CLIP-DINOiser (Wysoczańska et al., ECCV 2024) trains two light heads on
frozen CLIP features (block 9 ``ln_2`` output for ViT-B/16):

* a ``3x3`` convolution whose patch cosine similarities imitate DINO
  ViT-B/16 value correlations (target: DINO correlations ``>= gamma``);
* a ``1x1`` convolution on L2-normalised features imitating FOUND's
  foreground map (target: FOUND's sigmoid resized to the CLIP grid
  ``> 0.5``).

Both terms are ``BCEWithLogits`` (mean); the predicted correlations, clamped
at 0, are used directly as logits, exactly as the released ``train.py``.

No mmdet/mmseg import happens here; the mmseg side is
``mmuol.seg.clip_dinoiser``. See ``configs/clip_dinoiser/README.md``.
"""
from typing import Dict, Sequence

import torch.nn.functional as F
from torch import Tensor

from .guided_pooling import patch_correlations

__all__ = ['dino_correlation_target', 'found_background_target', 'clip_dinoiser_losses']


def dino_correlation_target(value_features: Tensor, gamma: float = 0.2) -> Tensor:
    """Binary correlation target from DINO value features.

    Args:
        value_features (Tensor): ``(B, C, h, w)`` or ``(B, C, N)`` DINO
            last-block value features of the patches (heads concatenated, no
            CLS).
        gamma (float): Correlation threshold. Defaults to 0.2.

    Returns:
        Tensor: ``(B, N, N)`` float, 1 where ``cos >= gamma`` (and > 0).
    """
    corrs = patch_correlations(value_features, gamma=gamma)
    return (corrs > 0).to(corrs.dtype)


def found_background_target(found_logits: Tensor,
                            grid_hw: Sequence[int],
                            antialias: bool = True,
                            threshold: float = 0.5) -> Tensor:
    """Binary objectness target from FOUND's logits.

    ``sigmoid`` -> bilinear resize to the CLIP grid -> ``> threshold``. The
    resize matches ``torchvision.transforms.functional.resize`` of the
    official code: with ``antialias=True`` (torchvision >= 0.17 default, and
    ours) or without (torchvision 0.13.1, the environment the released
    checkpoint was trained in); the two give different targets when FOUND's
    map is downsampled (ViT-S/8 -> ``H/8``, CLIP ``H/16``).

    Args:
        found_logits (Tensor): ``(B, 1, H', W')`` FOUND logits.
        grid_hw (Sequence[int]): Target grid ``(h, w)``.
        antialias (bool): Antialiased downsampling. Defaults to True.
        threshold (float): Foreground threshold. Defaults to 0.5.

    Returns:
        Tensor: ``(B, 1, h, w)`` float 0/1 target (1 = object).
    """
    if found_logits.dim() != 4 or found_logits.shape[1] != 1:
        raise ValueError(f'found_logits must be (B, 1, H, W), got {tuple(found_logits.shape)}')
    soft = F.interpolate(
        found_logits.float().sigmoid(),
        size=tuple(int(s) for s in grid_hw),
        mode='bilinear',
        align_corners=False,
        antialias=antialias)
    return (soft > threshold).float()


def clip_dinoiser_losses(pred_corrs: Tensor, bkg_logits: Tensor, corr_target: Tensor,
                         bkg_target: Tensor) -> Dict[str, Tensor]:
    """The two BCE-with-logits terms of CLIP-DINOiser's training.

    Args:
        pred_corrs (Tensor): ``(B, N, N)`` raw cosine correlations of the
            correlation head (negatives are clamped to 0 here, then used as
            logits).
        bkg_logits (Tensor): ``(B, 1, h, w)`` background-head logits.
        corr_target (Tensor): ``(B, N, N)`` 0/1
            (:func:`dino_correlation_target`).
        bkg_target (Tensor): ``(B, 1, h, w)`` 0/1
            (:func:`found_background_target`).

    Returns:
        dict[str, Tensor]: ``loss_corr`` and ``loss_bkg`` (means over all
        entries).
    """
    if pred_corrs.shape != corr_target.shape:
        raise ValueError(f'pred_corrs {tuple(pred_corrs.shape)} and corr_target '
                         f'{tuple(corr_target.shape)} differ')
    if bkg_logits.shape != bkg_target.shape:
        raise ValueError(f'bkg_logits {tuple(bkg_logits.shape)} and bkg_target '
                         f'{tuple(bkg_target.shape)} differ')
    logits = pred_corrs.clamp(min=0)
    return dict(
        loss_corr=F.binary_cross_entropy_with_logits(logits, corr_target.to(logits.dtype)),
        loss_bkg=F.binary_cross_entropy_with_logits(bkg_logits, bkg_target.to(bkg_logits.dtype)))
