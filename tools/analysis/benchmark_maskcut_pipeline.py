# Copyright (c) mmuol contributors. All rights reserved.
"""Benchmark the MaskCut pseudo-label pipeline against a straightforward
re-statement of the official per-image pipeline, in one run on the same
inputs, and check that both give the same masks.

The reference (CutLER ``maskcut/maskcut.py`` as it runs, re-stated):
per stage a dense numpy graph, a dense diagonal ``D`` and
``scipy.linalg.eigh(D - A, D, subset_by_index=[1, 2])``; then, **per mask**
(empty ones included) the dense CRF (mmuol's builtin lattice, or the
compiled ``pydensecrf`` with ``--ref-crf pydensecrf`` when installed), hole
filling, the IoU gate, the PIL resize back and CutLER's threshold.

Ours (``mmuol.pseudo_labels.maskcut_pipeline``): MaskCut with the Lanczos
NCut (on the GPU with ``--device cuda``), one CRF run per image for its
non-empty masks (shared lattices), same glue.

Two measurements, images/s (wall clock, whole runs):

* **features-given**: keys are computed beforehand and excluded (the
  backbone is the same network on both sides). Inputs: the two golden CRF
  cases (60x60 ViT-B/8-like keys of the official MaskCut golden files with
  their 480x480 images), cycled to ``--images`` and resized back to a
  ``--orig-size`` original (ImageNet-like 375x500 by default).
* **end to end** (``--e2e``): images drawn on disk (``--orig-size``),
  decoded, resized to 480x480, backbone, MaskCut, CRF, glue. The backbone is
  ``--arch`` with **random weights** (``tiny``: 2 blocks, 48 dims, patch 8;
  ``dino_vitb8``: ViT-B/8); ours batches it (``--batch-size``) and decodes in
  DataLoader workers, the reference runs one image at a time.

Example::

    python tools/analysis/benchmark_maskcut_pipeline.py --images 4
    python tools/analysis/benchmark_maskcut_pipeline.py --e2e --arch tiny --images 8
    python tools/analysis/benchmark_maskcut_pipeline.py --e2e --arch dino_vitb8 \\
        --device cuda --images 256 --no-reference   # GPU throughput only
"""
import argparse
import math
import os
import os.path as osp
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=4, help='images per measurement')
    parser.add_argument('--orig-size', default='375x500', help='original image size HxW')
    parser.add_argument('--e2e', action='store_true', help='also measure end to end')
    parser.add_argument(
        '--arch',
        default='tiny',
        help="'tiny' or a DINOViT preset "
        '(random weights either way), for --e2e')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--device', default='cpu', help='device of our pipeline')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch and BLAS threads of both sides (0: the libraries\' defaults); one thread '
        'is the steadier measure on a shared machine and how CPU workers run')
    parser.add_argument(
        '--processes',
        type=int,
        default=0,
        help='also time ours with this many worker processes (CPU)')
    parser.add_argument('--ref-crf', default='builtin', choices=['builtin', 'pydensecrf'])
    parser.add_argument(
        '--no-reference', action='store_true', help='time ours only (e.g. GPU throughput)')
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == '__main__' else None
if ARGS is not None and ARGS.threads:
    # Before numpy / scipy / torch load their thread pools.
    for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmuol.localization import maskcut  # noqa: E402
from mmuol.localization.dense_crf import maskcut_crf  # noqa: E402
from mmuol.pseudo_labels.maskcut_pipeline import MaskCutProcessPool  # noqa: E402
from mmuol.pseudo_labels.maskcut_pipeline import (MaskCutImages, MaskCutPseudoLabeler,
                                                  MaskCutSettings, maskcut_pseudo_masks,
                                                  normalize_images, resize_for_maskcut,
                                                  resize_mask_to_image)

GOLDEN_CASES = ('maskcut_60x60_d768_three_objects', 'maskcut_60x60_d768_rect_ellipse')


# ---------------------------------------------------------------------------
# Reference: the official per-image pipeline, re-stated
# ---------------------------------------------------------------------------
def _ref_stage(feats: torch.Tensor, grid: Tuple[int, int], tau: float, eps: float = 1e-5):
    """One official MaskCut stage on ``(d, N)`` features: the seed's component."""
    h, w = grid
    unit = F.normalize(feats, p=2, dim=0)
    aff = (unit.T @ unit).numpy() > tau
    aff = np.where(aff, 1.0, eps)
    dmat = np.diag(aff.sum(1))
    _, vecs = scipy.linalg.eigh(dmat - aff, dmat, subset_by_index=[1, 2])
    x = vecs[:, 0]
    bip = x > x.sum() / len(x)
    seed = int(np.argmax(np.abs(x)))
    corners = [0, w - 1, (h - 1) * w, h * w - 1]
    if int(bip[corners].sum()) >= 3 or not bip[seed]:
        bip, seed = ~bip, int(np.argmax(-x))
    else:
        seed = int(np.argmax(x))
    labels, _ = ndimage.label(bip.reshape(h, w))
    return labels == labels.reshape(-1)[seed]


def reference_masks(keys: torch.Tensor,
                    grid: Tuple[int, int],
                    image: np.ndarray,
                    image_hw: Sequence[int],
                    tau: float = 0.15,
                    num_masks: int = 3,
                    crf_backend: str = 'builtin',
                    timing: Optional[Dict[str, float]] = None) -> List[np.ndarray]:
    """Official per-image pipeline on ``(N, D)`` keys: final ``(H, W)`` masks
    (``timing`` accumulates the seconds of its ``ncut`` and ``crf`` parts)."""
    timing = {} if timing is None else timing
    t0 = time.perf_counter()
    h, w = grid
    patch = image.shape[0] // h
    feats = keys.T.contiguous()
    painting = np.zeros((h, w))
    prev = None
    outputs: List[np.ndarray] = []
    for i in range(num_masks):
        if i:
            feats = feats * torch.from_numpy(1 - painting.reshape(-1))[None]
        cc = _ref_stage(feats, grid, tau)
        if i:
            union = int((prev | cc).sum())
            iou = (prev & cc).sum() / union if union else math.nan
            if iou > 0.5 or cc.sum() / h / w <= 0.01:
                cc = np.zeros_like(cc)
        prev = cc
        painting = np.maximum(painting, cc)
        up = np.repeat(np.repeat(cc.astype(np.float64), patch, 0), patch, 1)
        masked = up - (np.sum(outputs, axis=0) if outputs else 0)
        outputs.append(np.clip(masked, 0, None))
    t1 = time.perf_counter()
    final = []
    for m in outputs:  # per mask, empty ones included, as the official loop
        crf = maskcut_crf(image, m, backend=crf_backend).numpy()
        filled = ndimage.binary_fill_holes(crf >= 0.5)
        raw = m > 0.5
        union = int((raw | filled).sum())
        if union and (raw & filled).sum() / union < 0.5:
            filled = np.zeros_like(filled)
        out = resize_mask_to_image(filled, image_hw)
        if out.any():
            final.append(out)
    timing['ncut'] = timing.get('ncut', 0.0) + t1 - t0
    timing['crf'] = timing.get('crf', 0.0) + time.perf_counter() - t1
    return final


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------
def golden_inputs(n: int):
    """``n`` (keys (3600, 768), image (480, 480, 3)) pairs, cycling the cases."""
    from mmuol.testing.localization import load_golden, maskcut_features
    cases = []
    for name in GOLDEN_CASES:
        arrays, _ = load_golden(f'maskcut/{name}')
        keys = torch.from_numpy(np.ascontiguousarray(maskcut_features(arrays).T))
        cases.append((keys, arrays['crf_image']))
    return [cases[i % len(cases)] for i in range(n)]


def draw_image(height: int, width: int, seed: int) -> np.ndarray:
    """A noisy scene with three flat-coloured objects."""
    rng = np.random.default_rng(seed)
    img = rng.integers(30, 110, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    for k in range(3):
        cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.08, 0.2) * height, rng.uniform(0.08, 0.2) * width
        inside = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1
        img[inside] = rng.integers(150, 256, 3)
    return img


def build_backbone(arch: str, device: str):
    from mmuol.models.backbones import DINOViT
    from mmuol.testing.models import TINY_VIT_ARCH
    torch.manual_seed(0)
    spec = dict(TINY_VIT_ARCH) if arch == 'tiny' else arch
    return DINOViT(arch=spec, init_cfg=None).to(device).eval()


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------
def _agreement(ours: List[List[np.ndarray]], ref: List[List[np.ndarray]]) -> str:
    same = sum(
        len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
        for a, b in zip(ours, ref))
    return f'{same}/{len(ref)} images with identical masks'


def _sync(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


class _Clock:
    """Accumulated wall-clock and process CPU seconds."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> '_Clock':
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def features_given(args, orig_hw):
    inputs = golden_inputs(args.images)
    settings = MaskCutSettings()
    dev = torch.device(args.device)
    n = len(inputs)
    # Warm-up (lazy imports, the CRF's size-only lattice cache).
    maskcut_pseudo_masks(inputs[0][0].to(dev), (60, 60), inputs[0][1], orig_hw, settings)
    _sync(args.device)
    # Ours and the reference alternate image by image, so that a change of load on a
    # shared machine hits both alike.
    t_ours, t_ncut, t_ref = _Clock(), _Clock(), _Clock()
    timing: Dict[str, float] = {}
    ours, ref = [], []
    for k, img in inputs:
        with t_ours:
            ours.append(maskcut_pseudo_masks(k.to(dev), (60, 60), img, orig_hw, settings))
            _sync(args.device)
        with t_ncut:
            maskcut(k.to(dev), (60, 60))
            _sync(args.device)
        if not args.no_reference:
            with t_ref:
                ref.append(
                    reference_masks(
                        k, (60, 60), img, orig_hw, crf_backend=args.ref_crf, timing=timing))
    print(f'features-given, {n} images (60x60 keys, d=768, 480x480 CRF, resized back to '
          f'{orig_hw[0]}x{orig_hw[1]})')
    print(f'  ours       {n / t_ours.wall:8.3f} img/s  ({t_ours.wall / n:.2f} s/img on '
          f'{args.device}: NCut {t_ncut.wall / n:.2f} s, CRF + glue '
          f'{(t_ours.wall - t_ncut.wall) / n:.2f} s; CPU time {t_ours.cpu / n:.2f} s/img)')
    if args.processes:
        with MaskCutProcessPool(settings, args.processes) as pool:
            warm = inputs[0]
            for f in [
                    pool.submit(warm[0], (60, 60), warm[1], orig_hw) for _ in range(args.processes)
            ]:
                f.result()  # start the workers
            start = time.perf_counter()
            futures = [pool.submit(k, (60, 60), img, orig_hw) for k, img in inputs]
            pooled = [f.result() for f in futures]
            t_pool = time.perf_counter() - start
        print(f'  ours x{args.processes:<3d}   {n / t_pool:8.3f} img/s  ({args.processes} '
              'single-threaded processes, MaskCutProcessPool; not interleaved)')
        assert all(
            len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
            for a, b in zip(pooled, ours)), 'the process pool changed a mask'
    if args.no_reference:
        return
    print(f'  reference  {n / t_ref.wall:8.3f} img/s  ({t_ref.wall / n:.2f} s/img: NCut (dense '
          f'eigh) {timing["ncut"] / n:.2f} s, per-mask CRF ({args.ref_crf}) + glue '
          f'{timing["crf"] / n:.2f} s; CPU time {t_ref.cpu / n:.2f} s/img)')
    crf_ours = max(t_ours.wall - t_ncut.wall, 1e-9)
    print(f'  speed-up   {t_ref.wall / t_ours.wall:8.1f}x wall, {t_ref.cpu / t_ours.cpu:.1f}x CPU '
          f'time  (NCut {timing["ncut"] / t_ncut.wall:.1f}x, CRF + glue '
          f'{timing["crf"] / crf_ours:.1f}x)' +
          (f'; x{args.processes} processes {t_ref.wall / t_pool:.1f}x wall' if args.
           processes else ''))
    print(f'  agreement: {_agreement(ours, ref)}')


def end_to_end(args, orig_hw):
    backbone = build_backbone(args.arch, args.device)
    patch = backbone.patch_size
    settings = MaskCutSettings()
    with tempfile.TemporaryDirectory() as root:
        names = []
        for i in range(args.images):
            names.append(f'img{i:04d}.jpg')
            Image.fromarray(draw_image(*orig_hw, seed=i)).save(
                osp.join(root, names[-1]), quality=90)
        labeler = MaskCutPseudoLabeler(backbone, settings, args.device)
        loader = torch.utils.data.DataLoader(
            MaskCutImages(root, names, settings.fixed_size, patch),
            batch_size=args.batch_size,
            num_workers=args.workers,
            collate_fn=lambda b: b)
        labeler([resize_for_maskcut(draw_image(*orig_hw, 99), 480, patch)], [orig_hw])  # warm-up
        _sync(args.device)
        start = time.perf_counter()
        ours = []
        for batch in loader:
            ours.extend(labeler([b['image'] for b in batch], [b['hw'] for b in batch]))
        _sync(args.device)
        t_ours = time.perf_counter() - start
        arch = 'tiny 2-block ViT, patch 8' if args.arch == 'tiny' else args.arch
        print(f'end to end, {args.images} images {orig_hw[0]}x{orig_hw[1]} (JPEG) -> 480x480, '
              f'backbone {arch} with random weights')
        print(f'  ours       {args.images / t_ours:8.3f} img/s  (batch {args.batch_size}, '
              f'{args.workers} workers, {args.device})')
        if args.no_reference:
            return
        start = time.perf_counter()
        ref = []
        with torch.inference_mode():
            for name in names:
                with Image.open(osp.join(root, name)) as im:
                    rgb = im.convert('RGB')
                small = np.array(rgb.resize((480, 480), Image.LANCZOS))
                x = normalize_images(torch.from_numpy(small)[None])
                out = backbone.cpu().forward_last_block(x, with_qkv=True, with_attn=False)
                ref.append(
                    reference_masks(
                        out.patch_keys[0], out.grid_hw, small, orig_hw, crf_backend=args.ref_crf))
        t_ref = time.perf_counter() - start
        print(f'  reference  {args.images / t_ref:8.3f} img/s  (one image at a time, CPU)')
        print(f'  speed-up   {t_ref / t_ours:8.1f}x   agreement: {_agreement(ours, ref)}')


def main(args=None):
    args = args if args is not None else parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    orig_hw = tuple(int(v) for v in args.orig_size.lower().split('x'))
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{os.cpu_count()} CPUs; times are wall clock (noisy on a shared machine)')
    features_given(args, orig_hw)
    if args.e2e:
        end_to_end(args, orig_hw)


if __name__ == '__main__':
    main(ARGS)
