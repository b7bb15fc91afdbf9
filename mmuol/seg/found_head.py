# Copyright (c) mmuol contributors. All rights reserved.
"""FOUND decode head (Siméoni et al., CVPR 2023) for MMSegmentation.

FOUND's "decoder" is a single ``1x1`` convolution from the last-block patch
keys of a frozen DINO ViT ``(B, D, h, w)`` to one foreground logit per patch:
``D + 1`` parameters (385 for ViT-S). The released weights
(``data/weights/decoder_weights.pt`` of valeoai/FOUND, a 2.7 KB file holding
``{"decoder": {"weight": (1, D, 1, 1), "bias": (1,)}}``) load directly through
``init_cfg=dict(type='Pretrained', checkpoint=...)`` or after conversion with
``tools/model_converters/found_decoder_to_mmuol.py``.

Reading the weights (:func:`~mmuol.localization.load_found_decoder`), the
forward (:func:`~mmuol.localization.found_decoder_logits`) and the
post-processing (:func:`~mmuol.localization.found_foreground`) are the
host-free core shared with the mmdet adapter; this module adds the mmseg
head, its upsampling and FOUND's pseudo-label losses.

The head also works on any backbone's feature map (``in_channels`` from the
config) as a plain binary mmseg head (``out_channels=1``).
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor

from mmuol.localization import found_decoder_logits, load_found_decoder
from .utils import pretrained_checkpoint

__all__ = ['FOUNDHead', 'FOUND_LOSS_WEIGHTS']

#: Default pseudo-label loss weights (the single place they are defined): FOUND's
#: ``w_bs_loss`` for the bilateral-solver self-loss, 1.0 for the background
#: pseudo-label loss, ``w_self_loss`` for the self-training loss. The training
#: config states the recipe explicitly.
FOUND_LOSS_WEIGHTS = dict(bs=1.5, bkg=1.0, self=4.0)


@MODELS.register_module()
class FOUNDHead(BaseDecodeHead):
    """FOUND's 1x1-convolution foreground head.

    ``forward`` maps ``(B, D, h, w)`` features (FOUND: last-block patch keys
    of a DINO ViT, no CLS token, not normalised) to ``(B, 1, h, w)`` logits
    with ``conv_seg = nn.Conv2d(D, 1, 1)`` (``D + 1`` parameters, no dropout,
    no other layer). ``predict_by_feat`` upsamples the logits by
    ``patch_size`` (bilinear, ``align_corners=False``, as the official
    evaluation) instead of resizing them to the padded input, which is the
    same only when the input is a multiple of the patch size.

    Training losses (:meth:`loss_by_pseudo_labels`) are binary cross-entropy
    terms against pseudo-labels computed by :class:`FOUNDSegmentor`; the
    ordinary mmseg ``loss`` (ground-truth ``gt_sem_seg`` with labels 0/1 and
    ``loss_decode``) is kept for supervised use on other backbones.

    Args:
        in_channels (int): Feature channels ``D`` (384 for ViT-S).
        patch_size (int, optional): Feature stride; logits are upsampled by
            this factor at inference. ``None`` resizes to the padded input
            shape like other mmseg heads. Defaults to 8.
        threshold (float): Foreground threshold on the sigmoid, used by
            :class:`FOUNDSegmentor` for inference and for the training
            pseudo-labels. Defaults to 0.5 (FOUND).
        loss_weights (dict, optional): Weights of the pseudo-label losses
            ``bs`` / ``bkg`` / ``self``; missing keys take
            :data:`FOUND_LOSS_WEIGHTS` (FOUND's 1.5 / 1.0 / 4.0).
        loss_decode (dict): mmseg loss for the supervised ``loss`` path.
            Defaults to sigmoid cross-entropy.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint='decoder_weights.pt')`` loads official FOUND weights
            (or a converted / trained mmseg checkpoint). ``None`` keeps
            PyTorch's default initialisation, as the official training does.
        **kwargs: Other :class:`BaseDecodeHead` arguments (``in_index``,
            ``align_corners``, ...).
    """

    def __init__(self,
                 in_channels: int = 384,
                 patch_size: Optional[int] = 8,
                 threshold: float = 0.5,
                 loss_weights: Optional[Dict[str, float]] = None,
                 loss_decode: dict = dict(
                     type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        for key in ('channels', 'num_classes', 'out_channels', 'dropout_ratio'):
            if key in kwargs:
                raise TypeError(f'FOUNDHead fixes `{key}` (one logit from '
                                f'in_channels, no dropout); got {key}='
                                f'{kwargs[key]!r}')
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(f'in_channels must be a positive int, got '
                             f'{in_channels!r}')
        if patch_size is not None and (not isinstance(patch_size, int) or patch_size <= 0):
            raise ValueError(f'patch_size must be a positive int or None, '
                             f'got {patch_size!r}')
        super().__init__(
            in_channels=in_channels,
            channels=in_channels,
            num_classes=2,
            out_channels=1,
            threshold=threshold,
            dropout_ratio=0.0,
            loss_decode=loss_decode,
            init_cfg=init_cfg,
            **kwargs)
        self.patch_size = patch_size
        weights = dict(FOUND_LOSS_WEIGHTS)
        if loss_weights is not None:
            unknown = set(loss_weights) - set(weights)
            if unknown:
                raise KeyError(f'unknown loss_weights keys {sorted(unknown)}; '
                               f'expected a subset of {sorted(weights)}')
            weights.update(loss_weights)
        self.loss_weights = weights

    # ------------------------------------------------------------------ #
    # weights
    # ------------------------------------------------------------------ #
    def init_weights(self) -> None:
        """Load FOUND decoder weights for a ``Pretrained`` ``init_cfg``.

        mmengine's ``PretrainedInit`` expects a flat state dict; the official
        file nests the weights under ``"decoder"``, so the head reads it with
        :func:`~mmuol.localization.load_found_decoder` (any layout it knows).

        Raises:
            FileNotFoundError: The checkpoint file does not exist.
            ValueError: The weights do not fit ``in_channels``.
        """
        checkpoint = pretrained_checkpoint(self.init_cfg, 'FOUNDHead',
                                           'checkpoints/found/decoder_weights.pt')
        if checkpoint is None:
            super().init_weights()
            return
        if self.is_init:
            return
        weights = load_found_decoder(checkpoint)
        conv = self.conv_seg
        if weights['weight'].shape != conv.weight.shape:
            raise ValueError(
                f'FOUND decoder weights in {checkpoint} have shape '
                f'{tuple(weights["weight"].shape)} but FOUNDHead(in_channels={self.in_channels}) '
                f'expects {tuple(conv.weight.shape)}; set `in_channels` to the backbone width '
                '(384 for ViT-S, 768 for ViT-B).')
        with torch.no_grad():
            conv.weight.copy_(weights['weight'])
            conv.bias.copy_(weights['bias'])
        print_log(f'FOUNDHead: loaded decoder weights from {checkpoint}', logger='current')
        self.is_init = True

    # ------------------------------------------------------------------ #
    # forward / inference
    # ------------------------------------------------------------------ #
    def forward(self, inputs) -> Tensor:
        """Per-patch foreground logits.

        Args:
            inputs (Tensor | Sequence[Tensor]): ``(B, D, h, w)`` features or
                the backbone's multi-level outputs (``in_index`` selects).

        Returns:
            Tensor: ``(B, 1, h, w)`` logits.
        """
        if isinstance(inputs, Tensor):
            inputs = [inputs]
        x = self._transform_inputs(inputs)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'FOUNDHead(in_channels={self.in_channels}) got features of shape '
                             f'{tuple(x.shape)}; expected (B, {self.in_channels}, h, w)')
        return found_decoder_logits(x, self.conv_seg.weight, self.conv_seg.bias)

    def predict_by_feat(self, seg_logits: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Upsample patch logits to the (padded) input resolution.

        With ``patch_size`` set: ``F.interpolate(scale_factor=patch_size,
        mode='bilinear', align_corners=False)`` (the official evaluation),
        cropped to the padded input shape; the segmentor then removes the
        padding (``[..., :H, :W]``).

        Args:
            seg_logits (Tensor): ``(B, 1, h, w)`` logits.
            batch_img_metas (list[dict]): Image metas (``pad_shape`` or
                ``img_shape``).

        Returns:
            Tensor: ``(B, 1, H_pad, W_pad)`` logits.
        """
        if self.patch_size is None:
            return super().predict_by_feat(seg_logits, batch_img_metas)
        meta = batch_img_metas[0]
        size = meta.get('pad_shape') or meta['img_shape']
        size = tuple(int(s) for s in size[:2])
        up = F.interpolate(
            seg_logits, scale_factor=self.patch_size, mode='bilinear', align_corners=False)
        if up.shape[-2] < size[0] or up.shape[-1] < size[1]:
            raise ValueError(f'logits of {tuple(seg_logits.shape[-2:])} patches x '
                             f'{self.patch_size} px do not cover the input {size}; is '
                             '`patch_size` the backbone stride?')
        return up[..., :size[0], :size[1]]

    # ------------------------------------------------------------------ #
    # training
    # ------------------------------------------------------------------ #
    def loss_by_pseudo_labels(self, seg_logits: Tensor, targets: Dict[str, Tensor]) -> dict:
        """FOUND's weighted BCE losses against pseudo-labels.

        Each term is ``weight * BCEWithLogits(logits, target)`` averaged over
        all patches of the batch (``nn.BCEWithLogitsLoss()`` on the flattened
        maps in the official code).

        Args:
            seg_logits (Tensor): ``(B, 1, h, w)`` logits.
            targets (dict[str, Tensor]): ``(B, h, w)`` 0/1 targets keyed by
                ``'bs'`` (refined own prediction), ``'bkg'`` (refined coarse
                background complement) and/or ``'self'`` (own binarised
                prediction).

        Returns:
            dict[str, Tensor]: ``loss_<key>`` per target.
        """
        logits = seg_logits[:, 0]
        losses = {}
        for key, target in targets.items():
            if key not in self.loss_weights:
                raise KeyError(f'unknown pseudo-label {key!r}; expected one of '
                               f'{sorted(self.loss_weights)}')
            if target.shape != logits.shape:
                raise ValueError(f'target {key!r} has shape {tuple(target.shape)}, logits '
                                 f'{tuple(logits.shape)}')
            bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
            losses[f'loss_{key}'] = self.loss_weights[key] * bce
        return losses

    @staticmethod
    def num_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
        """Number of parameters of a module (385 for the ViT-S head)."""
        params: Sequence[torch.nn.Parameter] = list(module.parameters())
        return sum(p.numel() for p in params if p.requires_grad or not trainable_only)
