# Copyright (c) mmuol contributors. All rights reserved.
"""MMDetection entry point: ``custom_imports=dict(imports=['mmuol.det'])``.

Importing this module registers mmuol's detection components into
``mmdet.registry``. It imports nothing from mmseg.
"""
from mmdet.registry import MODELS

from mmuol.models.backbones import DINOViT

# The shared backbone is registered into each host's own registry so configs
# need no scope prefix (see docs: two hosts, one package).
if MODELS.module_dict.get('DINOViT') is not DINOViT:
    MODELS.register_module(module=DINOViT)

__all__ = ['DINOViT']
