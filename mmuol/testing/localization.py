# Copyright (c) mmuol contributors. All rights reserved.
"""Golden-vector helpers for the :mod:`mmuol.localization` tests."""
import contextlib
import ctypes
import importlib.util
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch

# The golden loaders live in .golden (shared by all areas); re-exported here.
from .golden import golden_names, golden_path, load_golden

__all__ = ['load_golden', 'golden_names', 'maskcut_features', 'single_threaded']


def _gen_features_module():
    path = golden_path('maskcut', 'gen_features.py')
    spec = importlib.util.spec_from_file_location('_mmuol_maskcut_gen', str(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def maskcut_features(arrays: Dict[str, np.ndarray]) -> np.ndarray:
    """Rebuild a MaskCut golden case's features ``(d, h*w)`` float32.

    Uses the shipped ``gen_features.py`` recipe and checks the SHA-256 and
    the ``feats_sample`` (``feats[:4, :16]``) stored in the file (raises
    ``AssertionError`` on mismatch).
    """
    gen = _gen_features_module()
    feats = gen.build_features(arrays['label_map'], arrays['proto_codes'],
                               int(arrays['noise_seed']), int(arrays['noise_amp']))
    digest = gen.sha256_of(feats)
    assert digest == str(arrays['feats_sha256']), \
        'MaskCut golden features do not reproduce (SHA-256 mismatch)'
    assert np.array_equal(feats[:4, :16], arrays['feats_sample']), \
        'MaskCut golden features do not reproduce (feats_sample mismatch)'
    return feats


def _openblas_handles() -> List[Tuple[ctypes.CDLL, str, str]]:
    """(lib, setter, getter) for every OpenBLAS loaded in this process
    (numpy and scipy each bundle their own), found via /proc/self/maps."""
    names = [('openblas_set_num_threads64_', 'openblas_get_num_threads64_'),
             ('openblas_set_num_threads', 'openblas_get_num_threads'),
             ('scipy_openblas_set_num_threads64_', 'scipy_openblas_get_num_threads64_'),
             ('scipy_openblas_set_num_threads', 'scipy_openblas_get_num_threads')]
    try:
        with open('/proc/self/maps') as f:
            paths = {ln.split()[-1] for ln in f if 'openblas' in ln.lower()}
    except OSError:
        return []
    out = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in names:
            if hasattr(lib, setter) and hasattr(lib, getter):
                out.append((lib, setter, getter))
                break
    return out


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch and the bundled OpenBLAS libraries on one thread.

    The test machines are small and shared: multi-threaded BLAS on a busy
    2-core box spends most of its time spin-waiting (dense 500x500 eigh
    calls were seen taking seconds). Best effort: unknown BLAS builds are
    left alone. Previous settings are restored on exit.
    """
    import scipy.linalg  # noqa: F401  (load scipy's OpenBLAS first)
    handles = _openblas_handles()
    saved = []
    for lib, setter, getter in handles:
        saved.append((lib, setter, int(getattr(lib, getter)())))
        getattr(lib, setter)(1)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        for lib, setter, n in saved:
            getattr(lib, setter)(n)
