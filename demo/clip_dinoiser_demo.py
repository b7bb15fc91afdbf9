# Copyright (c) mmuol contributors. All rights reserved.
"""Open-vocabulary segmentation of one image with free-text prompts.

CLIP-DINOiser (or MaskCLIP alone) labels every pixel with one of the
prompts and saves a colour-coded picture (segmentation blended on the image,
with a legend) and, optionally, the label map as a PNG (pixel value = prompt
index).

Usage:
    python demo/clip_dinoiser_demo.py demo/images/chelsea.jpg \\
        --prompts background cat "wooden floor" --out-file outputs/chelsea_seg.jpg
    # offline: local open_clip weights and the released heads
    python demo/clip_dinoiser_demo.py img.jpg --prompts background dog grass \\
        --clip-checkpoint open_clip_pytorch_model.bin --heads last.pt

Prompts are inserted verbatim in CLIP's 80 ImageNet templates. As in the
official demo, a prompt named ``background`` turns the background rule on
(uncertain, non-object patches become background). At least two prompts are
needed; duplicates are an error; prompts longer than CLIP's 77-token context
are truncated (with a warning). Grayscale images are read as 3-channel
images; the image is resized to a short side of 448 px and segmented with
448 px sliding windows (stride 224), as the benchmarks.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

import numpy as np

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)

from mmuol.utils.image_io import read_image  # noqa: E402

BASES = {
    'clip-dinoiser': 'configs/clip_dinoiser/_base_/clip-dinoiser_vit-b16.py',
    'maskclip': 'configs/clip_dinoiser/_base_/maskclip_vit-b16.py',
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='input image file')
    parser.add_argument('--prompts', nargs='+', help='class prompts (free text)')
    parser.add_argument('--prompts-file', help='text file with one prompt per line')
    parser.add_argument('--method', choices=sorted(BASES), default='clip-dinoiser')
    parser.add_argument('--config', help='model config (default: the method\'s base config)')
    parser.add_argument(
        '--clip-model',
        default=None,
        help="open_clip architecture (default: the config's, ViT-B-16)")
    parser.add_argument('--clip-model-config', help='open_clip JSON of an unlisted architecture')
    parser.add_argument(
        '--clip-checkpoint', help='local open_clip weights (default: download the config\'s tag)')
    parser.add_argument(
        '--heads',
        help='CLIP-DINOiser head checkpoint (official last.pt or '
        "mmseg); default: the config's checkpoints/clip_dinoiser/last.pt")
    parser.add_argument('--mode', choices=['slide', 'whole'], default='slide')
    parser.add_argument(
        '--short-side',
        type=int,
        default=448,
        help='resize so the short side is this (0: keep the size)')
    parser.add_argument('--out-file', default='outputs/clip_dinoiser_demo.jpg')
    parser.add_argument('--save-pred', help='also write the label map (uint8 PNG)')
    parser.add_argument('--opacity', type=float, default=0.5)
    parser.add_argument('--device', default=None, help='cuda or cpu (default: cuda if free)')
    return parser.parse_args(argv)


def read_prompts(args: argparse.Namespace) -> List[str]:
    """Prompts from ``--prompts`` and / or ``--prompts-file`` (checked)."""
    from mmuol.seg.clip_dinoiser import get_class_names
    prompts = list(args.prompts or [])
    if args.prompts_file:
        prompts += get_class_names(args.prompts_file)
    if not prompts:
        raise ValueError('no prompts: give --prompts a b ... or --prompts-file FILE')
    return get_class_names(prompts)


def build_model(args: argparse.Namespace, prompts: List[str], device: str):
    """The segmentor of ``--config`` with the command-line overrides."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    from mmseg.registry import MODELS

    import mmuol.seg  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(args.config or osp.join(_ROOT, BASES[args.method]))
    backbone, head = cfg.model.backbone, cfg.model.decode_head
    if args.clip_model_config:
        backbone.model_config = args.clip_model_config
        backbone.model_name = args.clip_model
        head.in_channels = head.embed_dims = None  # from the backbone
    elif args.clip_model:
        backbone.model_name = args.clip_model
        head.in_channels = head.embed_dims = None
    if args.clip_checkpoint:
        if not osp.isfile(args.clip_checkpoint):
            raise FileNotFoundError(f'--clip-checkpoint {args.clip_checkpoint!r} not found')
        backbone.pretrained = args.clip_checkpoint
    if args.heads:
        head.init_cfg = dict(type='Pretrained', checkpoint=args.heads)
    head.class_names = prompts
    head.background_rule = 'auto'
    cfg.model.test_cfg.mode = args.mode
    model = MODELS.build(cfg.model)
    model.decode_head.init_weights()
    return model.to(device).eval()


def predict(model, image_bgr: np.ndarray, short_side: int) -> np.ndarray:
    """``(H, W)`` label map of one decoded BGR image (original size)."""
    import torch
    from mmengine.dataset import Compose
    steps = [dict(type='LoadImageFromNDArray')]
    if short_side > 0:
        steps.append(dict(type='Resize', scale=(1 << 20, short_side), keep_ratio=True))
    steps.append(dict(type='PackSegInputs'))
    data = Compose(steps)(dict(img=image_bgr))
    with torch.no_grad():
        out = model.test_step(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
    return out[0].pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)


def palette(n: int) -> np.ndarray:
    """``(n, 3)`` distinct BGR colours (golden-ratio hues)."""
    import cv2
    hues = (np.arange(n) * 0.618033988749895 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 200, np.uint8), np.full(n, 230, np.uint8)], 1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0].astype(np.uint8)


def draw(image_bgr: np.ndarray, labels: np.ndarray, prompts: Sequence[str],
         opacity: float) -> np.ndarray:
    """Blend the colour-coded labels on the image and add a legend."""
    import cv2
    colours = palette(len(prompts))
    blended = cv2.addWeighted(image_bgr, 1 - opacity, colours[labels], opacity, 0)
    present = [i for i in range(len(prompts)) if (labels == i).any()]
    row = 22
    legend = np.full((row * max(len(present), 1) + 8, blended.shape[1], 3), 255, np.uint8)
    for k, i in enumerate(present):
        y = 4 + k * row
        cv2.rectangle(legend, (6, y + 3), (22, y + 17), tuple(int(c) for c in colours[i]), -1)
        share = 100.0 * float((labels == i).mean())
        cv2.putText(legend, f'{prompts[i]} ({share:.0f}%)', (30, y + 15), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([blended, legend], axis=0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import cv2
    import torch
    try:
        if not osp.isfile(args.image):
            raise FileNotFoundError(f'image {args.image!r} not found')
        # The shared decoder: grey, palette, CMYK and 16-bit files become
        # 8-bit BGR; a truncated or empty file is an error naming it.
        image = read_image(args.image, 'bgr')
        prompts = read_prompts(args)
        device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
        model = build_model(args, prompts, device)
        labels = predict(model, image, args.short_side)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    os.makedirs(osp.dirname(osp.abspath(args.out_file)), exist_ok=True)
    cv2.imwrite(args.out_file, draw(image, labels, prompts, args.opacity))
    if args.save_pred:
        os.makedirs(osp.dirname(osp.abspath(args.save_pred)), exist_ok=True)
        cv2.imwrite(args.save_pred, labels)
    rule = 'on' if model.decode_head.use_background_rule else 'off'
    print(f'{args.image}: {len(prompts)} prompts, background rule {rule} -> {args.out_file}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
