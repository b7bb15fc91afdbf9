# Copyright (c) mmuol contributors. All rights reserved.
"""Inference throughput of FOUND (frozen DINO ViT + 1x1-conv head).

Times the whole saliency inference of :class:`mmuol.seg.FOUNDSegmentor` on
batches of same-size random images: ViT forward to the last-block keys, the
head, the x8 bilinear upsampling and the sigmoid (FOUND's ``multi`` map);
``--postprocess single`` adds the 0.5 binarisation and the largest-component
selection on the CPU. Random weights (timing only; nothing is downloaded).

Uses batched inference under ``torch.inference_mode``; on CUDA also bf16
autocast and channels-last (``--no-amp`` / ``--no-channels-last`` to
disable). The paper's summary quotes ~80 FPS for ViT-S/8 on a V100.

Examples:
    python tools/analysis/benchmark_found.py --iters 3
    python tools/analysis/benchmark_found.py --device cuda --batch-size 32 \\
        --sizes 224x224 480x480 375x500 --iters 50 --json found_speed.json

Sizes are ``HxW`` (``375x500`` is a VOC-like 500 px wide landscape image).
"""
import argparse
import json
import os.path as osp
import sys
import time
from contextlib import nullcontext
from typing import Dict, List, Tuple

import torch

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)


def parse_size(text: str) -> Tuple[int, int]:
    """``'480x640'`` -> ``(480, 640)`` (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be HxW, e.g. 480x480, got {text!r}') from None
    return h, w


def build_model(arch: str, device: torch.device):
    """FOUNDSegmentor with a random-weight DINOViT of ``arch``."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    from mmseg.registry import MODELS

    import mmuol.seg  # noqa: F401  (registers FOUND)
    from mmuol.models.backbones import DINOViT
    from mmuol.utils.constants import IMAGENET_MEAN_255, IMAGENET_STD_255
    probe = DINOViT(arch=arch, init_cfg=None)
    dims, patch = probe.embed_dims, probe.patch_size
    del probe
    model = MODELS.build(
        dict(
            type='FOUNDSegmentor',
            data_preprocessor=dict(
                type='SegDataPreProcessor',
                mean=list(IMAGENET_MEAN_255),
                std=list(IMAGENET_STD_255),
                bgr_to_rgb=True),
            backbone=dict(type='DINOViT', arch=arch, init_cfg=None),
            decode_head=dict(type='FOUNDHead', in_channels=dims, patch_size=patch)))
    return model.to(device).eval()


def bench_size(model, size: Tuple[int, int], batch_size: int, iters: int, warmup: int,
               device: torch.device, amp: bool, channels_last: bool,
               postprocess: str) -> Dict[str, float]:
    """Images per second for one input size."""
    from mmuol.localization import found_single_component
    x = torch.randn(batch_size, 3, *size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp \
        else nullcontext()

    def step():
        with torch.inference_mode(), autocast:
            soft = model.predict_saliency(x)
        if postprocess == 'single':
            binary = (soft[:, 0] > 0.5).cpu().numpy()
            for b in binary:
                found_single_component(b)
        elif device.type == 'cuda':
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    times: List[float] = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    return dict(
        height=size[0],
        width=size[1],
        batch_size=batch_size,
        iters=iters,
        median_batch_s=median,
        images_per_s=batch_size / median,
        mean_images_per_s=batch_size * len(times) / sum(times))


def main() -> None:
    parser = argparse.ArgumentParser(description='FOUND inference speed')
    parser.add_argument('--arch', default='dino_vits8', help='DINOViT arch')
    parser.add_argument(
        '--sizes',
        nargs='+',
        type=parse_size,
        default=[(224, 224), (480, 480), (375, 500)],
        help='input sizes HxW')
    parser.add_argument(
        '--batch-size', type=int, default=None, help='images per batch (default 32 CUDA / 2 CPU)')
    parser.add_argument('--iters', type=int, default=20, help='timed batches')
    parser.add_argument(
        '--warmup', type=int, default=2, help='warm-up '
        'batches')
    parser.add_argument(
        '--device', default='auto', help="'auto', 'cpu', "
        "'cuda', 'cuda:1'")
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--no-amp', action='store_true', help='disable bf16 autocast on CUDA')
    parser.add_argument(
        '--no-channels-last', action='store_true', help='disable channels-last on CUDA')
    parser.add_argument(
        '--postprocess',
        choices=['none', 'single'],
        default='none',
        help="add 'single'-mode component "
        'selection (CPU) to the timing')
    parser.add_argument('--json', help='write the results to this file')
    args = parser.parse_args()

    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == 'cuda'
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    amp = cuda and not args.no_amp
    channels_last = cuda and not args.no_channels_last
    batch_size = args.batch_size or (32 if cuda else 2)

    model = build_model(args.arch, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    name = torch.cuda.get_device_name(device) if cuda else \
        f'CPU ({torch.get_num_threads()} threads)'
    print(f'FOUND {args.arch} on {name}; batch {batch_size}, amp(bf16)='
          f'{amp}, channels_last={channels_last}, postprocess='
          f'{args.postprocess}, torch {torch.__version__}')
    rows = []
    for size in args.sizes:
        res = bench_size(model, size, batch_size, args.iters, args.warmup, device, amp,
                         channels_last, args.postprocess)
        rows.append(res)
        print(
            f'  {size[0]}x{size[1]}: {res["images_per_s"]:.2f} images/s '
            f'(median {res["median_batch_s"] * 1000:.1f} ms per batch of '
            f'{batch_size})',
            flush=True)
    print('Reference: ~80 images/s for ViT-S/8 on a V100 (paper, as cited '
          'by a secondary summary; unverified).')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    device=name,
                    arch=args.arch,
                    amp=amp,
                    channels_last=channels_last,
                    postprocess=args.postprocess,
                    results=rows),
                f,
                indent=2)


if __name__ == '__main__':
    main()
