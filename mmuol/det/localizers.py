# Copyright (c) mmuol contributors. All rights reserved.
"""Localizer adapters: one image's patch features -> boxes, scores, masks.

Each adapter is registered in mmdet's ``TASK_UTILS`` under its class name and
calls one function of :mod:`mmuol.localization` (the algorithms live there,
host-free); it only turns the core's patch mask(s) into boxes and scores.
:class:`~mmuol.det.UnsupervisedLocalizer` builds one with
``TASK_UTILS.build(model.localizer)``.

==========================  ==================================  ======================
adapter (``TASK_UTILS``)    core call                           boxes per image
==========================  ==================================  ======================
``LOSTLocalizer``           ``lost``                            1 (score 1)
``TokenCutLocalizer``       ``tokencut``                        1 (score = confidence)
``DINOSegLocalizer``        ``dino_seg``                        1 (score 1)
``FOUNDBkgLocalizer``       ``found_background``                1 (score 1)
``FOUNDHeadLocalizer``      ``found_decoder_logits``            1 (mean fg prob.)
                            + ``found_foreground``
``MaskCutLocalizer``        ``maskcut``                         <= num_masks
``DSMLocalizer``            ``dsm_eigenvectors``                1 (score 1)
                            + ``dsm_localize``
==========================  ==================================  ======================
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.registry import TASK_UTILS
from mmengine.model import BaseModule
from torch import Tensor

from mmuol.localization import (dino_seg, found_background, found_decoder_logits, found_foreground,
                                largest_component, load_found_decoder, lost, mask_to_box, maskcut,
                                tokencut)
from mmuol.localization.dsm import DSM_MATRICES, dsm_eigenvectors, dsm_localize

__all__ = [
    'PatchFeatures', 'LocalizerOutput', 'BaseLocalizerAdapter', 'LOSTLocalizer',
    'TokenCutLocalizer', 'DINOSegLocalizer', 'FOUNDBkgLocalizer', 'FOUNDHeadLocalizer',
    'MaskCutLocalizer', 'DSMLocalizer'
]


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
    image (every method but LOST's DINO-seg baseline). An adapter whose
    weights read keys of a fixed width sets ``in_channels``; the detector
    checks it against the backbone.
    """

    with_attn: bool = False
    clip_boxes: bool = True
    in_channels: Optional[int] = None

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
        init_cfg (dict, optional): Unused (no weights).
    """

    def __init__(self, k_patches: int = 100, init_cfg: Optional[dict] = None) -> None:
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
        init_cfg (dict, optional): Unused (no weights).
    """

    def __init__(self,
                 tau: float = 0.2,
                 eps: float = 1e-5,
                 binary_graph: bool = True,
                 solver: str = 'auto',
                 backend: str = 'auto',
                 init_cfg: Optional[dict] = None) -> None:
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
        init_cfg (dict, optional): Unused (no weights).
    """

    with_attn = True

    def __init__(self,
                 head: int = 4,
                 keep: float = 0.6,
                 official_quirks: bool = True,
                 clip_boxes: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
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
        init_cfg (dict, optional): Unused (no weights).
    """

    with_attn = True

    def __init__(self,
                 tau: float = 0.3,
                 head_weights: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
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
        init_cfg (dict, optional): Unused (no weights).
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
                 init_cfg: Optional[dict] = None) -> None:
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


@TASK_UTILS.register_module()
class FOUNDHeadLocalizer(BaseLocalizerAdapter):
    """FOUND with its trained head (Siméoni et al., CVPR 2023), one box.

    The released FOUND decoder is a ``Conv2d(C, 1, 1)`` on the last-block
    patch keys laid out ``(1, C, h, w)`` (no CLS, not normalised). As in
    FOUND's ``evaluation/uod.py``: ``sigmoid(logits) > threshold`` at patch
    resolution, box of the **largest** 4-connected component; the score is
    the mean foreground probability over that component. Both steps are the
    core's :func:`~mmuol.localization.found_decoder_logits` and
    :func:`~mmuol.localization.found_foreground`; the weights are read by
    :func:`~mmuol.localization.load_found_decoder`.

    Weights are read from ``decoder_checkpoint`` by :meth:`init_weights`
    (``tools/test.py`` calls it when no checkpoint is given), or on first use,
    unless a detector checkpoint already provided them
    (``localizer.decoder.*``).

    Args:
        in_channels (int): Key width ``C`` the decoder reads; must equal the
            backbone's ``embed_dims``. Defaults to 384 (ViT-S, the released
            head).
        decoder_checkpoint (str, optional): Path or URL of
            ``decoder_weights.pt`` (or any checkpoint layout
            :func:`~mmuol.localization.load_found_decoder` reads).
        threshold (float): Probability threshold. Defaults to 0.5.
        init_cfg (dict, optional): Unused (see ``decoder_checkpoint``).
    """

    def __init__(self,
                 in_channels: int = 384,
                 decoder_checkpoint: Optional[str] = None,
                 threshold: float = 0.5,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(f'in_channels must be a positive int, got {in_channels!r}')
        self.in_channels = in_channels
        self.decoder_checkpoint = decoder_checkpoint
        self.threshold = threshold
        # The conv only holds the weights (state-dict keys localizer.decoder.*);
        # the forward is the core's found_decoder_logits.
        self.decoder = nn.Conv2d(in_channels, 1, (1, 1))
        self.decoder.requires_grad_(False)
        self._weights_loaded = False

    def init_weights(self) -> None:
        """Load ``decoder_checkpoint`` (if given)."""
        if self.decoder_checkpoint is not None:
            self.load_decoder(self.decoder_checkpoint)
        self._is_init = True

    def load_decoder(self, path: str) -> None:
        """Load decoder weights from a file (see
        :func:`~mmuol.localization.load_found_decoder`).

        Args:
            path (str): Path or URL of the weights.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If the weights do not fit ``in_channels``.
        """
        try:
            sd = load_found_decoder(path)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'{err} Set model.localizer.decoder_checkpoint, e.g. '
                '--cfg-options model.localizer.decoder_checkpoint=PATH.') from None
        width = int(sd['weight'].shape[1])
        if width != self.in_channels:
            raise ValueError(f'FOUND decoder in {path!r} reads {width}-channel keys, but '
                             f'model.localizer.in_channels is {self.in_channels} (the released '
                             'head is for ViT-S keys, 384 channels)')
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
        chw = feats.keys.transpose(0, 1).reshape(1, feats.keys.shape[1], h, w)
        logits = found_decoder_logits(chw, self.decoder.weight, self.decoder.bias)
        fg = found_foreground(logits[0, 0], self.threshold, component='largest')
        return self._outputs(feats, [fg.mask], [fg.score])


@TASK_UTILS.register_module()
class DSMLocalizer(BaseLocalizerAdapter):
    """Deep Spectral Methods (Melas-Kyriazi et al., CVPR 2022), one box.

    The eigenvectors of the normalised Laplacian of the keys' affinity
    (:func:`~mmuol.localization.dsm_eigenvectors`) and DSM's localization
    rule (:func:`~mmuol.localization.dsm_localize`: Fiedler vector ``> 0``,
    reversed when it covers more than half of the grid or nothing, largest
    8-connected component); score 1. DSM's optional colour affinity needs
    the image, which adapters do not receive, so it is not offered (the
    released pipeline does not use it). See ``configs/dsm/README.md``.

    Args:
        K (int): Eigenpairs computed (only the Fiedler vector is used; DSM's
            README extracts 5). Defaults to 5.
        which_matrix (str): ``'laplacian'`` (default) or ``'affinity'``
            (first eigenvector of the affinity).
        solver (str): ``'auto'``, ``'dense'`` or ``'lanczos'``. Defaults to
            ``'auto'``.
        init_cfg (dict, optional): Unused (no weights).
    """

    def __init__(self,
                 K: int = 5,
                 which_matrix: str = 'laplacian',
                 solver: str = 'auto',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if which_matrix not in DSM_MATRICES:
            raise ValueError(f'which_matrix must be one of {DSM_MATRICES}, got {which_matrix!r}')
        low = 2 if which_matrix == 'laplacian' else 1
        if isinstance(K, bool) or not isinstance(K, int) or K < low:
            raise ValueError(f'K must be an int >= {low} for {which_matrix!r} (the Fiedler vector '
                             f'is the second eigenvector), got {K!r}')
        self.kwargs = dict(K=K, which_matrix=which_matrix, solver=solver)

    def forward(self, feats: PatchFeatures) -> LocalizerOutput:
        """See :meth:`BaseLocalizerAdapter.forward`."""
        eigs = dsm_eigenvectors(
            feats.keys, feats.grid_hw, patch_size=feats.patch_size, **self.kwargs)
        loc = dsm_localize(eigs, which_matrix=self.kwargs['which_matrix'])
        return self._outputs(feats, [loc.mask], [1.0])
