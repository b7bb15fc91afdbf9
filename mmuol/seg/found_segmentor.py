# Copyright (c) mmuol contributors. All rights reserved.
"""FOUND as an MMSegmentation segmentor: keys in, saliency out, pseudo-labels
computed on the fly.

:class:`FOUNDSegmentor` is an :class:`~mmseg.models.EncoderDecoder` whose
``extract_feat`` returns the **last-block patch keys** of a frozen DINO ViT
(:class:`~mmuol.models.backbones.DINOViT`) as a ``(B, D, h, w)`` map, which is
what FOUND's head consumes (``DINOViT.forward`` returns normed tokens
instead).

Training reproduces ``main_found_train.py`` of valeoai/FOUND; every target is
computed from the frozen backbone in the same forward pass (no label files):

* ``preds_mask = sigmoid(logits) > 0.5`` (detached);
* ``loss_bs = 1.5 * BCE(logits, BS(preds_mask))`` at every step;
* for ``iter < stop_bkg_loss`` (100): ``loss_bkg = BCE(logits,
  BS(~found_background(...).mask))``;
* afterwards: ``loss_self = 4.0 * BCE(logits, preds_mask)``.

``BS`` is FOUND's gated bilateral-solver refinement
(:func:`~mmuol.localization.bilateral_solver.batch_bilateral_solver`): the
``h x w`` mask is ``cv2.resize``-d (bilinear) to the crop, refined against the
un-normalised crop converted to ``uint8`` with a truncating cast (as
``ToPILImage`` does), kept only if ``IoU > 0.5``, then resized back with
``F.interpolate(bilinear, align_corners=False)`` and every non-zero value
becomes 1.

The training step used for the 100-step switch is the runner's iteration from
mmengine's ``MessageHub`` (``'iter'``, set by ``RuntimeInfoHook`` before every
iteration, restored on resume). Outside a runner's training loop (unit tests,
custom loops) the segmentor counts its own ``loss`` calls instead.

Inference reproduces ``evaluation/saliency.py``: zero padding to a multiple
of the patch size, logits upsampled ``x patch`` (bilinear, align_corners
False), cropped to the image, sigmoid; ``saliency_mode='single'`` keeps the
largest non-background component of the 0.5-binarised map, ``'multi'`` keeps
the soft map; ``bilateral_solver=True`` refines the binarised map against the
image (``get_all_cc`` in ``multi`` mode, IoU gate 0.5).
"""
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.logging import MessageHub
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList, add_prefix
from torch import Tensor

from mmuol.localization import found_background
from mmuol.localization.bilateral_solver import batch_bilateral_solver
from .found_head import found_single_component

__all__ = ['FOUNDSegmentor']

#: Defaults of the official training recipe (``configs/found_DUTS-TR.yaml``).
DEFAULT_TRAIN_CFG = dict(
    bkg_tau=0.3,  # found.bkg_th
    bkg_head_weights=True,  # apply_weights
    stop_bkg_loss=100,  # training.stop_bkg_loss
    bilateral_solver=dict(
        sigma_spatial=16, sigma_luma=16, sigma_chroma=8, iou_gate=0.5))

#: Defaults of the official saliency evaluation.
DEFAULT_TEST_CFG = dict(
    mode='whole',
    saliency_mode='single',
    bilateral_solver=False,
    bilateral_solver_cfg=dict(
        sigma_spatial=16, sigma_luma=16, sigma_chroma=8, iou_gate=0.5))

_FEATURES = ('q', 'k', 'v')

#: FOUND's ``NORMALIZE`` (0-1 scale), used to replay its training crops'
#: float32 un-normalisation for the bilateral solver.
_FOUND_MEAN = (0.485, 0.456, 0.406)
_FOUND_STD = (0.229, 0.224, 0.225)


def _merge(default: dict, cfg: Optional[dict]) -> ConfigDict:
    out = ConfigDict(default)
    if cfg:
        for key, value in dict(cfg).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                sub = dict(out[key])
                sub.update(value)
                value = sub
            out[key] = value
    return out


@MODELS.register_module()
class FOUNDSegmentor(EncoderDecoder):
    """FOUND: a frozen DINO ViT + a 1x1-conv head on its last-block keys.

    Args:
        backbone (dict): A ViT exposing ``forward_last_block`` (``DINOViT``).
        decode_head (dict): Usually ``FOUNDHead``.
        feature (str): Which last-block features feed the head and the
            training-time background discovery: ``'k'`` (FOUND's
            ``found.feats``), ``'q'`` or ``'v'``. Defaults to ``'k'``.
        train_cfg (dict, optional): ``bkg_tau`` (0.3), ``bkg_head_weights``
            (True), ``stop_bkg_loss`` (100 steps),
            ``bilateral_solver=dict(sigma_spatial=16, sigma_luma=16,
            sigma_chroma=8, iou_gate=0.5)``.
        test_cfg (dict, optional): ``mode='whole'``,
            ``saliency_mode='single' | 'multi'``, ``bilateral_solver``
            (False) and ``bilateral_solver_cfg`` (same keys as above).
        data_preprocessor (dict, optional): ``SegDataPreProcessor`` with
            ImageNet mean/std, ``bgr_to_rgb=True``, ``pad_val=0``.
        neck, auxiliary_head, pretrained, init_cfg: As
            :class:`~mmseg.models.EncoderDecoder` (a neck is not supported).
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 feature: str = 'k',
                 neck: Optional[dict] = None,
                 auxiliary_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if neck is not None or auxiliary_head is not None:
            raise ValueError('FOUNDSegmentor takes no neck / auxiliary_head: '
                             'the head reads the last-block keys directly')
        if feature not in _FEATURES:
            raise ValueError(f'feature must be one of {_FEATURES}, got '
                             f'{feature!r}')
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            train_cfg=_merge(DEFAULT_TRAIN_CFG, train_cfg),
            test_cfg=_merge(DEFAULT_TEST_CFG, test_cfg),
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        if not hasattr(self.backbone, 'forward_last_block'):
            raise TypeError(
                f'{type(self.backbone).__name__} has no forward_last_block(); '
                'FOUNDSegmentor needs a DINOViT-like backbone. For another '
                "backbone's feature maps use type='EncoderDecoder' with "
                'FOUNDHead.')
        if self.test_cfg.saliency_mode not in ('single', 'multi'):
            raise ValueError("test_cfg.saliency_mode must be 'single' or "
                             f"'multi', got {self.test_cfg.saliency_mode!r}")
        self.feature = feature
        self.patch_size = int(self.backbone.patch_size)
        head_ps = getattr(self.decode_head, 'patch_size', None)
        if head_ps is not None and head_ps != self.patch_size:
            raise ValueError(f'decode_head.patch_size={head_ps} differs from '
                             f'the backbone patch size {self.patch_size}')
        self._num_loss_calls = 0

    # ------------------------------------------------------------------ #
    # features
    # ------------------------------------------------------------------ #
    def _pad_to_patch(self, inputs: Tensor) -> Tensor:
        """Zero-pad (normalised space = mean colour) bottom/right to a
        multiple of the patch size, as ``make_input_divisible``; images
        smaller than one patch become one patch."""
        p = self.patch_size
        pad_h, pad_w = (-inputs.shape[-2]) % p, (-inputs.shape[-1]) % p
        if pad_h or pad_w:
            inputs = F.pad(inputs, (0, pad_w, 0, pad_h))
        return inputs

    def _last_block(self, inputs: Tensor, with_cls_attn: bool
                    ) -> Tuple[Tensor, Optional[Tensor], Tuple[int, int]]:
        """Last-block features ``(B, D, h, w)`` and CLS->patch attention.

        Only the CLS query's attention row is computed (``with_attn='cls'``),
        the part of DINO's ``get_last_selfattention`` that FOUND reads, so the
        ``(B, heads, T, T)`` matrix is never materialised.
        """
        x = self._pad_to_patch(inputs)
        grad = any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(grad and self.training):
            out = self.backbone.forward_last_block(
                x, with_qkv=True, with_attn='cls' if with_cls_attn else False)
        h, w = out.grid_hw
        npre = out.num_prefix_tokens
        feats = {'q': out.q, 'k': out.k, 'v': out.v}[self.feature]
        bsz = feats.shape[0]
        fmap = feats[:, npre:].transpose(1, 2).reshape(bsz, -1, h, w)
        cls_attn = out.cls_attn if with_cls_attn else None  # (B, heads, h*w)
        return fmap.contiguous(), cls_attn, (h, w)

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Last-block patch keys as ``[(B, D, h, w)]``."""
        fmap, _, _ = self._last_block(inputs, with_cls_attn=False)
        return [fmap]

    # ------------------------------------------------------------------ #
    # training
    # ------------------------------------------------------------------ #
    def current_iter(self) -> int:
        """The optimizer step FOUND's schedule switch refers to.

        The runner's ``iter`` from ``MessageHub`` while a training loop runs
        (``loop_stage == 'train'``), else this module's own count of
        :meth:`loss` calls.
        """
        hub = MessageHub.get_current_instance()
        if hub.get_info('loop_stage') == 'train':
            it = hub.get_info('iter')
            if it is not None:
                return int(it)
        return self._num_loss_calls

    def solver_images(self, inputs: Tensor, rounding: bool = False) -> Tensor:
        """Un-normalise network inputs to ``(B, 3, H, W)`` uint8 RGB.

        Args:
            inputs (Tensor): Normalised inputs from the data preprocessor.
            rounding (bool): Round to the nearest integer (recovers the
                original pixels exactly; FOUND's evaluation uses the original
                image). False reproduces FOUND's training path bit for bit:
                the crop's pixels ``k`` go through ``ToTensor`` (``k / 255``),
                ``Normalize``, ``unnormalize`` and ``ToPILImage``
                (``x * 255`` then a truncating ``byte()``), all in float32,
                which turns a fraction of the values into ``k - 1``.

        Returns:
            Tensor: uint8 images on the CPU.
        """
        pre = self.data_preprocessor
        if getattr(pre, '_enable_normalize', False):
            x = inputs.float() * pre.std + pre.mean
        else:
            x = inputs.float()
        if getattr(pre, 'channel_conversion', False) is False:
            # Inputs were not converted: mmcv loads BGR.
            x = x[:, [2, 1, 0]]
        x = x.detach().cpu().clamp(0, 255).round()  # the uint8 pixels
        if rounding:
            return x.to(torch.uint8)
        # FOUND's float32 round trip (torchvision ToTensor + Normalize,
        # datasets.utils.unnormalize, ToPILImage's mul(255).byte()); the
        # truncation errors depend on these exact operations, not only on
        # the value of the un-normalised pixel.
        mean = torch.tensor(_FOUND_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_FOUND_STD).view(1, 3, 1, 1)
        x = (x.div(255) - mean) / std
        x = (x * std + mean).mul(255)
        return x.clamp(0, 255).to(torch.uint8)  # truncating cast

    @torch.no_grad()
    def pseudo_labels(self, inputs: Tensor, seg_logits: Tensor,
                      cls_attn: Optional[Tensor], keys: Tensor,
                      cur_iter: int) -> Tuple[Dict[str, Tensor], dict]:
        """FOUND's on-the-fly training targets.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised crops.
            seg_logits (Tensor): ``(B, 1, h, w)`` logits.
            cls_attn (Tensor | None): ``(B, heads, h*w)`` CLS attention.
            keys (Tensor): ``(B, D, h, w)`` last-block keys.
            cur_iter (int): Current optimizer step.

        Returns:
            tuple[dict, dict]: targets ``{'bs', 'bkg' | 'self'}`` of shape
            ``(B, h, w)`` and logging scalars (fractions of masks replaced by
            the solver).
        """
        cfg = self.train_cfg
        bs_cfg = dict(cfg.bilateral_solver)
        iou_gate = bs_cfg.pop('iou_gate', 0.5)
        images = self.solver_images(inputs, rounding=False)
        preds_mask = (seg_logits.detach()[:, 0].sigmoid() > 0.5).float()
        bs_self, used_self = batch_bilateral_solver(
            images, preds_mask.cpu(), get_all_cc=True, iou_gate=iou_gate,
            return_used=True, **bs_cfg)
        targets = {'bs': bs_self.to(seg_logits.device)}
        # Fractions of masks the solver replaced (IoU gate passed).
        logs = {'bs_used_self': float(np.mean(used_self)), 'bs_used_bkg': 0.0}
        if cur_iter < cfg.stop_bkg_loss:
            bsz, dim, h, w = keys.shape
            flat = keys.reshape(bsz, dim, h * w).transpose(1, 2)
            obj = torch.stack([
                found_background(
                    cls_attn[i], flat[i], (h, w), tau=cfg.bkg_tau,
                    head_weights=cfg.bkg_head_weights).object_mask
                for i in range(bsz)
            ]).float()
            bs_bkg, used_bkg = batch_bilateral_solver(
                images, obj.cpu(), get_all_cc=True, iou_gate=iou_gate,
                return_used=True, **bs_cfg)
            targets['bkg'] = bs_bkg.to(seg_logits.device)
            logs['bs_used_bkg'] = float(np.mean(used_bkg))
        else:
            targets['self'] = preds_mask
        return targets, logs

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """FOUND's training losses on a batch of crops (GT is not used).

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised crops.
            data_samples (list[SegDataSample]): Unused (kept for the API).

        Returns:
            dict[str, Tensor]: ``decode.loss_bs`` and ``decode.loss_bkg`` or
            ``decode.loss_self``, plus logged solver acceptance rates.
        """
        cur_iter = self.current_iter()
        self._num_loss_calls += 1
        need_bkg = cur_iter < self.train_cfg.stop_bkg_loss
        keys, cls_attn, _ = self._last_block(inputs, with_cls_attn=need_bkg)
        seg_logits = self.decode_head.forward([keys])
        targets, logs = self.pseudo_labels(inputs, seg_logits, cls_attn,
                                           keys.detach(), cur_iter)
        losses = self.decode_head.loss_by_pseudo_labels(seg_logits, targets)
        # Inactive terms are logged as 0 (else the logger repeats their last
        # value after the switch at ``stop_bkg_loss``).
        for key in ('loss_bkg', 'loss_self'):
            losses.setdefault(key, seg_logits.new_zeros(()))
        for key, value in logs.items():
            losses[key] = torch.tensor(value, device=seg_logits.device)
        return add_prefix(losses, 'decode')

    # ------------------------------------------------------------------ #
    # inference
    # ------------------------------------------------------------------ #
    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """Saliency prediction as ``SegDataSample`` (see
        :meth:`postprocess_result`)."""
        if data_samples is not None:
            batch_img_metas = [s.metainfo for s in data_samples]
        else:
            shape = tuple(inputs.shape[2:])
            batch_img_metas = [
                dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                     padding_size=[0, 0, 0, 0])
            ] * inputs.shape[0]
        seg_logits = self.inference(inputs, batch_img_metas)
        return self.postprocess_result(seg_logits, data_samples, inputs)

    def postprocess_result(self,
                           seg_logits: Tensor,
                           data_samples: OptSampleList = None,
                           inputs: Optional[Tensor] = None) -> SampleList:
        """Crop, sigmoid and FOUND's single/multi post-processing.

        Each returned sample holds:

        * ``seg_logits``: ``(1, H, W)`` sigmoid foreground probability (the
          mmseg convention for ``out_channels=1``);
        * ``pred_saliency``: ``(1, H, W)`` float map that FOUND's evaluation
          scores (single: the kept component; multi: the soft map; with the
          bilateral solver: its gated binary output);
        * ``pred_sem_seg``: ``(1, H, W)`` int64, ``pred_saliency > 0.5``.

        Args:
            seg_logits (Tensor): ``(B, 1, H_pad, W_pad)`` upsampled logits.
            data_samples (list[SegDataSample], optional): Samples with metas.
            inputs (Tensor, optional): Normalised inputs (needed for the
                bilateral solver).

        Returns:
            list[SegDataSample]: Predictions at ``ori_shape``.
        """
        cfg = self.test_cfg
        bsz = seg_logits.shape[0]
        only_prediction = data_samples is None
        if only_prediction:
            data_samples = [SegDataSample() for _ in range(bsz)]
        use_bs = bool(cfg.get('bilateral_solver', False))
        if use_bs and inputs is None:
            raise ValueError('the bilateral solver needs the input images')
        images = self.solver_images(inputs, rounding=True) if use_bs \
            else None
        for i in range(bsz):
            logits = seg_logits[i:i + 1].float()
            meta = {} if only_prediction else data_samples[i].metainfo
            pad = meta.get('img_padding_size', meta.get('padding_size'))
            pad = pad or [0, 0, 0, 0]
            H, W = logits.shape[-2:]
            left, right, top, bottom = (int(v) for v in pad)
            logits = logits[..., top:H - bottom, left:W - right]
            img_hw = tuple(logits.shape[-2:])
            image = images[i][:, top:H - bottom, left:W - right] \
                if use_bs else None
            if meta.get('flip', False):
                # Test-time flip: undo it (the solver image too).
                dims = (-1, ) if meta.get('flip_direction',
                                          'horizontal') == 'horizontal' \
                    else (-2, )
                logits = logits.flip(dims)
                image = image.flip(dims) if image is not None else None
            ori_hw = tuple(int(s) for s in meta.get('ori_shape', img_hw)[:2])
            if ori_hw != img_hw:
                # A resizing test pipeline: back to the original resolution.
                logits = resize(logits, size=ori_hw, mode='bilinear',
                                align_corners=self.align_corners,
                                warning=False)
            soft = logits[0].sigmoid()  # (1, H, W)
            binary = soft[0] > self.decode_head.threshold
            if cfg.saliency_mode == 'single':
                kept = found_single_component(binary.cpu().numpy())
                saliency = torch.from_numpy(kept).to(soft)[None]
            else:
                saliency = soft
            if use_bs:
                saliency = self._refine(image, binary, img_hw, ori_hw)
                saliency = saliency.to(soft)[None]
            data_samples[i].set_data({
                'seg_logits': PixelData(data=soft),
                'pred_saliency': PixelData(data=saliency),
                'pred_sem_seg': PixelData(data=(saliency > 0.5).long()),
            })
        return data_samples

    def _refine(self, image: Tensor, binary: Tensor, img_hw: Tuple[int, int],
                ori_hw: Tuple[int, int]) -> Tensor:
        """Gated bilateral-solver refinement of a full-resolution mask.

        Args:
            image (Tensor): ``(3, h, w)`` uint8 RGB network input (padding
                removed).
            binary (Tensor): ``(H, W)`` bool prediction at ``ori_hw``.
            img_hw (tuple[int, int]): Network input size ``(h, w)``.
            ori_hw (tuple[int, int]): Original image size ``(H, W)``.

        Returns:
            Tensor: ``(H, W)`` refined mask (0/1), or ``binary`` if the IoU
            gate fails.
        """
        bs_cfg = dict(self.test_cfg.bilateral_solver_cfg)
        iou_gate = bs_cfg.pop('iou_gate', 0.5)
        img = image
        if img_hw != ori_hw:
            img = resize(img[None].float(), size=ori_hw, mode='bilinear',
                         align_corners=False, warning=False)[0]
            img = img.round().clamp(0, 255).to(torch.uint8)
        refined = batch_bilateral_solver(
            img[None], binary[None].float().cpu(),
            get_all_cc=self.test_cfg.saliency_mode == 'multi',
            iou_gate=iou_gate, **bs_cfg)
        return refined[0]

    @torch.no_grad()
    def predict_saliency(self, inputs: Tensor) -> Tensor:
        """Soft saliency maps for a batch of same-size images (benchmarks).

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.

        Returns:
            Tensor: ``(B, 1, H, W)`` sigmoid maps (FOUND's ``multi`` map).
        """
        height, width = inputs.shape[-2:]
        keys = self.extract_feat(inputs)
        logits = self.decode_head.forward(keys)
        up = F.interpolate(logits, scale_factor=self.patch_size,
                           mode='bilinear', align_corners=False)
        return up[..., :height, :width].sigmoid()
