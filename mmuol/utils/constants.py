# Copyright (c) mmuol contributors. All rights reserved.
"""Image statistics shared by every pipeline (one definition)."""

__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'IMAGENET_MEAN_255', 'IMAGENET_STD_255']

#: ImageNet RGB statistics on the 0-1 scale (torchvision's ``Normalize`` in
#: DINO, LOST, TokenCut, FOUND, MaskCut, STEGO and DSM).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The same on the 0-255 scale (mmdet / mmseg data preprocessors).
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)
