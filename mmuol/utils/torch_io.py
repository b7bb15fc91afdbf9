# Copyright (c) mmuol contributors. All rights reserved.
"""Reading torch files with errors that name the file (host-free)."""
import os.path as osp
import pickle
from typing import Any

import torch

__all__ = ['load_torch_file']


def load_torch_file(path: str, allow_pickle: bool = False) -> Any:
    """``torch.load`` on the CPU with an error that names the file.

    Tensors-only loading (``weights_only=True``) is tried first. Official DINO
    training checkpoints also pickle their argparse ``args``, which the safe
    loader rejects; with ``allow_pickle`` those trusted files fall back to
    full unpickling.

    Args:
        path (str): Local file path.
        allow_pickle (bool): Fall back to ``weights_only=False`` when the safe
            loader refuses the file's objects. Defaults to False.

    Returns:
        Any: What ``torch.load`` returned.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is empty, truncated or not a torch file.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    size = osp.getsize(path)
    if size == 0:
        raise ValueError(f'{path} is empty (0 bytes): an interrupted download? '
                         'Download it again.')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        # The safe loader met a non-tensor object (e.g. argparse.Namespace).
        msg = str(err).lower()
        if not allow_pickle or not ('weights only' in msg or 'weights_only' in msg):
            raise _not_torch(path, size, err) from err
    except Exception as err:  # EOF, bad zip, unpickler IndexError on text, ...
        raise _not_torch(path, size, err) from err
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:  # any unpickling failure of a damaged file
        raise _not_torch(path, size, err) from err


def _not_torch(path: str, size: int, err: Exception) -> ValueError:
    return ValueError(f'cannot read {path} ({size} bytes) as a torch checkpoint: '
                      f'{type(err).__name__}: {err}. The file is truncated, damaged or '
                      'not a .pth/.pt file; download it again.')
