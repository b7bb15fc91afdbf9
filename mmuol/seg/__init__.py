# Copyright (c) mmuol contributors. All rights reserved.
"""MMSegmentation entry point: ``custom_imports=dict(imports=['mmuol.seg'])``.

Importing this module registers mmuol's segmentation components into
``mmseg.registry``. It imports nothing from mmdet.

Registered names: ``DINOViT`` (backbone), ``FOUNDHead`` (decode head),
``FOUNDSegmentor`` (segmentor), ``SaliencyMetric`` (metric),
``SaliencyDataset`` / ``ECSSDDataset`` / ``DUTSDataset`` / ``DUTOMRONDataset``
(datasets), ``LoadSaliencyImageFromFile`` / ``LoadSaliencyAnnotations`` /
``FOUNDRandomScale`` / ``FOUNDGaussianBlur`` (transforms).
"""
from mmseg.registry import MODELS

from mmuol.models.backbones import DINOViT

if MODELS.module_dict.get('DINOViT') is not DINOViT:
    MODELS.register_module(module=DINOViT)

from .datasets import (  # noqa: E402
    DUTOMRONDataset, DUTSDataset, ECSSDDataset, FOUNDGaussianBlur,
    FOUNDRandomScale, LoadSaliencyAnnotations, LoadSaliencyImageFromFile,
    SaliencyDataset)
from .found_head import FOUNDHead  # noqa: E402
from .found_segmentor import FOUNDSegmentor  # noqa: E402
from .saliency_metric import SaliencyMetric  # noqa: E402

__all__ = [
    'DINOViT', 'FOUNDHead', 'FOUNDSegmentor', 'SaliencyMetric',
    'SaliencyDataset', 'ECSSDDataset', 'DUTSDataset', 'DUTOMRONDataset',
    'LoadSaliencyImageFromFile', 'LoadSaliencyAnnotations',
    'FOUNDRandomScale', 'FOUNDGaussianBlur'
]
