# Copyright (c) mmuol contributors. All rights reserved.
"""MMDetection entry point: ``custom_imports=dict(imports=['mmuol.det'])``.

Importing this module registers mmuol's detection components into
``mmdet.registry``. It imports nothing from mmseg.

Registered names:

* ``MODELS``: ``DINOViT`` (shared backbone), ``UnsupervisedLocalizer``.
* ``TASK_UTILS``: ``LOSTLocalizer``, ``TokenCutLocalizer``,
  ``DINOSegLocalizer``, ``FOUNDBkgLocalizer``, ``FOUNDHeadLocalizer``,
  ``MaskCutLocalizer``.
* ``METRICS``: ``CorLocMetric``.
* ``DATASETS``: ``VOCCorLocDataset``, ``COCO20kDataset``.
"""
from mmdet.registry import MODELS

from mmuol.models.backbones import DINOViT
from .corloc_metric import CorLocMetric
from .datasets import COCO20kDataset, VOCCorLocDataset
from .localizer import (BaseLocalizerAdapter, DINOSegLocalizer, FOUNDBkgLocalizer,
                        FOUNDHeadLocalizer, LocalizerOutput, LOSTLocalizer, MaskCutLocalizer,
                        PatchFeatures, TokenCutLocalizer, UnsupervisedLocalizer)

# The shared backbone is registered into each host's own registry so configs
# need no scope prefix (see docs: two hosts, one package).
if MODELS.module_dict.get('DINOViT') is not DINOViT:
    MODELS.register_module(module=DINOViT)

__all__ = [
    'DINOViT', 'UnsupervisedLocalizer', 'BaseLocalizerAdapter', 'PatchFeatures', 'LocalizerOutput',
    'LOSTLocalizer', 'TokenCutLocalizer', 'DINOSegLocalizer', 'FOUNDBkgLocalizer',
    'FOUNDHeadLocalizer', 'MaskCutLocalizer', 'CorLocMetric', 'VOCCorLocDataset', 'COCO20kDataset'
]
