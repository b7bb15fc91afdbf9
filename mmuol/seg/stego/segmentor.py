# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO as an MMSegmentation segmentor: frozen DINO features, trained head.

:class:`STEGOSegmentor` is an :class:`~mmseg.models.EncoderDecoder` whose
backbone is a frozen ViT (``DINOViT``) and whose head is ``STEGOHead``:

* **features** (``feature``): ``'feat'``, the final-normed last-block patch
  tokens (STEGO's ``dino_feat_type: feat``), or ``'k'``, the last-block keys
  with heads concatenated (STEGO's ``KK``);
* **training**: every image comes with a KNN partner (``img_pos`` in its data
  sample, added by ``STEGOKNNPairDataset``); the partners go through the
  model's data preprocessor, both through the frozen backbone, and the head
  computes the correspondence, cluster-probe and linear-probe losses;
* **inference** (``test_cfg``): the code of the image, averaged with the
  flipped code of the flipped image when ``flip=True``, is upsampled to the
  input, scored by the cluster probe (``alpha=2`` log-probabilities) and,
  with ``crf=True``, refined by STEGO's dense CRF
  (:func:`mmuol.localization.dense_crf.stego_crf` on the ImageNet-normalised
  input); ``pred_sem_seg`` holds **cluster ids**, scored by
  ``HungarianIoUMetric``.

The official evaluation (``eval_segmentation.py``) is ``flip=True,
crf=True`` at 320x320 centre crops; see ``configs/stego/README.md``.
"""
from typing import List, Optional

import torch
from mmengine.config import ConfigDict
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import SampleList, add_prefix
from torch import Tensor

__all__ = ['STEGOSegmentor']

#: STEGO's feature names and the ``DINOViT.last_block_maps`` feature each is.
_VIT_FEATURES = dict(feat='tokens', k='k')
_FEATURES = tuple(_VIT_FEATURES)
_DEFAULT_TEST_CFG = dict(mode='whole', flip=False, crf=False)


@MODELS.register_module()
class STEGOSegmentor(EncoderDecoder):
    """STEGO: a frozen DINO ViT and ``STEGOHead``.

    Args:
        backbone (dict): A ViT with ``last_block_maps`` (``DINOViT``).
        decode_head (dict): ``STEGOHead``.
        feature (str): ``'feat'`` (default) or ``'k'``; see the module
            docstring.
        train_cfg (dict, optional): Unused (kept for the mmseg API).
        test_cfg (dict, optional): ``mode='whole'``, ``flip`` (average the
            code with the flipped image's, default False) and ``crf`` (dense
            CRF, default False); STEGO's evaluation configs set both.
        data_preprocessor (dict, optional): ``SegDataPreProcessor`` with
            ImageNet mean/std and ``bgr_to_rgb=True`` (also applied to the KNN
            partners).
        neck, auxiliary_head, pretrained, init_cfg: As
            :class:`~mmseg.models.EncoderDecoder` (no neck / auxiliary head).
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 feature: str = 'feat',
                 neck: Optional[dict] = None,
                 auxiliary_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if neck is not None or auxiliary_head is not None:
            raise ValueError('STEGOSegmentor takes no neck / auxiliary_head')
        if feature not in _FEATURES:
            raise ValueError(f'feature must be one of {_FEATURES}, got {feature!r}')
        cfg = ConfigDict(_DEFAULT_TEST_CFG)
        cfg.update(test_cfg or {})
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            train_cfg=train_cfg,
            test_cfg=cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        if not hasattr(self.backbone, 'last_block_maps'):
            raise TypeError(f'{type(self.backbone).__name__} has no last_block_maps(); '
                            'STEGOSegmentor needs a DINOViT-like backbone')
        if self.test_cfg.mode != 'whole':
            raise ValueError("STEGOSegmentor supports test_cfg.mode='whole' only")
        self.feature = feature

    # ------------------------------------------------------------------ #
    # features
    # ------------------------------------------------------------------ #
    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Frozen ViT features ``[(B, C, h, w)]`` (``feat`` or keys)."""
        grad = self.training and any(p.requires_grad for p in self.backbone.parameters())
        name = _VIT_FEATURES[self.feature]
        with torch.set_grad_enabled(grad):
            return [self.backbone.last_block_maps(inputs, name).maps[name]]

    def partner_inputs(self, data_samples: SampleList) -> Tensor:
        """The KNN partners of a batch, through the model's data preprocessor.

        Args:
            data_samples (list[SegDataSample]): Samples with ``img_pos``
                (``(3, H, W)`` uint8 image packed by the dataset pipeline).

        Returns:
            Tensor: ``(B, 3, H, W)`` normalised partner images.

        Raises:
            KeyError: A sample without ``img_pos``.
        """
        missing = [i for i, s in enumerate(data_samples) if 'img_pos' not in s]
        if missing:
            raise KeyError('STEGO training needs a KNN partner per image (img_pos in the data '
                           'samples): wrap the training set in STEGOKNNPairDataset with the KNN '
                           'file of tools/stego/precompute_knns.py')
        images = [s.img_pos for s in data_samples]
        out = self.data_preprocessor(
            dict(inputs=images, data_samples=[SegDataSample() for _ in images]), True)
        return out['inputs']

    # ------------------------------------------------------------------ #
    # training
    # ------------------------------------------------------------------ #
    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """STEGO's losses for a batch of images and their KNN partners.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.
            data_samples (list[SegDataSample]): With ``img_pos`` and,
                optionally, ``gt_sem_seg`` (linear probe).

        Returns:
            dict[str, Tensor]: ``decode.loss_corr_{intra,inter,neg}``,
            ``decode.loss_cluster``, ``decode.loss_linear`` (with labels) and
            logged correlations.
        """
        feats = self.extract_feat(inputs)[0]
        feats_pos = self.extract_feat(self.partner_inputs(data_samples))[0]
        losses = self.decode_head.loss_by_pairs(feats, feats_pos, data_samples)
        return add_prefix(losses, 'decode')

    # ------------------------------------------------------------------ #
    # inference
    # ------------------------------------------------------------------ #
    def code(self, inputs: Tensor) -> Tensor:
        """Code of a batch ``(B, dim, h, w)``, flip-averaged if
        ``test_cfg.flip``."""
        code = self.decode_head.forward(self.extract_feat(inputs))
        if self.test_cfg.get('flip', False):
            flipped = self.decode_head.forward(self.extract_feat(inputs.flip(-1)))
            code = (code + flipped.flip(-1)) / 2
        return code

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Cluster log-probabilities at the (padded) input size, CRF-refined
        (returned as ``log Q``) when ``test_cfg.crf``.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.
            batch_img_metas (list[dict]): Image metas.

        Returns:
            Tensor: ``(B, n, H, W)`` scores whose argmax is the cluster id.
        """
        scores = self.decode_head.predict_by_feat(self.code(inputs), batch_img_metas)
        if not self.test_cfg.get('crf', False):
            return scores
        from mmuol.localization.dense_crf import stego_crf
        refined = []
        for image, score in zip(inputs, scores):
            # STEGO's CRF reads the ImageNet-normalised RGB image, as fed to DINO.
            q = stego_crf(image.float().cpu(), score.float().cpu())
            refined.append(q.clamp_min(1e-12).log().to(score))
        return torch.stack(refined)
