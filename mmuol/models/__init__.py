# Copyright (c) mmuol contributors. All rights reserved.
"""Host-neutral models (no mmdet / mmseg import)."""
from .backbones import DINOViT

__all__ = ['DINOViT']
