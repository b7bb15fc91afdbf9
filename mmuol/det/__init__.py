# Copyright (c) mmuol contributors. All rights reserved.
"""MMDetection entry point: ``custom_imports=dict(imports=['mmuol.det'])``.

Importing this module registers mmuol's detection components into
``mmdet.registry`` (one name per class). It imports nothing from mmseg.

Registered names:

* ``MODELS``: ``DINOViT`` (shared backbone), ``UnsupervisedLocalizer``;
  CutLER's ``DropLoss``, ``DropLossStandardRoIHead``,
  ``DropLossCascadeRoIHead``.
* ``TASK_UTILS``: ``LOSTLocalizer``, ``TokenCutLocalizer``,
  ``DINOSegLocalizer``, ``FOUNDBkgLocalizer``, ``FOUNDHeadLocalizer``,
  ``MaskCutLocalizer``, ``DSMLocalizer``.
* ``METRICS``: ``CorLocMetric``, ``ClassAgnosticCocoMetric``.
* ``DATASETS``: ``VOCCorLocDataset``, ``COCO20kDataset``,
  ``MaskCutDataset``, ``ClassAgnosticCocoDataset``,
  ``ClassAgnosticVOCDataset``.
* ``TRANSFORMS``: ``LoadCorLocImageFromFile``, ``CutLERCopyPaste``.
* ``HOOKS``: ``CorLocVisualizationHook``, ``SelfTrainingHook``.
"""
from mmdet.registry import MODELS

from mmuol.models.backbones import DINOViT
from .corloc_metric import CorLocMetric
from .cutler import (ClassAgnosticCocoDataset, ClassAgnosticCocoMetric, ClassAgnosticVOCDataset,
                     CutLERCopyPaste, DropLoss, DropLossCascadeRoIHead, DropLossStandardRoIHead,
                     MaskCutDataset, SelfTrainingHook)
from .datasets import COCO20kDataset, VOCCorLocDataset
from .hooks import CorLocVisualizationHook
from .localizers import (BaseLocalizerAdapter, DINOSegLocalizer, DSMLocalizer, FOUNDBkgLocalizer,
                         FOUNDHeadLocalizer, LocalizerOutput, LOSTLocalizer, MaskCutLocalizer,
                         PatchFeatures, TokenCutLocalizer)
from .transforms import LoadCorLocImageFromFile
from .unsupervised_localizer import (DEFAULT_MAX_PATCHES, IMAGENET_MEAN, IMAGENET_STD,
                                     UnsupervisedLocalizer)

# The shared backbone is registered into each host's own registry so configs
# need no scope prefix.
if MODELS.module_dict.get('DINOViT') is not DINOViT:
    MODELS.register_module(module=DINOViT)

__all__ = [
    'DINOViT', 'UnsupervisedLocalizer', 'DEFAULT_MAX_PATCHES', 'IMAGENET_MEAN', 'IMAGENET_STD',
    'BaseLocalizerAdapter', 'PatchFeatures', 'LocalizerOutput', 'LOSTLocalizer',
    'TokenCutLocalizer', 'DINOSegLocalizer', 'FOUNDBkgLocalizer', 'FOUNDHeadLocalizer',
    'MaskCutLocalizer', 'CorLocMetric', 'VOCCorLocDataset', 'COCO20kDataset',
    'LoadCorLocImageFromFile', 'CorLocVisualizationHook', 'MaskCutDataset', 'DropLoss',
    'DropLossStandardRoIHead', 'DropLossCascadeRoIHead', 'CutLERCopyPaste', 'SelfTrainingHook',
    'ClassAgnosticCocoMetric', 'ClassAgnosticCocoDataset', 'ClassAgnosticVOCDataset', 'DSMLocalizer'
]
