# Copyright (c) mmuol contributors. All rights reserved.
"""Small host-free utilities."""
from .image_io import decode_image, decode_mask

__all__ = ['decode_image', 'decode_mask']
