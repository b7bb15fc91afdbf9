# Copyright (c) mmuol contributors. All rights reserved.
"""Degenerate and invalid inputs: a clear ValueError or a documented result."""
import numpy as np
import pytest
import torch

from mmuol.localization import dino_seg, found_background, lost, maskcut, tokencut


def _keys(n, d=16, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _attn(nh, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(nh, n, generator=g), dim=1)


def _run_all(keys, grid, att=None):
    n = keys.shape[0]
    att = _attn(4, n) if att is None else att
    return dict(
        lost=lost(keys, grid),
        tokencut=tokencut(keys, grid),
        maskcut=maskcut(keys, grid),
        found=found_background(att, keys, grid),
        dino_seg=dino_seg(att, grid, head=1))


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_features_raise(bad):
    keys = _keys(12)
    keys[3, 2] = bad
    att = _attn(4, 12)
    for fn in (lambda: lost(keys, (3, 4)), lambda: tokencut(keys, (3, 4)),
               lambda: maskcut(keys, (3, 4)), lambda: found_background(att, keys, (3, 4))):
        with pytest.raises(ValueError, match='NaN or inf'):
            fn()
    att[1, 5] = bad
    with pytest.raises(ValueError, match='NaN or inf'):
        dino_seg(att, (3, 4), head=0)
    with pytest.raises(ValueError, match='NaN or inf'):
        found_background(att, _keys(12), (3, 4))


@pytest.mark.parametrize(
    'keys,grid',
    [
        (_keys(12), (3, 5)),  # N != h*w
        (_keys(13), (3, 4)),  # CLS row left in
        (_keys(12)[None], (3, 4)),  # wrong ndim
        (_keys(12)[:, 0], (3, 4)),  # wrong ndim
        (torch.zeros(0, 8), (0, 4)),  # empty grid
        (_keys(12), (12, )),  # bad grid
        (_keys(12), (3.0, 4)),  # non-int grid
        (torch.zeros(12, 0), (3, 4)),  # empty feature dim
    ])
def test_bad_shapes_raise(keys, grid):
    for fn in (lost, tokencut, maskcut):
        with pytest.raises(ValueError):
            fn(keys, grid)
    with pytest.raises(ValueError):
        found_background(_attn(4, 12), keys, grid)


def test_bad_attention_shapes_raise():
    with pytest.raises(ValueError, match='CLS'):
        dino_seg(_attn(6, 13), (3, 4))
    with pytest.raises(ValueError):
        dino_seg(torch.rand(2, 3, 4), (3, 4))
    with pytest.raises(ValueError):
        found_background(_attn(4, 10), _keys(12), (3, 4))


def test_constant_features_whole_image_zero_confidence():
    keys = torch.ones(20, 8) * 3.0
    res = _run_all(keys, (4, 5))
    tc = res['tokencut']
    assert tc.mask.all() and tc.confidence == 0.0 and tc.solver == \
        'degenerate'
    assert (tc.eigvec == 0).all()
    mc = res['maskcut']
    assert mc[0].mask.all() and all(s.confidence == 0.0 for s in mc)
    assert not mc[1].mask.any() and not mc[2].mask.any()
    assert res['lost'].mask.all()
    assert res['found'].mask.all()  # everything looks like the background


def test_zero_features():
    keys = torch.zeros(12, 8)
    tc = tokencut(keys, (3, 4))
    assert tc.mask.all() and tc.confidence == 0.0
    lo = lost(keys, (3, 4))
    assert not lo.has_object and lo.similars.numel() == 0  # documented
    assert maskcut(keys, (3, 4))[0].confidence == 0.0
    with pytest.raises(ValueError, match='eps'):
        tokencut(keys, (3, 4), eps=0.0)


def test_noise_features_low_confidence():
    keys = _keys(900, 384)
    assert tokencut(keys, (30, 30)).confidence < 0.1
    assert all(s.confidence < 0.1 for s in maskcut(keys, (30, 30)))


@pytest.mark.parametrize('grid', [(1, 9), (9, 1), (1, 2), (2, 1)])
def test_line_grids(grid):
    n = grid[0] * grid[1]
    keys = _keys(n)
    keys[n // 2:] += 4 * torch.ones(16)  # two halves
    res = _run_all(keys, grid)
    for name, r in res.items():
        rs = r if isinstance(r, list) else [r]
        for s in rs:
            assert s.mask.shape == grid and s.mask.dtype == torch.bool
            assert isinstance(s.seed, int) and 0 <= s.seed < n
    assert res['tokencut'].mask.any()
    assert res['maskcut'][0].mask.any()


def test_single_patch():
    keys = _keys(1)
    att = torch.ones(4, 1)
    res = _run_all(keys, (1, 1), att=att)
    assert res['lost'].mask.all() and res['lost'].seed == 0
    tc = res['tokencut']
    assert tc.mask.all() and tc.confidence == 0.0
    assert torch.isnan(tc.eigvals).all()
    mc = res['maskcut']
    assert mc[0].mask.all() and not mc[1].mask.any()
    assert res['found'].seed == 0
    assert res['dino_seg'].th_attn.all()


def test_half_precision_and_numpy_inputs():
    keys = _keys(30)
    keys[10:20] += 3
    ref = tokencut(keys, (5, 6))
    for x in (keys.half(), keys.numpy(), keys.double().numpy()):
        res = tokencut(x, (5, 6))
        assert res.mask.shape == (5, 6)
    assert torch.equal(tokencut(keys.numpy(), (5, 6)).mask, ref.mask)


def test_invalid_hyper_parameters():
    keys = _keys(12)
    with pytest.raises(ValueError):
        lost(keys, (3, 4), k_patches=0)
    with pytest.raises(ValueError):
        maskcut(keys, (3, 4), num_masks=0)
    with pytest.raises(ValueError):
        tokencut(keys, (3, 4), solver='magic')
    with pytest.raises(ValueError):
        dino_seg(_attn(4, 12), (3, 4), keep=0.0)
    with pytest.raises(ValueError, match='keep'):
        dino_seg(_attn(4, 12), (3, 4), head=0, keep=float('nan'))
    with pytest.raises(ValueError, match='tau'):
        found_background(_attn(4, 12), keys, (3, 4), tau=float('nan'))
    with pytest.raises(ValueError):
        lost(np.array([['a'] * 4] * 12, dtype=object), (3, 4))
