# Copyright (c) mmuol contributors. All rights reserved.
"""MaskCut against the official golden vectors, with the compare rules of
``tests/data/golden/maskcut/SPEC.md`` (exact / unordered / sign-dependent /
noise) applied to every stored stage quantity."""
import functools
import math

import numpy as np
import pytest
import torch

from mmuol.localization import component_containing, mask_iou_or_nan, maskcut
from mmuol.localization.utils import first_argmax, grid_corners
from mmuol.testing.localization import golden_names, load_golden, maskcut_features

EXACT = [
    'maskcut_60x60_d768_one_rect.npz',
    'maskcut_60x60_d768_rect_ellipse.npz',
    'maskcut_60x60_d768_three_objects.npz',
    'maskcut_60x60_d384_rect_ellipse.npz',
    'maskcut_60x60_d768_three_corner_region.npz',
    'maskcut_30x40_d768_rect_ellipse_N1.npz',
    'maskcut_30x30_d384_rect_ellipse.npz',
]
NOISE = [
    'maskcut_60x60_d768_noise_random_graph.npz',
    'maskcut_60x60_d768_noise_degenerate.npz',
    'maskcut_30x30_d384_noise_random_graph.npz',
]
UNORDERED = ['maskcut_60x60_d768_same_direction_two_blobs.npz']
SIGN = ['maskcut_60x60_d768_three_corner_frame.npz']
#: Stages whose seed is an ``argmax`` tie spanning two components (SPEC,
#: "Ties in argmax"): here the 904 painted-out patches of stages 0 and 1 tie;
#: the official rounding picked one in stage 0's mask, our lowest-index rule
#: one in stage 1's. Both outputs are empty (the component was found before).
TIE_STAGES = {('maskcut_60x60_d768_rect_ellipse.npz', 2)}


def test_all_cases_classified():
    assert sorted(EXACT + NOISE + UNORDERED + SIGN) == golden_names('maskcut', 'maskcut_*.npz')


@functools.lru_cache(maxsize=None)
def _case(name):
    z, meta = load_golden(f'maskcut/{name}')
    feats = maskcut_features(z)  # (d, h*w) channel-major, SHA-256 checked
    return z, meta, torch.from_numpy(np.ascontiguousarray(feats.T))


@functools.lru_cache(maxsize=None)
def _run(name, **kwargs):
    z, meta, keys = _case(name)
    return maskcut(keys, (meta['h'], meta['w']), num_masks=meta['N'], tau=meta['tau'], **kwargs)


def _masks(stages):
    return np.stack([s.mask.numpy() for s in stages])


def _flat(a):
    return np.asarray(a).reshape(-1)


def _check_invariants(stages, meta):
    h, w = meta['h'], meta['w']
    assert len(stages) == meta['N']
    assert stages[0].kept and math.isnan(stages[0].iou_prev)
    union = np.zeros((h, w), dtype=bool)
    for s in stages:
        assert s._fields[:2] == ('mask', 'seed')
        assert isinstance(s.seed, int) and 0 <= s.seed < h * w
        m = s.mask.numpy()
        assert m.dtype == bool and m.shape == (h, w)
        assert not (m & union).any()  # pairwise disjoint
        assert not (m & ~s.cc_mask.numpy()).any()  # subset of its component
        if not s.kept:
            assert not m.any()
        union |= m
        assert 0.0 <= s.confidence <= 1.0


def _eig_err(x, ref):
    return min(np.abs(x - ref).max(), np.abs(x + ref).max())


def _is_argmax_tie(x, i):
    return x[i] >= x.max() - 1e-9 * np.abs(x).max()


def _check_graph_and_spectrum(s, z, i, n, flipped_edges=0):
    """The stage's graph (degrees from the official edge counts) and its
    eigenpair (SPEC: eigenvector up to sign, 1e-6; eigenvalues rtol 1e-6).

    ``flipped_edges``: pairs whose float32 cosine lies exactly at ``tau`` on
    our BLAS (SPEC, "Threshold edges"), each changing two degrees by 1.
    """
    c = z['stage_edge_count'][i].astype(np.float64)
    deg = s.degree.numpy()
    close = np.isclose(deg, c + (n - c) * 1e-5, rtol=1e-12, atol=0)
    assert (~close).sum() <= 2 * flipped_edges
    np.testing.assert_allclose(np.abs(deg - (c + (n - c) * 1e-5))[~close], 1 - 1e-5, rtol=1e-9)
    np.testing.assert_allclose(s.eigvals.numpy(), z['stage_eigvals'][i], rtol=1e-6)
    assert _eig_err(s.eigvec.numpy(), z['eigvecs_patch'][i]) < 1e-6


def _check_corners(s, z, i, meta):
    """``stage_n_corners`` counts the corners of ``{x > mean}`` for the
    official (scipy) sign of ``x``, ours for the canonical sign: equal when
    both signs agree, else the complementary count."""
    corners = list(grid_corners((meta['h'], meta['w'])))
    x = _flat(s.eigvec.numpy())
    x_pre = x if x[first_argmax(np.abs(x))] > 0 else -x  # our sign before reversal
    gold = _flat(z['eigvecs_patch'][i])
    assert int(z['stage_n_corners'][i]) == int((gold > gold.mean())[corners].sum())
    same_sign = float(x_pre @ gold) > 0
    expected = int((gold > gold.mean())[corners].sum()) if same_sign else int(
        (gold < gold.mean())[corners].sum())
    assert s.n_corners == expected == int((x_pre > x_pre.mean())[corners].sum())


def _gold_filtered(z, i):
    """The official filtered mask of stage ``i`` (its cc, or empty)."""
    cc = z['stage_cc_mask'][i] > 0
    return cc if z['stage_kept'][i] else np.zeros_like(cc)


def _check_stage_exact(name, stages, z, meta, i):
    s = stages[i]
    n = meta['h'] * meta['w']
    gold_seed = int(z['stage_seed'][i])
    gold_cc = z['stage_cc_mask'][i] > 0
    gold_iou = float(z['stage_iou_prev'][i - 1]) if i >= 1 else math.nan
    assert _flat(gold_cc)[gold_seed]  # golden self-consistency
    _check_graph_and_spectrum(s, z, i, n)
    _check_corners(s, z, i, meta)
    np.testing.assert_array_equal(s.bipartition.numpy(), z['stage_bipartition'][i] > 0)
    # Both seeds are argmax ties of the oriented eigenvector (the official
    # pick among tied patches is rounding noise).
    x = _flat(s.eigvec.numpy())
    assert _is_argmax_tie(x, gold_seed) and _is_argmax_tie(x, s.seed)
    if (name, i) not in TIE_STAGES:
        assert _flat(gold_cc)[s.seed], f'stage {i}: our seed is outside the official component'
        np.testing.assert_array_equal(s.cc_mask.numpy(), gold_cc)
        assert s.kept == bool(z['stage_kept'][i])
        np.testing.assert_equal(s.iou_prev, gold_iou)
        return
    # A tie across components: our seed took the other one. Replaying the
    # official seed through our bipartition and filter must give the
    # official component, IoU and decision.
    assert not _flat(gold_cc)[s.seed], f'{name} stage {i} is no longer a tie: update TIE_STAGES'
    cc = component_containing(s.bipartition, gold_seed).numpy()
    np.testing.assert_array_equal(cc, gold_cc)
    iou = mask_iou_or_nan(_gold_filtered(z, i - 1), cc)
    np.testing.assert_equal(iou, gold_iou)
    ratio = cc.sum() / n
    assert (not (iou > 0.5 or ratio <= 0.01)) == bool(z['stage_kept'][i])


@pytest.mark.parametrize('name', EXACT)
def test_maskcut_exact_cases(name):
    z, meta, _ = _case(name)
    stages = _run(name)
    _check_invariants(stages, meta)
    np.testing.assert_array_equal(_masks(stages), z['masks_patch'] > 0)
    for i in range(len(stages)):
        _check_stage_exact(name, stages, z, meta, i)
    # seed_returned is the last stage's seed (an argmax tie of ours).
    assert int(z['seed_returned']) == int(z['stage_seed'][-1])
    assert _is_argmax_tie(_flat(stages[-1].eigvec.numpy()), int(z['seed_returned']))


def test_tie_stages_are_exact_cases():
    assert {name for name, _ in TIE_STAGES} <= set(EXACT)


def test_maskcut_unordered_case():
    name = UNORDERED[0]
    z, meta, _ = _case(name)
    stages = _run(name)
    _check_invariants(stages, meta)
    n = meta['h'] * meta['w']
    # The two blobs swap stages (argmax tie): compare as sets.
    ours = [m for m in _masks(stages) if m.any()]
    gold = [m for m in z['masks_patch'] > 0 if m.any()]
    assert len(ours) == len(gold)
    for g in gold:
        assert max((g & m).sum() / (g | m).sum() for m in ours) >= 0.99
    gold_cc = [c for c in z['stage_cc_mask'] > 0]
    for s in stages:
        assert max(
            (c & s.cc_mask.numpy()).sum() / (c | s.cc_mask.numpy()).sum() for c in gold_cc) >= 0.99
    assert [s.kept for s in stages] == z['stage_kept'].tolist()
    assert [s.n_corners for s in stages] == z['stage_n_corners'].tolist()
    np.testing.assert_array_equal([s.iou_prev for s in stages[1:]], z['stage_iou_prev'])
    # Stage 0 sees the same graph, and the official seed is a tie in our
    # eigenvector whose component is the official one.
    s0 = stages[0]
    _check_graph_and_spectrum(s0, z, 0, n)
    gold_seed = int(z['stage_seed'][0])
    assert _is_argmax_tie(_flat(s0.eigvec.numpy()), gold_seed)
    np.testing.assert_array_equal(
        component_containing(s0.bipartition, gold_seed).numpy(), z['stage_cc_mask'][0] > 0)


def test_maskcut_sign_dependent_case():
    name = SIGN[0]
    z, meta, _ = _case(name)
    stages = _run(name)
    _check_invariants(stages, meta)
    ours = _masks(stages)
    official = np.array_equal(ours, z['masks_patch'] > 0)
    assert official or np.array_equal(ours, z['masks_patch_signflip'] > 0)
    if official:
        for i in range(len(stages)):
            _check_stage_exact(name, stages, z, meta, i)
        return
    # The opposite sign: stage 0 has the official graph (but for one pair at
    # cos == tau in float32 here) and eigenpair, the complementary corner
    # count, and the complementary side as its bipartition (the later
    # stages paint other patches).
    s0 = stages[0]
    _check_graph_and_spectrum(s0, z, 0, meta['h'] * meta['w'], flipped_edges=1)
    _check_corners(s0, z, 0, meta)
    assert s0.n_corners == 4 - int(z['stage_n_corners'][0])
    np.testing.assert_array_equal(s0.bipartition.numpy(), z['stage_bipartition'][0] == 0)


@pytest.mark.parametrize('name', NOISE)
def test_maskcut_noise_invariants_and_low_confidence(name):
    z, meta, _ = _case(name)
    stages = _run(name)
    _check_invariants(stages, meta)
    assert all(s.confidence < 0.1 for s in stages)
    assert all(
        int(s.mask.sum()) == int(s.cc_mask.sum()) or not s.kept or i > 0
        for i, s in enumerate(stages))


@pytest.mark.parametrize('solver,backend', [('dense', 'scipy'), ('lanczos', 'torch')])
def test_maskcut_other_solvers(solver, backend):
    name = 'maskcut_30x30_d384_rect_ellipse.npz'
    z, _, _ = _case(name)
    stages = _run(name, solver=solver, backend=backend)
    assert all(s.solver == f'{solver}-{backend}' for s in stages)
    np.testing.assert_array_equal(_masks(stages), z['masks_patch'] > 0)
    for i, s in enumerate(stages):
        assert _eig_err(s.eigvec.numpy(), z['eigvecs_patch'][i]) < 1e-6
        np.testing.assert_array_equal(s.cc_mask.numpy(), z['stage_cc_mask'][i] > 0)


@pytest.mark.parametrize(
    'name', ['maskcut_30x30_d384_rect_ellipse.npz', 'maskcut_60x60_d768_three_objects.npz'])
def test_maskcut_float64_input(name):
    z, meta, keys = _case(name)
    stages = maskcut(keys.double(), (meta['h'], meta['w']), num_masks=3, tau=meta['tau'])
    np.testing.assert_array_equal(_masks(stages), z['masks_patch_float64'] > 0)


def test_maskcut_non_square_grid_multi_stage():
    # The official code cannot run N >= 2 on 30x40; ours must, and stage 0
    # must still equal the official N=1 result.
    name = 'maskcut_30x40_d768_rect_ellipse_N1.npz'
    z, meta, keys = _case(name)
    stages = maskcut(keys, (30, 40), num_masks=3)
    meta = dict(meta, N=3)
    _check_invariants(stages, meta)
    np.testing.assert_array_equal(stages[0].mask.numpy(), z['masks_patch'][0] > 0)
    assert sum(int(s.mask.sum()) for s in stages) > int(stages[0].mask.sum())


def test_maskcut_upsampled_masks_equal_official():
    # The official output is the patch mask nearest-upsampled by the patch
    # size; check the documented relation on one case.
    name = 'maskcut_30x30_d384_rect_ellipse.npz'
    z, _, _ = _case(name)
    up = np.stack(
        [s.mask.repeat_interleave(8, 0).repeat_interleave(8, 1).numpy() for s in _run(name)])
    np.testing.assert_array_equal(up, z['masks'] > 0)


@pytest.mark.parametrize('kwargs,match', [
    (dict(tau=float('nan')), 'tau'),
    (dict(tau=1.5), 'tau'),
    (dict(eps=0.0), 'eps'),
    (dict(iou_thresh=float('nan')), 'iou_thresh'),
    (dict(iou_thresh=1.5), 'iou_thresh'),
    (dict(min_area_ratio=-0.1), 'min_area_ratio'),
    (dict(min_area_ratio=1.0), 'min_area_ratio'),
    (dict(num_masks=2.5), 'num_masks'),
])
def test_maskcut_bad_hyper_parameters(kwargs, match):
    keys = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=match):
        maskcut(keys, (3, 4), **kwargs)
