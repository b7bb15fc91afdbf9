# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO (Hamilton et al., ICLR 2022) in MMSegmentation.

Registered names: ``STEGOSegmentor`` (segmentor), ``STEGOHead`` (decode
head), ``STEGOCorrespondenceLoss`` (loss), ``COCOStuff27Dataset`` /
``Cityscapes27Dataset`` / ``Potsdam3Dataset`` / ``FiveCropDataset`` /
``STEGOKNNPairDataset`` (datasets), ``STEGOResizeCenterCrop`` /
``STEGORemapLabels`` / ``LoadPotsdamMat`` (transforms). The algorithm core is
:mod:`mmuol.localization.stego`; the metric is ``HungarianIoUMetric``.
Workflow: ``configs/stego/README.md``.
"""
from .checkpoint import (STEGO_CHECKPOINT_URLS, convert_stego_state_dict, load_lightning_checkpoint,
                         stego_hyper_parameters)
from .datasets import (Cityscapes27Dataset, COCOStuff27Dataset, FiveCropDataset, Potsdam3Dataset,
                       STEGOKNNPairDataset, knn_image_keys)
from .head import STEGOHead
from .label_maps import (CITYSCAPES27_CLASSES, COCOSTUFF27_CLASSES, LABEL_MAPS, POTSDAM3_CLASSES,
                         label_lut)
from .loss import STEGOCorrespondenceLoss
from .segmentor import STEGOSegmentor
from .transforms import LoadPotsdamMat, STEGORemapLabels, STEGOResizeCenterCrop

__all__ = [
    'STEGOSegmentor', 'STEGOHead', 'STEGOCorrespondenceLoss', 'COCOStuff27Dataset',
    'Cityscapes27Dataset', 'Potsdam3Dataset', 'FiveCropDataset', 'STEGOKNNPairDataset',
    'knn_image_keys', 'STEGOResizeCenterCrop', 'STEGORemapLabels', 'LoadPotsdamMat',
    'COCOSTUFF27_CLASSES', 'CITYSCAPES27_CLASSES', 'POTSDAM3_CLASSES', 'LABEL_MAPS', 'label_lut',
    'STEGO_CHECKPOINT_URLS', 'load_lightning_checkpoint', 'stego_hyper_parameters',
    'convert_stego_state_dict'
]
