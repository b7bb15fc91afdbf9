# Copyright (c) mmuol contributors. All rights reserved.
"""Shared helpers: components, boxes, validation."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from mmuol.localization import (check_keys, component_containing,
                                connected_components, largest_component,
                                mask_to_box)
from mmuol.localization.utils import first_argmax, grid_corners
from mmuol.testing.localization import golden_names, load_golden

BBOX_CASES = golden_names('found_lost_tokencut', 'found_bbox_from_seg_*.npz')


def test_connected_components_matches_scipy_4conn():
    rng = np.random.default_rng(0)
    mask = rng.random((9, 11)) > 0.5
    labels, num = connected_components(torch.from_numpy(mask))
    ref, ref_num = ndimage.label(mask)
    assert num == ref_num
    assert labels.dtype == torch.int32
    np.testing.assert_array_equal(labels.numpy(), ref)
    # numpy input and non-bool input are accepted.
    labels2, _ = connected_components(mask.astype(np.uint8))
    np.testing.assert_array_equal(labels2.numpy(), ref)


def test_diagonal_pixels_are_separate():
    mask = torch.tensor([[1, 0], [0, 1]], dtype=torch.bool)
    _, num = connected_components(mask)
    assert num == 2


def test_component_containing():
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, :2] = True
    mask[2:, 3:] = True
    comp = component_containing(mask, 2 * 5 + 4)
    assert int(comp.sum()) == 4 and comp[3, 3]
    assert not component_containing(mask, 7).any()  # seed not in mask
    with pytest.raises(ValueError):
        component_containing(mask, 20)


def test_largest_component_ties_lowest_label():
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[0, 4:6] = True  # first in raster order, size 2
    mask[2, 0:2] = True  # size 2
    lc = largest_component(mask)
    assert lc[0, 4] and lc[0, 5] and int(lc.sum()) == 2
    assert not largest_component(torch.zeros(2, 2, dtype=torch.bool)).any()


@pytest.mark.parametrize('name', BBOX_CASES)
def test_found_bbox_from_seg_golden(name):
    z, meta = load_golden(f'found_lost_tokencut/{name}')
    mask = z['mask']
    img_h, img_w = meta['initial_image_size']
    sy, sx = meta['scales']
    if mask.shape == (img_h, img_w):
        sy = sx = 1  # the official code returns pixel-resolution boxes as is
    box = mask_to_box(largest_component(mask), (sy, sx), (img_h, img_w))
    assert box.dtype == torch.int64
    np.testing.assert_array_equal(box.numpy(), z['box'])


def test_mask_to_box_clip_and_no_clip():
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[1:, 2:] = True
    np.testing.assert_array_equal(
        mask_to_box(mask, 16).numpy(), [32, 16, 64, 48])
    np.testing.assert_array_equal(
        mask_to_box(mask, 16, (40, 50)).numpy(), [32, 16, 50, 40])
    with pytest.raises(ValueError, match='empty'):
        mask_to_box(torch.zeros(3, 4, dtype=torch.bool), 16)


def test_first_argmax_ties():
    v = np.array([0.5, 1.0 - 1e-13, 0.2, 1.0])
    assert first_argmax(v) == 1
    assert first_argmax(torch.tensor([3.0, 1.0, 3.0])) == 0


def test_grid_corners():
    assert grid_corners((3, 4)) == (0, 3, 8, 11)
    assert grid_corners((1, 5)) == (0, 4, 0, 4)


def test_check_keys_messages():
    with pytest.raises(ValueError, match='CLS'):
        check_keys(torch.rand(13, 4), (3, 4))
    with pytest.raises(ValueError, match='NaN or inf'):
        check_keys(torch.full((12, 4), float('inf')), (3, 4))
