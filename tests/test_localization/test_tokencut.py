# Copyright (c) mmuol contributors. All rights reserved.
"""TokenCut against the official golden vectors, for every solver."""
import numpy as np
import pytest
import scipy.linalg
import torch

from mmuol.localization import cosine_affinity, mask_to_box, tokencut
from mmuol.testing.localization import golden_names, load_golden

CASES = golden_names('found_lost_tokencut', 'tokencut_*_tau*.npz')
SOLVERS = [('auto', 'auto'), ('dense', 'scipy'), ('lanczos', 'scipy'), ('lanczos', 'torch'),
           ('dense', 'torch')]


def test_cases_present():
    assert len(CASES) == 6


@pytest.mark.parametrize('solver,backend', SOLVERS)
@pytest.mark.parametrize('name', CASES)
def test_tokencut_golden(name, solver, backend):
    z, meta = load_golden(f'found_lost_tokencut/{name}')
    h, w = meta['rows'], meta['cols']
    keys = torch.from_numpy(z['tokens'][1:])  # row 0 is the CLS token
    res = tokencut(
        keys, (h, w),
        tau=meta['tau'],
        eps=meta['eps'],
        binary_graph=not meta['no_binary_graph'],
        solver=solver,
        backend=backend)
    assert res._fields[:2] == ('mask', 'seed')
    assert isinstance(res.seed, int)
    assert res.seed in set(z['seed_candidates'].tolist())
    np.testing.assert_allclose(res.eigvec.numpy(), z['eigvec'], rtol=0, atol=1e-6)
    if meta['no_binary_graph']:
        # The official code solves the weighted graph in float32: its
        # eigenvalues carry float32 error (lambda2 = 0.001665: 1.4e-4
        # relative). Ours are the float64 solution of the official graph.
        lam32, lam64 = _dense_eigvals(z['A'], np.float32), _dense_eigvals(z['A'], np.float64)
        np.testing.assert_allclose(lam32, z['eigvals'], rtol=1e-6)  # the golden's origin
        np.testing.assert_allclose(res.eigvals.numpy(), lam64, rtol=1e-6)
        np.testing.assert_allclose(res.eigvals.numpy(), z['eigvals'], rtol=2e-4)
        np.testing.assert_allclose(res.degree.numpy(), z['degree'], rtol=1e-6)
    else:
        np.testing.assert_allclose(res.eigvals.numpy(), z['eigvals'], rtol=1e-6)
        np.testing.assert_allclose(res.degree.numpy(), z['degree'], rtol=1e-12)
    assert res.seed == int(z['seed']) or int(z['seed']) in z['seed_candidates']
    np.testing.assert_array_equal(res.bipartition.numpy(), z['bipartition'])
    np.testing.assert_array_equal(res.labels.numpy(), z['objects'])
    np.testing.assert_array_equal(res.mask.numpy(), z['mask'])
    box = mask_to_box(res.mask, meta['patch_size'], meta['image_hw'])
    np.testing.assert_array_equal(box.numpy(), z['pred_box'])
    # D-normalisation as scipy: x^T D x = 1.
    x = res.eigvec.reshape(-1).numpy()
    assert abs(x @ (res.degree.numpy() * x) - 1) < 1e-9
    assert res.eigval == pytest.approx(float(z['eigvals'][0]), rel=1e-3)
    assert 0.0 <= res.confidence <= 1.0


def _dense_eigvals(aff, dtype):
    a = aff.astype(dtype)
    d = a.sum(1)
    return scipy.linalg.eigh(np.diag(d) - a, np.diag(d), subset_by_index=[1, 2], eigvals_only=True)


@pytest.mark.parametrize('name', CASES)
def test_tokencut_graph_golden(name):
    """The graph itself: ``adjacency = cos > tau`` (binary) or the weighted
    ``A`` (float32 similarities in float64, hence rtol 1e-6)."""
    z, meta = load_golden(f'found_lost_tokencut/{name}')
    keys = torch.from_numpy(z['tokens'][1:])
    aff = cosine_affinity(
        keys, tau=meta['tau'], eps=meta['eps'], binary_graph=not meta['no_binary_graph'])
    assert aff.dtype == torch.float64
    if meta['no_binary_graph']:
        np.testing.assert_allclose(aff.numpy(), z['A'], rtol=1e-6, atol=0)
        # (the official float32 graph stores eps as float32(1e-5))
        np.testing.assert_array_equal(aff.numpy() == meta['eps'],
                                      np.isclose(z['A'], meta['eps'], rtol=1e-6, atol=0))
    else:
        np.testing.assert_array_equal(aff.numpy() == 1.0, z['adjacency'])
        np.testing.assert_array_equal(aff.numpy()[~z['adjacency']], meta['eps'])
        np.testing.assert_allclose(aff.sum(1).numpy(), z['degree'], rtol=1e-12)


def test_tokencut_confidence_object_vs_noise():
    z, meta = load_golden('found_lost_tokencut/tokencut_14x14_d384_ps16_tau0.2')
    obj = tokencut(z['tokens'][1:], (14, 14))
    noise = tokencut(torch.randn(196, 384, generator=torch.Generator().manual_seed(0)), (14, 14))
    assert obj.confidence > 0.9
    assert noise.confidence < 0.1


def test_tokencut_numpy_float64_input_matches():
    z, meta = load_golden('found_lost_tokencut/tokencut_20x28_d64_ps8_tau0.2_two_objects')
    keys = z['tokens'][1:]
    ref = tokencut(torch.from_numpy(keys), (20, 28))
    res = tokencut(keys.astype(np.float64), (20, 28))
    assert torch.equal(res.mask, ref.mask)
    np.testing.assert_allclose(res.eigvec.numpy(), ref.eigvec.numpy(), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_tokencut_cuda_matches_cpu():
    z, meta = load_golden('found_lost_tokencut/tokencut_28x20_d64_ps16_tau0.2_clip')
    keys = torch.from_numpy(z['tokens'][1:])
    res = tokencut(keys.cuda(), (28, 20))
    assert res.mask.is_cuda
    np.testing.assert_array_equal(res.mask.cpu().numpy(), z['mask'])
    np.testing.assert_allclose(res.eigvec.cpu().numpy(), z['eigvec'], atol=1e-6)


@pytest.mark.parametrize('tau', [float('nan'), float('inf'), 1.0, -2.0])
def test_tokencut_rejects_bad_tau(tau):
    # tau=nan used to compare False everywhere: no edge, the whole grid.
    keys = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match='tau must be a finite number'):
        tokencut(keys, (3, 4), tau=tau)


@pytest.mark.parametrize('eps', [float('nan'), 0.0, -1e-5, 1.0])
def test_tokencut_rejects_bad_eps(eps):
    keys = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match='eps must be a finite number'):
        tokencut(keys, (3, 4), eps=eps)
