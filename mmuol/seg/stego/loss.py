# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO's correspondence loss as an mmseg ``MODELS`` component."""
import inspect
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from mmuol.localization.stego import stego_correspondence_loss

__all__ = ['STEGOCorrespondenceLoss', 'LOSS_DEFAULTS']

#: Arguments of ``stego_correspondence_loss`` that come with each call.
_PER_CALL = ('feats', 'feats_pos', 'code', 'code_pos', 'coords1', 'coords2', 'perms', 'generator')
#: The loss settings and their defaults, read from the core function's
#: signature (its defaults are the "IAROA vit small" block of STEGO's
#: ``train_config.yml``), so that they are stated once.
LOSS_DEFAULTS: Dict[str, Any] = {
    name: param.default
    for name, param in inspect.signature(stego_correspondence_loss).parameters.items()
    if name not in _PER_CALL
}


@MODELS.register_module()
class STEGOCorrespondenceLoss(nn.Module):
    """Feature-correspondence distillation loss of STEGO.

    A thin wrapper of :func:`mmuol.localization.stego.stego_correspondence_loss`
    holding the settings of one ``train_config.yml`` block (unset ones take
    that function's defaults, :data:`LOSS_DEFAULTS`; the STEGO configs set
    the per-dataset blocks, see ``configs/stego/README.md``).

    The returned dict holds the three weighted terms, so that their sum
    (what mmengine optimises) is STEGO's ``correspondence_weight * (w_inter *
    pos_inter + w_intra * pos_intra + w_neg * neg_inter)``, plus the mean code
    correlations for logging.

    Random points and negative partners use the torch RNG (seeded by the
    runner), ``generator`` when set, or the tensors passed to
    :meth:`forward` (tests replay the official draws that way).

    Args:
        loss_weight (float): STEGO's ``correspondence_weight`` (1).
        seed (int, optional): Seed a private CPU generator (reproducible
            draws independent of the global RNG).
        **settings: Keyword arguments of ``stego_correspondence_loss``:
            ``feature_samples`` (``S``, points per side), ``neg_samples``
            (negative draws per image), ``pos_intra_shift``,
            ``pos_inter_shift``, ``neg_inter_shift``, ``pos_intra_weight``,
            ``pos_inter_weight``, ``neg_inter_weight``, ``pointwise``,
            ``zero_clamp`` and ``stabilize``.

    Raises:
        TypeError: An unknown setting.
        ValueError: ``feature_samples < 1`` or ``neg_samples < 0``.
    """

    def __init__(self, loss_weight: float = 1.0, seed: Optional[int] = None, **settings) -> None:
        super().__init__()
        unknown = sorted(set(settings) - set(LOSS_DEFAULTS))
        if unknown:
            raise TypeError(f'STEGOCorrespondenceLoss: unknown settings {unknown}; accepted: '
                            f'{sorted(LOSS_DEFAULTS)}')
        self.settings = dict(LOSS_DEFAULTS, **settings)
        samples, negatives = self.settings['feature_samples'], self.settings['neg_samples']
        if samples < 1 or negatives < 0:
            raise ValueError(f'feature_samples must be >= 1 and neg_samples >= 0, got '
                             f'{samples}, {negatives}')
        self.loss_weight = loss_weight
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def forward(self,
                feats: Tensor,
                feats_pos: Tensor,
                code: Tensor,
                code_pos: Tensor,
                coords1: Optional[Tensor] = None,
                coords2: Optional[Tensor] = None,
                perms: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Loss terms of a batch.

        Args:
            feats (Tensor): ``(B, C, H, W)`` features of the images.
            feats_pos (Tensor): ``(B, C, H, W)`` features of their partners.
            code (Tensor): ``(B, D, H, W)`` code of the images.
            code_pos (Tensor): ``(B, D, H, W)`` code of the partners.
            coords1 (Tensor, optional): ``(B, S, S, 2)`` injected points.
            coords2 (Tensor, optional): ``(B, S, S, 2)`` injected points.
            perms (Tensor, optional): ``(neg_samples, B)`` injected negatives.

        Returns:
            dict[str, Tensor]: ``loss_corr_intra``, ``loss_corr_inter``,
            ``loss_corr_neg`` (weighted) and ``cd_intra``, ``cd_inter``,
            ``cd_neg`` (detached mean code correlations).
        """
        res = stego_correspondence_loss(
            feats,
            feats_pos,
            code,
            code_pos,
            coords1=coords1,
            coords2=coords2,
            perms=perms,
            generator=self.generator,
            **self.settings)
        w, s = self.loss_weight, self.settings
        return dict(
            loss_corr_intra=w * s['pos_intra_weight'] * res.pos_intra,
            loss_corr_inter=w * s['pos_inter_weight'] * res.pos_inter,
            loss_corr_neg=w * s['neg_inter_weight'] * res.neg_inter,
            cd_intra=res.pos_intra_cd.detach().mean(),
            cd_inter=res.pos_inter_cd.detach().mean(),
            cd_neg=res.neg_inter_cd.detach().mean()
            if res.neg_inter_cd.numel() else res.total.new_zeros(()))

    def extra_repr(self) -> str:
        return ', '.join(f'{k}={v}' for k, v in self.settings.items())
