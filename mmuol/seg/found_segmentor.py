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
import inspect
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import MessageHub
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList, add_prefix
from torch import Tensor

from mmuol.localization import (batch_bilateral_solver, bilateral_solver, found_background,
                                found_foreground)
from mmuol.utils.constants import IMAGENET_MEAN, IMAGENET_STD
from .utils import unnormalize_inputs

__all__ = ['FOUNDSegmentor']

# Defaults live in one place each: the schedule switch here; the background
# threshold, head weighting, solver sigmas and IoU gate in the core functions'
# signatures (``found_background``, ``batch_bilateral_solver``), which the
# empty dicts below defer to; the loss weights and threshold in FOUNDHead. The
# recipe is spelt out in the configs: evaluation in
# configs/_base_/models/found_dino-vits8.py, training in
# configs/found/found_dino-vits8_1xb50-500it_duts-tr.py.

#: Training defaults: ``stop_bkg_loss`` (steps with background pseudo-labels),
#: ``background`` (keyword arguments of ``found_background``) and
#: ``bilateral_solver`` (keyword arguments of ``batch_bilateral_solver``).
DEFAULT_TRAIN_CFG = dict(stop_bkg_loss=100, background=dict(), bilateral_solver=dict())

#: Test defaults: ``saliency_mode`` (``'single'`` | ``'multi'``), whether to
#: refine with the ``bilateral_solver`` and its ``bilateral_solver_cfg``
#: (keyword arguments of ``batch_bilateral_solver``).
DEFAULT_TEST_CFG = dict(
    mode='whole', saliency_mode='single', bilateral_solver=False, bilateral_solver_cfg=dict())

_SALIENCY_MODES = ('single', 'multi')
#: found_foreground's component selection for each saliency mode.
_COMPONENT = dict(single='single', multi='all')
_FEATURES = ('q', 'k', 'v')

#: FOUND's ``NORMALIZE`` (0-1 scale), used to replay its training crops'
#: float32 un-normalisation for the bilateral solver.
_FOUND_MEAN, _FOUND_STD = IMAGENET_MEAN, IMAGENET_STD


def _keyword_names(*funcs) -> set:
    """Names of the keyword arguments the functions accept."""
    names = set()
    for func in funcs:
        for param in inspect.signature(func).parameters.values():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                names.add(param.name)
    return names


#: Settings a config may give the solver (``get_all_cc`` and ``return_used``
#: are FOUND's fixed choices per call site).
_SOLVER_KEYS = _keyword_names(batch_bilateral_solver, bilateral_solver) - {
    'images', 'masks', 'image', 'target', 'grid', 'get_all_cc', 'return_used'
}
_BACKGROUND_KEYS = _keyword_names(found_background) - {'cls_attn', 'keys', 'grid_hw'}
_TRAIN_KEYS = dict(stop_bkg_loss=None, background=_BACKGROUND_KEYS, bilateral_solver=_SOLVER_KEYS)
# mode / crop_size / stride are mmseg's EncoderDecoder inference settings.
_TEST_KEYS = dict(
    mode=None,
    crop_size=None,
    stride=None,
    saliency_mode=None,
    bilateral_solver=None,
    bilateral_solver_cfg=_SOLVER_KEYS)
#: Keys of earlier mmuol versions, with their new place.
_RENAMED = dict(bkg_tau='background.tau', bkg_head_weights='background.head_weights')


def _merge(name: str, default: dict, cfg: Optional[dict],
           allowed: Dict[str, Optional[set]]) -> ConfigDict:
    """``default`` updated by ``cfg`` (nested dicts merged), unknown keys rejected.

    Args:
        name (str): ``'train_cfg'`` or ``'test_cfg'`` (for messages).
        default (dict): Default settings.
        cfg (dict, optional): The config's settings.
        allowed (dict[str, set | None]): Accepted keys; a set lists the
            accepted sub-keys of a dict-valued setting.

    Returns:
        ConfigDict: The merged settings.

    Raises:
        KeyError: A misspelt or unknown key (a typo must not be ignored).
    """
    out = ConfigDict(default)
    for key, value in dict(cfg or {}).items():
        if key not in allowed:
            hint = f' (renamed to {name}.{_RENAMED[key]})' if key in _RENAMED else ''
            raise KeyError(f'FOUNDSegmentor: unknown {name} key {key!r}{hint}; accepted keys: '
                           f'{sorted(allowed)}')
        sub_keys = allowed[key]
        if sub_keys is not None:
            unknown = set(dict(value)) - sub_keys
            if unknown:
                raise KeyError(f'FOUNDSegmentor: unknown {name}.{key} keys {sorted(unknown)}; '
                               f'accepted: {sorted(sub_keys)}')
            value = dict(out.get(key) or {}, **dict(value))
        out[key] = value
    return out


@MODELS.register_module()
class FOUNDSegmentor(EncoderDecoder):
    """FOUND: a frozen DINO ViT + a 1x1-conv head on its last-block keys.

    Args:
        backbone (dict): A ViT exposing ``last_block_maps`` (``DINOViT``).
        decode_head (dict): Usually ``FOUNDHead`` (its ``threshold``
            binarises predictions and training masks).
        feature (str): Which last-block features feed the head and the
            training-time background discovery: ``'k'`` (FOUND's
            ``found.feats``), ``'q'`` or ``'v'``. Defaults to ``'k'``.
        train_cfg (dict, optional): ``stop_bkg_loss`` (steps trained on
            background pseudo-labels, default 100), ``background`` (keyword
            arguments of :func:`~mmuol.localization.found_background`:
            ``tau``, ``head_weights``) and ``bilateral_solver`` (keyword
            arguments of :func:`~mmuol.localization.batch_bilateral_solver`:
            ``sigma_spatial``, ``sigma_luma``, ``sigma_chroma``, ``iou_gate``,
            ...). Unset values take those functions' defaults, which are
            FOUND's. Unknown keys raise a ``KeyError``.
        test_cfg (dict, optional): ``mode='whole'``, ``saliency_mode``
            (``'single'``, default, or ``'multi'``), ``bilateral_solver``
            (False) and ``bilateral_solver_cfg`` (solver keyword arguments,
            as in ``train_cfg``).
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
            raise ValueError('FOUNDSegmentor takes no neck / auxiliary_head: the head reads the '
                             'last-block keys directly')
        if feature not in _FEATURES:
            raise ValueError(f'feature must be one of {_FEATURES}, got {feature!r}')
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            train_cfg=_merge('train_cfg', DEFAULT_TRAIN_CFG, train_cfg, _TRAIN_KEYS),
            test_cfg=_merge('test_cfg', DEFAULT_TEST_CFG, test_cfg, _TEST_KEYS),
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        if not hasattr(self.backbone, 'last_block_maps'):
            raise TypeError(
                f'{type(self.backbone).__name__} has no last_block_maps(); FOUNDSegmentor '
                "needs a DINOViT-like backbone. For another backbone's feature maps use "
                "type='EncoderDecoder' with FOUNDHead.")
        if self.test_cfg.saliency_mode not in _SALIENCY_MODES:
            raise ValueError(f'test_cfg.saliency_mode must be one of {_SALIENCY_MODES}, got '
                             f'{self.test_cfg.saliency_mode!r}')
        self.feature = feature
        self.patch_size = int(self.backbone.patch_size)
        head_ps = getattr(self.decode_head, 'patch_size', None)
        if head_ps is not None and head_ps != self.patch_size:
            raise ValueError(f'decode_head.patch_size={head_ps} differs from the backbone patch '
                             f'size {self.patch_size}')
        self._num_loss_calls = 0

    # ------------------------------------------------------------------ #
    # features
    # ------------------------------------------------------------------ #
    def _last_block(self, inputs: Tensor,
                    with_cls_attn: bool) -> Tuple[Tensor, Optional[Tensor], Tuple[int, int]]:
        """Last-block features ``(B, D, h, w)`` and CLS->patch attention.

        :meth:`DINOViT.last_block_maps`: the input is zero-padded
        (normalised space: the mean colour) at the bottom/right to a multiple
        of the patch size, as FOUND's ``make_input_divisible``; an image
        smaller than one patch becomes one patch. Only the CLS query's
        attention row is computed, the part of DINO's
        ``get_last_selfattention`` that FOUND reads, so the
        ``(B, heads, T, T)`` matrix is never materialised.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.
            with_cls_attn (bool): Also return the CLS attention.

        Returns:
            tuple: ``(B, D, h, w)`` features, ``(B, heads, h * w)`` CLS
            attention (or None) and the grid ``(h, w)``.
        """
        grad = any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(grad and self.training):
            out = self.backbone.last_block_maps(inputs, self.feature, with_cls_attn)
        return out.maps[self.feature], out.cls_attn, out.grid_hw

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

        :func:`~mmuol.seg.utils.unnormalize_inputs` undoes the
        preprocessor.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` inputs from the data
                preprocessor.
            rounding (bool): Round to the nearest integer (recovers the
                original pixels exactly; FOUND's evaluation uses the original
                image). False reproduces FOUND's training path bit for bit:
                the crop's pixels ``k`` go through ``ToTensor`` (``k / 255``),
                ``Normalize``, ``unnormalize`` and ``ToPILImage``
                (``x * 255`` then a truncating ``byte()``), all in float32,
                which turns a fraction of the values into ``k - 1``.

        Returns:
            Tensor: ``(B, 3, H, W)`` uint8 images on the CPU.
        """
        x = unnormalize_inputs(self.data_preprocessor, inputs)
        x = x.detach().cpu().clamp(0, 255).round()  # the uint8 pixels
        if rounding:
            return x.to(torch.uint8)
        # FOUND's float32 round trip (torchvision ToTensor + Normalize,
        # datasets.utils.unnormalize, ToPILImage's mul(255).byte()); the
        # truncation errors depend on these exact operations, not only on
        # the value of the un-normalised pixel.
        found_mean = torch.tensor(_FOUND_MEAN).view(1, 3, 1, 1)
        found_std = torch.tensor(_FOUND_STD).view(1, 3, 1, 1)
        x = (x.div(255) - found_mean) / found_std
        x = (x * found_std + found_mean).mul(255)
        return x.clamp(0, 255).to(torch.uint8)  # truncating cast

    @torch.no_grad()
    def pseudo_labels(self, inputs: Tensor, seg_logits: Tensor, cls_attn: Optional[Tensor],
                      keys: Tensor, cur_iter: int) -> Tuple[Dict[str, Tensor], dict]:
        """FOUND's on-the-fly training targets.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised crops.
            seg_logits (Tensor): ``(B, 1, h, w)`` logits.
            cls_attn (Tensor | None): ``(B, heads, h*w)`` CLS attention
                (needed while ``cur_iter < stop_bkg_loss``).
            keys (Tensor): ``(B, D, h, w)`` last-block keys.
            cur_iter (int): Current optimizer step.

        Returns:
            tuple[dict, dict]: targets ``{'bs', 'bkg' | 'self'}`` of shape
            ``(B, h, w)`` and logging scalars (fractions of masks replaced by
            the solver).
        """
        cfg = self.train_cfg
        solver_cfg = dict(cfg.bilateral_solver)
        images = self.solver_images(inputs, rounding=False)
        threshold = self.decode_head.threshold
        preds_mask = (seg_logits.detach()[:, 0].sigmoid() > threshold).float()
        bs_self, used_self = batch_bilateral_solver(
            images, preds_mask.cpu(), get_all_cc=True, return_used=True, **solver_cfg)
        targets = {'bs': bs_self.to(seg_logits.device)}
        # Fractions of masks the solver replaced (IoU gate passed).
        logs = {'bs_used_self': float(np.mean(used_self)), 'bs_used_bkg': 0.0}
        if cur_iter < cfg.stop_bkg_loss:
            if cls_attn is None:
                raise ValueError(f'step {cur_iter} < stop_bkg_loss={cfg.stop_bkg_loss} needs the '
                                 'CLS attention for the background pseudo-labels')
            bsz, dim, h, w = keys.shape
            flat = keys.reshape(bsz, dim, h * w).transpose(1, 2)
            obj = torch.stack([
                found_background(cls_attn[i], flat[i], (h, w), **cfg.background).object_mask
                for i in range(bsz)
            ]).float()
            bs_bkg, used_bkg = batch_bilateral_solver(
                images, obj.cpu(), get_all_cc=True, return_used=True, **solver_cfg)
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
        targets, logs = self.pseudo_labels(inputs, seg_logits, cls_attn, keys.detach(), cur_iter)
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
    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Saliency prediction as ``SegDataSample`` (see :meth:`postprocess_result`).

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.
            data_samples (list[SegDataSample], optional): Samples with metas;
                without them the input size is the image size.

        Returns:
            list[SegDataSample]: One prediction per image.
        """
        if data_samples is not None:
            batch_img_metas = [s.metainfo for s in data_samples]
        else:
            shape = tuple(inputs.shape[2:])
            batch_img_metas = [
                dict(ori_shape=shape, img_shape=shape, pad_shape=shape, padding_size=[0, 0, 0, 0])
            ] * inputs.shape[0]
        seg_logits = self.inference(inputs, batch_img_metas)
        return self.postprocess_result(seg_logits, data_samples, inputs)

    def postprocess_result(self,
                           seg_logits: Tensor,
                           data_samples: OptSampleList = None,
                           inputs: Optional[Tensor] = None) -> SampleList:
        """Crop, sigmoid and FOUND's single/multi post-processing.

        Per image, the padding is cropped, a test-time flip or resize undone,
        and :func:`~mmuol.localization.found_foreground` applied to the
        pixel-level logits (``component='single'`` or ``'all'``). Each
        returned sample holds:

        * ``seg_logits``: ``(1, H, W)`` sigmoid foreground probability (the
          mmseg convention for ``out_channels=1``);
        * ``pred_saliency``: ``(1, H, W)`` float map that FOUND's evaluation
          scores (single: the kept component; multi: the soft map; with the
          bilateral solver: its gated binary output);
        * ``pred_sem_seg``: ``(1, H, W)`` int64 binary prediction (single:
          the kept component; multi: ``prob > threshold``; with the solver:
          its output).

        Args:
            seg_logits (Tensor): ``(B, 1, H_pad, W_pad)`` upsampled logits.
            data_samples (list[SegDataSample], optional): Samples with metas.
            inputs (Tensor, optional): ``(B, 3, H_pad, W_pad)`` normalised
                inputs (needed for the bilateral solver).

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
        images = self.solver_images(inputs, rounding=True) if use_bs else None
        for i in range(bsz):
            logits = seg_logits[i:i + 1].float()
            meta = {} if only_prediction else data_samples[i].metainfo
            pad = meta.get('img_padding_size', meta.get('padding_size')) or [0, 0, 0, 0]
            height, width = logits.shape[-2:]
            left, right, top, bottom = (int(v) for v in pad)
            logits = logits[..., top:height - bottom, left:width - right]
            img_hw = tuple(logits.shape[-2:])
            image = images[i][:, top:height - bottom, left:width - right] if use_bs else None
            if meta.get('flip', False):
                # Test-time flip: undo it (the solver image too).
                horizontal = meta.get('flip_direction', 'horizontal') == 'horizontal'
                dims = (-1, ) if horizontal else (-2, )
                logits = logits.flip(dims)
                image = image.flip(dims) if image is not None else None
            ori_hw = tuple(int(s) for s in meta.get('ori_shape', img_hw)[:2])
            if ori_hw != img_hw:
                # A resizing test pipeline: back to the original resolution.
                logits = resize(
                    logits,
                    size=ori_hw,
                    mode='bilinear',
                    align_corners=self.align_corners,
                    warning=False)
            fg = found_foreground(logits[0, 0], self.decode_head.threshold,
                                  _COMPONENT[cfg.saliency_mode])
            if use_bs:
                mask = self._refine(image, fg.binary, img_hw, ori_hw).to(fg.prob) > 0.5
                saliency = mask.to(fg.prob)
            elif cfg.saliency_mode == 'single':
                mask, saliency = fg.mask, fg.mask.to(fg.prob)
            else:
                mask, saliency = fg.mask, fg.prob
            data_samples[i].set_data({
                'seg_logits': PixelData(data=fg.prob[None]),
                'pred_saliency': PixelData(data=saliency[None]),
                'pred_sem_seg': PixelData(data=mask[None].long()),
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
        img = image
        if img_hw != ori_hw:
            img = resize(
                img[None].float(), size=ori_hw, mode='bilinear', align_corners=False,
                warning=False)[0]
            img = img.round().clamp(0, 255).to(torch.uint8)
        refined = batch_bilateral_solver(
            img[None],
            binary[None].float().cpu(),
            get_all_cc=self.test_cfg.saliency_mode == 'multi',
            **self.test_cfg.bilateral_solver_cfg)
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
        logits = self.decode_head.forward(self.extract_feat(inputs))
        meta = dict(img_shape=(height, width), pad_shape=(height, width))
        return self.decode_head.predict_by_feat(logits, [meta]).sigmoid()
