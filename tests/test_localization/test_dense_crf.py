# Copyright (c) mmuol contributors. All rights reserved.
"""Dense CRF: golden vectors of the official CutLER / STEGO CRF calls, model
properties, the permutohedral lattice and input validation."""
import math
import sys

import numpy as np
import pytest
import torch

from mmuol.localization.dense_crf import (DSM_CRF, MASKCUT_CRF, STEGO_CRF, DenseCRFParams,
                                          batch_maskcut_crf_postprocess, dense_crf, dsm_crf,
                                          maskcut_crf, maskcut_crf_postprocess, stego_crf)
from mmuol.localization.dense_crf_lattice import PermutohedralLattice
from mmuol.testing.localization import load_golden

MASKCUT_CRF_CASES = ['maskcut_60x60_d768_rect_ellipse', 'maskcut_60x60_d768_three_objects']


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def _two_colour_image(h=48, w=64, edge=28, seed=0):
    """Red left of column ``edge``, blue right of it, +-8 noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.int64)
    img[:, :edge] = (200, 40, 30)
    img[:, edge:] = (30, 60, 210)
    img = np.clip(img + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((h, w), bool)
    truth[:, edge:] = True
    return img, truth


# ---------------------------------------------------------------------------
# Golden vectors
# ---------------------------------------------------------------------------
def test_params_match_the_official_constants():
    _, meta = load_golden('maskcut/maskcut_60x60_d768_rect_ellipse')
    c = meta['crf']['params']
    assert MASKCUT_CRF[:6] == (c['MAX_ITER'], c['POS_XY_STD'], c['POS_W'], c['Bi_XY_STD'],
                               c['Bi_RGB_STD'], c['Bi_W'])
    _, meta = load_golden('stego_dsm/stego_crf_64x64_c4')
    c = meta['crf']
    assert STEGO_CRF[:6] == (c['MAX_ITER'], c['POS_XY_STD'], c['POS_W'], c['Bi_XY_STD'],
                             c['Bi_RGB_STD'], c['Bi_W'])
    assert MASKCUT_CRF.prob_clip == STEGO_CRF.prob_clip == (1e-5, 1.0)
    # SimpleCRF (w1, alpha, beta, w2, gamma, it) = (10, 80, 13, 3, 3, 5).
    assert DSM_CRF == DenseCRFParams(5, 3., 3., 80., 13., 10., (0.01, 0.99))


@pytest.mark.parametrize('case', MASKCUT_CRF_CASES)
def test_maskcut_crf_golden(case):
    z, _ = load_golden(f'maskcut/{case}')
    image, masks = z['crf_image'], z['masks']
    results = batch_maskcut_crf_postprocess(image, masks)
    crf = maskcut_crf(image, masks).numpy()
    assert crf.shape == masks.shape and crf.dtype == bool
    for i, res in enumerate(results):
        ref_map = z['crf_map'][i].astype(bool)
        # Same lattice arithmetic as pydensecrf: exact here; a few flipped
        # pixels are tolerated for other BLAS/SIMD builds.
        assert np.count_nonzero(crf[i] != ref_map) <= 0.001 * ref_map.size
        assert _iou(crf[i], ref_map) >= 0.99
        ref_iou = float(z['crf_iou_raw_vs_crf'][i])
        ref_post = z['crf_post_mask'][i].astype(bool)
        if math.isnan(ref_iou):  # empty raw mask: NaN IoU, not gated, empty
            assert math.isnan(res.iou)
            assert res.mask is not None and not res.mask.any()
        else:
            assert res.iou == pytest.approx(ref_iou, abs=1e-4)
            assert res.mask is not None  # all golden masks pass the gate
            post = res.mask.numpy()
            assert np.count_nonzero(post != ref_post) <= 0.001 * ref_post.size
            assert _iou(post, ref_post) >= 0.99


def test_stego_crf_golden():
    z, _ = load_golden('stego_dsm/stego_crf_64x64_c4')
    q = stego_crf(torch.from_numpy(z['image_tensor']), torch.from_numpy(z['logits']))
    assert q.shape == (4, 64, 64) and q.dtype == torch.float32
    np.testing.assert_allclose(q.numpy(), z['crf_Q'], atol=1e-5)
    assert (q.argmax(0).numpy() == z['crf_argmax']).mean() >= 0.99
    # The uint8 RGB route sees the same (un-normalised, truncated) pixels.
    rgb = np.ascontiguousarray(z['pil_bgr_image'][:, :, ::-1])
    q_rgb = stego_crf(rgb, z['logits'])
    np.testing.assert_allclose(q_rgb.numpy(), z['crf_Q'], atol=1e-5)
    # Batched input runs image by image.
    qb = stego_crf(torch.from_numpy(z['image_tensor'])[None], torch.from_numpy(z['logits'])[None])
    assert torch.equal(qb[0], q)


# ---------------------------------------------------------------------------
# Model properties
# ---------------------------------------------------------------------------
def test_spatially_constant_unary_keeps_its_argmax():
    # Every message is the same positive factor times Q, so a constant unary
    # keeps its label order at every pixel, whatever the image.
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    probs = np.broadcast_to(np.array([0.3, 0.5, 0.2])[:, None, None], (3, 24, 32))
    q = dense_crf(image, probs, MASKCUT_CRF)
    assert q.shape == (3, 24, 32) and q.dtype == torch.float32
    assert bool((q.argmax(0) == 1).all())
    np.testing.assert_allclose(q.sum(0).numpy(), 1.0, atol=1e-6)
    uniform = np.full((24, 32, 3), 90, np.uint8)
    assert bool((dense_crf(uniform, probs, STEGO_CRF).argmax(0) == 1).all())


def test_zero_iterations_return_the_normalised_probabilities():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    probs = rng.dirichlet(np.ones(3), size=(10, 12)).transpose(2, 0, 1)
    q = dense_crf(image, probs, MASKCUT_CRF._replace(iterations=0))
    np.testing.assert_allclose(q.numpy(), probs, atol=1e-6)


def test_crf_cleans_a_noisy_mask_to_the_colour_edge():
    image, truth = _two_colour_image()
    rng = np.random.default_rng(3)
    noisy = truth ^ (rng.random(truth.shape) < 0.08)
    assert np.count_nonzero(noisy != truth) > 200
    assert np.array_equal(maskcut_crf(image, noisy.astype(np.uint8)).numpy(), truth)


def test_dsm_crf_moves_a_patch_boundary_onto_the_colour_edge():
    image, truth = _two_colour_image(edge=28)
    for start in (24, 32):  # 8-px patch masks, 4 px off either way
        seg = np.zeros(truth.shape, np.int64)
        seg[:, start:] = 1
        out = dsm_crf(image, seg)
        assert out.dtype == torch.int64
        assert np.array_equal(out.numpy(), truth.astype(np.int64))


def test_label_permutation_and_batch_consistency():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    probs = torch.from_numpy(rng.dirichlet(np.ones(3), size=(2, 16, 20))).permute(0, 3, 1, 2)
    q = dense_crf(image, probs, STEGO_CRF)
    assert q.shape == (2, 3, 16, 20)
    for b in range(2):  # a batch equals its items run alone
        assert torch.equal(q[b], dense_crf(image, probs[b], STEGO_CRF))
    perm = [2, 0, 1]
    q_perm = dense_crf(image, probs[0, perm], STEGO_CRF)
    torch.testing.assert_close(q_perm, q[0, perm], atol=1e-6, rtol=0)


def test_postprocess_gate_and_hole_filling():
    image, truth = _two_colour_image()
    # A ring on the blue side: the CRF keeps the blue half, holes filled.
    res = maskcut_crf_postprocess(image, truth.astype(np.uint8))
    assert res.mask is not None and np.array_equal(res.mask.numpy(), truth)
    assert res.iou == 1.0
    # A mask covering mostly red pixels plus a sliver of blue: the CRF
    # result disagrees with it -> IoU below the gate -> dropped.
    wrong = np.zeros(truth.shape, np.uint8)
    wrong[:, 20:30] = 1
    res = maskcut_crf_postprocess(image, wrong)
    assert res.iou < 0.5 and res.mask is None
    # The gate threshold is the caller's.
    res_low = maskcut_crf_postprocess(image, wrong, iou_thresh=0.0)
    assert res_low.mask is not None and res_low.iou == pytest.approx(res.iou)
    # Empty mask: NaN IoU does not trigger the gate; the result is empty.
    res = maskcut_crf_postprocess(image, np.zeros(truth.shape, np.uint8))
    assert math.isnan(res.iou) and res.mask is not None and not res.mask.any()


def test_fill_holes():
    image = np.full((32, 32, 3), 120, np.uint8)
    image[8:24, 8:24] = (20, 200, 20)
    image[14:18, 14:18] = 120  # background-coloured hole inside the object
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 1
    crf = maskcut_crf(image, mask).numpy()
    assert not crf[14:18, 14:18].any()  # the CRF opens the hole ...
    res = maskcut_crf_postprocess(image, mask)
    assert np.array_equal(res.mask.numpy(), mask.astype(bool))  # ... the glue fills it


def test_low_resolution_mask_is_upsampled_bilinearly():
    image, truth = _two_colour_image(h=48, w=64, edge=32)
    patch = truth[::8, ::8].astype(np.uint8)  # (6, 8) patch mask
    assert np.array_equal(maskcut_crf(image, patch).numpy(), truth)


# ---------------------------------------------------------------------------
# Permutohedral lattice
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('d', [2, 5])  # the CRF's two kernels
def test_lattice_approximates_a_unit_gaussian(d):
    for delta, expected in ((0.5, math.exp(-0.125)), (1.0, math.exp(-0.5)), (2.0, math.exp(-2))):
        f = torch.full((2, d), 0.123)
        f[1, 0] += delta
        lat = PermutohedralLattice(f)
        out = lat.filter(torch.tensor([[1.0], [0.0]]))
        assert abs(out[1, 0] / out[0, 0] - expected) < 0.08
    f = torch.full((2, d), 0.123)
    f[1, 0] += 3.5  # compact support: farther than ~3 std is cut off
    assert PermutohedralLattice(f).filter(torch.tensor([[1.0], [0.0]]))[1, 0] == 0


def test_lattice_weights_and_linearity():
    rng = np.random.default_rng(5)
    feats = torch.from_numpy(rng.normal(size=(200, 3)).astype(np.float32)) * 2
    lat = PermutohedralLattice(feats)
    assert lat.weights.shape == (200, 4)  # barycentric: d + 1 vertices per point
    assert bool((lat.weights >= 0).all())
    torch.testing.assert_close(lat.weights.sum(1), torch.ones(200), atol=1e-6, rtol=0)
    a, b = torch.rand(200, 2), torch.rand(200, 2)
    torch.testing.assert_close(lat.filter(a + 3 * b), lat.filter(a) + 3 * lat.filter(b))


def test_lattice_torch_impl_matches_scipy_impl():
    # The torch path is what runs on CUDA; check it on CPU against scipy.
    rng = np.random.default_rng(6)
    for d, scale in ((2, 3.0), (5, 4.0)):
        feats = torch.from_numpy(rng.normal(size=(3000, d)).astype(np.float32)) * scale
        vals = torch.rand(3000, 3)
        ref = PermutohedralLattice(feats, impl='scipy')
        alt = PermutohedralLattice(feats, impl='torch')
        assert alt.num_vertices == ref.num_vertices
        torch.testing.assert_close(alt.filter(vals), ref.filter(vals), rtol=1e-5, atol=1e-5)


def test_lattice_errors():
    with pytest.raises(ValueError, match=r'\(N, d\)'):
        PermutohedralLattice(torch.zeros(5))
    with pytest.raises(ValueError, match='NaN'):
        PermutohedralLattice(torch.tensor([[0.0, float('nan')]]))
    with pytest.raises(ValueError, match='impl'):
        PermutohedralLattice(torch.zeros(3, 2), impl='cuda')
    with pytest.raises(ValueError, match='too wide'):
        PermutohedralLattice(torch.tensor([[0.0] * 5, [1e4] * 5]))
    with pytest.raises(ValueError, match=r'\(2, C\)'):
        PermutohedralLattice(torch.zeros(2, 2)).filter(torch.zeros(3, 1))


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------
def test_dense_crf_input_errors():
    image = np.zeros((8, 10, 3), np.uint8)
    probs = np.full((2, 8, 10), 0.5)
    with pytest.raises(ValueError, match='at least 2'):
        dense_crf(image, probs[:1], MASKCUT_CRF)
    with pytest.raises(ValueError, match='does not match image size'):
        dense_crf(image, probs[:, :4], MASKCUT_CRF)
    with pytest.raises(TypeError, match='must be uint8'):
        dense_crf(image.astype(np.float32), probs, MASKCUT_CRF)
    with pytest.raises(ValueError, match='channels first'):
        dense_crf(image.transpose(2, 0, 1).copy(), probs, MASKCUT_CRF)
    bad = probs.copy()
    bad[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        dense_crf(image, bad, MASKCUT_CRF)
    with pytest.raises(ValueError, match='logits'):
        dense_crf(image, np.stack([np.full((8, 10), 2.0), np.full((8, 10), -1.0)]), MASKCUT_CRF)
    with pytest.raises(ValueError, match=r'\(C, H, W\)'):
        dense_crf(image, probs[0], MASKCUT_CRF)
    with pytest.raises(ValueError, match='backend'):
        dense_crf(image, probs, MASKCUT_CRF, backend='cuda')
    with pytest.raises(TypeError, match='DenseCRFParams'):
        dense_crf(image, probs, (10, 3, 7, 50, 5, 10))
    with pytest.raises(ValueError, match='gaussian_sxy'):
        dense_crf(image, probs, MASKCUT_CRF._replace(gaussian_sxy=0))
    with pytest.raises(ValueError, match='iterations'):
        dense_crf(image, probs, MASKCUT_CRF._replace(iterations=-1))
    with pytest.raises(ValueError, match='prob_clip'):
        dense_crf(image, probs, MASKCUT_CRF._replace(prob_clip=(0.5, 0.1)))


def test_method_helpers_input_errors():
    image = np.zeros((8, 10, 3), np.uint8)
    with pytest.raises(ValueError, match='0/255'):
        maskcut_crf(image, np.full((8, 10), 255, np.uint8))
    with pytest.raises(ValueError, match=r'\(H, W\) or \(N, H, W\)'):
        maskcut_crf(image, np.zeros(10))
    with pytest.raises(ValueError, match='must equal the image size'):
        maskcut_crf_postprocess(image, np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match='batch_maskcut_crf_postprocess'):
        maskcut_crf_postprocess(image, np.zeros((2, 8, 10), np.uint8))
    with pytest.raises(ValueError, match=r'\[0, 2\)'):
        dsm_crf(image, np.full((8, 10), 2))
    with pytest.raises(ValueError, match='num_classes'):
        dsm_crf(image, np.zeros((8, 10), np.int64), num_classes=1)
    with pytest.raises(ValueError, match='normalised float tensor'):
        stego_crf(torch.zeros(4, 8, 10), torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match=r'\(C, h, w\)'):
        stego_crf(torch.zeros(3, 8, 10), torch.zeros(2, 2))
    with pytest.raises(ValueError, match='NaN'):
        stego_crf(torch.zeros(3, 8, 10), torch.full((3, 2, 2), float('nan')))
    with pytest.raises(ValueError, match='at least 2'):
        stego_crf(torch.zeros(3, 8, 10), torch.zeros(1, 2, 2))


def test_pydensecrf_backend_missing_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pydensecrf', None)
    monkeypatch.setitem(sys.modules, 'pydensecrf.densecrf', None)
    with pytest.raises(ImportError, match='pip install pydensecrf2'):
        dense_crf(
            np.zeros((4, 4, 3), np.uint8),
            np.full((2, 4, 4), 0.5),
            MASKCUT_CRF,
            backend='pydensecrf')
