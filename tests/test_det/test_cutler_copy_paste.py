# Copyright (c) mmuol contributors. All rights reserved.
"""CutLERCopyPaste with fixed draws: the pasted pixels, the occluded / removed
destination masks, the >= 50 % occlusion rejection and the recomputed boxes
are known by hand; random draws follow CutLER's rules."""
import numpy as np
import pytest
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from mmuol.det.cutler import CutLERCopyPaste


def _results(img, masks, labels=None):
    masks = np.asarray(masks, np.uint8)
    h, w = img.shape[:2]
    bitmap = BitmapMasks(masks, h, w)
    return dict(
        img=img,
        gt_masks=bitmap,
        gt_bboxes=bitmap.get_bboxes(HorizontalBoxes),
        gt_bboxes_labels=np.zeros(len(masks), np.int64) if labels is None else labels,
        gt_ignore_flags=np.zeros(len(masks), bool))


def _block(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _scene():
    dst_img = np.zeros((40, 40, 3), np.uint8)
    dst = [_block(40, 40, 0, 20, 0, 20), _block(40, 40, 30, 34, 30, 34)]
    src_img = np.full((20, 20, 3), 200, np.uint8)
    src_img[10:, 10:] = 100
    src = [
        _block(20, 20, 0, 10, 0, 10),
        _block(20, 20, 10, 20, 10, 20),
        _block(20, 20, 0, 5, 15, 20)
    ]
    return dst_img, dst, src_img, src


def _run(draw, dst_img, dst, src_img, src, monkeypatch):
    t = CutLERCopyPaste(ratio_range=(0.3, 1.0))
    monkeypatch.setattr(t, '_draw', lambda n, hw: draw)
    results = _results(dst_img, dst)
    results['mix_results'] = [_results(src_img, src, labels=np.array([0, 0, 0]))]
    return t.transform(results)


def test_paste_at_full_scale_known_result(monkeypatch):
    dst_img, dst, src_img, src = _scene()
    # Source at its own size (20 x 20) at offset (10, 10); instances 0 and 1 chosen.
    out = _run(((20, 20), (10, 10), np.array([0, 1])), dst_img, dst, src_img, src, monkeypatch)
    # Pasted 0 -> rows/cols 10-20 covers 100/400 of dst mask 0: kept.
    # Pasted 1 -> rows/cols 20-30: touches nothing... and dst mask 1 (30-34) is not covered.
    masks = out['gt_masks'].masks.astype(bool)
    assert len(masks) == 4
    expected0 = _block(40, 40, 0, 20, 0, 20).astype(bool)
    expected0[10:20, 10:20] = False  # occluded by the pasted union
    np.testing.assert_array_equal(masks[0], expected0)
    np.testing.assert_array_equal(masks[1], _block(40, 40, 30, 34, 30, 34))
    np.testing.assert_array_equal(masks[2], _block(40, 40, 10, 20, 10, 20))
    np.testing.assert_array_equal(masks[3], _block(40, 40, 20, 30, 20, 30))
    np.testing.assert_allclose(
        out['gt_bboxes'].numpy(),
        [[0, 0, 20, 20], [30, 30, 34, 34], [10, 10, 20, 20], [20, 20, 30, 30]])
    assert (out['img'][10:20, 10:20] == 200).all() and (out['img'][20:30, 20:30] == 100).all()
    # Only the pasted instances' pixels are copied (not the rest of the source).
    assert (out['img'][10:20, 20:30] == 0).all() and (out['img'][:10] == 0).all()
    assert out['gt_ignore_flags'].tolist() == [False] * 4
    assert 'mix_results' not in out


def test_occlusion_rejection_and_removed_masks(monkeypatch):
    dst_img, dst, src_img, src = _scene()
    # Offset (20, 20): pasted 1 lands on rows/cols 30-40 and covers all of dst
    # mask 1 (>= 50 %) -> discarded; pasted 0 lands on 20-30: kept.
    out = _run(((20, 20), (20, 20), np.array([0, 1])), dst_img, dst, src_img, src, monkeypatch)
    masks = out['gt_masks'].masks.astype(bool)
    assert len(masks) == 3
    np.testing.assert_array_equal(masks[2], _block(40, 40, 20, 30, 20, 30))
    assert (out['img'][30:40, 30:40] == 0).all()  # the discarded instance is not pasted
    # A destination mask fully covered by a kept paste is removed.
    dst_img, dst, src_img, src = _scene()
    dst = [_block(40, 40, 0, 40, 0, 40), _block(40, 40, 2, 3, 2, 3)]  # 1 px, covered by paste
    out = _run(((20, 20), (0, 0), np.array([0])), dst_img, dst, src_img, src, monkeypatch)
    # pasted 0 covers 100 / 1600 of mask 0 but 100 % of mask 1 -> discarded: nothing changes.
    assert len(out['gt_masks']) == 2 and (out['img'] == 0).all()
    dst = [_block(40, 40, 0, 40, 0, 40), _block(40, 40, 2, 4, 2, 12)]
    out = _run(((20, 20), (0, 4), np.array([0])), dst_img, dst, src_img, src, monkeypatch)
    # pasted rows 0-10, cols 4-14 covers 16/20 = 80 % of mask 1 -> discarded as well.
    assert len(out['gt_masks']) == 2


def test_downscaled_paste_and_random_draws():
    dst_img, dst, src_img, src = _scene()
    t = CutLERCopyPaste(ratio_range=(0.5, 0.5))
    np.random.seed(3)
    results = _results(dst_img, [dst[1]])
    results['mix_results'] = [_results(src_img, src)]
    draw = t._draw(3, (40, 40))
    (h, w), (y0, x0), chosen = draw
    assert (h, w) == (20, 20) and 1 <= len(chosen) <= 2  # 1 .. n - 1 instances
    np.random.seed(3)
    out = t.transform(results)
    masks = out['gt_masks'].masks.astype(bool)
    # Boxes are recomputed from the masks; pasted masks lie inside the pasted window.
    ys, xs = np.nonzero(masks[1:].any(0))
    assert ys.min() >= y0 and ys.max() < y0 + h and xs.min() >= x0 and xs.max() < x0 + w
    for m, box in zip(masks, out['gt_bboxes'].numpy()):
        ys, xs = np.nonzero(m)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    # One source instance -> exactly that one; prob 0 -> unchanged.
    np.random.seed(0)
    single, never = CutLERCopyPaste(), CutLERCopyPaste(prob=0.0)
    assert len(single._draw(1, (40, 40))[2]) == 1
    assert never._draw(3, (40, 40)) is None
    with pytest.raises(ValueError, match='ratio_range'):
        CutLERCopyPaste(ratio_range=(0.0, 1.0))
    with pytest.raises(ValueError, match='MultiImageMixDataset'):
        CutLERCopyPaste().transform(_results(dst_img, dst))
