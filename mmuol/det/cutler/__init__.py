# Copyright (c) mmuol contributors. All rights reserved.
"""CutLER on MMDetection: pseudo-label dataset, DropLoss, copy-paste,
self-training and class-agnostic evaluation (see ``configs/cutler/README.md``).

Registered names (``mmdet.registry``):

* ``DATASETS``: ``MaskCutDataset``, ``ClassAgnosticCocoDataset``,
  ``ClassAgnosticVOCDataset``.
* ``MODELS``: ``DropLoss``, ``DropLossStandardRoIHead``,
  ``DropLossCascadeRoIHead``.
* ``TRANSFORMS``: ``CutLERCopyPaste``.
* ``HOOKS``: ``SelfTrainingHook``.
* ``METRICS``: ``ClassAgnosticCocoMetric``.
"""
from .copy_paste import CutLERCopyPaste
from .dataset import MaskCutDataset
from .drop_loss import DropLoss, DropLossCascadeRoIHead, DropLossStandardRoIHead, drop_loss_weights
from .eval_datasets import ClassAgnosticCocoDataset, ClassAgnosticVOCDataset
from .metric import ClassAgnosticCocoMetric, class_agnostic_coco
from .self_training_hook import SelfTrainingHook

__all__ = [
    'MaskCutDataset', 'DropLoss', 'DropLossStandardRoIHead', 'DropLossCascadeRoIHead',
    'drop_loss_weights', 'CutLERCopyPaste', 'SelfTrainingHook', 'ClassAgnosticCocoMetric',
    'class_agnostic_coco', 'ClassAgnosticCocoDataset', 'ClassAgnosticVOCDataset'
]
