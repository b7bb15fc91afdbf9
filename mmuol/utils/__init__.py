# Copyright (c) mmuol contributors. All rights reserved.
"""Small host-free utilities: arrays, image statistics, image decoding, torch
files and hub access."""
from .arrays import ArrayLike, to_numpy
from .constants import IMAGENET_MEAN, IMAGENET_MEAN_255, IMAGENET_STD, IMAGENET_STD_255
from .hub import hf_endpoint, hf_hub_offline, hub_reachable
from .image_io import decode_image, decode_mask, read_image, read_mask
from .torch_io import load_torch_file

__all__ = [
    'ArrayLike', 'to_numpy', 'IMAGENET_MEAN', 'IMAGENET_STD', 'IMAGENET_MEAN_255',
    'IMAGENET_STD_255', 'hf_endpoint', 'hf_hub_offline', 'hub_reachable', 'decode_image',
    'decode_mask', 'read_image', 'read_mask', 'load_torch_file'
]
