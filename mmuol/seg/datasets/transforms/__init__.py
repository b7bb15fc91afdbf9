# Copyright (c) mmuol contributors. All rights reserved.
"""Saliency loading transforms and FOUND's training augmentations."""
from .found_transforms import FOUNDGaussianBlur, FOUNDRandomScale
from .loading import LoadSaliencyAnnotations, LoadSaliencyImageFromFile

__all__ = [
    'LoadSaliencyImageFromFile', 'LoadSaliencyAnnotations', 'FOUNDRandomScale', 'FOUNDGaussianBlur'
]
