# Copyright (c) mmuol contributors. All rights reserved.
"""FOUND stage 1 (coarse background mask) against official golden vectors."""
import numpy as np
import pytest
import torch

from mmuol.localization import found_background
from mmuol.testing.localization import golden_names, load_golden

CASES = golden_names('found_lost_tokencut', 'found_bkg_*.npz')


def test_cases_present():
    assert len(CASES) == 4


@pytest.mark.parametrize('name', CASES)
def test_found_background_golden(name):
    z, meta = load_golden(f'found_lost_tokencut/{name}')
    h, w = meta['rows'], meta['cols']
    # Goldens store the CLS column / row at index 0: strip them.
    att = torch.from_numpy(z['cls_attention'][:, 1:])
    keys = torch.from_numpy(z['keys'][1:])
    res = found_background(
        att, keys, (h, w), tau=meta['th_bkg'], head_weights=meta['apply_weights'])
    assert res._fields[:2] == ('mask', 'seed')
    assert res.seed == int(z['id_pixel_ref'])
    np.testing.assert_array_equal(res.mask.numpy(), z['bkg_mask'] > 0.5)
    np.testing.assert_array_equal(res.object_mask.numpy(), z['bkg_mask'] < 0.5)
    rtol = 1e-5
    np.testing.assert_allclose(float(res.threshold), z['threshold'][0], rtol=rtol)
    np.testing.assert_allclose(res.Q.numpy(), z['Q'][0], rtol=rtol)
    np.testing.assert_allclose(res.beta.numpy(), z['beta'][0], rtol=rtol)
    np.testing.assert_allclose(res.weighted_att_sum.numpy(), z['weighted_att_sum'], rtol=rtol)
    np.testing.assert_allclose(res.cos_row.numpy(), z['cos_row'], rtol=rtol, atol=1e-6)


def test_found_background_float64():
    z, meta = load_golden('found_lost_tokencut/found_bkg_14x14_nh6_dh64')
    res = found_background(z['cls_attention'][:, 1:].astype(np.float64),
                           z['keys'][1:].astype(np.float64), (14, 14))
    assert res.seed == int(z['id_pixel_ref'])
    np.testing.assert_array_equal(res.mask.numpy(), z['bkg_mask'] > 0.5)


def test_found_background_bad_heads():
    with pytest.raises(ValueError, match='divisible'):
        found_background(torch.rand(5, 12), torch.rand(12, 16), (3, 4))


def test_found_background_single_head_needs_unweighted():
    # One head: beta = log(1) = 0 would zero every key, so nothing would be
    # background (the whole image an object): a clear error instead.
    z, meta = load_golden('found_lost_tokencut/found_bkg_14x14_nh6_dh16_noweights')
    att = torch.from_numpy(z['cls_attention'][:1, 1:])
    keys = torch.from_numpy(z['keys'][1:])
    with pytest.raises(ValueError, match='head_weights=False'):
        found_background(att, keys, (14, 14))
    res = found_background(att, keys, (14, 14), head_weights=False)
    # Unweighted: the seed is the least attended patch of that head, and
    # the background its cosine neighbourhood.
    assert res.seed == int(torch.argmin(att[0]))
    cos = torch.nn.functional.normalize(
        keys, dim=1) @ torch.nn.functional.normalize(
            keys, dim=1)[res.seed]
    np.testing.assert_array_equal(res.mask.reshape(-1).numpy(), (cos > 0.3).numpy())
    assert res.mask.any() and not res.mask.all()
