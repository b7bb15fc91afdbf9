# Copyright (c) mmuol contributors. All rights reserved.
"""Benchmark mmuol's bilateral solver against a straightforward reference.

The reference below is a direct SciPy-sparse implementation of the same
Barron & Poole solver, structured like the original poolio code that TokenCut
and FOUND vendor: float base-255 coordinate hashing with ``np.unique``,
neighbour lookup per axis and direction, one sparse blur matrix per axis,
``Dn B Dn`` formed with sparse matrix products, and ``scipy.sparse.linalg.cg``
(``rtol=``) with a Jacobi preconditioner. It was written for this benchmark
from the algorithm description, not copied.

Both run on a synthetic textured image (smooth colour gradients plus strong
per-pixel noise, so that ~100k+ grid vertices are occupied), single-threaded;
the script checks that the outputs agree (max abs diff < 1e-6) and prints the
median times and the speed-up.

Example::

    python tools/analysis/benchmark_bilateral_solver.py --size 480 --repeat 5
"""
import argparse
import os
import sys
import time
from pathlib import Path

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import numpy as np  # noqa: E402
from scipy.sparse import csr_matrix, diags  # noqa: E402
from scipy.sparse.linalg import cg  # noqa: E402

# Allow running from a source checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmuol.localization import bilateral_solver  # noqa: E402
from mmuol.localization.bilateral_solver import BilateralGrid  # noqa: E402
from mmuol.localization.bilateral_solver import RGB_TO_YUV, YUV_OFFSET  # noqa: E402


class ReferenceGrid:
    """Reference bilateral grid: float hashes and per-axis sparse blurs."""

    base = 255.0

    def __init__(self, image, sigma_spatial, sigma_luma, sigma_chroma):
        yuv = np.tensordot(image, RGB_TO_YUV, ([2], [1])) + YUV_OFFSET
        rows, cols = np.mgrid[:image.shape[0], :image.shape[1]]
        coords = np.dstack([
            (cols / sigma_spatial).astype(int),
            (rows / sigma_spatial).astype(int),
            (yuv[..., 0] / sigma_luma).astype(int),
            (yuv[..., 1] / sigma_chroma).astype(int),
            (yuv[..., 2] / sigma_chroma).astype(int),
        ]).reshape(-1, 5)
        self.npix, self.dim = coords.shape
        self.hash_weights = self.base**np.arange(self.dim)
        hashes = coords @ self.hash_weights
        uniq, first, inv = np.unique(hashes, return_index=True, return_inverse=True)
        vert_coords = coords[first]
        self.nvert = len(uniq)
        self.S = csr_matrix((np.ones(self.npix), (inv.ravel(), np.arange(self.npix))),
                            shape=(self.nvert, self.npix))
        self.blurs = []
        for d in range(self.dim):
            blur = csr_matrix((self.nvert, self.nvert))
            for step in (-1, 1):
                shifted = vert_coords.copy()
                shifted[:, d] += step
                query = shifted @ self.hash_weights
                loc = np.clip(np.searchsorted(uniq, query), 0, self.nvert - 1)
                ok = np.flatnonzero(uniq[loc] == query)
                blur = blur + csr_matrix(
                    (np.ones(ok.size), (ok, loc[ok])), shape=(self.nvert, self.nvert))
            self.blurs.append(blur)

    def splat(self, x):
        return self.S @ x

    def slice(self, y):
        return self.S.T @ y

    def blur(self, y):
        out = 2 * self.dim * y
        for b in self.blurs:
            out = out + b @ y
        return out


def reference_solver(image,
                     target,
                     sigma_spatial=16,
                     sigma_luma=16,
                     sigma_chroma=8,
                     lam=256.0,
                     confidence=0.999):
    """Straightforward sparse-matrix bilateral solver (the baseline)."""
    grid = ReferenceGrid(image, sigma_spatial, sigma_luma, sigma_chroma)
    m = grid.splat(np.ones(grid.npix))
    n = np.ones(grid.nvert)
    for _ in range(10):
        n = np.sqrt(n * m / grid.blur(n))
    m = n * grid.blur(n)
    Dn, Dm = diags(n), diags(m)
    t = target.reshape(-1).astype(np.float64)
    c = np.full(t.shape, confidence)
    w_splat = grid.splat(c)
    A = lam * (Dm - Dn @ grid.blur(Dn)) + diags(w_splat)
    b = grid.splat(c * t)
    M = diags(1.0 / np.maximum(A.diagonal(), 1e-5))
    y0 = b / w_splat
    y, _ = cg(A, b, x0=y0, M=M, maxiter=25, rtol=1e-5, atol=0.0)
    return grid.slice(y).reshape(target.shape)


def textured_image(size, seed=0, noise=80):
    """Smooth colour gradients + strong uniform noise, (size, size, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    base = np.stack([
        128 + 100 * np.sin(6 * xx + 2 * yy),
        128 + 100 * np.cos(5 * yy - 3 * xx),
        128 + 100 * np.sin(4 * (xx + yy)),
    ], -1)
    img = base + rng.uniform(-noise, noise, base.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def blob_target(size):
    yy, xx = np.mgrid[:size, :size] / size
    return (((xx - 0.5)**2 + (yy - 0.45)**2) < 0.08).astype(np.float64)


def time_interleaved(fns, repeat):
    """Alternate the candidates so that load drifts hit both alike."""
    times = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times], times, outs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=480)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--noise', type=float, default=80)
    args = parser.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass

    img = textured_image(args.size, noise=args.noise)
    target = blob_target(args.size)
    grid = BilateralGrid(img, 16, 16, 8)
    print(f'image {args.size}x{args.size}, sigmas 16/16/8, '
          f'{grid.num_vertices} grid vertices, {grid.num_edges} edges')

    # Interleave warm-up runs so neither side profits from a cold cache.
    reference_solver(img, target)
    bilateral_solver(img, target)
    (t_ref, t_our), (ref_all, our_all), (out_ref, out_our) = \
        time_interleaved([lambda: reference_solver(img, target),
                          lambda: bilateral_solver(img, target)], args.repeat)
    diff = float(np.abs(out_ref - out_our).max())
    print('reference (scipy sparse + cg): median %.4f s  runs %s' %
          (t_ref, ' '.join('%.3f' % t for t in ref_all)))
    print('mmuol bilateral_solver:        median %.4f s  runs %s' %
          (t_our, ' '.join('%.3f' % t for t in our_all)))
    print(f'speed-up: {t_ref / t_our:.2f}x   max |diff| = {diff:.3e}')
    if diff >= 1e-6:
        raise SystemExit('outputs disagree (max abs diff >= 1e-6)')


if __name__ == '__main__':
    main()
