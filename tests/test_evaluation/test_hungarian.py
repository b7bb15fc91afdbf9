# Copyright (c) mmuol contributors. All rights reserved.
"""Cluster-to-class matching against STEGO's and DSM's golden vectors, plus
the modes' documented behaviour on hand-made confusions and bad input."""
from itertools import permutations

import numpy as np
import pytest
import torch

from mmuol.evaluation.hungarian import (MATCHING_MODES, confusion_matrix, invalid_label_values,
                                        iou_from_histogram, match_clusters, remap_clusters)
from mmuol.testing.golden import load_golden

AREA = 'stego_dsm'
STEGO_CASES = {
    'stego_metrics_n5_e0.npz': 'max_pixels',
    'stego_metrics_n5_e2.npz': 'max_pixels',
    'stego_metrics_n5_linear.npz': 'none',
    'stego_metrics_n27_e0_missing.npz': 'max_pixels',
}


def _load(name):
    return load_golden(f'{AREA}/{name}')


@pytest.mark.parametrize('name', sorted(STEGO_CASES))
def test_stego_unsupervised_metrics_golden(name):
    z, meta = _load(name)
    n, extra = meta['n_classes'], meta['extra_clusters']
    conf = sum(confusion_matrix(p, l, n + extra, n) for p, l in zip(z['preds'], z['labels']))
    # STEGO's `stats` drops pixels predicted in extra clusters; ours keeps them
    # in the confusion and the matching drops them.
    stats = conf.copy()
    stats[n:] = 0
    np.testing.assert_array_equal(stats, z['stats'])
    res = match_clusters(conf, STEGO_CASES[name])
    assert res.miou * 100 == pytest.approx(float(z['miou']), abs=1e-4)
    assert res.accuracy * 100 == pytest.approx(float(z['accuracy']), abs=1e-4)
    np.testing.assert_array_equal(res.histogram, z['histogram'])
    if 'map_clusters_arange' in z:
        np.testing.assert_array_equal(res.cluster_to_class, z['map_clusters_arange'])
        rows = z['assign_rows']
        np.testing.assert_array_equal(res.cluster_to_class[rows], z['assign_cols'])
    if extra:
        assert res.histogram.shape == (n + 1, n + 1)
        # no pixel survives in the extra clusters, so the extra pseudo-class is NaN
        assert np.isnan(res.extra_iou)
    else:
        assert res.extra_iou is None
    assert res.num_pixels == int(z['stats'].sum())


def test_stego_missing_classes_get_zero_iou():
    z, _ = _load('stego_metrics_n27_e0_missing.npz')
    conf = sum(confusion_matrix(p, l, 27, 27) for p, l in zip(z['preds'], z['labels']))
    res = match_clusters(conf, 'max_pixels')
    # classes 3, 11, 26 have no ground truth but their clusters predicted pixels
    assert (conf[:, [3, 11, 26]] == 0).all()
    np.testing.assert_array_equal(res.iou[[3, 11, 26]], [0.0, 0.0, 0.0])
    assert not np.isnan(res.iou).any()


@pytest.mark.parametrize('name', ['dsm_semeval_voc_hungarian.npz', 'dsm_semeval_majority_vote.npz'])
def test_dsm_evaluate_golden(name):
    z, meta = _load(name)
    conf = confusion_matrix(z['preds'], z['targets'], meta['n_clusters'], meta['n_classes_with_bg'])
    res = match_clusters(conf, 'max_iou')
    match = z['match']
    np.testing.assert_array_equal(res.cluster_to_class[match[:, 0]], match[:, 1])
    np.testing.assert_allclose(res.iou, z['jaccards'], atol=1e-12, rtol=0)
    assert res.miou == pytest.approx(float(z['miou']), abs=1e-12)


def test_max_iou_differs_from_max_pixels():
    # rows = clusters, columns = classes (class 0: 82 pixels, class 1: 24)
    conf = np.array([[53, 22], [29, 2]])
    by_pixels = match_clusters(conf, 'max_pixels')
    by_iou = match_clusters(conf, 'max_iou')
    # pixels: identity 53 + 2 = 55 > swap 22 + 29 = 51
    np.testing.assert_array_equal(by_pixels.cluster_to_class, [0, 1])
    assert by_pixels.accuracy == pytest.approx(55 / 106)
    assert by_pixels.miou == pytest.approx((53 / 104 + 2 / 53) / 2)
    # IoU: identity 53/104 + 2/53 = 0.547 < swap 22/77 + 29/84 = 0.631
    np.testing.assert_array_equal(by_iou.cluster_to_class, [1, 0])
    assert by_iou.miou == pytest.approx((29 / 84 + 22 / 77) / 2)
    assert by_iou.accuracy == pytest.approx(51 / 106)


def test_majority_vote_maps_many_clusters_to_one_class():
    conf = np.array([[9, 1], [8, 0], [1, 7]])
    res = match_clusters(conf, 'max_iou')
    np.testing.assert_array_equal(res.cluster_to_class, [0, 0, 1])
    np.testing.assert_array_equal(res.histogram, [[17, 1], [1, 7]])
    assert res.accuracy == pytest.approx(24 / 26)
    assert res.miou == pytest.approx((17 / 19 + 7 / 9) / 2)


def test_extra_clusters_drop_or_count():
    # 2 classes, 3 clusters; cluster 2 (extra) holds 10 pixels.
    conf = np.array([[20, 0], [0, 30], [4, 6]])
    dropped = match_clusters(conf, 'max_pixels')
    assert dropped.accuracy == pytest.approx(1.0)  # STEGO: the 10 pixels vanish
    assert dropped.num_pixels == 50
    np.testing.assert_array_equal(dropped.cluster_to_class, [0, 1, -1])
    assert np.isnan(dropped.extra_iou) and dropped.miou == pytest.approx(1.0)
    kept = match_clusters(conf, 'max_pixels', drop_extra_cluster_pixels=False)
    assert kept.accuracy == pytest.approx(50 / 60)
    np.testing.assert_array_equal(kept.histogram[2], [4, 6, 0])
    assert kept.extra_iou == 0.0
    assert kept.iou == pytest.approx([20 / 24, 30 / 36])
    assert kept.miou == pytest.approx((20 / 24 + 30 / 36 + 0) / 3)


def test_brute_force_agrees_with_max_pixels():
    rng = np.random.default_rng(3)
    for _ in range(20):
        conf = rng.integers(0, 50, size=(4, 4))
        res = match_clusters(conf, 'max_pixels')
        best = max(permutations(range(4)), key=lambda p: sum(conf[c, p[c]] for c in range(4)))
        assert sum(conf[c, res.cluster_to_class[c]] for c in range(4)) == \
            sum(conf[c, best[c]] for c in range(4))
        hist = np.zeros((4, 4))
        for c in range(4):
            hist[res.cluster_to_class[c]] += conf[c]
        np.testing.assert_allclose(res.iou, iou_from_histogram(hist))
        assert res.accuracy == pytest.approx(np.trace(hist) / conf.sum())


def test_confusion_matrix_ignores_labels_outside_the_classes():
    preds = torch.tensor([[0, 1, 2], [1, 1, 0]])
    labels = torch.tensor([[0, 255, 1], [-1, 3, 1]])  # 255, -1 and 3 are not classes
    conf = confusion_matrix(preds, labels, num_clusters=3, num_classes=3)
    expected = np.zeros((3, 3), np.int64)
    expected[0, 0] = 1
    expected[2, 1] = 1
    expected[0, 1] = 1
    np.testing.assert_array_equal(conf, expected)
    np.testing.assert_array_equal(invalid_label_values(labels, 3, 255), [-1, 3])
    np.testing.assert_array_equal(invalid_label_values(labels, 3, None), [-1, 3, 255])


def test_bad_input():
    with pytest.raises(ValueError, match='outside \\[0, 3\\)'):
        confusion_matrix(np.array([0, 5]), np.array([0, 1]), 3, 3)
    with pytest.raises(ValueError, match='differ in size'):
        confusion_matrix(np.zeros(3, int), np.zeros(4, int), 3, 3)
    with pytest.raises(TypeError, match='integer'):
        confusion_matrix(np.zeros(3), np.zeros(3, int), 3, 3)
    with pytest.raises(ValueError, match='at least as many clusters as classes'):
        match_clusters(np.ones((2, 3), int))
    with pytest.raises(ValueError, match='square'):
        match_clusters(np.ones((4, 3), int), 'none')
    with pytest.raises(ValueError, match='mode must be one of'):
        match_clusters(np.ones((3, 3), int), 'hungarian')
    with pytest.raises(ValueError, match='no pixel was counted'):
        match_clusters(np.zeros((3, 3), int))
    with pytest.raises(ValueError, match='non-negative'):
        match_clusters(-np.ones((3, 3), int))
    assert set(MATCHING_MODES) == {'max_pixels', 'max_iou', 'none'}


def test_empty_class_in_each_mode():
    # class 2 has no ground truth; cluster 2 predicted 5 pixels of class 0
    conf = np.array([[10, 0, 0], [0, 8, 0], [5, 0, 0]])
    stego = match_clusters(conf, 'max_pixels')
    np.testing.assert_array_equal(stego.cluster_to_class, [0, 1, 2])
    assert stego.iou[2] == 0.0  # predicted but absent: 0 (not NaN)
    assert stego.miou == pytest.approx((10 / 15 + 1 + 0) / 3)
    conf_none = np.array([[10, 0, 0], [0, 8, 0], [0, 0, 0]])
    linear = match_clusters(conf_none, 'none')
    assert np.isnan(linear.iou[2])  # neither predicted nor present: skipped
    assert linear.miou == pytest.approx(1.0)
    dsm = match_clusters(conf_none, 'max_iou')
    assert dsm.iou[2] == 0.0 and dsm.miou == pytest.approx(2 / 3)  # DSM counts it as 0


def test_remap_clusters():
    np.testing.assert_array_equal(
        remap_clusters(torch.tensor([[2, 0], [1, 3]]), [1, 0, 2, -1]), [[2, 1], [0, -1]])
