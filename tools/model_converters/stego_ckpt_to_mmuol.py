# Copyright (c) mmuol contributors. All rights reserved.
"""Convert a released STEGO checkpoint (PyTorch Lightning ``.ckpt``) to mmuol.

Released checkpoints (``src/download_models.py`` of mhamilton723/STEGO), all
under https://marhamilresearch4.blob.core.windows.net/stego-public/saved_models/:

* ``cocostuff27_vit_base_5.ckpt`` (COCO-Stuff-27, ViT-B/8)
* ``cityscapes_vit_base_1.ckpt`` (Cityscapes-27, ViT-B/8)
* ``potsdam_test.ckpt`` (Potsdam-3)

The output is an mmengine checkpoint ``{"meta": ..., "state_dict": ...}`` with
``STEGOSegmentor`` keys: ``decode_head.linear_proj.*``,
``decode_head.nonlinear_proj.{0,2}.*``, ``decode_head.clusters``,
``decode_head.conv_seg.*`` (linear probe) and, unless ``--no-backbone``,
``backbone.*`` (the frozen DINO ViT stored in the checkpoint). Unused modules
(``train_cluster_probe``, ``decoder``) are dropped and listed. Neither
omegaconf nor pytorch-lightning is needed. The checkpoint's training config
is printed (backbone, feature type, code dimension, classes) so the matching
``configs/stego/`` config can be checked.

Usage:
    python tools/model_converters/stego_ckpt_to_mmuol.py \\
        cocostuff27_vit_base_5.ckpt checkpoints/stego/stego_dino-vitb8_cocostuff27.pth
    python tools/test.py configs/stego/stego_dino-vitb8_cocostuff27.py \\
        checkpoints/stego/stego_dino-vitb8_cocostuff27.pth
"""
import argparse
import os.path as osp
import sys
from typing import Dict, Optional, Sequence

_HERE = osp.dirname(osp.abspath(__file__))
if _HERE not in sys.path:  # this folder's helpers (they add the source checkout too)
    sys.path.insert(0, _HERE)
import _converter_common as common  # noqa: E402

_SHOWN = ('model_type', 'dino_patch_size', 'dino_feat_type', 'projection_type', 'dim',
          'extra_clusters', 'n_classes', 'dataset_name', 'pos_inter_weight', 'pos_intra_weight',
          'neg_inter_weight', 'pos_inter_shift', 'pos_intra_shift', 'neg_inter_shift')


def convert(src: str, dst: str, with_backbone: bool = True) -> Dict:
    """Convert ``src`` (Lightning ``.ckpt``) to an mmengine checkpoint.

    Args:
        src (str): STEGO checkpoint.
        dst (str): Output ``.pth``.
        with_backbone (bool): Store the DINO ViT weights too.

    Returns:
        dict: What was written (``meta``, ``state_dict``).
    """
    from mmuol.seg.stego.checkpoint import (convert_stego_state_dict, load_lightning_checkpoint,
                                            stego_hyper_parameters)
    if not osp.isfile(src):
        raise FileNotFoundError(f'{src} not found; download a released checkpoint first (URLs in '
                                'this script\'s docstring and configs/stego/README.md)')
    ckpt = load_lightning_checkpoint(src)
    state_dict, dropped = convert_stego_state_dict(ckpt['state_dict'], with_backbone)
    hparams = stego_hyper_parameters(ckpt)
    shown = {k: hparams[k] for k in _SHOWN if k in hparams}
    out = common.save_checkpoint(
        dst, state_dict, meta=dict(source=osp.basename(src), stego_hparams=shown), float32=False)
    clusters = state_dict['decode_head.clusters']
    print(f'{src} -> {dst}: {len(state_dict)} tensors ({clusters.shape[0]} clusters of dim '
          f'{clusters.shape[1]}, head input {state_dict["decode_head.linear_proj.weight"].shape[1]}'
          f' channels, nonlinear branch: {"decode_head.nonlinear_proj.0.weight" in state_dict})')
    if dropped:
        print(f'dropped {len(dropped)} unused tensors: {sorted(dropped)[:8]}' +
              (' ...' if len(dropped) > 8 else ''))
    if hparams:
        print('training config of the checkpoint: ' + ', '.join(f'{k}={v}'
                                                                for k, v in shown.items()))
    return out


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = common.src_dst_parser('Convert a STEGO .ckpt to an mmuol checkpoint',
                                   'STEGO Lightning checkpoint (.ckpt)')
    parser.add_argument(
        '--no-backbone',
        action='store_true',
        help='do not store the DINO weights (the config loads them)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    convert(args.src, args.dst, with_backbone=not args.no_backbone)


if __name__ == '__main__':
    main()
