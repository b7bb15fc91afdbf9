# Copyright (c) mmuol contributors. All rights reserved.
"""Speed of STEGO's correspondence loss and of the Hungarian-matched metric.

1. **Correspondence loss, forward + backward** on the same random tensors:
   mmuol's :func:`~mmuol.localization.stego.stego_correspondence_loss` (all
   terms batched, points gathered from the maps) against a plain
   re-implementation of the official ``ContrastiveCorrelationLoss``
   (``grid_sample`` per term, negatives sampled from ``feats[perm]`` copies,
   one ``einsum`` per term, written from the formulas of the paper / README).
   Both get the same points and negative draws; the totals and the code
   gradients are compared. Default shapes are STEGO's training step: batch
   16, 224x224 crops at patch 8 (28x28 maps), ViT-S features (384), code 70,
   ``S = 11`` points, 5 negatives.
2. **HungarianIoUMetric** (27 classes) on ``--metric-images`` random
   prediction / label maps: ``process`` time per image, the size of the
   state the metric keeps after 10, 100, ... images (constant: one 27x27
   confusion), and ``compute_metrics`` (matching + scores) time.

Examples:
    python tools/analysis/benchmark_stego.py
    python tools/analysis/benchmark_stego.py --device cuda --channels 768 --iters 20
"""
import argparse
import os.path as osp
import pickle
import statistics
import sys
import time
from typing import Callable, Dict

import numpy as np
import torch
import torch.nn.functional as F

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, _ROOT)

CFG = dict(
    pos_intra_shift=0.18,
    pos_inter_shift=0.12,
    neg_inter_shift=0.46,
    pos_intra_weight=0.67,
    pos_inter_weight=0.25,
    neg_inter_weight=0.63)


def reference_loss(feats, feats_pos, code, code_pos, coords1, coords2, perms):
    """Official ``ContrastiveCorrelationLoss`` structure (pointwise, zero
    clamp), one call per term; returns the training total."""

    def norm(t):
        return F.normalize(t, dim=1, eps=1e-10)

    def corr(a, b):
        return torch.einsum('nchw,ncij->nhwij', a, b)

    def sample(t, coords):
        return F.grid_sample(
            t, coords.permute(0, 2, 1, 3), padding_mode='border', align_corners=True)

    def term(f1, f2, c1, c2, shift):
        with torch.no_grad():
            fd = corr(norm(f1), norm(f2))
            old_mean = fd.mean()
            fd = fd - fd.mean([3, 4], keepdim=True)
            fd = fd - fd.mean() + old_mean
        cd = corr(norm(c1), norm(c2))
        return -cd.clamp(0) * (fd - shift)

    f_s, c_s = sample(feats, coords1), sample(code, coords1)
    f_p, c_p = sample(feats_pos, coords2), sample(code_pos, coords2)
    intra = term(f_s, f_s, c_s, c_s, CFG['pos_intra_shift'])
    inter = term(f_s, f_p, c_s, c_p, CFG['pos_inter_shift'])
    negs = [
        term(f_s, sample(feats[p], coords2), c_s, sample(code[p], coords2), CFG['neg_inter_shift'])
        for p in perms
    ]
    return (CFG['pos_inter_weight'] * inter.mean() + CFG['pos_intra_weight'] * intra.mean() +
            CFG['neg_inter_weight'] * torch.cat(negs).mean())


def _time_pair(fns: Dict[str, Callable[[], None]], iters: int,
               device: torch.device) -> Dict[str, float]:
    """Median seconds of each function, runs interleaved so that a change
    of machine load affects both alike."""
    times = {name: [] for name in fns}
    for name, fn in fns.items():
        fn()  # warm-up
    for _ in range(iters):
        for name, fn in fns.items():
            if device.type == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == 'cuda':
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_loss(args) -> Dict[str, float]:
    from mmuol.localization.stego import stego_correspondence_loss, super_perm
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    b, c, d, h, s, k = args.batch, args.channels, args.dim, args.grid, args.samples, args.negs
    feats = torch.randn(b, c, h, h, generator=g).to(device)
    feats_pos = torch.randn(b, c, h, h, generator=g).to(device)
    code0 = torch.randn(b, d, h, h, generator=g).to(device)
    code_pos0 = torch.randn(b, d, h, h, generator=g).to(device)
    coords1 = (torch.rand(b, s, s, 2, generator=g) * 2 - 1).to(device)
    coords2 = (torch.rand(b, s, s, 2, generator=g) * 2 - 1).to(device)
    perms = torch.stack([super_perm(b, generator=g) for _ in range(k)]).to(device)
    grads = {}

    def ours():
        code = code0.clone().requires_grad_(True)
        code_pos = code_pos0.clone().requires_grad_(True)
        total = stego_correspondence_loss(
            feats,
            feats_pos,
            code,
            code_pos,
            feature_samples=s,
            neg_samples=k,
            coords1=coords1,
            coords2=coords2,
            perms=perms,
            **CFG).total
        total.backward()
        grads['ours'] = (float(total), code.grad, code_pos.grad)

    def ref():
        code = code0.clone().requires_grad_(True)
        code_pos = code_pos0.clone().requires_grad_(True)
        total = reference_loss(feats, feats_pos, code, code_pos, coords1, coords2, perms)
        total.backward()
        grads['ref'] = (float(total), code.grad, code_pos.grad)

    medians = _time_pair(dict(ref=ref, ours=ours), args.iters, device)
    t_ref, t_ours = medians['ref'], medians['ours']
    diff_total = abs(grads['ours'][0] - grads['ref'][0])
    diff_grad = max(float((grads['ours'][i] - grads['ref'][i]).abs().max()) for i in (1, 2))
    print(f'correspondence loss fwd+bwd  B={b} C={c} D={d} map {h}x{h} S={s} negatives={k} '
          f'({device}, {torch.get_num_threads()} threads, median of {args.iters})')
    print(f'  official structure : {t_ref * 1e3:8.1f} ms')
    print(f'  mmuol              : {t_ours * 1e3:8.1f} ms   speed-up x{t_ref / t_ours:.2f}')
    print(f'  |total diff| {diff_total:.2e}, max |grad diff| {diff_grad:.2e}')
    return dict(ref=t_ref, ours=t_ours, diff_total=diff_total, diff_grad=diff_grad)


def bench_metric(args) -> Dict[str, float]:
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    import mmuol.seg  # noqa: F401
    from mmuol.seg.hungarian_metric import HungarianIoUMetric
    metric = HungarianIoUMetric(num_classes=27)
    rng = np.random.default_rng(0)
    size = args.metric_size
    # one reusable batch of label maps; predictions: a fixed permutation of
    # the labels with 30% of the pixels replaced by random clusters
    perm = rng.permutation(27)
    labels = torch.from_numpy(rng.integers(0, 27, (args.metric_batch, size, size)))
    preds = torch.from_numpy(perm)[labels]
    noise = torch.from_numpy(rng.random(labels.shape) < 0.3)
    preds[noise] = torch.from_numpy(rng.integers(0, 27, int(noise.sum())))
    labels[:, :4] = 255  # some unlabelled rows
    batch = [
        dict(
            pred_sem_seg=dict(data=preds[i:i + 1]),
            gt_sem_seg=dict(data=labels[i:i + 1]),
            img_path=f'{i}.jpg') for i in range(args.metric_batch)
    ]
    state_sizes, seen = {}, 0
    start = time.perf_counter()
    checkpoints = {10, 100, 1000, args.metric_images}
    while seen < args.metric_images:
        metric.process({}, batch)
        seen += len(batch)
        if seen in checkpoints:
            state_sizes[seen] = len(pickle.dumps(metric.results))
    t_process = (time.perf_counter() - start) / seen
    start = time.perf_counter()
    out = metric.compute_metrics(metric.results)
    t_compute = time.perf_counter() - start
    print(f'HungarianIoUMetric, 27 classes, {seen} images of {size}x{size}')
    print(f'  process        : {t_process * 1e3:.2f} ms / image')
    print('  state kept     : ' + ', '.join(f'{n} images -> {b} bytes'
                                            for n, b in sorted(state_sizes.items())))
    print(f'  compute_metrics: {t_compute * 1e3:.1f} ms  (mIoU {out["mIoU"]:.2f}, aAcc '
          f'{out["aAcc"]:.2f}; assignment recovers the permutation: '
          f'{out["assignment"] == np.argsort(perm).tolist()})')
    return dict(process=t_process, compute=t_compute, states=state_sizes)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--channels', type=int, default=384)
    parser.add_argument('--dim', type=int, default=70)
    parser.add_argument('--grid', type=int, default=28)
    parser.add_argument('--samples', type=int, default=11)
    parser.add_argument('--negs', type=int, default=5)
    parser.add_argument('--metric-images', type=int, default=1000)
    parser.add_argument('--metric-size', type=int, default=320)
    parser.add_argument('--metric-batch', type=int, default=10)
    parser.add_argument('--skip-metric', action='store_true')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bench_loss(args)
    if not args.skip_metric:
        bench_metric(args)


if __name__ == '__main__':
    main()
