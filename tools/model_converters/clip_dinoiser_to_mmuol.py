# Copyright (c) mmuol contributors. All rights reserved.
"""Convert CLIP-DINOiser's released head checkpoint to an mmseg checkpoint.

The official ``checkpoints/last.pt`` (wysoczanska/clip_dinoiser, 7 MB) is
``{'epoch', 'model_state_dict': {'obj_proj.weight' (256, 768, 3, 3),
'obj_proj.bias', 'bkg_decoder.weight' (1, 768, 1, 1), 'bkg_decoder.bias'}}``.
The output is an mmengine checkpoint ``{'meta', 'state_dict':
{'decode_head.obj_proj.*', 'decode_head.bkg_decoder.*'}}`` for
``tools/test.py CONFIG CKPT`` with the configs in ``configs/clip_dinoiser/``.
The open_clip weights are not stored: ``MaskCLIPBackbone`` loads them at
construction and keeps them when a checkpoint lacks them.

Usage:
    python tools/model_converters/clip_dinoiser_to_mmuol.py \\
        last.pt checkpoints/clip_dinoiser/clip-dinoiser_heads.pth
"""
import os.path as osp
import sys
from typing import Dict

_HERE = osp.dirname(osp.abspath(__file__))
if _HERE not in sys.path:  # this folder's helpers (they add the source checkout too)
    sys.path.insert(0, _HERE)
import _converter_common as common  # noqa: E402


def convert(src: str, dst: str) -> Dict:
    """Convert ``src`` to an mmseg checkpoint at ``dst``.

    Args:
        src (str): Official ``last.pt`` (or an mmseg checkpoint).
        dst (str): Output ``.pth`` path.

    Returns:
        dict: The saved checkpoint.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: ``src`` is not a readable torch file.
        KeyError: ``src`` holds no head weights.
    """
    from mmuol.seg.clip_dinoiser.head import dinoiser_head_state_dict
    from mmuol.utils.torch_io import load_torch_file
    heads = dinoiser_head_state_dict(load_torch_file(src))
    state_dict = {f'decode_head.{k}': v for k, v in heads.items()}
    return common.save_checkpoint(
        dst,
        state_dict,
        meta=dict(
            source=osp.basename(src),
            converter='tools/model_converters/clip_dinoiser_to_mmuol.py',
            in_channels=int(next(iter(heads.values())).shape[1])))


def main() -> None:
    args = common.src_dst_parser('Convert CLIP-DINOiser last.pt to an mmseg checkpoint',
                                 'official checkpoints/last.pt').parse_args()
    out = common.convert_or_exit(convert, args.src, args.dst)
    keys = ', '.join(sorted(out['state_dict']))
    print(f'wrote {args.dst}: {keys}')


if __name__ == '__main__':
    main()
