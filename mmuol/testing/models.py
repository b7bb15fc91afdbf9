# Copyright (c) mmuol contributors. All rights reserved.
"""Tiny model settings for fast CPU tests (no weights are downloaded)."""

#: A 2-block ViT with 3 heads of 16 dims (the golden DINO model's shape).
TINY_VIT_ARCH = dict(patch_size=8, embed_dim=48, depth=2, num_heads=3, img_size=32)


def tiny_dino_vit_cfg(**kwargs) -> dict:
    """Config dict of a tiny random ``DINOViT`` (``init_cfg=None``)."""
    cfg = dict(type='DINOViT', arch=dict(TINY_VIT_ARCH), init_cfg=None)
    cfg.update(kwargs)
    return cfg
