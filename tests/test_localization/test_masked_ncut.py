# Copyright (c) mmuol contributors. All rights reserved.
"""``MaskedNCut`` (MaskCut's stages on one shared graph) equals a graph built
per call, and the patch-graph workspace it reuses."""
import threading

import numpy as np
import pytest
import torch

from mmuol.localization import maskcut
from mmuol.localization import ncut as ncut_module
from mmuol.localization import utils
from mmuol.localization.ncut import MaskedNCut, ncut_from_keys

TAU = 0.15


def _near_tau_keys(h=20, w=21, d=64, pairs=80, seed=0):
    """Blob keys (one object) plus ``pairs`` disjoint patch pairs whose
    float64 cosine lies within ~2e-7 of ``TAU``: float32 rounding puts many
    of them on the other side of the threshold than float64."""
    gen = torch.Generator().manual_seed(seed)
    bg, fg = torch.randn(2, d, generator=gen, dtype=torch.float64)
    lab = torch.zeros(h, w, dtype=torch.bool)
    lab[h // 5:h // 2, w // 3:(5 * w) // 6] = True
    keys = torch.where(lab.reshape(-1, 1), fg, bg)
    keys = keys + 0.8 * torch.randn(h * w, d, generator=gen, dtype=torch.float64)
    n = h * w
    for i in range(pairs):
        a, b = 2 * i, n - 1 - 2 * i
        ua = keys[a] / keys[a].norm()
        perp = torch.randn(d, generator=gen, dtype=torch.float64)
        perp = perp - (perp @ ua) * ua
        perp = perp / perp.norm()
        cos = TAU + float(torch.empty(1, dtype=torch.float64).uniform_(-2e-7, 2e-7, generator=gen))
        keys[b] = 3.0 * (cos * ua + (1 - cos**2)**0.5 * perp)
    return keys.float(), lab.reshape(-1)


def _reference(keys, masked, **kwargs):
    feats = keys if masked is None else keys.double().masked_fill(masked[:, None], 0.0)
    return ncut_from_keys(feats, tau=kwargs.pop('tau', TAU), channel_major=True, **kwargs)


def _assert_same(res, ref, exact=True):
    assert res.solver == ref.solver
    assert torch.equal(res.degree, ref.degree)
    assert torch.equal(res.bipartition, ref.bipartition)
    if exact:
        assert torch.equal(res.eigvec, ref.eigvec) and torch.equal(res.eigvals, ref.eigvals)
    else:
        np.testing.assert_allclose(res.eigvec.numpy(), ref.eigvec.numpy(), atol=1e-9)
        np.testing.assert_allclose(res.eigvals.numpy(), ref.eigvals.numpy(), atol=1e-12)


def _masks(lab):
    n = lab.numel()
    stripe = torch.zeros(n, dtype=torch.bool)
    stripe[::7] = True
    return [None, torch.zeros(n, dtype=torch.bool), lab, lab | stripe, None, lab]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('solver,max_iter', [('auto', None), ('dense', None), ('lanczos', 2)])
def test_masked_ncut_equals_a_graph_per_call(dtype, solver, max_iter):
    """Unmasked (keys' dtype) and masked (float64) calls in any order, on
    the Lanczos, dense and Lanczos-then-dense-fallback paths (the fallback
    must not write the shared graph)."""
    keys, lab = _near_tau_keys()
    keys = keys.to(dtype)
    kwargs = dict(eps=1e-5, solver=solver, max_iter=max_iter)
    cut = MaskedNCut(keys, tau=TAU, channel_major=True, **kwargs)
    if dtype == torch.float32:
        # The float64 graph differs from the float32 one at near-tau pairs.
        assert cut._fixes is not None and cut._fixes[0].size > 0
    for masked in _masks(lab):
        res = cut() if masked is None else cut(masked)
        _assert_same(res, _reference(keys, masked, **kwargs))
    expected = 'lanczos-scipy' if solver == 'auto' else 'dense-scipy'
    assert res.solver == expected


def test_masked_ncut_all_masked_is_degenerate():
    keys, lab = _near_tau_keys()
    with MaskedNCut(keys, tau=TAU, channel_major=True) as cut:
        res = cut(torch.ones(lab.numel(), dtype=torch.bool))
    assert res.solver == 'degenerate' and not res.bipartition.any()


def test_masked_ncut_negative_tau():
    """tau < 0: a masked patch (cosine 0) is an edge to every patch."""
    keys, lab = _near_tau_keys()
    with MaskedNCut(keys, tau=-0.05, channel_major=True) as cut:
        for masked in _masks(lab):
            res = cut() if masked is None else cut(masked)
            _assert_same(res, _reference(keys, masked, tau=-0.05), exact=masked is None)


def test_masked_ncut_rebuilds_without_a_correction_list(monkeypatch):
    """Keys whose float32 norms are unreliable (here: forced) get the float64
    graph built in full, and the float32 one rebuilt when asked again."""
    monkeypatch.setattr(ncut_module, '_MAX_FLOAT32_MARGIN', 0.0)
    keys, lab = _near_tau_keys()
    with MaskedNCut(keys, tau=TAU, channel_major=True) as cut:
        assert cut._fixes is None
        for masked in _masks(lab):
            res = cut() if masked is None else cut(masked)
            _assert_same(res, _reference(keys, masked))


def test_masked_ncut_torch_backend():
    keys, lab = _near_tau_keys(h=10, w=12, pairs=10)
    cut = MaskedNCut(keys, tau=TAU, channel_major=True, backend='torch')
    for masked in (None, lab):
        res = cut() if masked is None else cut(masked)
        ref = _reference(keys, masked, backend='torch')
        assert res.solver == ref.solver and res.solver.endswith('-torch')
        assert torch.equal(res.degree, ref.degree)
        assert torch.equal(res.eigvec, ref.eigvec)


def test_masked_ncut_bad_calls():
    keys, _ = _near_tau_keys(h=6, w=6, pairs=4)
    cut = MaskedNCut(keys, tau=TAU)
    with pytest.raises(ValueError, match='N=36'):
        cut(torch.zeros(35, dtype=torch.bool))
    cut.close()
    with pytest.raises(RuntimeError, match='closed'):
        cut()
    with pytest.raises(ValueError, match='solver'):
        MaskedNCut(keys, solver='arpack')


def test_maskcut_stages_equal_per_stage_graphs():
    """Every MaskCut stage is the NCut of the graph the official code builds
    for it: stage 0 on the float32 keys, stage i on the float64 keys with
    the patches of the earlier kept masks zeroed."""
    keys, _ = _near_tau_keys()
    stages = maskcut(keys, (20, 21), num_masks=3, tau=TAU)
    painted = torch.zeros(keys.shape[0], dtype=torch.bool)
    for i, stage in enumerate(stages):
        ref = _reference(keys, None if i == 0 else painted.clone())
        assert torch.equal(stage.degree, ref.degree)
        x = stage.eigvec.reshape(-1)
        assert torch.equal(x, ref.eigvec) or torch.equal(x, -ref.eigvec)
        if stage.kept:
            painted |= stage.cc_mask.reshape(-1)
    assert stages[0].kept and stages[0].mask.any()


def test_maskcut_reuses_the_graph_memory():
    """Consecutive MaskCut calls share one buffer and do not see each
    other's graphs."""
    keys, _ = _near_tau_keys()
    small, _ = _near_tau_keys(h=10, w=12, pairs=10, seed=1)
    first = maskcut(keys, (20, 21), num_masks=3, tau=TAU)
    buf = utils._WORKSPACE.buffer
    assert buf is not None and buf.nbytes >= 8 * 420**2
    maskcut(small, (10, 12), num_masks=3, tau=TAU)
    assert utils._WORKSPACE.buffer is buf  # the smaller graph used the same memory
    again = maskcut(keys, (20, 21), num_masks=3, tau=TAU)
    for a, b in zip(first, again):
        assert torch.equal(a.mask, b.mask) and torch.equal(a.eigvec, b.eigvec)


def test_workspace_take_and_give_back(monkeypatch):
    monkeypatch.setattr(utils, '_WORKSPACE', utils._WorkspaceSlot())
    a = utils._take_workspace((10, 10), np.float64)
    assert a.shape == (10, 10) and a.dtype == np.float64 and a.flags['C_CONTIGUOUS']
    utils._give_back_workspace(a)
    b = utils._take_workspace((5, 6), np.float32)  # fits: same memory
    assert np.shares_memory(a, b) and utils._WORKSPACE.buffer is None
    c = utils._take_workspace((5, 6), np.float32)  # taken: a new array
    assert not np.shares_memory(b, c)
    utils._give_back_workspace(b)
    utils._give_back_workspace(c)  # smaller: the larger buffer is kept
    assert utils._WORKSPACE.buffer.nbytes == 800
    utils._give_back_workspace(np.zeros((20, 20)))  # not from the workspace: ignored
    assert utils._WORKSPACE.buffer.nbytes == 800
    big = utils._take_workspace((20, 20), np.float64)  # too small: a new buffer
    monkeypatch.setattr(utils, '_WORKSPACE_MAX_BYTES', 1000)
    utils._give_back_workspace(big)  # above the cap: not kept
    assert utils._WORKSPACE.buffer.nbytes == 800
    seen = []
    thread = threading.Thread(target=lambda: seen.append(utils._WORKSPACE.buffer))
    thread.start()
    thread.join()
    assert seen == [None]  # one buffer per thread
