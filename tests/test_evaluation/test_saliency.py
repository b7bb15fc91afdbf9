# Copyright (c) mmuol contributors. All rights reserved.
"""Saliency metrics against the FOUND and TokenCut golden vectors."""
import numpy as np
import pytest
import torch

from mmuol.evaluation import (FOUND_BETA_SQ, SALIENCY_THRESHOLDS, SaliencyAccumulator,
                              aggregate_saliency, binarize_saliency_gt, found_saliency_metrics,
                              saliency_image_stats, tokencut_saliency_metrics)
from mmuol.testing.golden import load_golden

AREA = 'found_lost_tokencut'


def _load(name):
    return load_golden(f'{AREA}/{name}')[0]


@pytest.mark.parametrize('idx', [0, 1, 2])
def test_found_saliency_golden(idx):
    z = _load(f'found_saliency_metrics_img{idx}.npz')
    m = found_saliency_metrics(z['pred'], z['gt'])
    for key in ('f_max', 'f_mean', 'f_measure', 'iou', 'pixel_acc', 'mae'):
        assert m[key] == pytest.approx(float(z[key]), abs=1e-6), key
    np.testing.assert_allclose(m['all_f'], z['all_f'], atol=1e-6)
    # same through the accumulator / uint8 {0, 255} GT
    acc = SaliencyAccumulator('found')
    acc.add(torch.from_numpy(z['pred']), z['gt'].astype(np.uint8) * 255)
    assert acc.compute()['max_fbeta'] == pytest.approx(float(z['f_max']), abs=1e-6)
    assert acc.compute()['mae'] == pytest.approx(float(z['mae']), abs=1e-6)


def test_tokencut_saliency_golden():
    z = _load('tokencut_saliency_metrics_3imgs.npz')
    preds = [z[f'pred{i}'] for i in range(3)]
    gts = [z[f'gt{i}'] for i in range(3)]
    m = tokencut_saliency_metrics(preds, gts)
    for key in ('IoU', 'accuracy', 'F_max'):
        assert m[key] == pytest.approx(float(z[key]), abs=1e-6), key
    acc = SaliencyAccumulator()  # tokencut is the default
    for p, g in zip(preds, gts):
        acc.add(p, g)
    out = acc.compute()
    assert len(acc) == 3 and out['num_images'] == 3
    assert out['max_fbeta'] == pytest.approx(float(z['F_max']), abs=1e-6)
    assert out['max_fbeta'] == out['max_mean_fbeta']


def test_conventions_differ_and_found_mean_of_max():
    z = _load('tokencut_saliency_metrics_3imgs.npz')
    pairs = [(z[f'pred{i}'], z[f'gt{i}']) for i in range(3)]
    found = SaliencyAccumulator('found')
    std = SaliencyAccumulator('found', beta_sq=0.3)
    for p, g in pairs:
        found.add(p, g)
        std.add(p, g)
    f_max = [float(_load(f'found_saliency_metrics_img{i}.npz')['f_max']) for i in range(3)]
    assert found.beta_sq == FOUND_BETA_SQ == pytest.approx(0.09)
    assert found.compute()['max_fbeta'] == pytest.approx(np.mean(f_max), abs=1e-6)
    assert std.compute()['max_fbeta'] != pytest.approx(found.compute()['max_fbeta'])
    # aggregate_saliency on stored statistics == accumulator
    assert aggregate_saliency(found.stats, 'found') == found.compute()
    found.reset()
    assert np.isnan(found.compute()['max_fbeta'])


def test_threshold_counts_match_direct_comparison():
    rng = np.random.default_rng(0)
    # quantised predictions sit exactly on thresholds: `pred > t` must hold
    pred = rng.integers(0, 256, (30, 20)).astype(np.float32) / 255
    gt = rng.random((30, 20)) > 0.6
    s = saliency_image_stats(pred, gt, 'found')
    for k in (0, 1, 77, 128, 254):
        pb = pred > SALIENCY_THRESHOLDS[k]
        tp = (pb & gt).sum()
        p, r = tp / (pb.sum() + 1e-7), tp / (gt.sum() + 1e-7)
        f = 1.09 * p * r / (0.09 * p + r + 1e-7)
        assert s['f_curve'][k] == pytest.approx(f, abs=1e-12)
    assert SALIENCY_THRESHOLDS.shape == (255, )


def test_empty_prediction_and_gt():
    pred = np.zeros((4, 5), np.float32)
    gt = np.zeros((4, 5), np.uint8)
    s = saliency_image_stats(pred, gt, 'tokencut')
    # P = R = 1 when both are empty (TokenCut) -> F = 1; IoU of empty union = 0
    assert s['f_max'] == pytest.approx(1.0)
    assert s['iou'] == 0.0 and s['accuracy'] == 1.0
    s = saliency_image_stats(pred, gt, 'found')
    assert s['f_max'] == 0.0


def test_gt_binarisation():
    gt = np.array([[0, 1, 128, 255]], np.uint8)
    np.testing.assert_array_equal(binarize_saliency_gt(gt, 'tokencut'), [[0, 1, 1, 1]])
    np.testing.assert_array_equal(binarize_saliency_gt(gt, 'found'), [[0, 0, 0, 1]])
    gt01 = np.array([[0, 1, 1, 0]], np.uint8)
    np.testing.assert_array_equal(binarize_saliency_gt(gt01, 'found'), [[0, 1, 1, 0]])
    np.testing.assert_array_equal(binarize_saliency_gt(gt01 > 0, 'found'), [[0, 1, 1, 0]])


def test_bad_saliency_inputs():
    pred = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r'\(4, 5\).*\(5, 4\)'):
        saliency_image_stats(pred, np.zeros((5, 4), np.uint8))
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        saliency_image_stats(pred + 1.5, np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        saliency_image_stats(np.full((4, 5), np.nan), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match=r'\[0, 255\]'):
        saliency_image_stats(pred, np.full((4, 5), 300, np.int32))
    with pytest.raises(ValueError, match=r'\[0, 255\]'):
        saliency_image_stats(pred, np.full((4, 5), -1, np.int32))
    with pytest.raises(ValueError, match='convention'):
        SaliencyAccumulator('selfmask')
    with pytest.raises(ValueError, match='2-D'):
        saliency_image_stats(pred[None], np.zeros((1, 4, 5), np.uint8))
