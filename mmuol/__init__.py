# Copyright (c) mmuol contributors. All rights reserved.
"""mmuol: unsupervised object localization for MMDetection 3.x / MMSegmentation 1.x.

Importing ``mmuol`` is cheap and registers nothing. Configs pull in the host
side they need with ``custom_imports=dict(imports=['mmuol.det'])`` or
``['mmuol.seg']``; the algorithm core lives in :mod:`mmuol.localization` and
imports neither host.
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']
