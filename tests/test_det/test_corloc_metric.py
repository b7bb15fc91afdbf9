# Copyright (c) mmuol contributors. All rights reserved.
"""CorLocMetric: LOST's protocol (golden IoUs), hard / no-hard, top-1 box."""
import logging

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import mmuol.det  # noqa: F401
from mmuol.det import CorLocMetric
from mmuol.testing import golden_path


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def _sample(pred_boxes, gt_boxes, ignored=(), scores=None):
    pred = torch.as_tensor(np.asarray(pred_boxes, dtype=np.float32)).reshape(-1, 4)
    if scores is None:
        scores = torch.ones(len(pred))
    return dict(
        pred_instances=dict(
            bboxes=pred,
            scores=torch.as_tensor(scores),
            labels=torch.zeros(len(pred), dtype=torch.long)),
        gt_instances=dict(
            bboxes=torch.as_tensor(np.asarray(gt_boxes, dtype=np.float32)).reshape(-1, 4)),
        ignored_instances=dict(
            bboxes=torch.as_tensor(np.asarray(ignored, dtype=np.float32)).reshape(-1, 4)))


def _evaluate(metric, samples):
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_golden_lost_bbox_iou():
    """Hits of the official bbox_iou/CorLoc on the golden boxes."""
    gold = np.load(golden_path('found_lost_tokencut', 'corloc_bbox_iou.npz'))
    metric = METRICS.build(dict(type='CorLocMetric'))
    samples = [_sample(box, gold['gt_boxes']) for box in gold['pred_boxes']]
    metric.process({}, samples)
    assert [hit for _, hit, _ in metric.results] == gold['corloc_hit'].tolist()
    res = metric.compute_metrics(metric.results)
    assert res['num_images'] == 5
    assert res['corloc'] == pytest.approx(100 * gold['corloc_hit'].mean())


def test_iou_threshold_is_inclusive():
    """IoU == 0.5 is a hit: LOST's eps vanishes in float32 for int boxes."""
    res = _evaluate(
        CorLocMetric(),
        [
            _sample([0, 0, 10, 10], [[0, 0, 20, 10]]),  # IoU 0.5
            _sample([0, 0, 10, 10], [[0, 0, 21, 10]]),  # IoU 0.476
        ])
    assert res == dict(corloc=50.0, num_images=2, num_hits=1)


def test_top_scored_box_only():
    gt = [[0, 0, 10, 10]]
    good, bad = [0, 0, 10, 10], [50, 50, 60, 60]
    metric = CorLocMetric()
    res = _evaluate(metric, [
        _sample([bad, good], gt, scores=[0.9, 0.8]),
        _sample([bad, good], gt, scores=[0.1, 0.8]),
    ])
    assert res == dict(corloc=50.0, num_images=2, num_hits=1)


def test_no_prediction_is_a_miss():
    metric = CorLocMetric()
    res = _evaluate(
        metric,
        [_sample(np.zeros((0, 4)), [[0, 0, 10, 10]]),
         _sample([0, 0, 10, 10], [[0, 0, 10, 10]])])
    assert res == dict(corloc=50.0, num_images=2, num_hits=1)


def test_hard_and_no_hard():
    """hard=True uses ignored (difficult/truncated) boxes; hard=False drops
    them and skips images left without a box."""
    samples = [
        # Hit only on the difficult box.
        _sample([0, 0, 10, 10], [[50, 50, 60, 60]], ignored=[[0, 0, 10, 10]]),
        # Only a difficult object.
        _sample([0, 0, 10, 10], np.zeros((0, 4)), ignored=[[0, 0, 10, 10]]),
        # No object at all.
        _sample([0, 0, 10, 10], np.zeros((0, 4))),
    ]
    res = _evaluate(CorLocMetric(hard=True), samples)
    assert res == dict(corloc=pytest.approx(200 / 3), num_images=3, num_hits=2)
    res = _evaluate(CorLocMetric(hard=False), samples)
    assert res == dict(corloc=0.0, num_images=1, num_hits=0)


def test_fractional_boxes_and_bad_args():
    metric = CorLocMetric()
    res = _evaluate(metric, [_sample([0.5, 0.5, 10.5, 10.5], [[0.5, 0.5, 10.5, 10.5]])])
    assert res['corloc'] == 100.0
    with pytest.raises(ValueError, match='iou_thr'):
        CorLocMetric(iou_thr=0.0)
    assert _evaluate(CorLocMetric(), [])['num_images'] == 0


def test_invalid_images_are_counted_not_evaluated():
    """Images skipped at load time (dataset_meta) and at test time
    (invalid_reason) are neither hits nor misses; their count is logged."""
    metric = CorLocMetric()
    metric.dataset_meta = dict(
        classes=('foreground', ), invalid_images=['a.xml: malformed XML (no element found)'])
    bad = _sample(np.zeros((0, 4)), [[0, 0, 10, 10]])
    bad['invalid_reason'] = 'cannot read image b.jpg: OSError: image file is truncated'
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        res = _evaluate(metric, [
            bad,
            _sample([0, 0, 10, 10], [[0, 0, 10, 10]]),
            _sample([50, 50, 60, 60], [[0, 0, 10, 10]]),
        ])
    finally:
        logger.removeHandler(handler)
    assert res == dict(corloc=50.0, num_images=2, num_hits=1, num_skipped=2)
    warned = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and '2 invalid images skipped' in warned[0]
    assert 'a.xml' in warned[0] and 'b.jpg' in warned[0]
    # Nothing skipped: the usual three keys only.
    assert 'num_skipped' not in _evaluate(CorLocMetric(), [_sample([0, 0, 1, 1], [[0, 0, 1, 1]])])
