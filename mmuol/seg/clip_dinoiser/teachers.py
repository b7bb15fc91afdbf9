# Copyright (c) mmuol contributors. All rights reserved.
"""Frozen DINO models that guide or teach CLIP-DINOiser.

* :class:`DINOValueFeatures` - last-block **value** features of a DINO ViT
  (ViT-B/16 in CLIP-DINOiser): the correlations of "MaskCLIP + DINO
  refinement" at inference and the correlation-head target in training.
* :class:`FOUNDObjectness` - FOUND's foreground logits (DINO ViT-S/8 keys +
  the released ``1x1`` decoder): the background-head target in training.

Both take RGB images in ``[0, 1]`` (what CLIP-DINOiser's pipeline feeds),
apply the ImageNet normalisation themselves and run under ``no_grad``.
"""
from typing import Union

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from mmuol.localization.found import found_decoder_logits, load_found_decoder
from mmuol.utils.constants import IMAGENET_MEAN, IMAGENET_STD

__all__ = ['DINOValueFeatures', 'FOUNDObjectness', 'imagenet_normalize']


def imagenet_normalize(images: Tensor) -> Tensor:
    """ImageNet mean/std normalisation of ``(B, 3, H, W)`` RGB images in ``[0, 1]``."""
    mean = images.new_tensor(IMAGENET_MEAN)[None, :, None, None]
    std = images.new_tensor(IMAGENET_STD)[None, :, None, None]
    return (images - mean) / std


class _FrozenDINOTeacher(nn.Module):
    """A frozen DINO ViT, always in eval mode, read on ``[0, 1]`` RGB images.

    Args:
        vit (dict | nn.Module): ``DINOViT`` config or module.
    """

    def __init__(self, vit: Union[dict, nn.Module]) -> None:
        super().__init__()
        vit = vit if isinstance(vit, nn.Module) else MODELS.build(vit)
        if not hasattr(vit, 'last_block_maps'):
            raise TypeError(f'expected a DINOViT config, got {type(vit).__name__}')
        for p in vit.parameters():
            p.requires_grad = False
        self.vit = vit.eval()

    def train(self, mode: bool = True) -> '_FrozenDINOTeacher':
        """Always eval (frozen teacher)."""
        return super().train(False)

    def last_block_map(self, images: Tensor, feature: str) -> Tensor:
        """``(B, C, h, w)`` last-block ``feature`` (``'k'``, ``'v'``, ...) of
        ``(B, 3, H, W)`` RGB images in ``[0, 1]`` (ImageNet-normalised here)."""
        return self.vit.last_block_maps(imagenet_normalize(images), feature).maps[feature]


class DINOValueFeatures(_FrozenDINOTeacher):
    """Last-block value features of a frozen DINO ViT.

    Args:
        vit (dict | nn.Module): ``DINOViT`` config (e.g. ``dict(type='DINOViT',
            arch='dino_vitb16', init_cfg=dict(type='Pretrained',
            checkpoint='dino_vitb16'))``) or module.
    """

    def __init__(self, vit: Union[dict, nn.Module]) -> None:
        super().__init__(vit)
        self.patch_size = int(self.vit.patch_size)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Value features of the patch tokens.

        Args:
            images (Tensor): ``(B, 3, H, W)`` RGB in ``[0, 1]``.

        Returns:
            Tensor: ``(B, C, h, w)`` values (heads concatenated head-major,
            with the qkv bias; prefix tokens dropped).
        """
        return self.last_block_map(images, 'v')


class FOUNDObjectness(_FrozenDINOTeacher):
    """FOUND's foreground logits: ``1x1`` decoder on frozen DINO keys.

    Args:
        backbone (dict | nn.Module): ``DINOViT`` config (FOUND: ``arch=
            'dino_vits8'``, keys of the last block).
        decoder (str | dict): FOUND decoder weights (the released
            ``decoder_weights.pt``, any layout ``load_found_decoder`` reads) or
            ``{'weight': (1, D, 1, 1), 'bias': (1,)}``.
    """

    def __init__(self, backbone: Union[dict, nn.Module], decoder: Union[str, dict]) -> None:
        super().__init__(backbone)
        weights = load_found_decoder(decoder)
        if weights['weight'].shape[1] != self.vit.embed_dims:
            raise ValueError(f'FOUND decoder {decoder if isinstance(decoder, str) else ""} has '
                             f'{weights["weight"].shape[1]} input channels but the backbone '
                             f'has {self.vit.embed_dims}')
        self.register_buffer('weight', weights['weight'].float(), persistent=False)
        self.register_buffer('bias', weights['bias'].float(), persistent=False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Foreground logits at the DINO patch grid.

        Args:
            images (Tensor): ``(B, 3, H, W)`` RGB in ``[0, 1]``.

        Returns:
            Tensor: ``(B, 1, h, w)`` logits (``h = H / patch`` for ViT-S/8:
            ``H / 8``).
        """
        return found_decoder_logits(self.last_block_map(images, 'k'), self.weight, self.bias)
