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
    lam, vec = scipy.linalg.eigh(np.diag(d) - a, np.diag(d), subset_by_index=[1, 2])
    return lam, vec[:, 0]


@pytest.mark.parametrize('solver,backend', [('dense', 'scipy'), ('lanczos', 'scipy'),
                                            ('lanczos', 'torch'), ('dense', 'torch')])
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
        res = ncut_bipartition(aff, solver='lanczos', backend=backend, max_iter=1)
        assert res.solver.startswith('dense')
        np.testing.assert_allclose(res.eigvec.numpy(), ref.eigvec.numpy(), atol=1e-10)


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
        ncut_bipartition(torch.zeros(4, 4).fill_diagonal_(1) - torch.eye(4) * 2)
    with pytest.raises(ValueError, match='NaN'):
        ncut_bipartition(torch.full((3, 3), float('nan')))
    with pytest.raises(ValueError, match='solver'):
        ncut_bipartition(torch.ones(3, 3), solver='arpack')


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_lower_triangular_edges_equal_full_graph(dtype, monkeypatch):
    from mmuol.localization import ncut
    monkeypatch.setattr(ncut, '_BLOCK_BYTES', 4 * 930 * 128)  # 128-row blocks
    keys = _blob_keys(h=30, w=31, d=48).to(dtype)
    feats = torch.nn.functional.normalize(keys, dim=1)
    cos = (feats @ feats.T).numpy()
    tau = float(np.median(cos))  # many entries right at the threshold
    low = ncut._edges_np(feats.numpy(), tau, lower=True)
    full = ncut._edges_np(feats.numpy(), tau, lower=False)
    ref = (cos > tau).astype(np.float64)
    tril = np.tril_indices(cos.shape[0])
    np.testing.assert_array_equal(low[tril], ref[tril])
    np.testing.assert_array_equal(full, ref)
    np.testing.assert_array_equal(ncut._complete_lower(low), ref)


def test_fast_path_matches_full_affinity_path():
    from mmuol.localization.ncut import ncut_from_keys
    keys = _blob_keys(h=20, w=21)
    for k in (keys, keys.double()):
        fast = ncut_from_keys(k, tau=0.2, channel_major=True)
        full = ncut_bipartition(cosine_affinity(k, tau=0.2, channel_major=True))
        assert fast.solver == full.solver == 'lanczos-scipy'
        np.testing.assert_allclose(fast.eigvec.numpy(), full.eigvec.numpy(), atol=1e-12)
        np.testing.assert_allclose(fast.degree.numpy(), full.degree.numpy(), rtol=1e-12)
        np.testing.assert_allclose(fast.eigvals.numpy(), full.eigvals.numpy(), rtol=1e-10)


def test_ncut_bipartition_does_not_write_the_affinity():
    aff = cosine_affinity(_blob_keys(h=12, w=12), tau=0.2)
    before = aff.clone()
    for solver in ('dense', 'lanczos'):
        ncut_bipartition(aff, solver=solver)
        ncut_bipartition(aff, solver='lanczos', max_iter=2)  # dense fallback
        assert torch.equal(aff, before)


@pytest.mark.parametrize('backend', ['scipy', 'torch'])
def test_auto_falls_back_to_dense_on_a_graph_without_a_cut(backend):
    # Random keys: no clear cut, Lanczos converges slowly (hundreds of
    # products on 30x40); 'auto' gives up after max(60, N // 16) products.
    from mmuol.localization import ncut
    keys = torch.randn(30 * 40, 384, generator=torch.Generator().manual_seed(0))
    calls = []
    lanczos = ncut._lanczos

    def spy(graph, tol, max_products, **kw):
        calls.append(max_products)
        return lanczos(graph, tol, max_products, **kw)

    ncut._lanczos = spy
    try:
        auto = ncut.ncut_from_keys(keys, tau=0.15, backend=backend)
        explicit = ncut.ncut_from_keys(keys, tau=0.15, backend=backend, solver='lanczos')
    finally:
        ncut._lanczos = lanczos
    assert calls == [75, 12000]  # auto budget, explicit cap max(3000, 10 N)
    assert auto.solver == f'dense-{backend}'
    assert explicit.solver == f'lanczos-{backend}'
    dense = ncut.ncut_from_keys(keys, tau=0.15, backend=backend, solver='dense')
    np.testing.assert_array_equal(auto.eigvec.numpy(), dense.eigvec.numpy())


def test_ncut_confidence():
    from mmuol.localization import ncut_confidence
    assert ncut_confidence([0.1, 0.4]) == pytest.approx(0.75)
    assert ncut_confidence(torch.tensor([0.5, 0.4])) == 0.0  # clipped
    assert ncut_confidence([0.1, float('nan')]) == 0.0
    assert ncut_confidence([0.0, 0.0]) == 0.0


@pytest.mark.parametrize('tau,eps,binary,match', [
    (float('nan'), 1e-5, True, 'tau'),
    (float('inf'), 1e-5, True, 'tau'),
    (1.0, 1e-5, True, 'tau'),
    (-1.5, 1e-5, True, 'tau'),
    (-0.1, 1e-5, False, 'tau'),
    (0.2, 0.0, True, 'eps'),
    (0.2, float('nan'), True, 'eps'),
    (0.2, 1.0, True, 'eps'),
    (0.2, -1e-5, True, 'eps'),
    ('0.2', 1e-5, True, 'tau'),
])
def test_graph_parameters_are_validated(tau, eps, binary, match):
    from mmuol.localization import ncut_from_keys
    keys = _blob_keys(h=4, w=4)
    for fn in (ncut_from_keys, cosine_affinity):
        with pytest.raises(ValueError, match=match):
            fn(keys, tau=tau, eps=eps, binary_graph=binary)


def test_solver_parameters_are_validated():
    aff = cosine_affinity(_blob_keys(h=4, w=4))
    with pytest.raises(ValueError, match='tol'):
        ncut_bipartition(aff, tol=float('nan'))
    with pytest.raises(ValueError, match='max_iter'):
        ncut_bipartition(aff, max_iter=0)
    with pytest.raises(ValueError, match='backend'):
        ncut_bipartition(aff, backend='cupy')


def test_graph_memory_is_checked_before_allocating(monkeypatch):
    from mmuol.localization import maskcut, ncut, tokencut, utils
    keys = _blob_keys(h=8, w=8)
    aff = cosine_affinity(keys)
    # 64 patches: the float64 graph needs 8 * 64**2 = 32768 bytes, the
    # dense solver 40 * 64**2.
    monkeypatch.setattr(utils, 'available_memory', lambda device='cpu': 32768)
    ncut.ncut_from_keys(keys, solver='lanczos')
    ncut_bipartition(aff, solver='lanczos')
    with pytest.raises(MemoryError, match='dense'):
        ncut_bipartition(aff, solver='dense')
    monkeypatch.setattr(utils, 'available_memory', lambda device='cpu': 32767)
    allocated = []
    monkeypatch.setattr(ncut, '_edges_np', lambda *a: allocated.append(a))
    for fn in (lambda: tokencut(keys, (8, 8), solver='lanczos'), lambda: cosine_affinity(keys),
               lambda: maskcut(keys, (8, 8), solver='lanczos')):
        with pytest.raises(MemoryError, match=r'64 patches.*Resize'):
            fn()
    assert not allocated
