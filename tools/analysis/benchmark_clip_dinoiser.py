# Copyright (c) mmuol contributors. All rights reserved.
"""Inference cost of CLIP-DINOiser vs MaskCLIP alone (same run, same inputs).

Times, per image at ``--size`` (448x448 by default, one slide window):

* ``maskclip``: the MaskCLIP backbone (open_clip ViT up to the last block's
  value path, projection) + cosine classification;
* ``clip_dinoiser``: the same backbone pass + the ``3x3`` correlation head,
  the ``(hw x hw)`` correlation matrix, the guided pooling (one batched
  matmul), classification and the background head / rule;
* ``heads_only``: the CLIP-DINOiser part after the backbone.

The two pipelines are timed alternately (``--iters`` rounds) so that load on
a shared machine hits both alike; the medians and their ratio are printed
(the issue's target: CLIP-DINOiser <= 1.3x MaskCLIP). Random weights
(timing does not depend on them; nothing is downloaded) and random unit text
embeddings for ``--classes`` classes.

Examples:
    python tools/analysis/benchmark_clip_dinoiser.py --threads 2 --iters 5
    python tools/analysis/benchmark_clip_dinoiser.py --device cuda --iters 50 \\
        --batch-size 8 --json clip_dinoiser_speed.json
"""
import argparse
import json
import os.path as osp
import sys
import time
from contextlib import nullcontext
from typing import Callable, Dict, List

import torch

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)


def build(model_name: str, model_config: str, classes: int, device: torch.device):
    """A random-weight MaskCLIP backbone and two heads (plain / learned)."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    from mmseg.registry import MODELS

    import mmuol.seg.clip_dinoiser  # noqa: F401  (registers the modules)
    backbone = MODELS.build(
        dict(
            type='MaskCLIPBackbone',
            model_name=None if model_config else model_name,
            model_config=model_config,
            pretrained=None))
    names = ['background'] + [f'class {i}' for i in range(1, classes)]
    emb = torch.nn.functional.normalize(
        torch.randn(classes, backbone.embed_dims, generator=torch.Generator().manual_seed(0)),
        dim=1)
    heads = {}
    for key, corr, rule in (('maskclip', 'none', False), ('clip_dinoiser', 'learned', True)):
        head = MODELS.build(
            dict(
                type='DINOiserHead',
                in_channels=backbone.width,
                embed_dims=backbone.embed_dims,
                class_names=names,
                correlation=corr,
                background_rule=rule,
                patch_size=backbone.patch_size))
        head.set_class_embeddings(names, emb)
        heads[key] = head.to(device).eval()
    return backbone.to(device).eval(), heads


def median(values: List[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description='CLIP-DINOiser vs MaskCLIP inference speed')
    parser.add_argument('--model', default='ViT-B-16', help='open_clip architecture')
    parser.add_argument('--model-config', help='open_clip JSON for an unlisted architecture')
    parser.add_argument('--size', type=int, default=448, help='square input side (px)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--classes', type=int, default=21, help='vocabulary size (VOC: 21)')
    parser.add_argument('--iters', type=int, default=7, help='timed rounds per pipeline')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='auto', help="'auto', 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (CUDA)')
    parser.add_argument('--json', help='write the results to this file')
    args = parser.parse_args()

    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == 'cuda'
    backbone, heads = build(args.model, args.model_config, args.classes, device)
    x = torch.rand(args.batch_size, 3, args.size, args.size, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.amp else nullcontext()

    def timed(fn: Callable[[], object]) -> float:
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    pipelines: Dict[str, Callable[[], object]] = {
        'maskclip': lambda: heads['maskclip'](backbone(x)),
        'clip_dinoiser': lambda: heads['clip_dinoiser'](backbone(x)),
        'heads_only': lambda: heads['clip_dinoiser'](feats),
    }
    times: Dict[str, List[float]] = {k: [] for k in pipelines}
    with torch.inference_mode(), autocast:
        feats = backbone(x)  # the input of heads_only
        for _ in range(args.warmup):
            for fn in pipelines.values():
                fn()
        for _ in range(args.iters):
            for key, fn in pipelines.items():  # alternate: shared-load noise hits all
                times[key].append(timed(fn))
    name = torch.cuda.get_device_name(device) if cuda else \
        f'CPU ({torch.get_num_threads()} threads)'
    res = {k: median(v) for k, v in times.items()}
    ratio = res['clip_dinoiser'] / res['maskclip']
    grid = -(-args.size // backbone.patch_size)
    print(f'{args.model} {args.size}x{args.size} (grid {grid}x{grid}, {grid**4:,} correlations), '
          f'batch {args.batch_size}, {args.classes} classes, {name}, amp={args.amp}, '
          f'torch {torch.__version__}')
    for key in pipelines:
        print(f'  {key:14s} median {res[key] * 1000:8.1f} ms  '
              f'{args.batch_size / res[key]:8.2f} images/s')
    # On a shared machine the end-to-end ratio is noisy; the heads' own time
    # over the MaskCLIP time is a steadier estimate of the same quantity.
    ratio_heads = 1.0 + res['heads_only'] / res['maskclip']
    print(f'  CLIP-DINOiser / MaskCLIP = {ratio:.3f} end to end, {ratio_heads:.3f} from the '
          'heads-only time (target <= 1.3)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    device=name,
                    model=args.model,
                    size=args.size,
                    batch_size=args.batch_size,
                    classes=args.classes,
                    median_s=res,
                    images_per_s={
                        k: args.batch_size / v
                        for k, v in res.items()
                    },
                    ratio=ratio,
                    ratio_from_heads=ratio_heads,
                    times_s=times),
                f,
                indent=2)


if __name__ == '__main__':
    main()
