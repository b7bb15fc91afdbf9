# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO's segmentation head for MMSegmentation.

The head of STEGO (``DinoFeaturizer`` + ``ClusterLookup`` + linear probe of
mhamilton723/STEGO) on a frozen DINO feature map ``(B, C, h, w)``:

* **projection**: ``code = Conv1x1(C -> dim)(drop(f))`` ``+ [Conv1x1(C -> C)
  -> ReLU -> Conv1x1(C -> dim)](drop(f))`` (``projection='nonlinear'``; the
  second branch is absent for ``'linear'``; ``None`` uses the features as the
  code). ``Dropout2d(0.1)`` is drawn independently before each branch during
  training; with ``feature_dropout`` the features fed to the correspondence
  loss are dropped out too (STEGO's ``dropout: True``).
* **cluster probe**: ``num_classes + extra_clusters`` learned centroids
  (``randn`` init), cosine similarity to the code, trained with the hard
  assignment loss on the **detached** code.
* **linear probe**: ``conv_seg = Conv1x1(dim -> num_classes)`` with
  cross-entropy on logits bilinearly upsampled to the labels, also on the
  detached code (it uses labels: the "linear probe" numbers).

Inference upsamples the code (not the scores) to the input size and returns
the cluster probe's ``log_softmax(alpha * cos)`` (``alpha=2``), or the linear
probe's log-probabilities with ``predict_with='linear'``; the segmentor adds
flip averaging and the dense CRF. See ``configs/stego/README.md``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from mmuol.localization.stego import cluster_log_probs, cluster_probe_inner, cluster_probe_loss

__all__ = ['STEGOHead']

_PROJECTIONS = ('linear', 'nonlinear', None)
_PREDICT_WITH = ('cluster', 'linear')


@MODELS.register_module()
class STEGOHead(BaseDecodeHead):
    """STEGO projection head, cluster probe and linear probe.

    Args:
        in_channels (int): Backbone channels ``C`` (384 for ViT-S, 768 for
            ViT-B; ``feat`` or last-block keys).
        channels (int): Code dimension ``dim`` (70 upstream).
        num_classes (int): Ground-truth classes (linear probe outputs; the
            cluster probe has ``num_classes + extra_clusters`` centroids).
        extra_clusters (int): Additional clusters (0 upstream).
        projection (str | None): ``'nonlinear'``, ``'linear'`` or ``None``.
        dropout_ratio (float): ``Dropout2d`` before each projection branch
            (0.1).
        feature_dropout (bool): Also drop out the features given to the
            correspondence loss (STEGO's ``dropout: True``).
        predict_with (str): ``'cluster'`` (unsupervised, default) or
            ``'linear'`` (linear probe).
        alpha (float): Inverse temperature of the cluster probe at inference
            (2, STEGO's ``eval_segmentation.py``).
        loss_corr (dict): Config of the correspondence loss
            (``STEGOCorrespondenceLoss``).
        cluster_loss_weight (float): Weight of the cluster-probe loss (1).
        loss_decode (dict): Linear-probe loss; cross-entropy averaged over
            labelled pixels (``avg_non_ignore=True``), named ``loss_linear``.
        linear_probe (bool): Train the linear probe when labels are present.
        init_cfg (dict, optional): Initialisation; ``None`` keeps PyTorch's
            default layer init and ``randn`` centroids, as upstream.
        **kwargs: Other :class:`BaseDecodeHead` arguments (``in_index``,
            ``ignore_index``, ``align_corners``).
    """

    def __init__(self,
                 in_channels: int = 384,
                 channels: int = 70,
                 num_classes: int = 27,
                 extra_clusters: int = 0,
                 projection: Optional[str] = 'nonlinear',
                 dropout_ratio: float = 0.1,
                 feature_dropout: bool = True,
                 predict_with: str = 'cluster',
                 alpha: float = 2.0,
                 loss_corr: dict = dict(type='STEGOCorrespondenceLoss'),
                 cluster_loss_weight: float = 1.0,
                 loss_decode: dict = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=False,
                     avg_non_ignore=True,
                     loss_name='loss_linear',
                     loss_weight=1.0),
                 linear_probe: bool = True,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if projection not in _PROJECTIONS:
            raise ValueError(f'projection must be one of {_PROJECTIONS}, got {projection!r}')
        if predict_with not in _PREDICT_WITH:
            raise ValueError(f'predict_with must be one of {_PREDICT_WITH}, got '
                             f'{predict_with!r}')
        if not isinstance(extra_clusters, int) or extra_clusters < 0:
            raise ValueError(f'extra_clusters must be an int >= 0, got {extra_clusters!r}')
        if projection is None and channels != in_channels:
            raise ValueError(f'projection=None uses the features as the code: channels '
                             f'({channels}) must equal in_channels ({in_channels})')
        super().__init__(
            in_channels,
            channels,
            num_classes=num_classes,
            dropout_ratio=dropout_ratio,
            loss_decode=loss_decode,
            init_cfg=init_cfg,
            **kwargs)
        self.projection = projection
        self.feature_dropout = feature_dropout
        self.predict_with = predict_with
        self.alpha = alpha
        self.extra_clusters = extra_clusters
        self.cluster_loss_weight = cluster_loss_weight
        self.linear_probe = linear_probe
        if projection is not None:
            self.linear_proj = nn.Conv2d(in_channels, channels, 1)
        if projection == 'nonlinear':
            self.nonlinear_proj = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 1), nn.ReLU(),
                nn.Conv2d(in_channels, channels, 1))
        self.clusters = nn.Parameter(torch.randn(self.num_clusters, channels))
        self.loss_corr = MODELS.build(loss_corr)

    @property
    def num_clusters(self) -> int:
        """Centroids of the cluster probe (``num_classes + extra_clusters``)."""
        return self.num_classes + self.extra_clusters

    # ------------------------------------------------------------------ #
    # forward
    # ------------------------------------------------------------------ #
    def _features(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        if isinstance(inputs, Tensor):
            inputs = [inputs]
        x = self._transform_inputs(inputs)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'STEGOHead(in_channels={self.in_channels}) got features of shape '
                             f'{tuple(x.shape)}; expected (B, {self.in_channels}, h, w)')
        return x

    def project(self, feats: Tensor) -> Tuple[Tensor, Tensor]:
        """Code of a feature map, and the features as the loss sees them.

        Args:
            feats (Tensor): ``(B, C, h, w)`` backbone features.

        Returns:
            tuple[Tensor, Tensor]: features (dropped out in training when
            ``feature_dropout``) ``(B, C, h, w)`` and code ``(B, dim, h, w)``.
        """

        def drop(x: Tensor) -> Tensor:
            return self.dropout(x) if self.dropout is not None else x

        if self.projection is None:
            code = feats
        else:
            code = self.linear_proj(drop(feats))
            if self.projection == 'nonlinear':
                code = code + self.nonlinear_proj(drop(feats))
        return (drop(feats) if self.feature_dropout else feats), code

    def forward(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """The code ``(B, dim, h, w)`` of ``(B, C, h, w)`` features."""
        return self.project(self._features(inputs))[1]

    def scores(self, code: Tensor) -> Tensor:
        """Per-pixel log-probabilities of a code map.

        Args:
            code (Tensor): ``(B, dim, H, W)``.

        Returns:
            Tensor: ``(B, num_clusters, H, W)`` cluster log-probabilities
            (``predict_with='cluster'``) or ``(B, num_classes, H, W)`` linear
            probe log-probabilities.
        """
        if self.predict_with == 'cluster':
            return cluster_log_probs(cluster_probe_inner(code, self.clusters), self.alpha)
        return F.log_softmax(self.conv_seg(code), dim=1)

    def predict_by_feat(self, seg_logits: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Upsample the **code** to the (padded) input, then score it.

        Args:
            seg_logits (Tensor): ``(B, dim, h, w)`` code (what ``forward``
                returns; mmseg's name for the argument is kept).
            batch_img_metas (list[dict]): Metas with ``pad_shape`` or
                ``img_shape``.

        Returns:
            Tensor: ``(B, n, H_pad, W_pad)`` log-probabilities.
        """
        meta = batch_img_metas[0]
        size = meta.get('pad_shape') or meta['img_shape']
        code = resize(
            seg_logits,
            size=tuple(int(s) for s in size[:2]),
            mode='bilinear',
            align_corners=self.align_corners,
            warning=False)
        return self.scores(code)

    # ------------------------------------------------------------------ #
    # training
    # ------------------------------------------------------------------ #
    def loss(self, inputs, batch_data_samples: SampleList, train_cfg) -> dict:
        """Not available: STEGO's loss needs KNN partners; see
        :meth:`loss_by_pairs` (called by ``STEGOSegmentor``)."""
        raise NotImplementedError(
            'STEGOHead is trained by STEGOSegmentor (the correspondence loss needs each image '
            "with its KNN partner): use model type='STEGOSegmentor' and STEGOKNNPairDataset")

    def loss_by_pairs(self,
                      feats: Tensor,
                      feats_pos: Tensor,
                      batch_data_samples: Optional[SampleList] = None) -> Dict[str, Tensor]:
        """STEGO's training losses for images and their KNN partners.

        Args:
            feats (Tensor): ``(B, C, h, w)`` frozen features of the images.
            feats_pos (Tensor): ``(B, C, h, w)`` features of their partners.
            batch_data_samples (list[SegDataSample], optional): With
                ``gt_sem_seg`` for the linear probe (skipped without labels or
                with ``linear_probe=False``).

        Returns:
            dict[str, Tensor]: the correspondence terms (``loss_corr_*``, and
            ``cd_*`` means for logging), ``loss_cluster`` and, with labels,
            ``loss_linear`` / ``acc_seg``.
        """
        feats = self._features(feats)
        feats_pos = self._features(feats_pos)
        feats_d, code = self.project(feats)
        feats_pos_d, code_pos = self.project(feats_pos)
        losses = dict(self.loss_corr(feats_d, feats_pos_d, code, code_pos))
        detached = code.detach()
        inner = cluster_probe_inner(detached, self.clusters)
        cluster_loss, _ = cluster_probe_loss(inner, None)
        losses['loss_cluster'] = self.cluster_loss_weight * cluster_loss
        if self.linear_probe and batch_data_samples and all('gt_sem_seg' in s
                                                            for s in batch_data_samples):
            losses.update(self.loss_by_feat(self.conv_seg(detached), batch_data_samples))
        return losses
