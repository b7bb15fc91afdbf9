# Copyright (c) mmuol contributors. All rights reserved.
"""Training-free object localizers as an MMDetection detector.

:class:`UnsupervisedLocalizer` runs a frozen DINO ViT once per image and hands
the last block's patch keys / CLS attention to one localizer adapter
(:mod:`mmuol.det.localizers`), which calls the host-free core.

Object discovery (LOST / TokenCut / FOUND protocol) runs every image at its
original resolution, zero-padded (in normalised space) at the bottom/right to
a multiple of the patch size. In a batch, every image is cropped back to its
own padded size with :func:`~mmuol.localization.pad_to_patch_multiple`, so its
tokens never see another image's padding and the result does not depend on
the batch composition.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.structures import InstanceData
from torch import Tensor

from mmuol.localization import pad_to_patch_multiple, patch_grid
from mmuol.utils.constants import IMAGENET_MEAN_255, IMAGENET_STD_255
from .localizers import BaseLocalizerAdapter, LocalizerOutput, PatchFeatures

__all__ = ['UnsupervisedLocalizer', 'IMAGENET_MEAN', 'IMAGENET_STD', 'DEFAULT_MAX_PATCHES']

#: ImageNet statistics in 0-255 RGB (DINO's ``Normalize``).
IMAGENET_MEAN = list(IMAGENET_MEAN_255)
IMAGENET_STD = list(IMAGENET_STD_255)

#: Default patch budget per image: a 128 x 128 grid (1024 px at patch 8,
#: 2048 px at patch 16). The localizers build an N x N patch graph: 1 GiB in
#: float32 (2 GiB in float64) at this size, growing with N^2 beyond it.
DEFAULT_MAX_PATCHES = 128 * 128

#: How a user switches skipping on (named in the error messages).
SKIP_HINT = ('set test_dataloader.dataset.skip_invalid=True (e.g. --cfg-options '
             'test_dataloader.dataset.skip_invalid=True) to skip such images and count them')


@MODELS.register_module()
class UnsupervisedLocalizer(BaseDetector):
    """Frozen DINO ViT + a training-free localizer, as an mmdet detector.

    ``predict`` returns ``pred_instances`` with ``bboxes`` (``(K, 4)`` float,
    original-image pixels), ``scores`` (``(K,)``), ``labels`` (all 0,
    ``'foreground'``) and ``masks`` (``(K, H, W)`` bool: the patch mask that
    produced each box, nearest-upsampled by the patch size and cropped). An
    image where the method finds nothing gets zero boxes (a CorLoc miss).

    Images that cannot be processed (smaller than one patch, more than
    ``max_patches`` patches, or marked ``invalid_reason`` by
    :class:`~mmuol.det.LoadCorLocImageFromFile`) raise a ``ValueError``
    naming the file, unless their sample carries ``skip_invalid=True`` (set
    by the CorLoc datasets' ``skip_invalid`` option): then they get zero
    boxes and an ``invalid_reason`` that :class:`~mmuol.det.CorLocMetric`
    counts as skipped.

    Args:
        backbone (dict): ``DINOViT`` config (frozen).
        localizer (dict): Adapter config, built with mmdet's ``TASK_UTILS``,
            e.g. ``dict(type='LOSTLocalizer', k_patches=100)``.
        with_masks (bool): Return instance masks. Defaults to True.
        max_patches (int, optional): Largest patch grid ``h * w`` of one
            image, checked before the backbone runs. Defaults to
            :data:`DEFAULT_MAX_PATCHES`; ``None`` disables the check.
        data_preprocessor (dict, optional): Defaults to a
            ``DetDataPreprocessor`` with ImageNet mean/std in RGB.
        init_cfg (dict, optional): Initialization config.

    Raises:
        TypeError: If the backbone has no ``forward_last_block`` or the
            localizer is not a :class:`~mmuol.det.BaseLocalizerAdapter`.
        ValueError: If the localizer's ``in_channels`` differs from the
            backbone's ``embed_dims``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 localizer: ConfigType,
                 with_masks: bool = True,
                 max_patches: Optional[int] = DEFAULT_MAX_PATCHES,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(
                type='DetDataPreprocessor',
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
                bgr_to_rgb=True,
                pad_size_divisor=1)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if max_patches is not None and int(max_patches) < 1:
            raise ValueError(f'max_patches must be a positive int or None, got {max_patches!r}')
        self.max_patches = None if max_patches is None else int(max_patches)
        self.backbone = MODELS.build(backbone)
        if not hasattr(self.backbone, 'forward_last_block'):
            raise TypeError('UnsupervisedLocalizer needs a backbone with '
                            f'forward_last_block (DINOViT), got {type(self.backbone)}')
        self.localizer = TASK_UTILS.build(localizer)
        if not isinstance(self.localizer, BaseLocalizerAdapter):
            raise TypeError(f'model.localizer {localizer.get("type")!r} built a '
                            f'{type(self.localizer).__name__}, not a localizer adapter '
                            '(LOSTLocalizer, TokenCutLocalizer, ...)')
        width = self.localizer.in_channels
        if width is not None and width != self.backbone.embed_dims:
            raise ValueError(f'model.localizer.in_channels is {width} but the backbone '
                             f'({self.backbone.arch}) gives {self.backbone.embed_dims}-channel '
                             'keys; set model.localizer.in_channels to match (a FOUND decoder '
                             'is trained for one backbone width)')
        self.with_masks = with_masks

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        """Not available: the localizers are training-free.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(f'{type(self).__name__} is training-free (nothing to train); '
                                  'evaluate it with tools/test.py CONFIG.')

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """Backbone feature maps ``(B, C, h, w)``.

        Args:
            batch_inputs (Tensor): ``(B, 3, H, W)`` normalised images.

        Returns:
            tuple[Tensor]: One map per backbone ``out_indices`` entry.
        """
        return self.backbone(batch_inputs)

    def _forward(self,
                 batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None) -> Tuple[Tensor, ...]:
        """``mode='tensor'``: the backbone features."""
        return self.extract_feat(batch_inputs)

    def check_image(self, img_hw: Tuple[int, int]) -> Tuple[int, int]:
        """Patch grid of an image, or a ``ValueError`` saying what to do.

        Cheap (no tensor is touched): run it before the backbone.

        Args:
            img_hw (tuple[int, int]): Unpadded image size ``(H, W)``.

        Returns:
            tuple[int, int]: The patch grid ``(h, w)``.

        Raises:
            ValueError: If the image is smaller than one patch or has more
                than ``max_patches`` patches.
        """
        ps = self.backbone.patch_size
        grid = patch_grid(img_hw, ps)
        num = grid[0] * grid[1]
        if self.max_patches is not None and num > self.max_patches:
            gib = num * num * 4 / 2**30
            raise ValueError(
                f'image of {img_hw[0]}x{img_hw[1]} pixels is a {grid[0]}x{grid[1]} grid of '
                f'{num} patches of {ps} px, more than model.max_patches={self.max_patches} '
                f'(the {num}x{num} patch graph alone needs {gib:.1f} GiB in float32). Resize '
                "the images in the test pipeline, e.g. dict(type='Resize', scale=(1333, 800), "
                "keep_ratio=True) after 'LoadCorLocImageFromFile' (boxes are mapped back to "
                'the original image), or raise model.max_patches (None disables the check)')
        return grid

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Localize objects in a batch, each image on its own patch grid.

        Args:
            batch_inputs (Tensor): ``(B, 3, H, W)`` normalised, padded images.
            batch_data_samples (list[DetDataSample]): With ``img_shape`` (and
                ``ori_shape`` / ``scale_factor`` for ``rescale``).
            rescale (bool): Return boxes/masks in original-image pixels.
                Defaults to True.

        Returns:
            list[DetDataSample]: The samples with ``pred_instances``.

        Raises:
            ValueError: If an image cannot be processed (see the class
                docstring) and its sample does not allow skipping.
        """
        ps = self.backbone.patch_size
        in_hw = tuple(batch_inputs.shape[-2:])
        img_shapes = [
            tuple(int(v) for v in s.metainfo.get('img_shape', in_hw)[:2])
            for s in batch_data_samples
        ]
        results: List[Optional[InstanceData]] = [None] * len(img_shapes)
        # Images that share a patch grid go through the backbone together;
        # every image is checked before any backbone work.
        groups: Dict[Tuple[int, int], List[int]] = OrderedDict()
        for i, (sample, img_hw) in enumerate(zip(batch_data_samples, img_shapes)):
            reason = sample.metainfo.get('invalid_reason')
            if reason is None:
                try:
                    groups.setdefault(self.check_image(img_hw), []).append(i)
                    continue
                except ValueError as err:
                    reason = str(err)
                    if not sample.metainfo.get('skip_invalid', False):
                        name = sample.metainfo.get('img_path', f'image {i} of the batch')
                        raise ValueError(f'{name}: {reason}; or {SKIP_HINT}') from None
                    sample.set_metainfo(dict(invalid_reason=reason))
            results[i] = self._empty_instances(sample.metainfo, img_hw, rescale,
                                               batch_inputs.device)
        with_attn = self.localizer.with_attn
        for grid, idx in groups.items():
            x = torch.cat(
                [pad_to_patch_multiple(batch_inputs[i:i + 1], ps, img_shapes[i]) for i in idx])
            # Only the CLS attention row is needed: never build (heads, T, T).
            out = self.backbone.forward_last_block(
                x, with_qkv=True, with_attn='cls' if with_attn else False)
            keys = out.patch_keys
            cls_attn = out.cls_attn if with_attn else None
            for j, i in enumerate(idx):
                feats = PatchFeatures(
                    keys=keys[j],
                    cls_attn=None if cls_attn is None else cls_attn[j],
                    grid_hw=tuple(out.grid_hw),
                    patch_size=ps,
                    image_hw=img_shapes[i])
                results[i] = self._to_instances(
                    self.localizer(feats), batch_data_samples[i].metainfo, img_shapes[i], rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _empty_instances(self, meta: dict, img_hw: Tuple[int, int], rescale: bool,
                         device: torch.device) -> InstanceData:
        """Zero boxes for an image that was skipped."""
        out_hw = tuple(int(v) for v in meta.get('ori_shape', img_hw)[:2]) if rescale else img_hw
        inst = InstanceData()
        inst.bboxes = torch.zeros((0, 4), dtype=torch.float32, device=device)
        inst.scores = torch.zeros((0, ), dtype=torch.float32, device=device)
        inst.labels = torch.zeros((0, ), dtype=torch.int64, device=device)
        if self.with_masks:
            inst.masks = torch.zeros((0, *out_hw), dtype=torch.bool, device=device)
        return inst

    def _to_instances(self, res: LocalizerOutput, meta: dict, img_hw: Tuple[int, int],
                      rescale: bool) -> InstanceData:
        """Boxes/masks in input pixels -> ``InstanceData`` (maybe rescaled)."""
        ps = self.backbone.patch_size
        img_h, img_w = img_hw
        boxes = res.boxes.to(torch.float32)
        num = boxes.shape[0]
        out_hw = img_hw
        if rescale:
            scale = meta.get('scale_factor', (1.0, 1.0))
            sx, sy = float(scale[0]), float(scale[1])
            if (sx, sy) != (1.0, 1.0):
                boxes = boxes / boxes.new_tensor([sx, sy, sx, sy])
            out_hw = tuple(int(v) for v in meta.get('ori_shape', img_hw)[:2])
            if self.localizer.clip_boxes:
                boxes[:, 0::2] = boxes[:, 0::2].clamp(0, out_hw[1])
                boxes[:, 1::2] = boxes[:, 1::2].clamp(0, out_hw[0])
        inst = InstanceData()
        inst.bboxes = boxes
        inst.scores = res.scores.to(boxes.device)
        inst.labels = torch.zeros((num, ), dtype=torch.int64, device=boxes.device)
        if self.with_masks:
            masks = res.masks.repeat_interleave(ps, dim=1) \
                .repeat_interleave(ps, dim=2)[:, :img_h, :img_w]
            if out_hw != (img_h, img_w):
                if num:
                    masks = F.interpolate(masks[None].float(), size=out_hw, mode='nearest')[0] > 0.5
                else:
                    masks = masks.new_zeros((0, *out_hw))
            inst.masks = masks.to(boxes.device)
        return inst
