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
import os.path as osp
import sys
from typing import Dict, Optional

_HERE = osp.dirname(osp.abspath(__file__))
if _HERE not in sys.path:  # this folder's helpers (they add the source checkout too)
    sys.path.insert(0, _HERE)
import _converter_common as common  # noqa: E402


def convert(src: str, dst: str, backbone: Optional[str] = None) -> Dict:
    """Convert ``src`` to an mmseg checkpoint at ``dst``.

    Args:
        src (str): Official ``decoder_weights.pt`` (or any layout read by
            :func:`mmuol.localization.load_found_decoder`).
        dst (str): Output ``.pth`` path.
        backbone (str, optional): A DINO backbone checkpoint to embed under
            ``backbone.`` (official backbone-only file, full DINO checkpoint
            or timm file).

    Returns:
        dict: The saved checkpoint.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: ``src`` is not a readable torch file.
        KeyError: ``src`` holds no FOUND decoder (the message names it).
    """
    from mmuol.localization import load_found_decoder
    decoder = load_found_decoder(src)
    state_dict = {f'decode_head.conv_seg.{k}': v for k, v in decoder.items()}
    if backbone is not None:
        from mmuol.models.backbones import load_vit_state_dict
        vit = load_vit_state_dict(backbone, checkpoint_key='teacher')
        state_dict.update({f'backbone.{k}': v for k, v in vit.items()})
    return common.save_checkpoint(
        dst,
        state_dict,
        meta=dict(
            source=osp.basename(src),
            converter='tools/model_converters/found_decoder_to_mmuol.py',
            in_channels=int(decoder['weight'].shape[1])))


def main() -> None:
    parser = common.src_dst_parser('Convert FOUND decoder_weights.pt to an mmseg checkpoint',
                                   'official decoder_weights.pt')
    parser.add_argument(
        '--backbone', help='optional DINO ViT checkpoint to include under backbone.*')
    args = parser.parse_args()
    out = common.convert_or_exit(convert, args.src, args.dst, args.backbone)
    sd = out['state_dict']
    print(f'saved {len(sd)} tensors ({sum(v.numel() for v in sd.values())} '
          f'values) to {args.dst}')


if __name__ == '__main__':
    main()
