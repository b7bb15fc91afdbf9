# Copyright (c) mmuol contributors. All rights reserved.
"""FOUND decode head (Siméoni et al., CVPR 2023) for MMSegmentation.

FOUND's "decoder" is a single ``1x1`` convolution from the last-block patch
keys of a frozen DINO ViT ``(B, D, h, w)`` to one foreground logit per patch:
``D + 1`` parameters (385 for ViT-S). The released weights
(``data/weights/decoder_weights.pt`` of valeoai/FOUND, a 2.7 KB file holding
``{"decoder": {"weight": (1, D, 1, 1), "bias": (1,)}}``) load directly through
``init_cfg=dict(type='Pretrained', checkpoint=...)`` or after conversion with
``tools/model_converters/found_decoder_to_mmuol.py``.

The head also works on any backbone's feature map (``in_channels`` from the
config) as a plain binary mmseg head (``out_channels=1``).

Besides the head this module holds FOUND's evaluation post-processing
(:func:`found_single_component`), shared by :class:`FOUNDSegmentor` and the
benchmark script.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from scipy import ndimage
from torch import Tensor

__all__ = [
    'FOUNDHead', 'convert_found_decoder_state_dict', 'load_found_decoder',
    'found_single_component'
]

#: Loss weights of the official recipe (``configs/found_DUTS-TR.yaml``):
#: ``w_bs_loss`` for the bilateral-solver self-loss, 1.0 for the background
#: pseudo-label loss, ``w_self_loss`` for the self-training loss.
FOUND_LOSS_WEIGHTS = dict(bs=1.5, bkg=1.0, self=4.0)


def convert_found_decoder_state_dict(checkpoint: dict,
                                     prefix: str = 'conv_seg.'
                                     ) -> Dict[str, Tensor]:
    """Extract FOUND decoder weights from any supported checkpoint layout.

    Accepted layouts:

    * official FOUND: ``{"decoder": {"weight", "bias"}}``;
    * mmseg / mmengine: ``{"state_dict": {"decode_head.conv_seg.weight",
      ...}}`` (e.g. written by the converter or by training);
    * flat: ``{"conv_seg.weight", ...}``, ``{"decoder.weight", ...}`` or
      ``{"weight", "bias"}``.

    Args:
        checkpoint (dict): The loaded checkpoint.
        prefix (str): Key prefix of the returned dict.

    Returns:
        dict[str, Tensor]: ``{prefix + 'weight': (1, D, 1, 1), prefix +
        'bias': (1,)}``.

    Raises:
        KeyError: If no decoder weights are found.
    """
    if not isinstance(checkpoint, dict):
        raise KeyError(f'expected a dict checkpoint, got {type(checkpoint)}')
    sd = checkpoint
    if isinstance(sd.get('decoder'), dict):
        sd = sd['decoder']
    elif isinstance(sd.get('state_dict'), dict):
        sd = sd['state_dict']
    candidates = ('decode_head.conv_seg.', 'conv_seg.', 'decoder.', '')
    for cand in candidates:
        w, b = sd.get(cand + 'weight'), sd.get(cand + 'bias')
        if isinstance(w, Tensor) and isinstance(b, Tensor):
            return {prefix + 'weight': w, prefix + 'bias': b}
    raise KeyError(
        'no FOUND decoder weights found: expected {"decoder": {"weight", '
        '"bias"}} (official decoder_weights.pt), an mmseg checkpoint with '
        '"decode_head.conv_seg.weight/bias", or flat "weight"/"bias"; got '
        f'keys {sorted(sd)[:10]}')


def load_found_decoder(conv: torch.nn.Conv2d, checkpoint: str) -> None:
    """Load FOUND decoder weights from a file or URL into a 1x1 conv.

    Args:
        conv (nn.Conv2d): ``Conv2d(D, 1, 1)`` to fill.
        checkpoint (str): Path or URL of the checkpoint (any layout accepted
            by :func:`convert_found_decoder_state_dict`).

    Raises:
        FileNotFoundError: A local file that does not exist.
        ValueError: The weights do not fit ``conv`` (wrong channel count).
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'FOUND decoder checkpoint {checkpoint!r} not found. The released '
            'weights are data/weights/decoder_weights.pt in '
            'https://github.com/valeoai/FOUND (2.7 KB).')
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    sd = convert_found_decoder_state_dict(ckpt, prefix='')
    w, b = sd['weight'], sd['bias']
    if tuple(w.shape) != tuple(conv.weight.shape) or \
            tuple(b.shape) != tuple(conv.bias.shape):
        raise ValueError(
            f'FOUND decoder weights in {checkpoint} have shapes weight '
            f'{tuple(w.shape)}, bias {tuple(b.shape)} but the head expects '
            f'{tuple(conv.weight.shape)}, {tuple(conv.bias.shape)}; check '
            '`in_channels` (384 for ViT-S, 768 for ViT-B).')
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(b)


def found_single_component(binary: np.ndarray) -> np.ndarray:
    """FOUND's ``single`` evaluation mode on a binary prediction.

    As ``evaluation/saliency.py`` of the official code: label the 4-connected
    components of the prediction (label 0 = predicted background included),
    order them by pixel count with ``np.argsort`` (same tie-breaking), drop
    the component overlapping the predicted background most (label 0, or
    the smallest entry when there is no background pixel), and keep the
    largest remaining one. An empty prediction is returned unchanged.

    Args:
        binary (np.ndarray): ``(H, W)`` bool / 0-1 prediction.

    Returns:
        np.ndarray: ``(H, W)`` bool mask of the kept component.
    """
    binary = np.asarray(binary) != 0
    labeled, num = ndimage.label(binary)
    if num == 0:
        return binary
    nb_pixel = np.bincount(labeled.ravel(), minlength=num + 1)
    order = np.argsort(nb_pixel)
    # Overlap with the predicted background: only label 0 has any, and
    # argmax of all zeros (no background pixel) picks position 0.
    overlap = np.where(order == 0, nb_pixel[0], 0)
    order = np.delete(order, int(np.argmax(overlap)))
    return labeled == order[-1]


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
        threshold (float): Foreground threshold on the sigmoid. Defaults to
            0.5 (FOUND).
        loss_weights (dict, optional): Weights of the pseudo-label losses
            ``bs`` / ``bkg`` / ``self``. Defaults to FOUND's 1.5 / 1.0 / 4.0.
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
                     type='CrossEntropyLoss', use_sigmoid=True,
                     loss_weight=1.0),
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        for key in ('channels', 'num_classes', 'out_channels',
                    'dropout_ratio'):
            if key in kwargs:
                raise TypeError(f'FOUNDHead fixes `{key}` (one logit from '
                                f'in_channels, no dropout); got {key}='
                                f'{kwargs[key]!r}')
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(f'in_channels must be a positive int, got '
                             f'{in_channels!r}')
        if patch_size is not None and (not isinstance(patch_size, int)
                                       or patch_size <= 0):
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
    def _pretrained_checkpoint(self) -> Optional[str]:
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else \
            [self.init_cfg]
        for cfg in cfgs:
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
                return cfg['checkpoint']
        return None

    def init_weights(self) -> None:
        """Load FOUND decoder weights for a ``Pretrained`` ``init_cfg``.

        mmengine's ``PretrainedInit`` expects a flat state dict; the official
        file nests the weights under ``"decoder"``, so the head loads it.
        """
        checkpoint = self._pretrained_checkpoint()
        if checkpoint is None:
            super().init_weights()
            return
        if self._is_init:
            return
        load_found_decoder(self.conv_seg, checkpoint)
        print_log(f'FOUNDHead: loaded decoder weights from {checkpoint}',
                  logger='current')
        self._is_init = True

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
            raise ValueError(
                f'FOUNDHead(in_channels={self.in_channels}) got features of '
                f'shape {tuple(x.shape)}; expected (B, {self.in_channels}, '
                'h, w)')
        return self.cls_seg(x)

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
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
            seg_logits,
            scale_factor=self.patch_size,
            mode='bilinear',
            align_corners=False)
        if up.shape[-2] < size[0] or up.shape[-1] < size[1]:
            raise ValueError(
                f'logits of {tuple(seg_logits.shape[-2:])} patches x '
                f'{self.patch_size} px do not cover the input {size}; is '
                '`patch_size` the backbone stride?')
        return up[..., :size[0], :size[1]]

    # ------------------------------------------------------------------ #
    # training
    # ------------------------------------------------------------------ #
    def loss_by_pseudo_labels(self, seg_logits: Tensor,
                              targets: Dict[str, Tensor]) -> Dict[str, Tensor]:
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
                raise KeyError(f'unknown pseudo-label {key!r}; expected one '
                               f'of {sorted(self.loss_weights)}')
            if target.shape != logits.shape:
                raise ValueError(f'target {key!r} has shape '
                                 f'{tuple(target.shape)}, logits '
                                 f'{tuple(logits.shape)}')
            losses[f'loss_{key}'] = self.loss_weights[key] * \
                F.binary_cross_entropy_with_logits(
                    logits, target.to(logits.dtype))
        return losses

    @staticmethod
    def num_parameters(module: torch.nn.Module,
                       trainable_only: bool = False) -> int:
        """Number of parameters of a module (385 for the ViT-S head)."""
        params: Sequence[torch.nn.Parameter] = list(module.parameters())
        return sum(p.numel() for p in params
                   if p.requires_grad or not trainable_only)
