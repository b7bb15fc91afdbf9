# Copyright (c) mmuol contributors. All rights reserved.
"""CLIP-DINOiser segmentor: open vocabulary, slide inference, teacher training."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import add_prefix
from torch import Tensor, nn

from mmuol.localization.clip_dinoiser import dino_correlation_target, found_background_target
from mmuol.localization.utils import pad_to_patch_multiple
from .class_names import get_class_names
from .teachers import DINOValueFeatures, FOUNDObjectness

__all__ = ['CLIPDINOiser']


@MODELS.register_module()
class CLIPDINOiser(EncoderDecoder):
    """Open-vocabulary segmentor of MaskCLIP / CLIP-DINOiser.

    An ``EncoderDecoder`` with a :class:`MaskCLIPBackbone` and a
    :class:`DINOiserHead`. The head's class names are embedded with the
    backbone's text tower on the first inference (:meth:`embed_vocabulary`),
    new ones at once by :meth:`set_vocabulary`. Inference
    is mmseg's: ``test_cfg=dict(mode='slide', crop_size=(448, 448),
    stride=(224, 224))`` averages the per-window probabilities (the official
    evaluation; see ``configs/clip_dinoiser/README.md`` for the differences
    from mmseg 0.27).

    Training (``tools/train.py``) fits the head's two convolutions to frozen
    teachers given in ``train_cfg``::

        train_cfg=dict(
            dino_teacher=dict(type='DINOViT', arch='dino_vitb16', init_cfg=...),
            found_teacher=dict(backbone=dict(type='DINOViT', arch='dino_vits8', ...),
                               decoder='checkpoints/found/decoder_weights.pt'),
            gamma=0.2,               # DINO correlation threshold of the target
            found_antialias=True,    # torchvision >= 0.17 resize (see README)
            found_threshold=0.5)

    The teachers are built at the first training step, kept out of the
    module tree (no checkpoint bloat, not wrapped by DDP) and moved to the
    input's device.

    Args:
        backbone (dict): ``MaskCLIPBackbone`` config.
        decode_head (dict): ``DINOiserHead`` config.
        train_cfg (dict, optional): Teachers and target settings (above).
        test_cfg (dict, optional): mmseg ``mode='slide'`` / ``'whole'``.
        data_preprocessor (dict, optional): ``SegDataPreProcessor`` giving
            RGB in ``[0, 1]`` (``mean=[0, 0, 0]``, ``std=[255, 255, 255]``,
            ``bgr_to_rgb=True``).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        # A plain dict: teachers are not submodules (see class doc).
        self._teachers: Dict[str, nn.Module] = {}
        # Embedded on first use (see embed_vocabulary).
        self._pending_vocabulary: Optional[List[str]] = list(self.decode_head.class_names)

    def _init_decode_head(self, decode_head: dict) -> None:
        """Build the head; ``None`` sizes are taken from the backbone."""
        decode_head = dict(decode_head)
        for key, value in (('in_channels', self.backbone.width),
                           ('embed_dims', self.backbone.embed_dims), ('patch_size',
                                                                      self.backbone.patch_size)):
            if decode_head.get(key, -1) is None:
                decode_head[key] = value
        super()._init_decode_head(decode_head)

    @property
    def class_names(self) -> Sequence[str]:
        """The current vocabulary."""
        return list(self.decode_head.class_names)

    def set_vocabulary(self, class_names: Union[str, Sequence[str]]) -> None:
        """Embed a new vocabulary (benchmark key, text file or names).

        The background rule follows the head's ``background_rule`` setting
        (``'auto'``: on iff a class is named ``'background'``).

        Args:
            class_names (str | Sequence[str]): See :func:`get_class_names`.
        """
        names = get_class_names(class_names)
        self.decode_head._check_two(names)
        emb = self.backbone.text_embeddings(names, self.decode_head.templates)
        self.decode_head.set_class_embeddings(names, emb)
        self.num_classes = self.out_channels = len(names)
        self._pending_vocabulary = None

    def embed_vocabulary(self) -> None:
        """Embed the configured vocabulary if that has not happened yet.

        Building the model does not embed the head's class names: 80 prompt
        templates per class through the text tower take minutes on a CPU for
        the large benchmarks, and training never needs them. The first
        inference (or an explicit call) does it once.
        """
        if self._pending_vocabulary is not None:
            self.set_vocabulary(self._pending_vocabulary)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """mmseg's ``encode_decode`` after :meth:`embed_vocabulary`."""
        self.embed_vocabulary()
        return super().encode_decode(inputs, batch_img_metas)

    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        """``mode='tensor'`` after :meth:`embed_vocabulary`."""
        self.embed_vocabulary()
        return super()._forward(inputs, data_samples)

    # ------------------------------------------------------------------ #
    # training
    # ------------------------------------------------------------------ #
    def _get_teachers(self, device: torch.device) -> Dict[str, nn.Module]:
        cfg = self.train_cfg or {}
        if not self._teachers:
            missing = [k for k in ('dino_teacher', 'found_teacher') if k not in cfg]
            if missing:
                raise KeyError(f'CLIPDINOiser training needs train_cfg.{missing[0]} (see the '
                               'class docstring / configs/clip_dinoiser)')
            found = dict(cfg['found_teacher'])
            self._teachers = dict(
                dino=DINOValueFeatures(cfg['dino_teacher']),
                found=FOUNDObjectness(found['backbone'], found['decoder']))
        for key, module in self._teachers.items():
            self._teachers[key] = module.to(device)
        return self._teachers

    def loss(self, inputs: Tensor, data_samples) -> dict:
        """Teacher targets and the head's two BCE losses.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` RGB in ``[0, 1]``.
            data_samples (list): Unused (no labels).

        Returns:
            dict[str, Tensor]: ``decode.loss_corr``, ``decode.loss_bkg``.
        """
        cfg = self.train_cfg or {}
        teachers = self._get_teachers(inputs.device)
        gamma = cfg.get('gamma', self.decode_head.gamma)
        with torch.no_grad():
            feats = self.extract_feat(inputs)
            grid = tuple(feats[1].shape[-2:])
            padded = pad_to_patch_multiple(inputs, self.backbone.patch_size)
            values = teachers['dino'](padded)
            if tuple(values.shape[-2:]) != grid:
                raise ValueError(f'DINO teacher grid {tuple(values.shape[-2:])} differs from '
                                 f'the CLIP grid {grid}: use a teacher with the CLIP patch size')
            corr_target = dino_correlation_target(values, gamma)
            bkg_target = found_background_target(teachers['found'](padded), grid,
                                                 cfg.get('found_antialias', True),
                                                 cfg.get('found_threshold', 0.5))
        losses = self.decode_head.loss_by_targets(feats, corr_target, bkg_target)
        return add_prefix(losses, 'decode')
