# Copyright (c) mmuol contributors. All rights reserved.
"""LOST's DINO-seg baseline against official golden vectors."""
import numpy as np
import pytest
import torch

from mmuol.localization import dino_seg, largest_component, mask_to_box
from mmuol.testing.localization import golden_names, load_golden

CASES = golden_names('found_lost_tokencut', 'dinoseg_*.npz')


def test_cases_present():
    assert len(CASES) == 2


@pytest.mark.parametrize('name', CASES)
def test_dino_seg_golden(name):
    z, meta = load_golden(f'found_lost_tokencut/{name}')
    h, w = meta['rows'], meta['cols']
    att = torch.from_numpy(z['cls_attention'][:, 1:])  # drop CLS column
    res = dino_seg(att, (h, w), head=meta['head'])
    assert res._fields[:2] == ('mask', 'seed')
    np.testing.assert_array_equal(res.th_attn.numpy(), z['th_attn'])
    np.testing.assert_array_equal(res.labels.numpy(), z['cc_labels'])
    assert res.component == int(z['biggest_component'])
    # LOST does not clip the DINO-seg box.
    box = mask_to_box(res.mask, meta['patch_size'], None)
    np.testing.assert_array_equal(box.numpy(), z['pred_box'])
    assert res.seed == int(np.argmax(z['cls_attention'][meta['head'], 1:]))


def test_dino_seg_quirks():
    # One foreground blob: the official code selects label 0 (background).
    att = torch.full((1, 16), 1e-3)
    att[0, 5] = 1.0
    res = dino_seg(att, (4, 4), head=0)
    assert res.component == 0
    assert not res.mask.reshape(-1)[5]
    fixed = dino_seg(att, (4, 4), head=0, official_quirks=False)
    assert fixed.component == 1
    assert fixed.mask.reshape(-1)[5] and int(fixed.mask.sum()) == 1
    # Non-quirk mode equals largest_component of the thresholded head.
    assert torch.equal(fixed.mask, largest_component(fixed.th_attn[0]))


def test_dino_seg_bad_head():
    with pytest.raises(ValueError, match='head'):
        dino_seg(torch.rand(3, 16), (4, 4), head=4)
