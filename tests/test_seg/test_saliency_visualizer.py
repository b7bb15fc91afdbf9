# Copyright (c) mmuol contributors. All rights reserved.
"""SaliencyVisualizer: the drawn pixels on a real picture."""
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample

import mmuol.seg  # noqa: F401
from mmuol.seg.saliency_visualizer import (DEFAULT_GT_COLOR, DEFAULT_PRED_COLOR, draw_saliency,
                                           gt_outline)
from mmuol.utils import decode_image

REPO = Path(__file__).resolve().parents[2]
PICTURE = REPO / 'demo' / 'images' / 'chelsea.jpg'


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _picture_and_masks():
    image = decode_image(PICTURE.read_bytes(), 'rgb')
    height, width = image.shape[:2]
    yy, xx = np.mgrid[:height, :width]
    gt = ((yy - 0.55 * height) / (0.35 * height))**2 + ((xx - 0.5 * width) / (0.3 * width))**2 <= 1
    pred = ((yy - 0.5 * height) / (0.33 * height))**2 + ((xx - 0.55 * width) /
                                                         (0.3 * width))**2 <= 1
    return image, pred, gt


def _sample(pred: np.ndarray, gt_map: np.ndarray) -> SegDataSample:
    sample = SegDataSample()
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(pred.astype(np.int64))[None])
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(gt_map.astype(np.int64))[None])
    return sample


def _border(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (or the image)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~inner


@pytest.mark.parametrize('gt_scale', [255, 1])
def test_visualizer_draws_prediction_and_gt_outline(tmp_path, gt_scale):
    """0/255 and 0/1 ground truths: outline on the GT border, prediction tinted,
    every other pixel unchanged, a legend below the image."""
    image, pred, gt = _picture_and_masks()
    height, width = image.shape[:2]
    vis = VISUALIZERS.build(
        dict(
            type='SaliencyVisualizer',
            name=f'sal_vis_{gt_scale}',
            save_dir=str(tmp_path),
            vis_backends=[dict(type='LocalVisBackend')]))
    vis.add_datasample('chelsea', image, _sample(pred, gt.astype(np.uint8) * gt_scale))
    saved = sorted(tmp_path.rglob('vis_image/chelsea_0.png'))
    assert len(saved) == 1
    drawn = mmcv.imread(str(saved[0]), channel_order='rgb')
    assert drawn.shape[0] > height and drawn.shape[1] == width  # legend strip below
    top = drawn[:height, :width]
    # The GT border is drawn in the GT colour (400x266 picture: 2 px outline).
    border = _border(gt)
    assert border.sum() > 500
    assert (top[border] == DEFAULT_GT_COLOR).all()
    assert (top[gt_outline(gt, 2)] == DEFAULT_GT_COLOR).all()
    # Outside both masks the image is untouched (nothing is darkened).
    untouched = ~pred & ~gt
    np.testing.assert_array_equal(top[untouched], image[untouched])
    # Predicted pixels away from the outline: half image, half magenta.
    tinted = pred & ~gt_outline(gt, 2)
    expected = np.round(0.5 * image[tinted] + 0.5 * np.array(DEFAULT_PRED_COLOR)).astype(np.uint8)
    np.testing.assert_array_equal(top[tinted], expected)
    # Legend: light text and both swatches on a dark box.
    legend = drawn[height:]
    assert (legend.reshape(-1, 3).mean(1) < 60).mean() > 0.7  # mostly dark
    assert (legend > 200).all(-1).sum() > 50  # light (anti-aliased) text
    assert (legend == DEFAULT_PRED_COLOR).all(-1).sum() > 50
    assert (legend == DEFAULT_GT_COLOR).all(-1).sum() > 20


def test_draw_saliency_options_and_errors(tmp_path):
    image, pred, gt = _picture_and_masks()
    plain = draw_saliency(image, pred, gt, legend=False)
    assert plain.shape == image.shape
    # Only a prediction, only a GT, neither.
    only_pred = draw_saliency(image, pred, None, legend=False)
    np.testing.assert_array_equal(only_pred[~pred], image[~pred])
    only_gt = draw_saliency(image, None, gt, outline_width=3, legend=False)
    changed = (only_gt != image).any(-1)
    assert changed.sum() > 0 and (changed <= gt_outline(gt, 3)).all()
    np.testing.assert_array_equal(draw_saliency(image, None, None), image)
    # A tiny image still gets a readable legend: the canvas widens.
    small = draw_saliency(image[:40, :48], pred[:40, :48], gt[:40, :48])
    assert small.shape[1] > 48 and small.shape[0] > 40
    # out_file writes the same picture.
    vis = VISUALIZERS.build(dict(type='SaliencyVisualizer', name='sal_vis_out'))
    out = tmp_path / 'pic.png'
    vis.add_datasample('x', image, _sample(pred, gt.astype(np.uint8) * 255), out_file=str(out))
    np.testing.assert_array_equal(
        mmcv.imread(str(out), channel_order='rgb'), draw_saliency(image, pred, gt))
    with pytest.raises(ValueError, match='pred_mask has shape'):
        draw_saliency(image, pred[:-1], gt)
    with pytest.raises(ValueError, match='uint8'):
        draw_saliency(image.astype(np.float32), pred, gt)
    with pytest.raises(ValueError, match='gt_color'):
        draw_saliency(image, pred, gt, gt_color=(0, 300, 0))
    with pytest.raises(ValueError, match='convention'):
        VISUALIZERS.build(dict(type='SaliencyVisualizer', name='bad', gt_convention='foo'))
