# Copyright (c) mmuol contributors. All rights reserved.
"""The array types the host-free core accepts, and the one numpy conversion.

Every function of :mod:`mmuol.localization` and :mod:`mmuol.evaluation` that
takes "an array" accepts a ``torch.Tensor`` or a ``numpy.ndarray``
(:data:`ArrayLike`); :func:`to_numpy` is the single place where such an input
becomes a numpy array.
"""
from typing import Union

import numpy as np
from torch import Tensor

__all__ = ['ArrayLike', 'to_numpy']

#: A torch tensor (any device) or a numpy array.
ArrayLike = Union[Tensor, np.ndarray]


def to_numpy(x: ArrayLike) -> np.ndarray:
    """A numpy view (or copy, for non-CPU tensors) of ``x``.

    Args:
        x (Tensor | np.ndarray | array-like): Tensors are detached and moved
            to the CPU; anything else goes through ``np.asarray``.

    Returns:
        np.ndarray: Same shape and dtype (torch dtype mapped to numpy's).
    """
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
