# Copyright (c) mmuol contributors. All rights reserved.
"""Saliency datasets (ECSSD, DUTS, DUT-OMRON) and their transforms.

Laid out as mmseg keeps them: datasets here, transforms in
:mod:`mmuol.seg.datasets.transforms`.
"""
from .saliency import DUTOMRONDataset, DUTSDataset, ECSSDDataset, SaliencyDataset
from .transforms import (FOUNDGaussianBlur, FOUNDRandomScale, LoadSaliencyAnnotations,
                         LoadSaliencyImageFromFile)

__all__ = [
    'SaliencyDataset', 'ECSSDDataset', 'DUTSDataset', 'DUTOMRONDataset',
    'LoadSaliencyImageFromFile', 'LoadSaliencyAnnotations', 'FOUNDRandomScale', 'FOUNDGaussianBlur'
]
