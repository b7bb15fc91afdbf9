# Copyright (c) mmuol contributors. All rights reserved.
"""Deep Spectral Methods core: golden vectors of the official code
(``tests/data/golden/stego_dsm/dsm_eigs_*``, tolerances of its SPEC.md),
solver agreement, the clustering tools and bad input."""
import numpy as np
import pytest
import torch

from mmuol.localization.dsm import (DSMEigenvectors, adaptive_num_segments, border_fractions,
                                    dsm_eigenvectors, dsm_feature_affinity, dsm_localize,
                                    dsm_multi_region, dsm_segment_boxes, dsm_single_region, kmeans,
                                    knn_color_affinity, official_sign_rule, pca_reduce,
                                    resize_color_image)
from mmuol.testing.localization import golden_names, load_golden, maskcut_features

CASES = [n[:-len('.npz')] for n in golden_names('stego_dsm', 'dsm_eigs_*.npz')]
# SPEC.md: eigenvalues abs 2e-4 (affinity: rel 1e-6 on values ~100), eigenvectors
# 5e-4 relative to max |v| after sign alignment; pairs within 1e-3 of another
# eigenvalue, and Laplacian eigenvalues > 0.99, are compared by value only.
EIGVAL_ABS = 2e-4
AFFINITY_REL = 1e-6
EIGVEC_REL = 5e-4


def _case(name):
    arrays, meta = load_golden(f'stego_dsm/{name}')
    keys = torch.from_numpy(maskcut_features(arrays).T.copy())  # (N, d)
    return arrays, meta, keys


def _run(arrays, meta, keys, solver, **extra):
    call = meta['call']
    kwargs = dict(
        K=call['K'],
        which_matrix=call['which_matrix'],
        image_color_lambda=call['image_color_lambda'],
        patch_size=meta['patch_size'],
        image_downsample_factor=call['image_downsample_factor'],
        solver=solver)
    if call['image_color_lambda'] > 0:
        kwargs['color_affinity'] = arrays['W_color_dense']
    kwargs.update(extra)
    return dsm_eigenvectors(keys, (meta['h'], meta['w']), **kwargs)


def _determined(values, laplacian):
    """Indices whose eigenvector the problem determines (SPEC rule)."""
    out = []
    for i, v in enumerate(values):
        others = np.delete(values, i)
        if laplacian and v > 0.99:
            continue
        if others.size and np.abs(others - v).min() <= 1e-3:
            continue
        out.append(i)
    return out


def _check_eigs(res, arrays, meta):
    laplacian = meta['call']['which_matrix'] == 'laplacian'
    ref_vals = arrays['eigenvalues'].astype(np.float64)
    vals = res.eigenvalues.numpy()
    if laplacian:
        np.testing.assert_allclose(vals, ref_vals, rtol=0, atol=EIGVAL_ABS)
    else:
        np.testing.assert_allclose(vals, ref_vals, rtol=AFFINITY_REL, atol=0)
    ref = arrays['eigenvectors'].astype(np.float64)
    vecs = res.eigenvectors.numpy()
    assert vecs.shape == ref.shape
    # Affinity: row i belongs to eigenvalue K - 1 - i (vectors descending).
    vec_vals = ref_vals[::-1] if not laplacian else ref_vals
    checked = _determined(vec_vals, laplacian)
    assert checked, 'every vector degenerate: the case checks nothing'
    for i in checked:
        err = min(np.abs(vecs[i] - ref[i]).max(), np.abs(vecs[i] + ref[i]).max())
        assert err / np.abs(ref[i]).max() <= EIGVEC_REL, (i, err)
        if 0.0 < np.mean(ref[i] > 0) < 1.0 and np.mean(ref[i] > 0) != 0.5:
            # The official sign rule fixes the sign of a non-constant vector.
            np.testing.assert_allclose(vecs[i], ref[i], atol=EIGVEC_REL * np.abs(ref[i]).max())
    return checked


@pytest.mark.parametrize('solver', ['dense', 'lanczos'])
@pytest.mark.parametrize('name', CASES)
def test_golden_eigenvectors_and_box(name, solver):
    arrays, meta, keys = _case(name)
    res = _run(arrays, meta, keys, solver)
    assert isinstance(res, DSMEigenvectors)
    expected_solver = 'dense-scipy' if solver == 'dense' or \
        meta['call']['which_matrix'] == 'affinity' else 'lanczos-scipy'
    assert res.solver == expected_solver
    h, w = meta['h'], meta['w']
    lr = tuple(meta['lr_hw']) if 'lr_hw' in meta else (h, w)
    assert res.grid_hw == lr
    _check_eigs(res, arrays, meta)
    # Localization: raw patch mask and box exactly as the official code.
    loc = dsm_localize(res, image_hw=meta['image_hw'], which_matrix=meta['call']['which_matrix'])
    np.testing.assert_array_equal(loc.patch_mask.numpy(), arrays['loc_patch_mask'] != 0)
    assert loc.box.tolist() == arrays['loc_box_xyxy'].tolist()
    if 'single_region_png' in arrays:
        np.testing.assert_array_equal(
            dsm_single_region(res).numpy(), arrays['single_region_png'] == 255)


def test_golden_cases_cover_the_spec():
    """Both solver paths of the official code (shift-invert failed / worked),
    the colour term, up-sampled features, a non-square grid, 'affinity'."""
    metas = [load_golden(f'stego_dsm/{n}')[1] for n in CASES]
    assert len(CASES) == 5
    fell_back = [any(not c['ok'] for c in m['eigsh_calls']) for m in metas]
    assert any(fell_back) and not all(fell_back)
    assert {m['call']['which_matrix'] for m in metas} == {'laplacian', 'affinity'}
    assert any(m['call']['image_downsample_factor'] for m in metas)
    assert any(m['h'] != m['w'] for m in metas)


@pytest.mark.parametrize('name', [n for n in CASES if 'ds8' in n])
def test_upsampled_features_use_the_finer_cell(name):
    arrays, meta, keys = _case(name)
    res = _run(arrays, meta, keys, 'dense')
    assert res.grid_hw == (20, 20) and res.cell_size == 8
    # The official code infers P = 8 from the mask size: the same box.
    assert dsm_localize(res, image_hw=meta['image_hw']).box.tolist() == \
        arrays['loc_box_xyxy'].tolist()


@pytest.mark.parametrize('name', [n for n in CASES if 'lam10' in n])
def test_color_affinity_from_the_image(name):
    """The colour image is the official PIL resize exactly; the KNN
    affinity (cKDTree vs pymatting tie-breaking) agrees statistically."""
    arrays, meta, keys = _case(name)
    lr = resize_color_image(arrays['image_decoded'], tuple(meta['lr_hw']))
    np.testing.assert_array_equal(lr, arrays['image_lr'])
    w_color = knn_color_affinity(lr).toarray()
    ref = arrays['W_color_dense'].astype(np.float64)
    assert w_color.sum() == ref.sum()
    assert np.mean(w_color == ref) >= 0.999
    np.testing.assert_array_equal(w_color, w_color.T)
    # End to end from the decoded image: the eigenpairs move by the few
    # differing KNN links only.
    res = _run(arrays, meta, keys, 'dense', color_affinity=None, image=arrays['image_decoded'])
    np.testing.assert_allclose(res.eigenvalues.numpy(), arrays['eigenvalues'], rtol=0, atol=5e-3)


def test_official_sign_rule():
    vecs = torch.tensor([
        [1.0, 2.0, -1.0, 3.0],  # 3/4 positive -> negated
        [-1.0, 2.0, -1.0, -3.0],  # 1/4 positive -> kept
        [1.0, 1.0, 1.0, 1.0],  # all positive -> kept
        [-1.0, -1.0, -1.0, -1.0],  # none positive -> kept
        [1.0, -1.0, 1.0, -1.0],  # exactly half -> kept
    ])
    out = official_sign_rule(vecs)
    assert out.dtype == torch.float64
    expected = vecs.double().clone()
    expected[0] = -expected[0]
    assert torch.equal(out, expected)


def _blocks(h, w, labels, d=24, noise=0.0, seed=0):
    """Keys with one orthogonal direction per label (+ noise)."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))[0].T
    lab = torch.as_tensor(np.asarray(labels)).reshape(-1)
    keys = basis[lab] + noise * torch.randn(h * w, d, generator=gen, dtype=torch.float64)
    return keys.float()


def test_lanczos_matches_dense_on_a_larger_grid():
    arrays, _ = load_golden('maskcut/maskcut_30x30_d384_rect_ellipse')
    keys = torch.from_numpy(maskcut_features(arrays).T.copy())
    lz = dsm_eigenvectors(keys, (30, 30), K=5, solver='lanczos')
    dense = dsm_eigenvectors(keys, (30, 30), K=5, solver='dense')
    auto = dsm_eigenvectors(keys, (30, 30), K=5)
    assert lz.solver == auto.solver == 'lanczos-scipy' and dense.solver == 'dense-scipy'
    np.testing.assert_allclose(lz.eigenvalues.numpy(), dense.eigenvalues.numpy(), atol=1e-6)
    for i in _determined(dense.eigenvalues.numpy(), True):
        np.testing.assert_allclose(
            lz.eigenvectors[i].numpy(),
            dense.eigenvectors[i].numpy(),
            atol=1e-4 * float(dense.eigenvectors[i].abs().max()))
    # D-orthonormal: xᵀ D x = 1 (D from the same affinity).
    aff = dsm_feature_affinity(keys, (30, 30)).double()
    deg = aff.sum(1)
    gram = (dense.eigenvectors * deg) @ dense.eigenvectors.T
    np.testing.assert_allclose(gram.numpy(), np.eye(5), atol=1e-6)


def test_repeated_eigenvalues_are_all_found():
    """Three identical regions with exactly zero cross affinity (disjoint
    key supports): every eigenvalue of one region appears three times. A
    single Krylov sequence sees one copy in exact arithmetic; Lanczos (with
    its missed-eigenvalue check) must still return all copies."""
    h, w = 12, 12
    noise = np.random.default_rng(0).standard_normal((h, 4, 7))
    keys = np.zeros((h, w, 24), np.float32)
    for b in range(3):
        keys[:, 4 * b:4 * b + 4, 8 * b] = 1.0
        keys[:, 4 * b:4 * b + 4, 8 * b + 1:8 * b + 8] = 0.5 * noise
    keys = torch.from_numpy(keys.reshape(-1, 24))
    dense = dsm_eigenvectors(keys, (h, w), K=5, solver='dense')
    lz = dsm_eigenvectors(keys, (h, w), K=5, solver='lanczos')
    vals = dense.eigenvalues.numpy()
    np.testing.assert_allclose(vals[:3], 0.0, atol=1e-9)
    assert vals[3] == pytest.approx(vals[4], abs=1e-9) and vals[3] > 0.1
    np.testing.assert_allclose(lz.eigenvalues.numpy(), vals, atol=1e-6)


def test_torch_backend_matches_scipy():
    arrays, meta, keys = _case('dsm_eigs_12x16_d384_three_objects_lam0_K6')
    ref = _run(arrays, meta, keys, 'dense')
    res = _run(arrays, meta, keys, 'dense', backend='torch')
    assert res.solver == 'dense-torch'
    np.testing.assert_allclose(res.eigenvalues.numpy(), ref.eigenvalues.numpy(), atol=1e-9)
    for i in _determined(ref.eigenvalues.numpy(), True):
        np.testing.assert_allclose(
            res.eigenvectors[i].numpy(), ref.eigenvectors[i].numpy(), atol=1e-7)


def test_localization_rule_on_a_known_grid():
    """Reversal and the largest 8-connected component."""
    vec = -np.ones((6, 8))
    vec[1:3, 1:3] = 1.0  # 4 cells
    vec[4, 5] = vec[5, 6] = vec[4, 7] = 1.0  # 3 cells, 8-connected (diagonal)
    vecs = np.stack([np.ones(48), vec.reshape(-1)])
    loc = dsm_localize(vecs, (6, 8), patch_size=16, image_hw=(90, 128))
    assert not loc.reversed
    assert loc.box.tolist() == [16, 16, 48, 48]
    # 8-connectivity: the diagonal chain is one component (3 > 2 cells).
    vec2 = vec.copy()
    vec2[1:3, 1:3] = -1.0
    vec2[1, 1] = vec2[2, 2] = 1.0  # two diagonal cells only
    loc2 = dsm_localize(np.stack([np.ones(48), vec2.reshape(-1)]), (6, 8), 16, (90, 128))
    assert loc2.box.tolist() == [80, 64, 128, 90]  # clipped to the image height
    # More than half positive: reversed; nothing positive: the whole grid.
    loc3 = dsm_localize(np.stack([np.ones(48), -vec.reshape(-1)]), (6, 8), 16)
    assert loc3.reversed and loc3.box.tolist() == [16, 16, 48, 48]
    loc4 = dsm_localize(np.stack([np.ones(48), -np.ones(48)]), (6, 8), 16, (96, 128))
    assert loc4.reversed and loc4.box.tolist() == [0, 0, 128, 96]


def test_multi_region_on_golden_eigenvectors():
    """k-means on the official eigenvectors gives the official segments up
    to a permutation (clean cases; the SPEC's smoke test), and the border
    segment is 0."""
    for name in ('dsm_eigs_12x16_d384_three_objects_lam0_K6',
                 'dsm_eigs_14x14_d384_two_objects_lam10_K5'):
        arrays, meta = load_golden(f'stego_dsm/{name}')
        n_seg = meta['multi_region']['non_adaptive_num_segments']
        seg = dsm_multi_region(arrays['eigenvectors'], (meta['h'], meta['w']), n_seg).numpy()
        ref = arrays['multi_region_segmap']
        pairs = set(zip(seg.reshape(-1).tolist(), ref.reshape(-1).tolist()))
        assert len(pairs) == n_seg, name  # a bijection between labels
        assert (seg == 0).sum() == (ref == 0).sum() and ((seg == 0) == (ref == 0)).all()
        assert adaptive_num_segments(arrays['eigenvalues']) == meta['adaptive_n_clusters']
        boxes = dsm_segment_boxes(ref, 2, 5, 16)
        assert boxes.segment_indices.tolist() == arrays['multi_segment_indices'].tolist()
        assert boxes.boxes_patch.tolist() == arrays['multi_bboxes_patch_xyxy'].tolist()
        assert boxes.boxes.tolist() == arrays['multi_bboxes_image_xyxy'].tolist()


def test_border_fractions_and_background_swap():
    seg = np.array([[2, 2, 2, 2], [1, 0, 0, 1], [1, 1, 1, 1]])
    ids, frac = border_fractions(seg)
    assert ids.tolist() == [0, 1, 2]
    # border cells: col0 [2,1,1], col-1 [2,1,1], row0 [2]*4, row-1 [1]*4
    np.testing.assert_allclose(frac, [0 / 14, 8 / 14, 6 / 14])
    # Eigenvectors that separate three blocks; the block holding most of the
    # border becomes 0, the others keep raster order of appearance.
    h, w = 8, 8
    lab = np.zeros((h, w), np.int64)
    lab[2:5, 2:5] = 1
    lab[5:7, 5:7] = 2
    vecs = np.stack([np.ones(h * w), (lab == 1).reshape(-1) * 1.0, (lab == 2).reshape(-1) * 1.0])
    seg = dsm_multi_region(vecs, (h, w), num_segments=3).numpy()
    np.testing.assert_array_equal(seg, lab)


def test_kmeans_and_pca():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    truth = np.repeat(np.arange(3), 20)
    pts = centers[truth] + 0.1 * rng.standard_normal((60, 2))
    labels, found = kmeans(pts, 3, seed=0)
    # A permutation of the truth, and the centers are the cluster means.
    assert len(set(zip(labels.tolist(), truth.tolist()))) == 3
    for c in range(3):
        np.testing.assert_allclose(found[c], pts[labels == c].mean(0))
    again, _ = kmeans(pts, 3, seed=0)
    np.testing.assert_array_equal(labels, again)
    # PCA: the projection keeps the variance of the top components.
    x = rng.standard_normal((50, 6)) * np.array([5.0, 3.0, 1.0, 0.1, 0.1, 0.1])
    proj = pca_reduce(x, 2)
    centred = x - x.mean(0)
    sv = np.linalg.svd(centred, compute_uv=False)
    np.testing.assert_allclose(np.sort(np.linalg.norm(proj, axis=0))[::-1], sv[:2], rtol=1e-10)
    with pytest.raises(ValueError, match='exceeds the number of points'):
        kmeans(pts[:2], 3)


def test_bad_input():
    keys = torch.randn(12, 8)
    with pytest.raises(ValueError, match='only 12 nodes'):
        dsm_eigenvectors(keys, (3, 4), K=13)
    with pytest.raises(ValueError, match='CLS'):
        dsm_eigenvectors(torch.randn(13, 8), (3, 4))
    with pytest.raises(ValueError, match='no edge'):
        dsm_eigenvectors(torch.zeros(12, 8), (3, 4))
    with pytest.raises(ValueError, match='needs the image'):
        dsm_eigenvectors(keys, (3, 4), image_color_lambda=10.0)
    with pytest.raises(ValueError, match='which_matrix'):
        dsm_eigenvectors(keys, (3, 4), which_matrix='matting')
    with pytest.raises(ValueError, match='K must be a positive int'):
        dsm_eigenvectors(keys, (3, 4), K=0)
    with pytest.raises(ValueError, match='K >= 2'):
        dsm_localize(dsm_eigenvectors(keys, (3, 4), K=1))
    with pytest.raises(ValueError, match='patch_size is required'):
        dsm_localize(np.ones((2, 12)), (3, 4))


def test_constant_features_are_degenerate():
    """Every affinity equal: eigenvalues (0, 1, ...), zero non-trivial
    vectors, and the localization falls back to the whole grid."""
    keys = torch.ones(12, 8)
    for solver in ('dense', 'lanczos'):
        res = dsm_eigenvectors(keys, (3, 4), K=3, solver=solver)
        assert res.solver == 'degenerate'
        np.testing.assert_allclose(res.eigenvalues.numpy(), [0.0, 1.0, 1.0])
        # The trivial vector is the D-normalised constant 1 / sqrt(sum D).
        np.testing.assert_allclose(res.eigenvectors[0].numpy(), 1 / 12.0)
        assert not res.eigenvectors[1:].any()
        loc = dsm_localize(res, image_hw=(48, 64))
        assert loc.reversed and loc.box.tolist() == [0, 0, 64, 48]


def test_one_row_grid():
    """A 1 x 10 grid: two groups split by the Fiedler vector."""
    labels = np.array([[0] * 6 + [1] * 4])
    keys = _blocks(1, 10, labels, noise=0.05)
    res = dsm_eigenvectors(keys, (1, 10), K=2)
    assert abs(float(res.eigenvalues[0])) < 1e-9
    mask = dsm_single_region(res)
    assert mask.tolist() == [[False] * 6 + [True] * 4]
    assert dsm_localize(res, image_hw=(16, 160)).box.tolist() == [96, 0, 160, 16]


@pytest.mark.parametrize('threshold_at_zero', [True, False])
@pytest.mark.parametrize('syrk_max_n', [1024, 0])
def test_lower_gram_paths(monkeypatch, syrk_max_n, threshold_at_zero):
    """W's float32 lower triangle from one syrk (small graphs) or recursive
    GEMM blocks (large ones; here forced, with small leaves), and its
    largest entry, taken on the diagonal."""
    from mmuol.localization import dsm
    monkeypatch.setattr(dsm, '_SYRK_MAX_N', syrk_max_n)
    monkeypatch.setattr(dsm, '_GRAM_LEAF', 16)
    feats = np.random.default_rng(0).standard_normal((150, 12)).astype(np.float32)
    low, top = dsm._lower_gram(feats, threshold_at_zero)
    ref = feats.astype(np.float64) @ feats.T.astype(np.float64)
    if threshold_at_zero:
        ref = np.maximum(ref, 0)
    tril = np.tril_indices(150)
    assert low.dtype == np.float32
    np.testing.assert_allclose(low[tril], ref[tril], rtol=0, atol=1e-5)
    assert top == float(np.diagonal(low).max())
    assert top == pytest.approx(ref.max(), rel=1e-6)
    if syrk_max_n == 0:
        dsm._give_back_workspace(low)


@pytest.mark.parametrize('syrk_max_n', [1024, 0])
def test_lanczos_on_the_unnormalised_graph(monkeypatch, syrk_max_n):
    """The Lanczos path keeps W without the max-normalisation (times
    ``top``) and scales the colour term and the vectors to match: it equals
    the dense solve of the official matrix, also for keys that are not
    normalised (``top`` far from 1) and with a colour affinity."""
    from mmuol.localization import dsm
    monkeypatch.setattr(dsm, '_SYRK_MAX_N', syrk_max_n)
    arrays, _ = load_golden('maskcut/maskcut_30x30_d384_rect_ellipse')
    keys = torch.from_numpy(maskcut_features(arrays).T.copy())[:300] * 3.0
    grid = (15, 20)
    rng = np.random.default_rng(0)
    color = rng.integers(0, 3, (300, 300)).astype(np.float64)
    color = (color + color.T) * (rng.random((300, 300)) < 0.02)
    color = np.maximum(color, color.T)
    for extra in (dict(normalize=False),
                  dict(normalize=False, image_color_lambda=0.5, color_affinity=color)):
        lz = dsm_eigenvectors(keys, grid, K=4, solver='lanczos', tol=1e-9, **extra)
        dense = dsm_eigenvectors(keys, grid, K=4, solver='dense', **extra)
        assert lz.solver == 'lanczos-scipy'
        np.testing.assert_allclose(lz.eigenvalues.numpy(), dense.eigenvalues.numpy(), atol=1e-6)
        checked = _determined(dense.eigenvalues.numpy(), True)
        assert 0 in checked and len(checked) >= 2
        for i in checked:
            np.testing.assert_allclose(
                lz.eigenvectors[i].numpy(),
                dense.eigenvectors[i].numpy(),
                atol=1e-4 * float(dense.eigenvectors[i].abs().max()))
    if syrk_max_n == 0:
        # The graph's memory was given back for the next image.
        from mmuol.localization import utils
        assert utils._WORKSPACE.buffer is not None
        assert utils._WORKSPACE.buffer.nbytes >= 4 * 300**2
