# Copyright (c) mmuol contributors. All rights reserved.
"""SaliencyMetric through the mmseg / mmengine evaluator API vs goldens."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample
from PIL import Image

import mmuol.seg  # noqa: F401
from mmuol.testing.localization import load_golden


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _sample(pred, gt, key='pred_saliency', name='img.jpg'):
    s = SegDataSample(metainfo=dict(img_path=f'/data/{name}'))
    s.set_data({key: PixelData(data=torch.as_tensor(pred)[None].float())})
    s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None].long())
    return s.to_dict()


def _evaluate(metric, samples):
    for s in samples:
        metric.process({}, [s])
    return metric.evaluate(len(samples))


def test_both_conventions_against_goldens():
    tc, _ = load_golden('found_lost_tokencut/tokencut_saliency_metrics_3imgs')
    found = [load_golden(f'found_lost_tokencut/found_saliency_metrics_img{i}')[0] for i in range(3)]
    samples = []
    for i in range(3):
        # The GT as a dataset loads it: uint8 {0, 255}.
        np.testing.assert_array_equal(tc[f'gt{i}'] == 255, found[i]['gt'])
        np.testing.assert_array_equal(tc[f'pred{i}'], found[i]['pred'])
        samples.append(_sample(tc[f'pred{i}'], tc[f'gt{i}'], name=f'{i}.jpg'))
    metric = METRICS.build(
        dict(
            type='SaliencyMetric',
            conventions=('tokencut', 'found'),
            metrics=('max_fbeta', 'iou', 'accuracy', 'mae')))
    res = _evaluate(metric, samples)
    # TokenCut: dataset-level max of the mean F (beta^2 = 0.3).
    assert res['saliency/tokencut_max_fbeta'] == pytest.approx(float(tc['F_max']), abs=1e-6)
    assert res['saliency/tokencut_iou'] == pytest.approx(float(tc['IoU']), abs=1e-6)
    assert res['saliency/tokencut_accuracy'] == pytest.approx(float(tc['accuracy']), abs=1e-6)
    # FOUND: mean of per-image max F (beta^2 = 0.09), IoU / acc / MAE means.
    for key, gkey in (('max_fbeta', 'f_max'), ('iou', 'iou'), ('accuracy', 'pixel_acc'), ('mae',
                                                                                          'mae')):
        expected = np.mean([float(f[gkey]) for f in found])
        assert res[f'saliency/found_{key}'] == pytest.approx(expected, abs=1e-5), key


def test_default_is_standard_tokencut_convention():
    metric = METRICS.build(dict(type='SaliencyMetric'))
    assert metric.conventions == ('tokencut', )
    pred = np.zeros((4, 5), np.float32)
    pred[1:3, 1:4] = 0.9
    gt = np.zeros((4, 5), np.uint8)
    gt[1:3, 1:4] = 255
    res = _evaluate(metric, [_sample(pred, gt)])
    assert set(res) == {
        'saliency/tokencut_max_fbeta', 'saliency/tokencut_iou', 'saliency/tokencut_accuracy',
        'saliency/tokencut_mae'
    }
    assert res['saliency/tokencut_iou'] == 1.0
    assert res['saliency/tokencut_max_fbeta'] == pytest.approx(1.0)


def test_beta_override_and_nonbinary_gt():
    pred = np.full((6, 6), 0.2, np.float32)
    pred[:3] = 0.8
    gt = np.zeros((6, 6), np.uint8)
    gt[:3] = 255
    gt[3] = 128  # anti-aliased row: foreground for tokencut, not for found
    res = _evaluate(
        METRICS.build(dict(type='SaliencyMetric', conventions=['tokencut', 'found'])),
        [_sample(pred, gt)])
    assert res['saliency/tokencut_iou'] == pytest.approx(0.75)
    assert res['saliency/found_iou'] == pytest.approx(1.0)
    res9 = _evaluate(
        METRICS.build(dict(type='SaliencyMetric', conventions='tokencut', beta_sq=0.09)),
        [_sample(pred, gt)])
    assert res9['saliency/tokencut_max_fbeta'] != pytest.approx(res['saliency/tokencut_max_fbeta'])


def test_fallbacks_and_errors(tmp_path):
    pred = np.zeros((4, 4), np.float32)
    pred[:2] = 0.7
    gt = np.zeros((4, 4), np.uint8)
    gt[:2] = 255
    metric = METRICS.build(dict(type='SaliencyMetric'))
    # A plain binary mmseg model: 1-channel seg_logits (sigmoid) is used.
    res = _evaluate(metric, [_sample(pred, gt, key='seg_logits')])
    assert res['saliency/tokencut_iou'] == 1.0
    metric = METRICS.build(dict(type='SaliencyMetric'))
    res = _evaluate(metric, [_sample(pred > 0.5, gt, key='pred_sem_seg')])
    assert res['saliency/tokencut_iou'] == 1.0
    with pytest.raises(ValueError, match='differ in size'):
        METRICS.build(dict(type='SaliencyMetric')).process({}, [_sample(pred, gt[:3])])
    with pytest.raises(ValueError, match='conventions'):
        METRICS.build(dict(type='SaliencyMetric', conventions='foo'))
    with pytest.raises(ValueError, match='unknown metrics'):
        METRICS.build(dict(type='SaliencyMetric', metrics=['auc']))
    no_gt = SegDataSample()
    no_gt.pred_saliency = PixelData(data=torch.zeros(1, 4, 4))
    with pytest.raises(KeyError, match='gt_sem_seg'):
        METRICS.build(dict(type='SaliencyMetric')).process({}, [no_gt.to_dict()])
    # format_only + output_dir: maps saved as PNG, no GT needed.
    out = tmp_path / 'maps'
    metric = METRICS.build(dict(type='SaliencyMetric', format_only=True, output_dir=str(out)))
    no_gt.set_metainfo(dict(img_path='/x/abc.jpg'))
    metric.process({}, [no_gt.to_dict()])
    assert metric.evaluate(1) == {}
    saved = np.array(Image.open(out / 'abc.png'))
    assert saved.shape == (4, 4) and saved.dtype == np.uint8
