# Copyright (c) mmuol contributors. All rights reserved.
"""Architecture presets of :class:`~mmuol.models.backbones.DINOViT` and the
errors raised while fetching or fitting their weights.

This module is a leaf: it imports nothing from mmuol, so both the checkpoint
loader and the backbone can depend on it without importing each other.
"""
from typing import Dict

__all__ = ['ARCH_ZOO', 'CheckpointMismatchError', 'WeightsUnavailableError']

_DINO_URL = 'https://dl.fbaipublicfiles.com/dino/'
_DINOV2_URL = 'https://dl.fbaipublicfiles.com/dinov2/'


def _dino_v1(timm_name: str, release: str) -> dict:
    """Preset of a DINO v1 ViT released as ``<release>/<release>.pth``."""
    return dict(timm_name=timm_name, img_size=224, checkpoint=f'{_DINO_URL}{release}/{release}.pth')


#: Architecture presets: name -> timm model name, the resolution the released
#: ``pos_embed`` was trained at (``img_size``) and the official weights URL.
ARCH_ZOO: Dict[str, dict] = {
    # DINO v1 (facebookresearch/dino). ViT-S/8 defaults to the 300-epoch
    # file, which is what LOST, TokenCut and FOUND load.
    'dino_vits8': _dino_v1('vit_small_patch8_224', 'dino_deitsmall8_300ep_pretrain'),
    'dino_vits8_800ep': _dino_v1('vit_small_patch8_224', 'dino_deitsmall8_pretrain'),
    'dino_vits16': _dino_v1('vit_small_patch16_224', 'dino_deitsmall16_pretrain'),
    'dino_vitb8': _dino_v1('vit_base_patch8_224', 'dino_vitbase8_pretrain'),
    'dino_vitb16': _dino_v1('vit_base_patch16_224', 'dino_vitbase16_pretrain'),
}
# DINOv2 (facebookresearch/dinov2), with and without the 4 register tokens.
for _size, _letter in (('small', 's'), ('base', 'b'), ('large', 'l'), ('giant', 'g')):
    ARCH_ZOO[f'dinov2_vit{_letter}14'] = dict(
        timm_name=f'vit_{_size}_patch14_dinov2',
        img_size=518,
        checkpoint=f'{_DINOV2_URL}dinov2_vit{_letter}14/dinov2_vit{_letter}14_pretrain.pth')
    ARCH_ZOO[f'dinov2_vit{_letter}14_reg'] = dict(
        timm_name=f'vit_{_size}_patch14_reg4_dinov2',
        img_size=518,
        checkpoint=f'{_DINOV2_URL}dinov2_vit{_letter}14/dinov2_vit{_letter}14_reg4_pretrain.pth')
del _size, _letter


class WeightsUnavailableError(RuntimeError):
    """Raised when pretrained weights can neither be found nor downloaded."""


class CheckpointMismatchError(ValueError):
    """Raised when a checkpoint's keys or shapes do not fit the backbone."""
