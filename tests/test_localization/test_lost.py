# Copyright (c) mmuol contributors. All rights reserved.
"""LOST against the official golden vectors (exact) and edge cases."""
import importlib

import numpy as np
import pytest
import torch

from mmuol.localization import lost, mask_to_box
from mmuol.testing.localization import golden_names, load_golden

CASES = golden_names('found_lost_tokencut', 'lost_*.npz')


def test_cases_present():
    assert len(CASES) == 6


@pytest.mark.parametrize('name', CASES)
def test_lost_golden(name):
    z, meta = load_golden(f'found_lost_tokencut/{name}')
    h, w = meta['rows'], meta['cols']
    res = lost(torch.from_numpy(z['feats']), (h, w), k_patches=meta['k_patches'])
    assert res.seed == int(z['seed'])
    np.testing.assert_array_equal(res.degree.numpy(), z['degree'])
    np.testing.assert_array_equal(res.scores.numpy(), z['scores'])
    np.testing.assert_array_equal(res.potentials.numpy(), z['potentials_sorted'])
    np.testing.assert_array_equal(res.similars.numpy(), z['similars_sorted'])
    np.testing.assert_array_equal(res.similarity_sum.numpy(), z['M'])
    np.testing.assert_array_equal(res.M.numpy(), z['M'])
    np.testing.assert_array_equal(res.labels.numpy(), z['cc_labels'])
    np.testing.assert_array_equal(res.mask.numpy(), z['cc_labels'] == int(z['cc_id']))
    assert int(res.labels.reshape(-1)[res.seed]) == int(z['cc_id'])
    box = mask_to_box(res.mask, meta['patch_size'], meta['image_hw'])
    np.testing.assert_array_equal(box.numpy(), z['pred_box'])
    # pred_feat_box: [ymin, xmin, ymax + 1, xmax + 1] in patch units.
    x0, y0, x1, y1 = mask_to_box(res.mask, 1).tolist()
    assert [y0, x0, y1, x1] == z['pred_feat_box'].tolist()
    assert res.has_object
    assert res.mask.dtype == torch.bool and res.mask.shape == (h, w)
    assert isinstance(res.seed, int)
    assert res._fields[:2] == ('mask', 'seed')


def test_lost_float64_and_numpy_input():
    z, meta = load_golden('found_lost_tokencut/lost_20x28_d64_ps8_k100_two_objects')
    grid = (meta['rows'], meta['cols'])
    ref = lost(torch.from_numpy(z['feats']), grid)
    for feats in (z['feats'].astype(np.float64), z['feats']):
        res = lost(feats, grid)
        assert res.seed == ref.seed
        assert torch.equal(res.mask, ref.mask)
        np.testing.assert_array_equal(res.M.numpy(), ref.M.numpy())


def test_lost_stable_ties():
    # Two groups of identical features: every degree ties inside a group,
    # so the stable rule must pick the lowest index of the low group.
    feats = torch.zeros(12, 4)
    feats[:, 0] = 1.0
    feats[[5, 7, 9], :] = torch.tensor([-1.0, 0.0, 0.0, 0.0])
    res = lost(feats, (3, 4), k_patches=4)
    assert res.seed == 5  # degree 2 for {5, 7, 9}, lowest index first
    np.testing.assert_array_equal(res.potentials.numpy(), [0, 5, 7, 9])
    np.testing.assert_array_equal(res.similars.numpy(), [5, 7, 9])
    assert res.mask.reshape(-1)[5]


def test_lost_works_in_row_blocks(monkeypatch):
    # The N x N similarity is never held: with 7-row blocks the result is
    # the same (the golden features are integers, so exactly).
    lost_module = importlib.import_module('mmuol.localization.lost')
    z, meta = load_golden('found_lost_tokencut/lost_20x28_d64_ps8_k100_two_objects')
    grid = (meta['rows'], meta['cols'])
    ref = lost(z['feats'], grid)
    monkeypatch.setattr(lost_module, '_BLOCK_BYTES', 4 * 560 * 7)
    assert lost_module._block_rows(560) == 7
    res = lost(z['feats'], grid)
    assert res.seed == ref.seed == int(z['seed'])
    np.testing.assert_array_equal(res.degree.numpy(), z['degree'])
    np.testing.assert_array_equal(res.M.numpy(), z['M'])


def test_lost_no_object_is_explicit():
    # All-zero keys: no positive similarity, the seed's M is 0 (the official
    # code raises): an empty mask, has_object False, and no box.
    res = lost(torch.zeros(12, 8), (3, 4))
    assert not res.has_object and not res.mask.any()
    assert res.seed == 0 and res.similars.numel() == 0
    with pytest.raises(ValueError, match='no object'):
        mask_to_box(res.mask, 16, (48, 64))
