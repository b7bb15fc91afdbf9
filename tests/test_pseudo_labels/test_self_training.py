# Copyright (c) mmuol contributors. All rights reserved.
"""CutLER's self-training merge on hand-made labels and predictions whose
merged result is known."""
import numpy as np
import pytest

from mmuol.pseudo_labels import (annotations_from_masks, build_dataset, encode_mask, image_entry,
                                 merge_self_training, select_predictions)

H, W = 20, 30


def _box(x0, y0, x1, y1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _previous():
    # image 1: A (left block), B (right block); image 2: C; image 3: none.
    a, b, c = _box(0, 0, 10, 10), _box(20, 0, 30, 10), _box(5, 5, 25, 15)
    anns = (annotations_from_masks([a, b], 1, 1) + annotations_from_masks([c], 2, 3))
    images = [image_entry(i, f'{i}.JPEG', H, W) for i in (1, 2, 3)]
    return build_dataset(images, anns), dict(a=a, b=b, c=c)


def _pred(img, mask, score):
    return dict(
        image_id=img, score=score, segmentation=encode_mask(mask), category_id=1, bbox=[0, 0, 1, 1])


def test_merge_matches_hand_result():
    previous, m = _previous()
    # Image 1: P1 overlaps A with IoU 80/100 = 0.8 (A replaced), P2 is new and
    # disjoint from B (B kept), P3 below the threshold (ignored).
    p1 = _box(0, 0, 8, 10)
    p2 = _box(12, 12, 18, 18)
    # Image 2: only a low-score prediction -> C kept unchanged.
    # Image 3: one prediction, no previous label.
    p4 = _box(2, 2, 6, 6)
    preds = [
        _pred(1, p2, 0.75),
        _pred(1, p1, 0.9),
        _pred(1, _box(20, 0, 30, 10), 0.5),
        _pred(2, m['c'], 0.69),
        _pred(3, p4, 0.7),  # == threshold: kept
    ]
    data, stats = merge_self_training(previous, preds, score_thr=0.7, mask_iou_thr=0.5)
    anns = data['annotations']
    got = [(a['id'], a['image_id'], a.get('score'), a['area'], a['bbox']) for a in anns]
    assert got == [
        (1, 1, 0.9, 80, [0.0, 0.0, 8.0, 10.0]),  # predictions by descending score
        (2, 1, 0.75, 36, [12.0, 12.0, 6.0, 6.0]),
        (3, 1, None, 100, [20.0, 0.0, 10.0, 10.0]),  # B survives (IoU 0 with P1, P2)
        (4, 2, None, 200, [5.0, 5.0, 20.0, 10.0]),  # C unchanged
        (5, 3, 0.7, 16, [2.0, 2.0, 4.0, 4.0]),
    ]
    assert anns[2]['segmentation'] == encode_mask(m['b'])
    assert anns[0]['segmentation'] == encode_mask(p1)
    assert data['images'] == previous['images']
    assert data['categories'] == previous['categories']
    assert tuple(stats) == (3, 2, 3, 1, 1, 1, 5)


def test_iou_threshold_is_strict_and_top_k_before_threshold():
    previous, m = _previous()
    # IoU(A, P) = 50 / 100 = 0.5 exactly: not < 0.5 -> A is replaced.
    p = _box(0, 0, 5, 10)
    data, stats = merge_self_training(previous, [_pred(1, p, 0.8)], mask_iou_thr=0.5)
    assert [a['area'] for a in data['annotations'] if a['image_id'] == 1] == [50, 100]
    assert stats.num_previous_replaced == 1
    # max_per_image=1 keeps only the best prediction even if more pass the threshold.
    preds = [_pred(3, _box(0, 0, 2, 2), 0.8), _pred(3, _box(5, 5, 9, 9), 0.95)]
    data, _ = merge_self_training(previous, preds, max_per_image=1)
    assert [a['area'] for a in data['annotations'] if a['image_id'] == 3] == [16]
    kept = select_predictions(preds, 0.9, max_per_image=None)
    assert list(kept) == [3] and [p['score'] for p in kept[3]] == [0.95]


def test_empty_predicted_mask_and_bad_inputs():
    previous, _ = _previous()
    data, stats = merge_self_training(previous, [_pred(1, np.zeros((H, W), bool), 0.99)])
    assert stats.num_images_relabelled == 0  # an empty mask is no label
    assert [a['area'] for a in data['annotations']] == [100, 100, 200]
    with pytest.raises(ValueError, match='not in the previous'):
        merge_self_training(previous, [_pred(9, _box(0, 0, 2, 2), 0.9)])
    wrong = dict(_pred(1, _box(0, 0, 2, 2), 0.9))
    wrong['segmentation'] = encode_mask(np.ones((W, H), bool))
    with pytest.raises(ValueError, match='differs from the image'):
        merge_self_training(previous, [wrong])


def test_polygon_previous_labels():
    previous, _ = _previous()
    previous['annotations'][0]['segmentation'] = [[0, 0, 10, 0, 10, 10, 0, 10]]
    data, _ = merge_self_training(previous, [_pred(1, _box(0, 0, 10, 10), 0.9)])
    # The polygon covers the predicted block (IoU > 0.5): replaced.
    assert [a.get('score') for a in data['annotations'] if a['image_id'] == 1] == [0.9, None]
