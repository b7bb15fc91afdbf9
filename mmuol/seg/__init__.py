# Copyright (c) mmuol contributors. All rights reserved.
"""MMSegmentation entry point: ``custom_imports=dict(imports=['mmuol.seg'])``.

Importing this module registers mmuol's segmentation components into
``mmseg.registry``. It imports nothing from mmdet.

Registered names of FOUND and saliency: ``DINOViT`` (backbone), ``FOUNDHead`` (decode head),
``FOUNDSegmentor`` (segmentor), ``SaliencyMetric`` (metric),
``SaliencyDataset`` / ``ECSSDDataset`` / ``DUTSDataset`` / ``DUTOMRONDataset``
(datasets), ``LoadSaliencyImageFromFile`` / ``LoadSaliencyAnnotations`` /
``FOUNDRandomScale`` / ``FOUNDGaussianBlur`` (transforms),
``SaliencyVisualizer`` (visualizer). STEGO (``mmuol.seg.stego``,
``HungarianIoUMetric``) and CLIP-DINOiser (``mmuol.seg.clip_dinoiser``) add
theirs (see ``__all__``).
"""
from mmseg.registry import MODELS

from mmuol.models.backbones import DINOViT
# MaskCLIP / CLIP-DINOiser (open-vocabulary segmentation)
from .clip_dinoiser import (CLIPDINOiser, COCOObjectDataset, DINOiserHead, ImageSubsetDataset,
                            MaskCLIPBackbone, PascalVOC20Dataset, RandomBrightnessJitter)
from .datasets import (DUTOMRONDataset, DUTSDataset, ECSSDDataset, FOUNDGaussianBlur,
                       FOUNDRandomScale, LoadSaliencyAnnotations, LoadSaliencyImageFromFile,
                       SaliencyDataset)
# Deep Spectral Methods (single-object segmentation, semantic pseudo-labels)
from .dsm_segmentor import (DSMPseudoLabelDataset, DSMSegmentor, PrecomputedSegmentor,
                            ResizeLabelToImage)
from .found_head import FOUNDHead
from .found_segmentor import FOUNDSegmentor
# STEGO and the Hungarian-matched mIoU (unsupervised semantic segmentation)
from .hungarian_metric import HungarianIoUMetric
from .saliency_metric import SaliencyMetric
from .saliency_visualizer import SaliencyVisualizer
from .stego import STEGOCorrespondenceLoss, STEGOHead, STEGOSegmentor

# The shared backbone is registered into each host's own registry so configs
# need no scope prefix.
if MODELS.module_dict.get('DINOViT') is not DINOViT:
    MODELS.register_module(module=DINOViT)

# FOUND and saliency
__all__ = [
    'DINOViT', 'FOUNDHead', 'FOUNDSegmentor', 'SaliencyMetric', 'SaliencyDataset', 'ECSSDDataset',
    'DUTSDataset', 'DUTOMRONDataset', 'LoadSaliencyImageFromFile', 'LoadSaliencyAnnotations',
    'FOUNDRandomScale', 'FOUNDGaussianBlur', 'SaliencyVisualizer'
]
# STEGO
__all__ += ['HungarianIoUMetric', 'STEGOSegmentor', 'STEGOHead', 'STEGOCorrespondenceLoss']
# CLIP-DINOiser
__all__ += [
    'CLIPDINOiser', 'MaskCLIPBackbone', 'DINOiserHead', 'PascalVOC20Dataset', 'COCOObjectDataset',
    'ImageSubsetDataset', 'RandomBrightnessJitter'
]
# Deep Spectral Methods
__all__ += ['DSMSegmentor', 'PrecomputedSegmentor', 'DSMPseudoLabelDataset', 'ResizeLabelToImage']
