# Copyright (c) mmuol contributors. All rights reserved.
"""The DINO / DINOv2 ViT backbone, its presets and its checkpoint loading."""
from .checkpoint import (convert_dinov2_official, is_dinov2_official, load_vit_state_dict,
                         read_checkpoint_file, to_timm_layout, unwrap_state_dict)
from .dino_vit import DINOViT, LastBlockMaps, LastBlockOutput, interpolate_pos_embed_dino
from .dino_vit_archs import ARCH_ZOO, CheckpointMismatchError, WeightsUnavailableError

__all__ = [
    'ARCH_ZOO', 'CheckpointMismatchError', 'DINOViT', 'LastBlockMaps', 'LastBlockOutput',
    'WeightsUnavailableError', 'interpolate_pos_embed_dino', 'load_vit_state_dict',
    'unwrap_state_dict', 'convert_dinov2_official', 'is_dinov2_official', 'to_timm_layout',
    'read_checkpoint_file'
]
