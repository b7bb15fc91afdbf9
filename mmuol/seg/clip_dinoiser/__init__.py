# Copyright (c) mmuol contributors. All rights reserved.
"""MaskCLIP and CLIP-DINOiser in MMSegmentation (open-vocabulary segmentation).

Registered into ``mmseg.registry``: ``MaskCLIPBackbone`` (backbone),
``DINOiserHead`` (decode head), ``CLIPDINOiser`` (segmentor),
``PascalVOC20Dataset`` / ``COCOObjectDataset`` / ``ImageSubsetDataset``
(datasets), ``RandomBrightnessJitter`` (transform). The algorithm core is
host-free: :mod:`mmuol.localization.maskclip`,
:mod:`mmuol.localization.guided_pooling`,
:mod:`mmuol.localization.clip_dinoiser`. See ``configs/clip_dinoiser/README.md``.
"""
from .backbone import MaskCLIPBackbone, build_open_clip
from .class_names import BENCHMARK_CLASS_NAMES, get_class_names
from .datasets import (COCOObjectDataset, ImageSubsetDataset, PascalVOC20Dataset,
                       RandomBrightnessJitter)
from .head import DINOiserHead, dinoiser_head_state_dict
from .segmentor import CLIPDINOiser
from .teachers import DINOValueFeatures, FOUNDObjectness

__all__ = [
    'MaskCLIPBackbone', 'build_open_clip', 'BENCHMARK_CLASS_NAMES', 'get_class_names',
    'COCOObjectDataset', 'ImageSubsetDataset', 'PascalVOC20Dataset', 'RandomBrightnessJitter',
    'DINOiserHead', 'dinoiser_head_state_dict', 'CLIPDINOiser', 'DINOValueFeatures',
    'FOUNDObjectness'
]
