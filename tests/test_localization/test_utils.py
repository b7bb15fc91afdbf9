# Copyright (c) mmuol contributors. All rights reserved.
"""Shared helpers: components, boxes, validation."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from mmuol.localization import (check_graph_memory, check_keys, component_containing,
                                connected_components, graph_memory_bytes, largest_component,
                                mask_iou, mask_iou_or_nan, mask_to_box, pad_to_patch_multiple,
                                patch_grid, utils)
from mmuol.localization.utils import available_memory, check_real, first_argmax, grid_corners
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
    comp2, labels = component_containing(mask.numpy(), 14, return_labels=True)
    assert torch.equal(comp2, comp)
    np.testing.assert_array_equal(labels.numpy(), ndimage.label(mask.numpy())[0])


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
    np.testing.assert_array_equal(mask_to_box(mask, 16).numpy(), [32, 16, 64, 48])
    np.testing.assert_array_equal(mask_to_box(mask, 16, (40, 50)).numpy(), [32, 16, 50, 40])
    with pytest.raises(ValueError, match='empty'):
        mask_to_box(torch.zeros(3, 4, dtype=torch.bool), 16)
    # (ps_y, ps_x) and pixel-resolution masks
    np.testing.assert_array_equal(mask_to_box(mask, (8, 16)).numpy(), [32, 8, 64, 24])
    np.testing.assert_array_equal(mask_to_box(mask, 1, (3, 4)).numpy(), [2, 1, 4, 3])


@pytest.mark.parametrize(
    'image_hw,match',
    [
        ((40, 30), 'inverted'),  # W = 30 < x0 = 32: (W, H) swapped or wrong size
        ((10, 50), 'inverted'),  # H = 10 < y0 = 16
        ((-40, 50), 'positive'),
        ((0, 50), 'positive'),
        ((40.5, 50), 'pair of ints'),
        ((40, ), 'pair of ints'),
    ])
def test_mask_to_box_rejects_a_wrong_image_size(image_hw, match):
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[1:, 2:] = True
    with pytest.raises(ValueError, match=match):
        mask_to_box(mask, 16, image_hw)


@pytest.mark.parametrize('patch_size', [0, -16, (16, 0), 'a'])
def test_mask_to_box_rejects_a_wrong_patch_size(patch_size):
    with pytest.raises(ValueError, match='patch_size'):
        mask_to_box(torch.ones(2, 2, dtype=torch.bool), patch_size)


def test_mask_iou_conventions_side_by_side():
    a = np.array([[1, 1, 0, 0]], bool)
    b = np.array([[0, 1, 1, 0]], bool)
    empty = np.zeros((1, 4), bool)
    assert mask_iou(a, b) == mask_iou_or_nan(a, b) == pytest.approx(1 / 3)
    # two empty masks: FOUND's gate gives 0.0, MaskCut's filter NaN
    assert mask_iou(empty, empty) == 0.0
    assert np.isnan(mask_iou_or_nan(empty, empty))
    # soft masks: mask_iou binarises at 0.5, mask_iou_or_nan at != 0
    soft = np.array([[0.4, 0.6, 0.0, 0.0]])
    assert mask_iou(soft, a) == pytest.approx(0.5)
    assert mask_iou_or_nan(soft, a) == 1.0
    assert mask_iou_or_nan(torch.from_numpy(a), torch.from_numpy(empty)) == 0.0


def test_patch_grid_and_padding():
    assert patch_grid((441, 313), 16) == (28, 20)
    assert patch_grid((480, 480), 8) == (60, 60)
    with pytest.raises(ValueError, match='smaller than one'):
        patch_grid((7, 100), 8)
    img = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7) + 1
    out = pad_to_patch_multiple(img, 4)
    assert out.shape == (2, 3, 8, 8)
    assert torch.equal(out[..., :5, :7], img) and not out[..., 5:, :].any() \
        and not out[..., 7:].any()
    assert pad_to_patch_multiple(out, 4) is out  # already a multiple
    # a batch-padded tensor whose true image is its top-left 5x6 corner
    crop = pad_to_patch_multiple(img, 2, image_hw=(5, 6))
    assert crop.shape == (2, 3, 6, 6)
    assert torch.equal(crop[..., :5, :6], img[..., :5, :6]) and not crop[..., 5:, :].any()
    crop = pad_to_patch_multiple(img, 1, image_hw=(4, 6))  # cropping only
    assert torch.equal(crop, img[..., :4, :6])
    with pytest.raises(ValueError, match='exceeds'):
        pad_to_patch_multiple(img, 4, image_hw=(6, 7))
    # the padded tensor holds exactly the patch grid of the image
    assert tuple(pad_to_patch_multiple(img, 2, image_hw=(5, 6)).shape[-2:]) == tuple(
        2 * v for v in patch_grid((5, 6), 2))


def test_check_real():
    assert check_real(0.5, 'x', 0, 1) == 0.5
    assert check_real(torch.tensor(0.25), 'x') == 0.25
    for bad in (float('nan'), float('inf'), True, 'a', None):
        with pytest.raises(ValueError, match='x must be'):
            check_real(bad, 'x')
    with pytest.raises(ValueError, match=r'x must be a finite number in \(0, 1\]'):
        check_real(0.0, 'x', 0, 1, low_open=True)
    with pytest.raises(ValueError, match='hint here'):
        check_real(2.0, 'x', 0, 1, hint='hint here')


def test_graph_memory_estimate_and_check(monkeypatch):
    # 93,750 patches (6000x4000 with ViT-S/16): the 65.5 GiB graph.
    assert graph_memory_bytes(93750, 'tokencut') / 2**30 == pytest.approx(65.48, abs=0.01)
    assert graph_memory_bytes(100, 'maskcut', solver='dense') == 40 * 100**2
    assert graph_memory_bytes(10**6, 'lost') == 0  # row blocks: linear memory
    with pytest.raises(ValueError, match='method'):
        graph_memory_bytes(10, 'cutler')
    assert check_graph_memory(93750, 'lost', available_bytes=1) == 0
    assert check_graph_memory(100, 'tokencut', available_bytes=80000) == 80000
    with pytest.raises(MemoryError) as err:
        check_graph_memory(93750, 'tokencut', available_bytes=16 * 2**30)
    msg = str(err.value)
    assert '93,750 patches' in msg and '65.5 GiB' in msg and '16.0 GiB' in msg
    assert 'Resize' in msg and 'max_patches' in msg and '~46,340 patches' in msg
    # The default limit is the free memory (patched here), lowered by the
    # environment variable.
    monkeypatch.setattr(utils, 'available_memory', lambda device='cpu': 10**12)
    assert check_graph_memory(1000, 'ncut') == 8 * 10**6
    monkeypatch.setenv('MMUOL_GRAPH_MEMORY_LIMIT', '7e6')
    with pytest.raises(MemoryError, match='1,000 patches'):
        check_graph_memory(1000, 'ncut')


def test_available_memory():
    cpu = available_memory('cpu')
    assert cpu is None or cpu > 0
    assert available_memory('meta') is None


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
