# Copyright (c) mmuol contributors. All rights reserved.
"""Convert FOUND's released decoder weights to an mmseg checkpoint.

The official ``data/weights/decoder_weights.pt`` (valeoai/FOUND, 2.7 KB) is
``{"decoder": {"weight": (1, 384, 1, 1), "bias": (1,)}}``. The output is an
mmengine checkpoint ``{"meta": ..., "state_dict":
{"decode_head.conv_seg.weight", "decode_head.conv_seg.bias"[, "backbone.*"]}}``
loadable by ``tools/test.py CONFIG CKPT`` with the ``FOUNDSegmentor`` configs
in ``configs/found/``. Without ``--backbone`` the ViT weights are not stored
(the frozen ``DINOViT`` loads them from its own ``init_cfg``; the runner then
reports the backbone keys as missing, which is expected).

Usage:
    python tools/model_converters/found_decoder_to_mmuol.py \\
        decoder_weights.pt checkpoints/found/found_dino-vits8_decoder.pth \\
        [--backbone dino_deitsmall8_300ep_pretrain.pth]
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, Optional

import torch

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)


def convert(src: str, dst: str, backbone: Optional[str] = None) -> Dict:
    """Convert ``src`` to an mmseg checkpoint at ``dst``.

    Args:
        src (str): Official ``decoder_weights.pt`` (or any layout accepted by
            :func:`mmuol.seg.found_head.convert_found_decoder_state_dict`).
        dst (str): Output ``.pth`` path.
        backbone (str, optional): A DINO backbone checkpoint to embed under
            ``backbone.`` (official backbone-only file, full DINO checkpoint
            or timm file).

    Returns:
        dict: The saved checkpoint.
    """
    from mmuol.seg.found_head import convert_found_decoder_state_dict
    ckpt = torch.load(src, map_location='cpu', weights_only=True)
    state_dict = convert_found_decoder_state_dict(
        ckpt, prefix='decode_head.conv_seg.')
    weight = state_dict['decode_head.conv_seg.weight']
    if weight.dim() != 4 or weight.shape[0] != 1 or weight.shape[2:] != (1,
                                                                         1):
        raise ValueError(f'{src}: decoder weight has shape '
                         f'{tuple(weight.shape)}, expected (1, D, 1, 1)')
    if backbone is not None:
        from mmuol.models.backbones.checkpoint import load_vit_state_dict
        vit = load_vit_state_dict(backbone, None, 'teacher')
        state_dict.update({f'backbone.{k}': v for k, v in vit.items()})
    out = dict(
        meta=dict(
            source=osp.basename(src),
            converter='tools/model_converters/found_decoder_to_mmuol.py',
            in_channels=int(weight.shape[1])),
        state_dict={k: v.detach().clone().float().contiguous()
                    for k, v in state_dict.items()})
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(out, dst)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description='Convert FOUND decoder_weights.pt to an mmseg checkpoint')
    parser.add_argument('src', help='official decoder_weights.pt')
    parser.add_argument('dst', help='output .pth')
    parser.add_argument('--backbone', help='optional DINO ViT checkpoint to '
                        'include under backbone.*')
    args = parser.parse_args()
    out = convert(args.src, args.dst, args.backbone)
    sd = out['state_dict']
    print(f'saved {len(sd)} tensors ({sum(v.numel() for v in sd.values())} '
          f'values) to {args.dst}')


if __name__ == '__main__':
    main()
