# Copyright (c) mmuol contributors. All rights reserved.
"""Locate the golden test vectors shipped in ``tests/data/golden``."""
from pathlib import Path

GOLDEN_ROOT = Path(__file__).resolve().parents[2] / 'tests' / 'data' / 'golden'


def golden_path(area: str, name: str) -> Path:
    """Path of ``tests/data/golden/<area>/<name>`` (raises if missing)."""
    path = GOLDEN_ROOT / area / name
    if not path.is_file():
        raise FileNotFoundError(f'golden file not found: {path}')
    return path
