# Copyright (c) mmuol contributors. All rights reserved.
"""MMSegmentation entry point: ``custom_imports=dict(imports=['mmuol.seg'])``.

Importing this module registers mmuol's segmentation components into
``mmseg.registry``. It imports nothing from mmdet.
"""
from mmseg.registry import MODELS

from mmuol.models.backbones import DINOViT

if MODELS.module_dict.get('DINOViT') is not DINOViT:
    MODELS.register_module(module=DINOViT)

__all__ = ['DINOViT']
