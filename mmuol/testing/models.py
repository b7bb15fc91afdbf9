# Copyright (c) mmuol contributors. All rights reserved.
"""Tiny model settings for fast CPU tests (no weights are downloaded)."""
from typing import Any, Dict

import numpy as np
import torch
from torch import Tensor

from .golden import golden_path

#: A 2-block ViT with 3 heads of 16 dims (the golden DINO model's shape).
TINY_VIT_ARCH = dict(patch_size=8, embed_dim=48, depth=2, num_heads=3, img_size=32)

#: Golden file holding the official DINO ViT's tiny state dict (``sd::<key>``)
#: and its forward outputs on fixed inputs.
GOLDEN_TINY_VIT = ('found_lost_tokencut', 'dino_vit_tiny_backbone.npz')


def tiny_dino_vit_cfg(**kwargs: Any) -> dict:
    """Config dict of a tiny random ``DINOViT`` (``init_cfg=None``).

    Args:
        **kwargs: Overrides of the config's keys.

    Returns:
        dict: ``dict(type='DINOViT', arch=TINY_VIT_ARCH, init_cfg=None, ...)``.
    """
    cfg = dict(type='DINOViT', arch=dict(TINY_VIT_ARCH), init_cfg=None)
    cfg.update(kwargs)
    return cfg


def golden_tiny_vit_state_dict() -> Dict[str, Tensor]:
    """State dict of the golden tiny official DINO ViT (``TINY_VIT_ARCH``).

    Returns:
        dict[str, Tensor]: Backbone-only keys in the official DINO layout
        (``cls_token``, ``pos_embed`` ``(1, 17, 48)``, ``blocks.{0,1}.…``).
    """
    golden = np.load(golden_path(*GOLDEN_TINY_VIT))
    return {
        k[len('sd::'):]: torch.from_numpy(golden[k])
        for k in golden.files if k.startswith('sd::')
    }
