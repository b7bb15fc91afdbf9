# Copyright (c) mmuol contributors. All rights reserved.
"""Helpers for mmuol's test suite (fixtures, tiny models, fake data).

They live in the package, not in ``tests/``, because the mmsegmentation
wheel installs a top-level ``tests`` package that would shadow ours.
"""
from .golden import GOLDEN_ROOT, golden_path

__all__ = ['GOLDEN_ROOT', 'golden_path']
