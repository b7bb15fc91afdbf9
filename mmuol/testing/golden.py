# Copyright (c) mmuol contributors. All rights reserved.
"""Locate and load the golden test vectors shipped in ``tests/data/golden``."""
import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

__all__ = ['GOLDEN_ROOT', 'golden_path', 'golden_names', 'load_golden']

GOLDEN_ROOT = Path(__file__).resolve().parents[2] / 'tests' / 'data' / 'golden'


def golden_path(area: str, name: str) -> Path:
    """Path of ``tests/data/golden/<area>/<name>`` (raises if missing)."""
    path = GOLDEN_ROOT / area / name
    if not path.is_file():
        raise FileNotFoundError(f'golden file not found: {path}')
    return path


def golden_names(area: str, pattern: str) -> List[str]:
    """Sorted file names in ``tests/data/golden/<area>`` matching a glob."""
    return sorted(p.name for p in (GOLDEN_ROOT / area).glob(pattern))


def load_golden(name: str) -> Tuple[Dict[str, np.ndarray], dict]:
    """Load ``tests/data/golden/<area>/<file>.npz``.

    Args:
        name (str): ``'<area>/<file>'`` with or without ``.npz``, e.g.
            ``'found_lost_tokencut/lost_14x14_d384_ps16_k100'``.

    Returns:
        tuple[dict, dict]: The arrays (``meta_json`` removed) and the parsed
        ``meta_json`` (empty dict if absent).
    """
    area, _, fname = name.partition('/')
    if not fname.endswith('.npz'):
        fname += '.npz'
    with np.load(golden_path(area, fname), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop('meta_json'))) if 'meta_json' in arrays else {}
    return arrays, meta
