# Copyright (c) mmuol contributors. All rights reserved.
"""HungarianIoUMetric (mmseg METRICS): goldens through process/compute,
rank summation, constant memory, bad input, saved predictions."""
import json
import sys

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import METRICS

import mmuol.seg  # noqa: F401
from mmuol.seg.hungarian_metric import HungarianIoUMetric
from mmuol.testing.golden import load_golden

AREA = 'stego_dsm'


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _sample(pred, gt, path='img.jpg'):
    return dict(
        pred_sem_seg=dict(data=torch.as_tensor(pred)[None]),
        gt_sem_seg=dict(data=torch.as_tensor(gt)[None]),
        img_path=path,
        seg_map_path=path.replace('.jpg', '.png'))


def _golden(name):
    return load_golden(f'{AREA}/{name}')


@pytest.fixture
def logs(monkeypatch):
    """Messages the metric prints (mmengine's logger writes to the stream it
    was created with, out of capsys' reach)."""
    lines = []
    import mmuol.seg.hungarian_metric as mod
    monkeypatch.setattr(mod, 'print_log', lambda msg, *a, **k: lines.append(msg))
    return lines


def _run(metric, batches, size=None):
    for batch in batches:
        metric.process({}, batch)
    metric._dataset_size = size
    return metric.compute_metrics(metric.results)


@pytest.mark.parametrize('name, matching', [('stego_metrics_n5_e0.npz', 'max_pixels'),
                                            ('stego_metrics_n5_e2.npz', 'max_pixels'),
                                            ('stego_metrics_n5_linear.npz', 'none'),
                                            ('stego_metrics_n27_e0_missing.npz', 'max_pixels')])
def test_stego_goldens_through_the_metric(name, matching):
    z, meta = _golden(name)
    n, extra = meta['n_classes'], meta['extra_clusters']
    metric = METRICS.build(
        dict(
            type='HungarianIoUMetric',
            num_classes=n,
            num_clusters=n + extra,
            matching=matching,
            invalid_labels='ignore'))
    # golden labels use -1, 255 and n as "no label", as STEGO does
    batches = [[_sample(p, l) for p, l in zip(pb, lb)] for pb, lb in zip(z['preds'], z['labels'])]
    out = _run(metric, batches)
    assert out['mIoU'] == pytest.approx(float(z['miou']), abs=1e-4)
    assert out['aAcc'] == pytest.approx(float(z['accuracy']), abs=1e-4)
    if 'map_clusters_arange' in z:
        assert out['assignment'] == z['map_clusters_arange'].tolist()
    assert len(out['IoU_per_class']) == n


@pytest.mark.parametrize('name', ['dsm_semeval_voc_hungarian.npz', 'dsm_semeval_majority_vote.npz'])
def test_dsm_goldens_through_the_metric(name):
    z, meta = _golden(name)
    metric = HungarianIoUMetric(
        num_classes=meta['n_classes_with_bg'], num_clusters=meta['n_clusters'], matching='max_iou')
    out = _run(metric, [[_sample(p, t) for p, t in zip(z['preds'], z['targets'])]])
    assert out['mIoU'] == pytest.approx(float(z['miou']) * 100, abs=1e-9)
    np.testing.assert_allclose(out['IoU_per_class'], z['jaccards'] * 100, atol=1e-9)
    match = z['match']
    assert [out['assignment'][c] for c in match[:, 0]] == match[:, 1].tolist()


def test_ranks_sum_and_memory_is_constant():
    """Two 'ranks' see half of the images each; the summed result equals one
    pass, and each rank holds one confusion whatever the number of images."""
    z, _ = _golden('stego_metrics_n27_e0_missing.npz')
    samples = [_sample(p, l) for pb, lb in zip(z['preds'], z['labels']) for p, l in zip(pb, lb)]
    kw = dict(num_classes=27, invalid_labels='ignore')
    whole, rank0, rank1 = (HungarianIoUMetric(**kw) for _ in range(3))
    for i, s in enumerate(samples):
        whole.process({}, [s])
        (rank0 if i % 2 == 0 else rank1).process({}, [s])
        assert len(whole.results) == 1
    size = sys.getsizeof(whole.results[0]['confusion'])
    for _ in range(50):
        whole.process({}, samples[:1])
    assert len(whole.results) == 1 and sys.getsizeof(whole.results[0]['confusion']) == size
    assert whole.results[0]['num_images'] == len(samples) + 50
    merged = rank0.compute_metrics(rank0.results + rank1.results)
    assert merged['mIoU'] == pytest.approx(float(z['miou']), abs=1e-4)


def test_padded_duplicates_are_reported(logs):
    metric = HungarianIoUMetric(num_classes=2)
    out = _run(metric, [[_sample([[0, 1]], [[0, 1]])] * 3], size=2)
    assert out['mIoU'] == pytest.approx(100.0)
    assert 'counted 3 images for a dataset of 2' in logs[0]


def test_invalid_labels_error_names_the_file():
    metric = HungarianIoUMetric(num_classes=3)
    with pytest.raises(ValueError, match=r'a/b\.png: label values \[7, 170\]'):
        metric.process({}, [_sample([[0, 1, 2]], [[7, 170, 255]], path='a/b.jpg')])
    metric = HungarianIoUMetric(num_classes=3, invalid_labels='ignore')
    out = _run(metric, [[_sample([[0, 1, 2, 2]], [[7, 1, 2, 255]])]])
    assert out['mIoU'] == pytest.approx(100.0) and out['aAcc'] == pytest.approx(100.0)
    assert metric.results == [] or metric.results[0]['invalid_pixels'] == 1


def test_bad_configuration_and_predictions():
    with pytest.raises(ValueError, match='num_clusters=2 < num_classes=3'):
        HungarianIoUMetric(num_classes=3, num_clusters=2)
    with pytest.raises(ValueError, match="matching='none'"):
        HungarianIoUMetric(num_classes=3, num_clusters=4, matching='none')
    with pytest.raises(ValueError, match='matching must be one of'):
        HungarianIoUMetric(num_classes=3, matching='hungarian')
    metric = HungarianIoUMetric(num_classes=2)
    with pytest.raises(ValueError, match=r'x\.jpg: predicted cluster ids \[5\]'):
        metric.process({}, [_sample([[0, 5]], [[0, 1]], path='x.jpg')])
    with pytest.raises(ValueError, match='differ in size'):
        metric.process({}, [_sample([[0, 1, 1]], [[0, 1]])])
    metric = HungarianIoUMetric(num_classes=2)
    with pytest.raises(ValueError, match='no pixel was counted'):
        _run(metric, [[_sample([[0, 1]], [[255, 255]])]])


def test_classes_from_dataset_meta_and_table(logs):
    metric = HungarianIoUMetric()
    metric.dataset_meta = dict(classes=('sky', 'road', 'car'))
    # clusters 0/1/2 are classes 2/0/1; class 'car' (2) never appears in GT
    preds = np.array([[1, 1, 2, 2, 0]])
    gts = np.array([[0, 0, 1, 1, 0]])
    out = _run(metric, [[_sample(preds, gts)]])
    assert metric.num_classes == 3 and metric.num_clusters == 3
    assert out['assignment'] == [2, 0, 1]
    # sky: 2 of 2 predicted + 1 missed -> 2/3; road: 1; car: 0 (cluster 0 predicted it)
    assert out['IoU_per_class'] == pytest.approx([200 / 3, 100.0, 0.0])
    assert out['mIoU'] == pytest.approx((200 / 3 + 100) / 3)
    assert out['aAcc'] == pytest.approx(80.0)
    table = logs[-1].splitlines()
    assert table[1].split()[:3] == ['class', 'IoU', 'GT']
    assert table[2].split() == ['sky', '66.67', '3', '[1]']
    assert table[4].split() == ['car', '0.00', '0', '[0]']
    assert "classes without ground-truth pixels: ['car']" in table[-1]
    with pytest.raises(ValueError, match="'classes'"):
        HungarianIoUMetric().num_classes


def test_output_dir_saves_cluster_maps(tmp_path):
    from PIL import Image
    metric = HungarianIoUMetric(num_classes=2, output_dir=str(tmp_path / 'out'))
    out = _run(metric, [[_sample([[1, 0], [1, 1]], [[0, 1], [0, 0]], path='d/im1.jpg')]])
    saved = np.array(Image.open(tmp_path / 'out' / 'im1.png'))
    np.testing.assert_array_equal(saved, [[1, 0], [1, 1]])
    assignment = json.loads((tmp_path / 'out' / 'assignment.json').read_text())
    assert assignment['cluster_to_class'] == out['assignment'] == [1, 0]
    only = HungarianIoUMetric(num_classes=2, output_dir=str(tmp_path / 'o2'), format_only=True)
    only.process(
        {},
        [dict(pred_sem_seg=dict(data=torch.zeros(1, 2, 2, dtype=torch.long)), img_path='e.jpg')])
    assert only.compute_metrics(only.results) == {}
    assert (tmp_path / 'o2' / 'e.png').is_file()
