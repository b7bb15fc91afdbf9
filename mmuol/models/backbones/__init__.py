# Copyright (c) mmuol contributors. All rights reserved.
from .checkpoint import load_vit_state_dict, unwrap_state_dict
from .dino_vit import (ARCH_ZOO, CheckpointMismatchError, DINOViT, LastBlockOutput,
                       WeightsUnavailableError, interpolate_pos_embed_dino)

__all__ = [
    'ARCH_ZOO', 'CheckpointMismatchError', 'DINOViT', 'LastBlockOutput',
    'WeightsUnavailableError', 'interpolate_pos_embed_dino', 'load_vit_state_dict',
    'unwrap_state_dict'
]
