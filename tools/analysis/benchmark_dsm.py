# Copyright (c) mmuol contributors. All rights reserved.
"""Benchmark DSM's eigenvector extraction: mmuol vs the official ARPACK calls.

For each grid, on the same keys, in one run:

* **official**: the computation of deep-spectral-segmentation's
  ``_extract_eig`` with the README settings (``lambda = 0``): normalised
  keys, ``W = relu(F Fᵀ) / max`` in torch float32, ``W_comb = W + 0``,
  ``D = row_sum(W)`` (``W.dot(ones)``, pymatting's ``row_sum``) with entries
  ``< 1e-12`` set to 1, the dense float32 ``D`` and ``D - W``; then its
  ARPACK call sequence: shift-invert ``eigsh(D - W, K, M=D, sigma=0,
  which='LM')`` and, on *any* exception, ``eigsh(D - W, K, M=D,
  which='SM')``; then the sign rule. Which path ran is printed (``SI`` or
  ``SM``), and the ``SM`` path (the ~10 s per image of
  deep-spectral-segmentation#3) is also timed on its own (``--no-sm`` skips
  it).

  Which path runs is decided by float32 rounding: ``D - W`` is singular in
  exact arithmetic, and the shift-invert LU (LAPACK ``sgetrf``) fails only
  when its last pivot rounds to exactly 0 (then the solve returns inf and
  ARPACK raises ``ValueError: array must not contain infs or NaNs``); any
  other tiny pivot "succeeds". The pivot depends on the BLAS kernels: the
  golden file ``dsm_eigs_14x14_..._lam0_K5`` takes the ``SM`` path with
  OpenBLAS's Haswell kernels and the shift-invert path with its SkylakeX
  ones (``OPENBLAS_CORETYPE=Haswell`` selects the former); the golden
  ``12x16`` ``lam0`` case succeeded on the machine that made the goldens.
* **mmuol**: :func:`mmuol.localization.dsm_eigenvectors` (``solver='auto'``:
  Lanczos on the deflated normalised affinity), with its two parts timed
  separately: **affinity** (normalised keys, the float32 lower triangle of
  ``W``, degrees) and **solve** (Lanczos, the missed-eigenvalue check,
  orientation).

The official time is split the same way (``(affin.)``: its normalisation,
torch float32 ``F Fᵀ``, thresholds and dense ``D``; the rest is ARPACK).
Last, the official call sequence runs on the ``D - W`` and ``D`` stored in
that golden file, to show which path this BLAS takes on it.

Printed: median times (official ``--official-repeat`` runs, ours
``--repeat`` runs, interleaved so that a change of load hits both), the
speed-ups against the sequence that actually ran and against the ``SM``
path, and the largest differences (eigenvalues; eigenvectors of eigenvalues
more than 1e-3 away from the others and below 0.99, max-abs relative to
``max |v|`` after sign alignment; the others are not determined by the
problem) to the official output and, in the last column, to a float64 dense
solve (``solver='dense'``): the official ARPACK runs in float32, so most of
the first difference is its own error.

Keys: ``synthetic`` (DINO-like: a shared component, two objects, a smooth
field and noise; no weights needed) and ``vit`` (the last-block keys of a
DINOViT with *random* weights on ``demo/images/astronaut.jpg`` resized to
480x480: ViT-S/16 -> 30x30, ViT-S/8 -> 60x60). The README's settings: K=5,
30x30 (ViT-S/16 at 480 px) and 60x60. Runs on ONE CPU thread by default.

Example::

    python tools/analysis/benchmark_dsm.py
    python tools/analysis/benchmark_dsm.py --grid 30x30 --keys synthetic --repeat 9
    OPENBLAS_CORETYPE=Haswell python tools/analysis/benchmark_dsm.py
"""
import argparse
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--grid', nargs='+', default=['30x30', '60x60'], help='grids HxW')
    parser.add_argument(
        '--keys', nargs='+', default=['synthetic', 'vit'], choices=['synthetic', 'vit'])
    parser.add_argument('--K', type=int, default=5, help='eigenpairs (README: 5)')
    parser.add_argument('--dim', type=int, default=384, help='key width of synthetic keys')
    parser.add_argument('--repeat', type=int, default=7, help='runs of ours (median)')
    parser.add_argument(
        '--official-repeat', type=int, default=3, help='runs of the official calls (median)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--no-sm', action='store_true', help='skip the separate SM timing')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == '__main__' else None
if ARGS is not None:
    for var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS',
                'VECLIB_MAXIMUM_THREADS', 'NUMEXPR_NUM_THREADS'):
        os.environ[var] = str(ARGS.threads)

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy.sparse.linalg import eigsh  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from mmuol.localization import dsm as dsm_module  # noqa: E402
from mmuol.localization.dsm import dsm_eigenvectors, official_sign_rule  # noqa: E402


def synthetic_keys(h: int, w: int, d: int, seed: int = 0) -> torch.Tensor:
    """DINO-like ``(h * w, d)`` keys: shared component, background and two
    object prototypes, a smooth field and patch noise."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:h, 0:w]
    label = np.zeros((h, w), np.int64)
    label[((rr - 0.4 * h) / (0.22 * h))**2 + ((cc - 0.35 * w) / (0.18 * w))**2 <= 1] = 1
    label[int(0.55 * h):int(0.85 * h), int(0.6 * w):int(0.9 * w)] = 2
    unit = rng.standard_normal((4, d))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    coarse = torch.from_numpy(rng.standard_normal((1, d, 3, 4)))
    smooth = F.interpolate(coarse, size=(h, w), mode='bilinear', align_corners=True)
    smooth = smooth[0].reshape(d, -1).T.numpy() / np.sqrt(d)
    noise = rng.standard_normal((h * w, d)) / np.sqrt(d)
    keys = 0.3 * unit[0] + unit[1:][label.reshape(-1)] + 0.4 * smooth + 0.6 * noise
    return torch.from_numpy((keys * 8).astype(np.float32))


def vit_keys(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Last-block keys of a random-weight DINOViT on a demo image (480 px)."""
    from PIL import Image

    from mmuol.models.backbones import DINOViT
    from mmuol.pseudo_labels.maskcut_pipeline import normalize_images
    if (h, w) not in ((30, 30), (60, 60)):
        raise ValueError('--keys vit supports the grids 30x30 (ViT-S/16) and 60x60 (ViT-S/8)')
    torch.manual_seed(seed)
    vit = DINOViT(arch='dino_vits16' if h == 30 else 'dino_vits8', init_cfg=None).eval()
    img = Image.open(ROOT / 'demo' / 'images' / 'astronaut.jpg').convert('RGB')
    x = normalize_images(torch.from_numpy(np.array(img.resize((480, 480), Image.BILINEAR)))[None])
    with torch.no_grad():
        return vit.forward_last_block(x, with_qkv=True, with_attn=False).patch_keys[0]


def official(keys: torch.Tensor, K: int, force_sm: bool = False):
    """The official extraction (``lambda = 0``); returns (values, (K, N)
    vectors, path, the shift-invert error or '', seconds of the affinity
    part)."""
    t0 = time.perf_counter()
    feats = F.normalize(keys, p=2, dim=-1)
    w_feat = feats @ feats.T
    w_feat = w_feat * (w_feat > 0)
    w_feat = (w_feat / w_feat.max()).numpy()
    w_comb = w_feat + 0 * 0.0  # W_feat + W_color * image_color_lambda, W_color = 0
    deg = w_comb.dot(np.ones(w_comb.shape[1], w_comb.dtype))  # pymatting row_sum
    deg[deg < 1e-12] = 1.0
    dmat = np.diag(deg)  # np.array(scipy.sparse.diags(D).todense()): dense float32
    lap = dmat - w_comb
    t_affinity = time.perf_counter() - t0
    vals, vecs, path, error = official_eigsh(lap, dmat, K, force_sm)
    vecs = official_sign_rule(torch.from_numpy(vecs.T).float())
    return vals.astype(np.float64), vecs.numpy(), path, error, t_affinity


def official_eigsh(lap: np.ndarray, dmat: np.ndarray, K: int, force_sm: bool = False):
    """The official ARPACK call sequence on dense ``D - W`` and ``D``."""
    path, error = 'SM', ''
    try:
        if force_sm:
            raise RuntimeError('forced')
        vals, vecs = eigsh(lap, k=K, sigma=0, which='LM', M=dmat)
        path = 'SI'
    except Exception as exc:  # the official code catches everything
        error = '' if force_sm else f'{type(exc).__name__}: {exc}'
        vals, vecs = eigsh(lap, k=K, which='SM', M=dmat)
    return vals, vecs, path, error


def golden_path_check() -> str:
    """The official call sequence on the ``D - W`` and ``D`` that the official
    code built for the golden case whose shift-invert failed (stored
    bit-exactly in the golden file): which path runs with this BLAS."""
    from mmuol.testing.localization import load_golden
    name = 'dsm_eigs_14x14_d384_two_objects_lam0_K5'
    try:
        arrays, meta = load_golden(f'stego_dsm/{name}')
    except (FileNotFoundError, OSError):
        return f'golden {name}: not found'
    _, _, path, error = official_eigsh(arrays['L_matrix'], np.diag(arrays['D_diag']),
                                       meta['call']['K'])
    what = f'shift-invert failed ({error}), SM ran' if path == 'SM' else 'shift-invert succeeded'
    return (f'golden {name} (D - W as the official code built it): {what} with this BLAS; '
            'the official run that made it took SM')


def ours_parts(keys: torch.Tensor, grid, K: int):
    """Our ``solver='auto'`` CPU path in its two parts; returns
    (affinity seconds, solve seconds)."""
    t0 = time.perf_counter()
    feats = dsm_module._unit_features(keys, grid, grid, True).numpy()
    low, top = dsm_module._lower_gram(feats, True)
    graph = dsm_module._graph(low, None, top)
    t1 = time.perf_counter()
    dsm_module._solve_laplacian(graph, K, 'lanczos', 1e-6, None)
    t2 = time.perf_counter()
    dsm_module._give_back_workspace(low)
    return t1 - t0, t2 - t1


def compare(ours, ref_vals, ref_vecs):
    """Max |Δλ| and max eigenvector deviation over well-separated pairs."""
    vals = ours.eigenvalues.numpy()
    vecs = ours.eigenvectors.numpy()
    ref_vals = np.asarray(ref_vals, dtype=np.float64)
    ref_vecs = np.asarray(ref_vecs, dtype=np.float64)
    dval = float(np.abs(vals - ref_vals).max())
    worst = 0.0
    for i in range(len(vals)):
        others = np.delete(ref_vals, i)
        if np.abs(others - ref_vals[i]).min() <= 1e-3 or ref_vals[i] > 0.99:
            continue
        ref = ref_vecs[i]
        err = min(np.abs(vecs[i] - ref).max(), np.abs(vecs[i] + ref).max())
        worst = max(worst, err / np.abs(ref).max())
    return dval, worst


def _median(times) -> float:
    return float(np.median(times)) if times else float('nan')


def _load() -> str:
    try:
        return ', '.join(f'{v:.2f}' for v in os.getloadavg())
    except OSError:
        return 'n/a'


def main(args) -> None:
    torch.set_num_threads(args.threads)
    print(f'DSM eigenvectors, K={args.K}, {args.threads} thread(s), {os.cpu_count()} CPUs, '
          f'load average {_load()}; median wall-clock times in ms (noisy on a shared '
          'machine)')
    head = (f'{"keys":>9} {"grid":>6} {"official":>9} {"(affin.)":>8} {"path":>4} '
            f'{"SM only":>8} {"mmuol":>7} {"affinity":>8} {"solve":>6} {"solver":>13} '
            f'{"speed-up":>8} {"vs SM":>6} {"max|dλ|":>8} {"max dv":>8} {"dv f64":>8}')
    print(head)
    print('-' * len(head))
    errors = []
    for kind in args.keys:
        for grid in args.grid:
            h, w = (int(v) for v in grid.lower().split('x'))
            keys = synthetic_keys(h, w, args.dim, args.seed) if kind == 'synthetic' \
                else vit_keys(h, w, args.seed)
            res = dsm_eigenvectors(keys, (h, w), K=args.K)  # warm-up
            ours_parts(keys, (h, w), args.K)
            t_off, t_off_aff, t_sm, t_ours, t_aff, t_solve = [], [], [], [], [], []
            for r in range(max(args.repeat, args.official_repeat)):
                # Interleaved: a change of load hits both sides alike.
                if r < args.official_repeat:
                    t0 = time.perf_counter()
                    ref_vals, ref_vecs, path, error, aff = official(keys, args.K)
                    t_off.append(time.perf_counter() - t0)
                    t_off_aff.append(aff)
                    if not args.no_sm:
                        t0 = time.perf_counter()
                        official(keys, args.K, force_sm=True)
                        t_sm.append(time.perf_counter() - t0)
                if r < args.repeat:
                    t0 = time.perf_counter()
                    res = dsm_eigenvectors(keys, (h, w), K=args.K)
                    t_ours.append(time.perf_counter() - t0)
                    aff, solve = ours_parts(keys, (h, w), args.K)
                    t_aff.append(aff)
                    t_solve.append(solve)
            if error:
                errors.append(f'{kind} {grid}: shift-invert failed ({error}); SM ran')
            dval, dvec = compare(res, ref_vals, ref_vecs)
            exact = dsm_eigenvectors(keys, (h, w), K=args.K, solver='dense')
            _, dvec64 = compare(res, exact.eigenvalues.numpy(), exact.eigenvectors.numpy())
            off, sm, ours = _median(t_off), _median(t_sm), _median(t_ours)
            print(f'{kind:>9} {grid:>6} {off * 1e3:9.1f} {_median(t_off_aff) * 1e3:8.1f} '
                  f'{path:>4} {sm * 1e3:8.1f} {ours * 1e3:7.1f} {_median(t_aff) * 1e3:8.1f} '
                  f'{_median(t_solve) * 1e3:6.1f} {res.solver:>13} {off / ours:7.1f}x '
                  f'{sm / ours:5.1f}x {dval:8.1e} {dvec:8.1e} {dvec64:8.1e}')
    for line in errors:
        print(line)
    print(golden_path_check())
    print(f'load average after: {_load()}')


if __name__ == '__main__':
    main(ARGS)
