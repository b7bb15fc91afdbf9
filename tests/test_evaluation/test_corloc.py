# Copyright (c) mmuol contributors. All rights reserved.
"""CorLoc against LOST's ``bbox_iou`` golden vectors."""
import numpy as np
import pytest
import torch

from mmuol.evaluation import bbox_iou, corloc, corloc_hit
from mmuol.testing.golden import load_golden

AREA = 'found_lost_tokencut'


def _load(name):
    return load_golden(f'{AREA}/{name}')[0]


def test_bbox_iou_golden():
    z = _load('corloc_bbox_iou.npz')
    ious = bbox_iou(z['pred_boxes'], z['gt_boxes'])
    assert isinstance(ious, np.ndarray) and ious.dtype == np.float32
    np.testing.assert_array_equal(ious, z['ious'])  # bit-identical to LOST
    # LOST's own call pattern: one (4,) prediction against (K, 4) GT tensors
    for i, pred in enumerate(z['pred_boxes']):
        row = bbox_iou(torch.from_numpy(pred), torch.from_numpy(z['gt_boxes']))
        assert isinstance(row, torch.Tensor) and row.shape == (5, )
        np.testing.assert_array_equal(row.numpy(), z['ious'][i])
        assert corloc_hit(pred, z['gt_boxes']) == bool(z['corloc_hit'][i])
    assert corloc(list(z['pred_boxes']), [z['gt_boxes']] * 5) == pytest.approx(0.6)


def test_bbox_iou_float_and_edge_cases():
    iou = bbox_iou(np.array([0., 0., 10., 10.]), np.array([[5., 0., 15., 10.]]))
    assert iou.dtype == np.float64 and iou[0] == pytest.approx(50 / 150, abs=1e-6)
    assert not corloc_hit([0, 0, 10, 10], np.zeros((0, 4)))
    assert corloc_hit([0, 0, 10, 10], [[0, 0, 10, 14]], iou_thr=0.5)
    with pytest.raises(ValueError, match='box2'):
        bbox_iou([0, 0, 1, 1], [[0, 0, 1]])


def test_corloc_empty_and_mismatched():
    assert corloc([], []) == 0.0
    with pytest.raises(ValueError, match='2 predictions for 1'):
        corloc([[0, 0, 1, 1]] * 2, [np.zeros((0, 4))])
