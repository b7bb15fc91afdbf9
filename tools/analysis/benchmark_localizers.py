# Copyright (c) mmuol contributors. All rights reserved.
"""Benchmark mmuol's localizers against straightforward re-statements of the
official computations (dense generalized ``eigh`` for TokenCut/MaskCut, full
N x N matrices for LOST and FOUND stage 1) on the same synthetic DINO-like
keys, check that both agree, and print times and speed-ups.

Three tables per grid:

* the localizers (official computation vs mmuol, outputs compared);
* the NCut breakdown: graph build vs eigensolve, official and ours (what
  bounds the TokenCut speed-up);
* graphs without a clear cut (random keys: Lanczos converges slowly): the
  default ``solver='auto'`` against ``solver='dense'``, which it must never be
  much slower than.

Runs on ONE CPU thread by default (the thread variables are set before numpy
and torch are imported), as the speed tables of ``configs/<method>/README.md``
were measured.

Example::

    python tools/analysis/benchmark_localizers.py   # grids 60x60 and 30x30
    python tools/analysis/benchmark_localizers.py --grid 60x60 --dim 768
    python tools/analysis/benchmark_localizers.py --device cuda   # ours on GPU
    python tools/analysis/benchmark_localizers.py --no-random  # skip the slow dense noise runs
"""
import argparse
import os
import sys


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--grid',
        nargs='+',
        default=['60x60', '30x30'],
        help='patch grids HxW (60x60 = ViT-S/8 at 480x480)')
    parser.add_argument('--dim', type=int, default=384, help='key dim D')
    parser.add_argument('--heads', type=int, default=6)
    parser.add_argument(
        '--repeat', type=int, default=3, help='runs per measurement (median reported)')
    parser.add_argument(
        '--ref-repeat',
        type=int,
        default=None,
        help='runs of the slow dense references (default: '
        '--repeat)')
    parser.add_argument(
        '--device', default='cpu', help='device for mmuol (the references run on CPU)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--num-masks', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--vit-forward-seconds',
        type=float,
        default=4.5,
        help='ViT-S/8 forward at 480x480 on this CPU (4.5 s on the 2-core VM of the '
        'README tables) to express LOST / FOUND stage 1 as a fraction of it')
    parser.add_argument(
        '--random-grid',
        nargs='*',
        default=['30x40', '60x60'],
        help='grids of the random-key (no clear cut) MaskCut runs')
    parser.add_argument(
        '--no-random',
        action='store_true',
        help='skip the random-key graphs (their dense runs are slow)')
    return parser.parse_args()


ARGS = parse_args() if __name__ == '__main__' else None
if ARGS is not None:
    for var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS',
                'VECLIB_MAXIMUM_THREADS', 'NUMEXPR_NUM_THREADS'):
        os.environ[var] = str(ARGS.threads)

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy import ndimage  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmuol.localization import found_background, lost, maskcut, tokencut  # noqa


# ---------------------------------------------------------------------------
# Synthetic DINO-like inputs
# ---------------------------------------------------------------------------
def synthetic_inputs(h, w, d, heads, seed=0):
    """Keys (N, d) float32 and CLS attention (heads, N) float32.

    A shared component (DINO keys are far from zero-mean), a background
    prototype and one prototype per object (an ellipse and a rectangle), a
    smooth low-frequency field, patch noise and a per-patch norm jitter.
    """
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:h, 0:w]
    label = np.zeros((h, w), np.int64)
    ell = ((rr - 0.40 * h) / (0.22 * h))**2 + ((cc - 0.35 * w) / (0.18 * w))**2 <= 1
    label[ell] = 1
    label[int(0.55 * h):int(0.85 * h), int(0.60 * w):int(0.90 * w)] = 2
    unit = rng.standard_normal((4, d))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    common, protos = unit[0], unit[1:]
    coarse = rng.standard_normal((d, 3, 4))
    smooth = F.interpolate(
        torch.from_numpy(coarse)[None], size=(h, w), mode='bilinear',
        align_corners=True)[0].numpy().reshape(d, -1).T / np.sqrt(d)
    noise = rng.standard_normal((h * w, d)) / np.sqrt(d)
    keys = (0.3 * common + protos[label.reshape(-1)] + 0.4 * smooth + 0.6 * noise)
    keys *= rng.uniform(1.0, 1.2, size=(h * w, 1)) * 8
    # CLS attention: object-focused heads, a diffuse head, a corner head.
    logits = rng.standard_normal((heads, h * w)) * 0.3
    obj = (label.reshape(-1) > 0).astype(np.float64)
    for k in range(heads):
        if k % 3 == 0:
            logits[k] += 3.0 * obj
        elif k % 3 == 1:
            logits[k] += 1.0 * (label.reshape(-1) == 1)
        else:
            logits[k] += 2.0 * ((rr < h // 4) & (cc < w // 4)).reshape(-1)
    att = np.exp(logits - logits.max(1, keepdims=True))
    att /= att.sum(1, keepdims=True)
    return (torch.from_numpy(keys.astype(np.float32)), torch.from_numpy(att.astype(np.float32)))


# ---------------------------------------------------------------------------
# Reference implementations of the official computations (CPU, dense)
# ---------------------------------------------------------------------------
def _seed_component(bip_hw, seed):
    labels, _ = ndimage.label(bip_hw)
    return labels == labels.reshape(-1)[seed]


def _dense_second_eigvec(aff):
    """As TokenCut/MaskCut: dense D, generalized eigh, subset [1, 2]."""
    deg = aff.sum(1)
    dmat = np.diag(deg)
    lam, vec = scipy.linalg.eigh(dmat - aff, dmat, subset_by_index=[1, 2])
    return lam, vec[:, 0]


def ref_tokencut(keys, grid, tau=0.2, eps=1e-5):
    h, w = grid
    feats = F.normalize(keys, p=2)
    aff = (feats @ feats.T).numpy()
    aff = np.where(aff > tau, 1.0, eps)
    lam, x = _dense_second_eigvec(aff)
    bip = x > x.mean()
    seed = int(np.argmax(np.abs(x)))
    if not bip[seed]:
        x, bip = -x, ~bip
    return dict(mask=_seed_component(bip.reshape(h, w), seed), eigvec=x, eigvals=lam)


def ref_maskcut_stage(feats_dn, grid, prev, painting, tau=0.15, eps=1e-5, first=False):
    """One official MaskCut stage on (d, N) features. Returns stage mask."""
    h, w = grid
    if not first:
        feats_dn = feats_dn * torch.from_numpy(1 - painting.reshape(-1))[None]
    fn = F.normalize(feats_dn, p=2, dim=0)
    aff = (fn.T @ fn).numpy()
    aff = np.where(aff > tau, 1.0, eps)
    lam, x = _dense_second_eigvec(aff)
    bip = x > x.mean()
    seed = int(np.argmax(np.abs(x)))
    corners = [0, w - 1, (h - 1) * w, h * w - 1]
    nc = int(bip[corners].sum())
    if nc >= 3 or not bip[seed]:
        bip, seed = ~bip, int(np.argmax(-x))
    else:
        seed = int(np.argmax(x))
    cc = _seed_component(bip.reshape(h, w), seed)
    if not first:
        union = (prev | cc).sum()
        iou = (prev & cc).sum() / union if union else np.nan
        if iou > 0.5 or cc.sum() / h / w <= 0.01:
            cc = np.zeros_like(cc)
    return cc, x, lam


def ref_lost(keys, grid, k=100):
    h, w = grid
    aff = keys @ keys.T
    a2 = aff.clone()
    a2.fill_diagonal_(0)
    a2[a2 < 0] = 0
    degree = (a2 > 0).sum(-1)
    # official: argsort(-degree, descending=True) (unstable); stable here
    order = torch.argsort(degree, stable=True)
    seed = int(order[0])
    pot = order[:k]
    sim = pot[aff[seed, pot] > 0]
    msum = aff[sim].sum(0).numpy()
    labels, _ = ndimage.label(msum.reshape(h, w) > 0)
    return dict(mask=labels == labels.reshape(-1)[seed], seed=seed)


def ref_found(att, keys, grid, tau=0.3):
    h, w = grid
    nh = att.shape[0]
    n, d = keys.shape
    threshold = att.mean()
    q = (att > threshold).float().mean(1) + 1e-10
    beta = torch.log(q.sum() / q)
    feats = (keys.reshape(n, nh, d // nh) * beta[None, :, None]).reshape(n, d)
    feats = F.normalize(feats, p=2, dim=-1)
    sim = feats @ feats.T  # full N x N cosine matrix, as official
    seed = int(torch.argmin((beta[:, None] * att).sum(0)))
    return dict(mask=(sim[seed] > tau).reshape(h, w).numpy(), seed=seed)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timeit(fn, repeat, device='cpu'):
    times, out = [], None
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def eig_err(x, ref):
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    return float(min(np.abs(x - ref).max(), np.abs(x + ref).max()))


def bench_grid(args, h, w):
    grid = (h, w)
    ref_rep = args.ref_repeat or args.repeat
    dev = args.device
    keys, att = synthetic_inputs(h, w, args.dim, args.heads, args.seed)
    keys_d, att_d = keys.to(dev), att.to(dev)
    rows = []

    # warm-up (imports, BLAS/CUDA initialisation)
    tokencut(keys_d[:64], (8, 8))
    lost(keys_d[:64], (8, 8))

    # TokenCut
    t_ref, ref = timeit(lambda: ref_tokencut(keys, grid), ref_rep)
    t_our, our = timeit(lambda: tokencut(keys_d, grid), args.repeat, dev)
    err = eig_err(our.eigvec.cpu(), ref['eigvec'])
    ok = (np.array_equal(our.mask.cpu().numpy(), ref['mask']) and err < 1e-6)
    rows.append(
        ('TokenCut', t_ref, t_our, ok, f'mask equal, eigvec err {err:.1e}, solver {our.solver}, '
         f'conf {our.confidence:.2f}'))

    # MaskCut (per stage for the reference)
    feats_dn = keys.T.contiguous()
    stage_times = [[] for _ in range(args.num_masks)]
    ref_masks = ref_vecs = None
    for _ in range(ref_rep):
        painting = np.zeros(grid)
        prev = None
        masks, vecs = [], []
        for i in range(args.num_masks):
            t0 = time.perf_counter()
            cc, x, _ = ref_maskcut_stage(
                feats_dn if i == 0 else feats_dn.double(), grid, prev, painting, first=i == 0)
            stage_times[i].append(time.perf_counter() - t0)
            painting = painting + cc
            prev = cc
            masks.append(cc)
            vecs.append(x)
        ref_masks, ref_vecs = masks, vecs
    out, acc = [], np.zeros(grid, bool)
    for m in ref_masks:  # official output: subtract earlier outputs
        o = m & ~acc
        acc |= o
        out.append(o)
    t_ref_stage = [float(np.median(s)) for s in stage_times]
    t_our, stages = timeit(lambda: maskcut(keys_d, grid, num_masks=args.num_masks), args.repeat,
                           dev)
    masks_ok = all(np.array_equal(s.mask.cpu().numpy(), o) for s, o in zip(stages, out))
    errs = [eig_err(s.eigvec.cpu(), v) for s, v in zip(stages, ref_vecs)]
    ok = masks_ok and max(errs) < 1e-6
    detail = (f'masks equal={masks_ok}, eigvec err '
              f'{max(errs):.1e}, areas '
              f'{[int(s.mask.sum()) for s in stages]}')
    rows.append((f'MaskCut ({args.num_masks} stages)', sum(t_ref_stage), t_our, ok, detail))
    rows.append(
        ('MaskCut per stage (mean)', sum(t_ref_stage) / args.num_masks, t_our / args.num_masks, ok,
         'ref stages ' + ', '.join(f'{t:.2f}' for t in t_ref_stage)))

    # LOST
    t_ref, ref = timeit(lambda: ref_lost(keys, grid), args.repeat)
    t_our, our = timeit(lambda: lost(keys_d, grid), args.repeat, dev)
    ok = (our.seed == ref['seed'] and np.array_equal(our.mask.cpu().numpy(), ref['mask']))
    vit = args.vit_forward_seconds
    rows.append(('LOST', t_ref, t_our, ok, f'seed/mask equal; {100 * t_our / vit:.2f}% of a '
                 f'{vit:g} s ViT-S/8 forward (ref {100 * t_ref / vit:.2f}%)'))

    # FOUND stage 1
    t_ref, ref = timeit(lambda: ref_found(att, keys, grid), args.repeat)
    t_our, our = timeit(lambda: found_background(att_d, keys_d, grid), args.repeat, dev)
    ok = (our.seed == ref['seed'] and np.array_equal(our.mask.cpu().numpy(), ref['mask']))
    rows.append(
        ('FOUND stage 1', t_ref, t_our, ok, f'seed/mask equal; {100 * t_our / vit:.3f}% of a '
         f'{vit:g} s ViT-S/8 forward (ref {100 * t_ref / vit:.2f}%)'))
    return rows


def ncut_breakdown(args, h, w, tau=0.2, eps=1e-5):
    """Graph build vs eigensolve of TokenCut's NCut, official and ours (CPU).

    Official: ``F.normalize``, the full float32 ``F Fᵀ``, ``np.where`` to the
    float64 graph, degrees; then the dense generalized ``eigh``. Ours: the
    same normalisation, the lower triangle of the 0/1 edge matrix and the
    edge counts (:func:`_binary_graph_np`); then the Lanczos solver.
    """
    from mmuol.localization import ncut as nc
    ref_rep = args.ref_repeat or args.repeat
    keys, _ = synthetic_inputs(h, w, args.dim, args.heads, args.seed)
    n = h * w

    def ref_graph():
        feats = F.normalize(keys, p=2)
        aff = np.where((feats @ feats.T).numpy() > tau, 1.0, eps)
        return aff, aff.sum(1)

    def ref_solve(aff, deg):
        dmat = np.diag(deg)
        return scipy.linalg.eigh(dmat - aff, dmat, subset_by_index=[1, 2])

    t_rg, ref = timeit(ref_graph, ref_rep)
    t_rs, _ = timeit(lambda: ref_solve(*ref), ref_rep)
    ref = None  # free the dense graph
    ops = nc._numpy_ops(torch.device('cpu'))
    t_norm, feats = timeit(lambda: nc._normalise_rows(keys, False).contiguous().numpy(),
                           args.repeat)
    t_graph, (graph, _) = timeit(lambda: nc._binary_graph_np(feats, tau, eps, True, ops),
                                 args.repeat)
    products = []

    class Counting(nc._Graph):

        def matvec(self):
            mv = super().matvec()

            def counted(x):
                products[-1] += 1
                return mv(x)

            return counted

    counting = Counting(*graph)

    def solve():
        products.append(0)
        return nc._lanczos(counting, 1e-10, nc._auto_budget(n))

    t_solve, _ = timeit(solve, args.repeat)
    t_total, res = timeit(lambda: tokencut(keys, (h, w)), args.repeat)
    t_build = t_norm + t_graph
    rows = [
        ('graph build (normalise, F Fᵀ, threshold, degrees)', t_rg, t_build,
         f'ours: normalise {1000 * t_norm:.1f} ms + lower-triangle edges {1000 * t_graph:.1f} ms'),
        ('eigensolve', t_rs, t_solve,
         f'dense eigh vs Lanczos, {products[-1]} products of {nc._auto_budget(n)} allowed'),
        ('other (seed, components, packing)', 0.0, max(t_total - t_build - t_solve,
                                                       0.0), 'ours only'),
        ('TokenCut NCut total', t_rg + t_rs, t_total, f'solver {res.solver}'),
    ]
    return rows


def bench_random(args, h, w):
    """MaskCut on random keys (no clear cut): 'auto' must not be much slower
    than 'dense' (Lanczos converges slowly there; 'auto' caps it)."""
    ref_rep = args.ref_repeat or args.repeat
    keys = torch.randn(h * w, args.dim, generator=torch.Generator().manual_seed(args.seed))
    grid = (h, w)
    t_auto, auto = timeit(lambda: maskcut(keys, grid, num_masks=args.num_masks), args.repeat)
    t_dense, dense = timeit(lambda: maskcut(keys, grid, num_masks=args.num_masks, solver='dense'),
                            ref_rep)
    same = all(np.array_equal(a.mask.numpy(), d.mask.numpy()) for a, d in zip(auto, dense))
    # Noise graphs are ill-conditioned (SPEC: invariants only), so masks may
    # differ where Lanczos converged; what matters is the time.
    ok = t_auto <= 1.5 * t_dense
    return (f'MaskCut {h}x{w} random keys', t_dense, t_auto, ok,
            f'auto ran {[s.solver for s in auto]}; masks equal to dense: {same}; '
            f'confidence {max(s.confidence for s in auto):.3f}')


def main():
    args = ARGS
    torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, numpy {np.__version__}, scipy '
          f'{scipy.__version__}; threads={args.threads}; device={args.device}'
          f'; D={args.dim}, heads={args.heads}; median of {args.repeat} '
          f'(dense references: {args.ref_repeat or args.repeat})')
    all_ok = True
    for g in args.grid:
        h, w = (int(v) for v in g.lower().split('x'))
        rows = bench_grid(args, h, w)
        print(f'\n### grid {h}x{w} (N={h * w}), D={args.dim}\n')
        print('| step | reference (s) | mmuol (s) | speed-up | agree | notes |')
        print('|---|---|---|---|---|---|')
        for name, t_ref, t_our, ok, note in rows:
            all_ok &= ok
            print(f'| {name} | {t_ref:.4f} | {t_our:.4f} | {t_ref / t_our:.1f}x | '
                  f'{"yes" if ok else "NO"} | {note} |')
        if args.device == 'cpu':
            print(f'\nNCut breakdown, grid {h}x{w} (what bounds the speed-up):\n')
            print('| part | official (s) | mmuol (s) | notes |')
            print('|---|---|---|---|')
            for name, t_ref, t_our, note in ncut_breakdown(args, h, w):
                ref = f'{t_ref:.4f}' if t_ref else '—'
                print(f'| {name} | {ref} | {t_our:.4f} | {note} |')
    if args.device == 'cpu' and not args.no_random:
        print('\n### graphs without a clear cut: solver=auto vs solver=dense\n')
        print('| case | dense (s) | auto (s) | dense / auto | auto <= 1.5x dense | notes |')
        print('|---|---|---|---|---|---|')
        for g in args.random_grid:
            h, w = (int(v) for v in g.lower().split('x'))
            name, t_ref, t_our, ok, note = bench_random(args, h, w)
            all_ok &= ok
            print(f'| {name} | {t_ref:.4f} | {t_our:.4f} | {t_ref / t_our:.2f} | '
                  f'{"yes" if ok else "NO"} | {note} |')
    if not all_ok:
        print('\nWARNING: some outputs disagree with the reference')
        sys.exit(1)


if __name__ == '__main__':
    main()
