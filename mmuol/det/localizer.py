# Copyright (c) mmuol contributors. All rights reserved.
"""Training-free object localizers as an MMDetection detector.

:class:`UnsupervisedLocalizer` runs a frozen DINO ViT once per image and hands
the last block's patch keys / CLS attention to one *localizer adapter*. The
adapters are thin: each calls one function of :mod:`mmuol.localization` (the
algorithms live there, host-free) and turns its patch mask(s) into boxes,
scores and masks.

==========================  =========================  =====================
adapter (``TASK_UTILS``)    core call                  boxes per image
==========================  =========================  =====================
``LOSTLocalizer``           ``lost``                   1 (score 1)
``TokenCutLocalizer``       ``tokencut``               1 (score = confidence)
``DINOSegLocalizer``        ``dino_seg``               1 (score 1)
``FOUNDBkgLocalizer``       ``found_background``       1 (score 1)
``FOUNDHeadLocalizer``      FOUND's 1x1-conv decoder   1 (mean fg prob.)
``MaskCutLocalizer``        ``maskcut``                <= num_masks
==========================  =========================  =====================

Object discovery (LOST / TokenCut / FOUND protocol) runs every image at its
original resolution, zero-padded (in normalised space) at the bottom/right to
a multiple of the patch size. In a batch, every image is cropped back to its
own padded size ``ceil(H / p) * p x ceil(W / p) * p`` (the rest of the batch
padding is discarded and the pixels past ``img_shape`` are zeroed), so its
tokens never see another image's padding and the result does not depend on
the batch composition.
"""
import math
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from mmuol.localization import (dino_seg, found_background, largest_component, lost, mask_to_box,
                                maskcut, tokencut)

#: ImageNet statistics in 0-255 RGB (DINO's ``Normalize``).
IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]

#: Short names accepted in ``localizer=dict(type=...)``.
_SHORT_NAMES = {
    'LOST': 'LOSTLocalizer',
    'TokenCut': 'TokenCutLocalizer',
    'DINOSeg': 'DINOSegLocalizer',
    'FOUNDBackground': 'FOUNDBkgLocalizer',
    'FOUNDBkg': 'FOUNDBkgLocalizer',
    'FOUNDHead': 'FOUNDHeadLocalizer',
    'FOUND': 'FOUNDHeadLocalizer',
    'MaskCut': 'MaskCutLocalizer',
}


class PatchFeatures(NamedTuple):
    """What a localizer adapter receives for one image.

    Attributes:
        keys (Tensor): ``(N, C)`` last-block keys of the patch tokens (no
            prefix tokens), head-major, row-major over ``grid_hw``.
        cls_attn (Tensor | None): ``(num_heads, N)`` last-block attention of
            the CLS query to the patches (None unless the adapter sets
            ``with_attn``).
        grid_hw (tuple[int, int]): Patch grid ``(h, w)`` of this image.
        patch_size (int): Patch size in pixels.
        image_hw (tuple[int, int]): Unpadded input size ``(H, W)``
            (``img_shape``), used to clip boxes.
    """
    keys: Tensor
    cls_attn: Optional[Tensor]
    grid_hw: Tuple[int, int]
    patch_size: int
    image_hw: Tuple[int, int]


class LocalizerOutput(NamedTuple):
    """What a localizer adapter returns for one image.

    Attributes:
        masks (Tensor): ``(K, h, w)`` bool patch masks, one per box.
        boxes (Tensor): ``(K, 4)`` int64 ``[x0, y0, x1, y1]`` (x1/y1
            exclusive) in input pixels.
        scores (Tensor): ``(K, )`` float32 scores.
    """
    masks: Tensor
    boxes: Tensor
    scores: Tensor


class BaseLocalizerAdapter(BaseModule):
    """Base class of the adapters: one image's features -> boxes.

    Subclasses implement :meth:`forward` with a call into
    :mod:`mmuol.localization` and set ``with_attn`` when they need the CLS
    attention. ``clip_boxes`` says whether their boxes are clipped to the
    image (every method but LOST's DINO-seg baseline).
    """

    with_attn: bool = False
    clip_boxes: bool = True

    def forward(self, feats: PatchFeatures) -> LocalizerOutput:
        """Localize objects in one image.

        Args:
            feats (PatchFeatures): The image's patch features.

        Returns:
            LocalizerOutput: Masks, boxes and scores.
        """
        raise NotImplementedError

    @staticmethod
    def _outputs(feats: PatchFeatures,
                 masks: Sequence[Tensor],
                 scores: Sequence[float],
                 clip: bool = True) -> LocalizerOutput:
        """Boxes of non-empty patch masks (empty masks are dropped)."""
        h, w = feats.grid_hw
        device = feats.keys.device
        kept_masks, boxes, kept_scores = [], [], []
        for mask, score in zip(masks, scores):
            if not bool(mask.any()):
                continue
            kept_masks.append(mask.to(device))
            boxes.append(
                mask_to_box(mask, feats.patch_size, feats.image_hw if clip else None).to(device))
            kept_scores.append(float(score))
        if not kept_masks:
            return LocalizerOutput(
                torch.zeros((0, h, w), dtype=torch.bool, device=device),
                torch.zeros((0, 4), dtype=torch.int64, device=device),
                torch.zeros((0, ), dtype=torch.float32, device=device))
        return LocalizerOutput(
            torch.stack(kept_masks), torch.stack(boxes),
            torch.tensor(kept_scores, dtype=torch.float32, device=device))


@TASK_UTILS.register_module()
class LOSTLocalizer(BaseLocalizerAdapter):
    """LOST (Siméoni et al., BMVC 2021): the seed's component, one box.

    Args:
        k_patches (int): Lowest-degree patches used for the seed expansion.
            Defaults to 100.
    """

    def __init__(self, k_patches: int = 100, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.k_patches = k_patches

    def forward(self, feats: PatchFeatures) -> LocalizerOutput:
        """See :meth:`BaseLocalizerAdapter.forward`."""
        res = lost(feats.keys, feats.grid_hw, k_patches=self.k_patches)
        return self._outputs(feats, [res.mask], [1.0])


@TASK_UTILS.register_module()
class TokenCutLocalizer(BaseLocalizerAdapter):
    """TokenCut (Wang et al., CVPR 2022): normalized cut, one box.

    The score is the core's ``confidence = clip(1 - λ2 / λ3, 0, 1)``.

    Args:
        tau (float): Cosine threshold of the graph. Defaults to 0.2.
        eps (float): Weight of non-edges. Defaults to 1e-5.
        binary_graph (bool): False = TokenCut's ``--no-binary-graph``.
            Defaults to True.
        solver (str): ``'auto'``, ``'dense'`` (official scipy call) or
            ``'lanczos'``. Defaults to ``'auto'``.
        backend (str): ``'auto'``, ``'scipy'`` or ``'torch'``. Defaults to
            ``'auto'``.
    """

    def __init__(self,
                 tau: float = 0.2,
                 eps: float = 1e-5,
                 binary_graph: bool = True,
                 solver: str = 'auto',
                 backend: str = 'auto',
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.kwargs = dict(
            tau=tau, eps=eps, binary_graph=binary_graph, solver=solver, backend=backend)

    def forward(self, feats: PatchFeatures) -> LocalizerOutput:
        """See :meth:`BaseLocalizerAdapter.forward`."""
        res = tokencut(feats.keys, feats.grid_hw, **self.kwargs)
        return self._outputs(feats, [res.mask], [res.confidence])


@TASK_UTILS.register_module()
class DINOSegLocalizer(BaseLocalizerAdapter):
    """LOST's DINO-seg baseline: biggest blob of one head's CLS attention.

    As in LOST, the box is **not** clipped to the image by default.

    Args:
        head (int): Attention head. Defaults to 4 (LOST's CLI).
        keep (float): Fraction of the attention mass kept. Defaults to 0.6.
        official_quirks (bool): Reproduce LOST's component selection (see
            :func:`mmuol.localization.dino_seg`). Defaults to True.
        clip_boxes (bool): Clip the box to the image. Defaults to False.
    """

    with_attn = True

    def __init__(self,
                 head: int = 4,
                 keep: float = 0.6,
                 official_quirks: bool = True,
                 clip_boxes: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.head = head
        self.keep = keep
        self.official_quirks = official_quirks
        self.clip_boxes = clip_boxes

    def forward(self, feats: PatchFeatures) -> LocalizerOutput:
        """See :meth:`BaseLocalizerAdapter.forward`."""
        res = dino_seg(
            feats.cls_attn,
            feats.grid_hw,
            head=self.head,
            keep=self.keep,
            official_quirks=self.official_quirks)
        return self._outputs(feats, [res.mask], [1.0], clip=self.clip_boxes)


@TASK_UTILS.register_module()
class FOUNDBkgLocalizer(BaseLocalizerAdapter):
    """Training-free FOUND: stage-1 background discovery, one box.

    The object mask is the complement of FOUND's coarse background mask
    (``found_background(...).object_mask``); the box is that of its
    **largest** 4-connected component (the convention of FOUND's UOD
    evaluation, ``get_bbox_from_segmentation_labels``).

    Args:
        tau (float): Background similarity threshold. Defaults to 0.3.
        head_weights (bool): Weight the heads by their sparsity. Defaults to
            True.
    """

    with_attn = True

    def __init__(self, tau: float = 0.3, head_weights: bool = True, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.tau = tau
        self.head_weights = head_weights

    def forward(self, feats: PatchFeatures) -> LocalizerOutput:
        """See :meth:`BaseLocalizerAdapter.forward`."""
        res = found_background(
            feats.cls_attn, feats.keys, feats.grid_hw, tau=self.tau, head_weights=self.head_weights)
        return self._outputs(feats, [largest_component(res.object_mask)], [1.0])


@TASK_UTILS.register_module()
class MaskCutLocalizer(BaseLocalizerAdapter):
    """MaskCut (Wang et al., CVPR 2023): up to ``num_masks`` boxes.

    Each non-empty stage output (pairwise-disjoint patch masks) gives one
    box. Unlike CutLER's pseudo-label script the image is not resized to
    480x480 (object-discovery protocol) and no CRF is applied.

    Args:
        num_masks (int): Number of NCut stages. Defaults to 3.
        tau (float): Cosine threshold. Defaults to 0.15 (CutLER's value).
        eps (float): Weight of non-edges. Defaults to 1e-5.
        iou_thresh (float): Stage filter IoU. Defaults to 0.5.
        min_area_ratio (float): Stage filter area. Defaults to 0.01.
        solver (str): Eigensolver. Defaults to ``'auto'``.
        backend (str): Eigensolver backend. Defaults to ``'auto'``.
        score (str): ``'stage'`` -> ``1 / (1 + stage)`` (the first stage's
            box is the top box), ``'confidence'`` -> the stage's
            ``clip(1 - λ2 / λ3, 0, 1)``. Defaults to ``'stage'``.
    """

    def __init__(self,
                 num_masks: int = 3,
                 tau: float = 0.15,
                 eps: float = 1e-5,
                 iou_thresh: float = 0.5,
                 min_area_ratio: float = 0.01,
                 solver: str = 'auto',
                 backend: str = 'auto',
                 score: str = 'stage',
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if score not in ('stage', 'confidence'):
            raise ValueError(f"score must be 'stage' or 'confidence', got {score!r}")
        self.score = score
        self.kwargs = dict(
            num_masks=num_masks,
            tau=tau,
            eps=eps,
            iou_thresh=iou_thresh,
            min_area_ratio=min_area_ratio,
            solver=solver,
            backend=backend)

    def forward(self, feats: PatchFeatures) -> LocalizerOutput:
        """See :meth:`BaseLocalizerAdapter.forward`."""
        stages = maskcut(feats.keys, feats.grid_hw, **self.kwargs)
        scores = [
            1.0 / (1 + i) if self.score == 'stage' else st.confidence for i, st in enumerate(stages)
        ]
        return self._outputs(feats, [st.mask for st in stages], scores)


def load_found_decoder(path: str) -> Dict[str, Tensor]:
    """Read FOUND decoder weights.

    Accepts the released ``decoder_weights.pt``
    (``{"decoder": {"weight": (1, C, 1, 1), "bias": (1,)}}``), a flat
    ``{"weight", "bias"}`` dict, or an mmengine checkpoint of this detector
    (``state_dict`` with ``localizer.decoder.*`` keys).

    Args:
        path (str): File path or URL.

    Returns:
        dict[str, Tensor]: ``weight`` and ``bias``.

    Raises:
        FileNotFoundError: If the file does not exist.
        KeyError: If no decoder weights are found in it.
    """
    if '://' in path:
        from mmengine.runner.checkpoint import CheckpointLoader
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    elif not osp.isfile(path):
        raise FileNotFoundError(f'FOUND decoder weights not found at {path!r}. Download the '
                                'released decoder (valeoai/FOUND data/weights/decoder_weights.pt, '
                                "2.7 kB) and set model.localizer.decoder_checkpoint, e.g. "
                                "--cfg-options model.localizer.decoder_checkpoint=PATH.")
    else:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        ckpt = ckpt['state_dict']
    if isinstance(ckpt, dict) and 'decoder' in ckpt \
            and isinstance(ckpt['decoder'], dict):
        ckpt = ckpt['decoder']
    if isinstance(ckpt, dict) and 'weight' not in ckpt:
        for prefix in ('localizer.decoder.', 'decoder.'):
            sub = {k[len(prefix):]: v for k, v in ckpt.items() if k.startswith(prefix)}
            if 'weight' in sub:
                ckpt = sub
                break
    if not isinstance(ckpt, dict) or not {'weight', 'bias'} <= set(ckpt):
        raise KeyError(f'{path!r} holds no FOUND decoder weights (expected '
                       '{"decoder": {"weight", "bias"}})')
    return {'weight': ckpt['weight'], 'bias': ckpt['bias']}


@TASK_UTILS.register_module()
class FOUNDHeadLocalizer(BaseLocalizerAdapter):
    """FOUND with its trained head (Siméoni et al., CVPR 2023), one box.

    The released FOUND decoder is a ``Conv2d(C, 1, 1)`` on the last-block
    patch keys laid out ``(1, C, h, w)`` (no CLS, not normalised). As in
    FOUND's ``evaluation/uod.py``: ``sigmoid(logits) > threshold`` at patch
    resolution, box of the **largest** 4-connected component. The score is
    the mean foreground probability over that component.

    Weights are read from ``decoder_checkpoint`` by :meth:`init_weights`
    (``tools/test.py`` calls it when no checkpoint is given), or on first use,
    unless a detector checkpoint already provided them.

    Args:
        in_channels (int, optional): Key dimension ``C``; filled in by
            :class:`UnsupervisedLocalizer` from the backbone. Defaults to 384
            (ViT-S, the released head).
        decoder_checkpoint (str, optional): Path of ``decoder_weights.pt``.
        threshold (float): Probability threshold. Defaults to 0.5.
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 decoder_checkpoint: Optional[str] = None,
                 threshold: float = 0.5,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = 384 if in_channels is None else int(in_channels)
        self.decoder_checkpoint = decoder_checkpoint
        self.threshold = threshold
        self.decoder = nn.Conv2d(self.in_channels, 1, (1, 1))
        self.decoder.requires_grad_(False)
        self._weights_loaded = False

    def init_weights(self) -> None:
        """Load ``decoder_checkpoint`` (if given)."""
        if self.decoder_checkpoint is not None:
            self.load_decoder(self.decoder_checkpoint)
        self._is_init = True

    def load_decoder(self, path: str) -> None:
        """Load decoder weights from a file (see :func:`load_found_decoder`).

        Raises:
            ValueError: If the weights do not fit ``in_channels``.
        """
        sd = load_found_decoder(path)
        expected = tuple(self.decoder.weight.shape)
        if tuple(sd['weight'].shape) != expected:
            raise ValueError(f'FOUND decoder in {path!r} has weight shape '
                             f'{tuple(sd["weight"].shape)}, this backbone needs {expected} '
                             '(the released head is for ViT-S/8 keys, 384 channels)')
        self.decoder.load_state_dict(sd)
        self._weights_loaded = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A detector checkpoint that carries the decoder counts as loaded.
        if prefix + 'decoder.weight' in state_dict:
            self._weights_loaded = True
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, feats: PatchFeatures) -> LocalizerOutput:
        """See :meth:`BaseLocalizerAdapter.forward`."""
        if not self._weights_loaded:
            if self.decoder_checkpoint is None:
                raise RuntimeError('FOUNDHeadLocalizer has no weights: set '
                                   'decoder_checkpoint to the released decoder_weights.pt '
                                   'or load a checkpoint of this detector.')
            self.load_decoder(self.decoder_checkpoint)
        h, w = feats.grid_hw
        keys = feats.keys
        chw = keys.transpose(0, 1).reshape(1, keys.shape[1], h, w)
        weight = self.decoder.weight
        logits = self.decoder(chw.to(weight.dtype))[0, 0]
        prob = logits.sigmoid()
        mask = largest_component(prob > self.threshold)
        score = float(prob[mask].mean()) if bool(mask.any()) else 0.0
        return self._outputs(feats, [mask], [score])


@MODELS.register_module()
class UnsupervisedLocalizer(BaseDetector):
    """Frozen DINO ViT + a training-free localizer, as an mmdet detector.

    ``predict`` returns ``pred_instances`` with ``bboxes`` (``(K, 4)`` float,
    original-image pixels), ``scores`` (``(K,)``), ``labels`` (all 0,
    ``'foreground'``) and ``masks`` (``(K, H, W)`` bool: the patch mask that
    produced each box, nearest-upsampled by the patch size and cropped). An
    image where the method finds nothing gets zero boxes (a CorLoc miss).

    Args:
        backbone (dict): ``DINOViT`` config (frozen).
        localizer (dict): Adapter config, e.g. ``dict(type='LOSTLocalizer',
            k_patches=100)``; the short names ``LOST``, ``TokenCut``,
            ``DINOSeg``, ``FOUNDBackground``, ``FOUNDHead`` and ``MaskCut``
            work too.
        with_masks (bool): Return instance masks. Defaults to True.
        data_preprocessor (dict, optional): Defaults to a
            ``DetDataPreprocessor`` with ImageNet mean/std in RGB.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 localizer: ConfigType,
                 with_masks: bool = True,
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
        self.backbone = MODELS.build(backbone)
        if not hasattr(self.backbone, 'forward_last_block'):
            raise TypeError('UnsupervisedLocalizer needs a backbone with '
                            f'forward_last_block (DINOViT), got {type(self.backbone)}')
        self.localizer = self._build_localizer(localizer)
        self.with_masks = with_masks

    def _build_localizer(self, cfg: ConfigType) -> BaseLocalizerAdapter:
        cfg = dict(cfg)
        name = cfg.get('type')
        if isinstance(name, str) and name in _SHORT_NAMES:
            cfg['type'] = name = _SHORT_NAMES[name]
        cls = TASK_UTILS.get(name) if isinstance(name, str) else name
        if cls is None:
            raise KeyError(f'Unknown localizer {name!r}: use one of '
                           f'{sorted(set(_SHORT_NAMES.values()))}')
        if cls is FOUNDHeadLocalizer or (isinstance(cls, type)
                                         and issubclass(cls, FOUNDHeadLocalizer)):
            cfg.setdefault('in_channels', self.backbone.embed_dims)
        cfg['type'] = cls
        adapter = TASK_UTILS.build(cfg)
        if not isinstance(adapter, BaseLocalizerAdapter):
            raise TypeError(f'{name!r} is not a localizer adapter')
        return adapter

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

    def _grid(self, img_hw: Tuple[int, int]) -> Tuple[int, int]:
        ps = self.backbone.patch_size
        img_h, img_w = img_hw
        if img_h < ps or img_w < ps:
            raise ValueError(f'image of {img_h}x{img_w} pixels is smaller than one '
                             f'{ps}x{ps} patch; nothing can be localized')
        return math.ceil(img_h / ps), math.ceil(img_w / ps)

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
            ValueError: If an image is smaller than one patch.
        """
        ps = self.backbone.patch_size
        in_hw = tuple(batch_inputs.shape[-2:])
        img_shapes = [
            tuple(int(v) for v in s.metainfo.get('img_shape', in_hw)[:2])
            for s in batch_data_samples
        ]
        # Images that share a patch grid go through the backbone together.
        groups: Dict[Tuple[int, int], List[int]] = OrderedDict()
        for i, img_hw in enumerate(img_shapes):
            groups.setdefault(self._grid(img_hw), []).append(i)
        results: List[Optional[InstanceData]] = [None] * len(img_shapes)
        with_attn = self.localizer.with_attn
        for grid, idx in groups.items():
            # (Indexing with a list copies, so the batch tensor is untouched.)
            x = batch_inputs[idx, :, :grid[0] * ps, :grid[1] * ps]
            for j, i in enumerate(idx):
                # Zero padding in normalised space, as the official code,
                # whatever pad value the data preprocessor used.
                x[j, :, img_shapes[i][0]:, :] = 0
                x[j, :, :, img_shapes[i][1]:] = 0
            # Only the CLS attention row is needed: never build (heads, T, T).
            out = self.backbone.forward_last_block(x, with_qkv=True,
                                                   with_attn='cls' if with_attn else False)
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
