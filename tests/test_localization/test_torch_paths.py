# Copyright (c) mmuol contributors. All rights reserved.
"""The torch code paths used on CUDA, exercised on CPU.

On CPU the heavy dense steps go through numpy (faster on one thread); on
other devices they run in torch. Forcing ``use_numpy`` to False runs the
device code on CPU tensors so it is tested without a GPU.
"""
import numpy as np
import pytest
import torch

from mmuol.localization import cosine_affinity, lost, maskcut, ncut_bipartition, tokencut, utils
from mmuol.testing.localization import load_golden


@pytest.fixture
def torch_paths(monkeypatch):
    monkeypatch.setattr(utils, 'use_numpy', lambda x: False)


@pytest.mark.parametrize('binary', [True, False])
def test_cosine_affinity_torch_path(monkeypatch, binary):
    z, _ = load_golden('found_lost_tokencut/tokencut_14x14_d384_ps16_tau0.2')
    keys = torch.from_numpy(z['tokens'][1:])
    ref = cosine_affinity(keys, binary_graph=binary)
    monkeypatch.setattr(utils, 'use_numpy', lambda x: False)
    aff = cosine_affinity(keys, binary_graph=binary)
    np.testing.assert_allclose(aff.numpy(), ref.numpy(), rtol=1e-6, atol=0)
    res = ncut_bipartition(aff, solver='lanczos')
    assert res.solver == 'lanczos-torch'
    np.testing.assert_allclose(res.eigvec.numpy(), ncut_bipartition(ref).eigvec.numpy(), atol=1e-8)


def test_lost_torch_path(torch_paths):
    z, meta = load_golden('found_lost_tokencut/lost_28x20_d64_ps16_k100_clip')
    res = lost(torch.from_numpy(z['feats']), (28, 20))
    assert res.seed == int(z['seed'])
    np.testing.assert_array_equal(res.degree.numpy(), z['degree'])
    np.testing.assert_array_equal(res.potentials.numpy(), z['potentials_sorted'])
    np.testing.assert_array_equal(res.similars.numpy(), z['similars_sorted'])
    np.testing.assert_array_equal(res.M.numpy(), z['M'])
    np.testing.assert_array_equal(res.mask.numpy(), z['cc_labels'] == int(z['cc_id']))


@pytest.mark.parametrize('binary', [True, False])
def test_tokencut_torch_path(torch_paths, binary):
    name = ('tokencut_20x28_d64_ps8_tau0.2_two_objects'
            if binary else 'tokencut_10x12_d64_ps16_tau0.2_no_binary_graph')
    z, meta = load_golden(f'found_lost_tokencut/{name}')
    res = tokencut(
        torch.from_numpy(z['tokens'][1:]), (meta['rows'], meta['cols']),
        binary_graph=binary,
        backend='torch')
    assert res.solver in ('lanczos-torch', 'dense-torch')
    np.testing.assert_array_equal(res.mask.numpy(), z['mask'])
    np.testing.assert_allclose(res.eigvec.numpy(), z['eigvec'], atol=1e-6)


def test_maskcut_torch_path(torch_paths):
    from mmuol.testing.localization import maskcut_features
    z, meta = load_golden('maskcut/maskcut_30x30_d384_rect_ellipse')
    keys = torch.from_numpy(np.ascontiguousarray(maskcut_features(z).T))
    stages = maskcut(keys, (30, 30), backend='torch')
    assert all(s.solver == 'lanczos-torch' for s in stages)
    np.testing.assert_array_equal(np.stack([s.mask.numpy() for s in stages]), z['masks_patch'] > 0)
