# Copyright (c) mmuol contributors. All rights reserved.
"""The shared NCut eigensolver: all solvers agree with the dense reference."""
import numpy as np
import pytest
import scipy.linalg
import torch

from mmuol.localization import cosine_affinity, ncut_bipartition


def _blob_keys(h=24, w=24, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    bg, fg = torch.randn(2, d, generator=g)
    lab = torch.zeros(h, w, dtype=torch.bool)
    lab[h // 5:h // 2, w // 3:(5 * w) // 6] = True
    keys = torch.where(lab.reshape(-1, 1), fg, bg)
    return keys + 0.8 * torch.randn(h * w, d, generator=g)


def _ref(aff):
    a = aff.numpy()
    d = a.sum(1)
    lam, vec = scipy.linalg.eigh(np.diag(d) - a, np.diag(d),
                                 subset_by_index=[1, 2])
    return lam, vec[:, 0]


@pytest.mark.parametrize('solver,backend', [('dense', 'scipy'),
                                            ('lanczos', 'scipy'),
                                            ('lanczos', 'torch'),
                                            ('dense', 'torch')])
def test_solvers_match_dense_generalized_eigh(solver, backend):
    aff = cosine_affinity(_blob_keys(), tau=0.2, eps=1e-5)
    lam, x_ref = _ref(aff)
    res = ncut_bipartition(aff, solver=solver, backend=backend)
    assert res.solver == f'{solver}-{backend}'
    np.testing.assert_allclose(res.eigvals.numpy(), lam, rtol=1e-8)
    x = res.eigvec.numpy()
    err = min(np.abs(x - x_ref).max(), np.abs(x + x_ref).max())
    assert err < 1e-8
    # canonical sign: the largest-magnitude entry is positive
    assert x[np.argmax(np.abs(x))] > 0
    assert torch.equal(res.bipartition, res.eigvec > res.eigvec.mean())


def test_auto_uses_lanczos_for_large_graphs():
    aff = cosine_affinity(_blob_keys(h=20, w=20), tau=0.2)
    assert ncut_bipartition(aff).solver == 'lanczos-scipy'
    small = cosine_affinity(_blob_keys(h=8, w=8), tau=0.2)
    assert ncut_bipartition(small).solver == 'dense-scipy'


def test_lanczos_falls_back_to_dense_when_not_converged():
    aff = cosine_affinity(_blob_keys(), tau=0.2)
    ref = ncut_bipartition(aff, solver='dense')
    for backend in ('scipy', 'torch'):
        res = ncut_bipartition(aff, solver='lanczos', backend=backend,
                               max_iter=1)
        assert res.solver.startswith('dense')
        np.testing.assert_allclose(res.eigvec.numpy(), ref.eigvec.numpy(),
                                   atol=1e-10)


def test_weighted_graph():
    keys = _blob_keys(h=10, w=10)
    aff = cosine_affinity(keys, tau=0.2, eps=1e-5, binary_graph=False)
    cos = torch.nn.functional.normalize(keys, dim=1)
    cos = (cos @ cos.T).double()
    assert torch.allclose(aff[cos >= 0.2 + 1e-6], cos[cos >= 0.2 + 1e-6])
    assert (aff[cos < 0.2 - 1e-6] == 1e-5).all()


def test_channel_major_is_same_graph_up_to_rounding():
    keys = _blob_keys(h=12, w=12)
    a = cosine_affinity(keys, tau=0.2)
    b = cosine_affinity(keys, tau=0.2, channel_major=True)
    assert (a != b).float().mean() < 1e-3


def test_degenerate_and_tiny_graphs():
    res = ncut_bipartition(torch.ones(5, 5, dtype=torch.float64))
    assert res.solver == 'degenerate'
    assert (res.eigvec == 0).all() and res.eigvals.tolist() == [1.0, 1.0]
    one = ncut_bipartition(torch.ones(1, 1))
    assert torch.isnan(one.eigvals).all()
    two = ncut_bipartition(torch.tensor([[1.0, 0.1], [0.1, 1.0]]))
    # M = A / 1.1 has eigenvalues 1 and 0.9 / 1.1
    assert float(two.eigvals[0]) == pytest.approx(1 - 0.9 / 1.1)
    assert torch.isnan(two.eigvals[1])
    assert two.bipartition.sum() == 1


def test_bad_affinity():
    with pytest.raises(ValueError, match='square'):
        ncut_bipartition(torch.ones(3, 4))
    with pytest.raises(ValueError, match='degree'):
        ncut_bipartition(torch.zeros(4, 4).fill_diagonal_(1)
                         - torch.eye(4) * 2)
    with pytest.raises(ValueError, match='NaN'):
        ncut_bipartition(torch.full((3, 3), float('nan')))
    with pytest.raises(ValueError, match='solver'):
        ncut_bipartition(torch.ones(3, 3), solver='arpack')


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_lower_triangular_graph_equals_full_graph(dtype):
    from mmuol.localization.ncut import _lower_binary_graph
    keys = _blob_keys(h=30, w=31, d=48).to(dtype)
    feats = torch.nn.functional.normalize(keys, dim=1)
    cos = (feats @ feats.T).numpy()
    tau = float(np.median(cos))  # many entries right at the threshold
    low, edges = _lower_binary_graph(feats.numpy(), tau, 1e-5, block=128)
    full = np.where(cos > tau, 1.0, 1e-5)
    tril = np.tril_indices(cos.shape[0])
    np.testing.assert_array_equal(low[tril], full[tril])
    np.testing.assert_array_equal(edges, (cos > tau).sum(1))


def test_fast_path_matches_full_affinity_path():
    from mmuol.localization.ncut import ncut_from_keys
    keys = _blob_keys(h=20, w=21)
    for k in (keys, keys.double()):
        fast = ncut_from_keys(k, tau=0.2, channel_major=True)
        full = ncut_bipartition(
            cosine_affinity(k, tau=0.2, channel_major=True))
        assert fast.solver == full.solver == 'lanczos-scipy'
        np.testing.assert_allclose(fast.eigvec.numpy(), full.eigvec.numpy(),
                                   atol=1e-12)
        np.testing.assert_allclose(fast.degree.numpy(), full.degree.numpy(),
                                   rtol=1e-12)
