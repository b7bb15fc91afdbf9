# Copyright (c) mmuol contributors. All rights reserved.
"""What the checkpoint converters of this folder share: their command line
and the mmengine checkpoint they write.

A converter puts this folder on ``sys.path`` and imports this module, which
puts the source checkout there too, so the converters run without installing
mmuol.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Callable, Dict

import torch
from torch import Tensor

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)


def src_dst_parser(description: str, src_help: str) -> argparse.ArgumentParser:
    """An argument parser with the positional ``src`` and ``dst`` (output ``.pth``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help='output .pth')
    return parser


def convert_or_exit(convert: Callable[..., Dict], *args) -> Dict:
    """``convert(*args)``; a missing or unreadable input ends the program.

    The converters' errors name the file and the expected layout, so the
    message is printed alone (exit status 1, no traceback).

    Returns:
        dict: What ``convert`` returns.
    """
    try:
        return convert(*args)
    except (FileNotFoundError, ValueError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        sys.exit(f'error: {msg}')


def save_checkpoint(dst: str,
                    state_dict: Dict[str, Tensor],
                    meta: dict,
                    float32: bool = True) -> Dict:
    """Write an mmengine checkpoint ``{'meta', 'state_dict'}`` to ``dst``.

    Args:
        dst (str): Output ``.pth`` path; its folder is created.
        state_dict (dict[str, Tensor]): Weights under their mmuol names.
        meta (dict): Provenance (source file, converter, ...).
        float32 (bool): Store contiguous float32 copies of the tensors
            (detached from the loaded file) instead of the tensors as given.
            Defaults to True.

    Returns:
        dict: The saved checkpoint.
    """
    if float32:
        state_dict = {k: v.detach().clone().float().contiguous() for k, v in state_dict.items()}
    out = dict(meta=meta, state_dict=state_dict)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(out, dst)
    return out
