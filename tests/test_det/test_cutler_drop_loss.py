# Copyright (c) mmuol contributors. All rights reserved.
"""DropLoss: hand-made RoIs whose dropped set is known, the loss equal to the
hand computation with CutLER's normaliser (all sampled RoIs), and the RoI
heads matching mmdet's plain heads when nothing / everything is dropped."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmuol.det.cutler  # noqa: F401
from mmuol.det.cutler import DropLoss, drop_loss_weights


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def test_weights_of_known_boxes():
    gt = torch.tensor([[0., 0., 10., 10.], [40., 40., 50., 50.]])
    pred = torch.tensor([
        [0., 0., 10., 10.],  # IoU 1 -> kept
        [20., 20., 30., 30.],  # touches nothing -> dropped
        [0., 0., 1., 1.],  # IoU 1/100 = 0.01 <= 0.01 -> dropped
        [8., 8., 18., 18.],  # IoU 4/196 = 0.0204 -> kept
        [49., 49., 60., 60.],  # IoU 1/220 with the second box -> dropped
        [45., 45., 55., 55.],  # IoU 25/175 with the second box -> kept
    ])
    np.testing.assert_array_equal(drop_loss_weights(pred, gt, 0.01).numpy(), [1, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(drop_loss_weights(pred, gt, 0.1).numpy(), [1, 0, 0, 0, 0, 1])
    # No GT box in the image: nothing is dropped.
    np.testing.assert_array_equal(drop_loss_weights(pred, gt[:0], 0.01).numpy(), [1] * 6)


#: A tiny class-agnostic box head (roi_feat_size set by each test).
BBOX_HEAD = dict(
    type='Shared2FCBBoxHead',
    in_channels=4,
    fc_out_channels=8,
    num_classes=1,
    reg_class_agnostic=True,
    bbox_coder=dict(
        type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    loss_bbox=dict(type='L1Loss', loss_weight=1.0))


def _bbox_head(**kwargs):
    from mmdet.registry import MODELS
    return MODELS.build(dict(BBOX_HEAD, roi_feat_size=2, **kwargs))


def test_loss_uses_regressed_boxes_and_cutler_normaliser():
    head = _bbox_head()
    # Two images; GT: image 0 one box, image 1 one box.
    gts = [torch.tensor([[0., 0., 10., 10.]]), torch.tensor([[30., 30., 40., 40.]])]
    rois = torch.tensor([
        [0, 20., 20., 30., 30.],  # far from GT, regressed ONTO the GT box -> kept
        [0, 0., 0., 10., 10.],  # on the GT box, regressed far away -> dropped
        [0, 50., 50., 60., 60.],  # far, no regression -> dropped
        [1, 30., 30., 40., 40.],  # on GT, no regression -> kept
        [1, 0., 0., 5., 5.],  # far, no regression -> dropped
    ])
    deltas = torch.zeros(5, 4)
    deltas[0, :2] = (5. - 25.) / 10. / 0.1  # centre 25 -> 5 with std 0.1
    deltas[1, :2] = (45. - 5.) / 10. / 0.1  # centre 5 -> 45
    boxes = DropLoss.regressed_boxes(head, rois, torch.zeros(5, 2), deltas, torch.zeros(5).long())
    np.testing.assert_allclose(boxes[0].numpy(), [0, 0, 10, 10], atol=1e-4)
    np.testing.assert_allclose(boxes[1].numpy(), [40, 40, 50, 50], atol=1e-4)

    cls_score = torch.tensor([[2., -1.], [0.5, 0.3], [-1., 1.], [0.2, 0.1], [1.5, -0.5]],
                             requires_grad=True)
    labels = torch.tensor([0, 0, 1, 0, 1])  # 1 = background
    label_weights = torch.ones(5)
    out, keep = DropLoss(iou_thr=0.01)(head, cls_score, deltas, rois, labels, label_weights, gts)
    np.testing.assert_array_equal(keep.numpy(), [1, 0, 0, 1, 0])
    ce = F.cross_entropy(cls_score.detach(), labels, reduction='none')
    expected = (ce[0] + ce[3]) / 5  # dropped RoIs stay in the denominator
    assert torch.allclose(out['loss_cls'], expected)
    assert float(out['drop_ratio']) == pytest.approx(0.6)
    # acc is unweighted, as mmdet's: argmax == label for RoIs 0-3 -> 80 %.
    assert float(out['acc']) == pytest.approx(80.0)
    out['loss_cls'].backward()
    grad = cls_score.grad.abs().sum(dim=1)
    assert (grad[[1, 2, 4]] == 0).all() and (grad[[0, 3]] > 0).all()
    # Nothing dropped (threshold below every IoU) = mmdet's BBoxHead loss.
    out_all, keep_all = DropLoss(iou_thr=-1.0)(head, cls_score, deltas, rois, labels, label_weights,
                                               gts)
    assert keep_all.all()
    mmdet_loss = head.loss(cls_score, deltas, rois, labels, label_weights, torch.zeros(5, 4),
                           torch.zeros(5, 4))['loss_cls']
    assert torch.allclose(out_all['loss_cls'], mmdet_loss)


def test_class_specific_regression_picks_label_or_best_class():
    head = _bbox_head(num_classes=2, reg_class_agnostic=False)
    rois = torch.tensor([[0, 0., 0., 10., 10.], [0, 0., 0., 10., 10.]])
    deltas = torch.zeros(2, 8)
    deltas[:, 4:6] = 1.0  # class 1 shifts the box by 0.1 * 10 = 1 px
    scores = torch.tensor([[5., 0., 0.], [0., 5., 0.]])
    labels = torch.tensor([1, 2])  # foreground class 1; background (best class: 1)
    boxes = DropLoss.regressed_boxes(head, rois, scores, deltas, labels)
    np.testing.assert_allclose(boxes.numpy(), [[1, 1, 11, 11], [1, 1, 11, 11]], atol=1e-5)
    labels = torch.tensor([0, 2])  # foreground class 0; background -> best class 0
    scores = torch.tensor([[0., 5., 0.], [5., 0., 0.]])
    boxes = DropLoss.regressed_boxes(head, rois, scores, deltas, labels)
    np.testing.assert_allclose(boxes.numpy(), [[0, 0, 10, 10], [0, 0, 10, 10]], atol=1e-5)


def _roi_head_cfg(kind):
    bbox_head = dict(BBOX_HEAD, roi_feat_size=7)
    extractor = dict(
        type='SingleRoIExtractor',
        roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
        out_channels=4,
        featmap_strides=[4])
    mask_extractor = dict(
        extractor, roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0))
    mask_head = dict(
        type='FCNMaskHead',
        num_convs=1,
        in_channels=4,
        conv_out_channels=4,
        num_classes=1,
        loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))
    rcnn = dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.5,
            min_pos_iou=0.5,
            match_low_quality=False,
            ignore_iof_thr=-1),
        sampler=dict(
            type='RandomSampler',
            num=16,
            pos_fraction=0.25,
            neg_pos_ub=-1,
            add_gt_as_proposals=True),
        mask_size=28,
        pos_weight=-1,
        debug=False)
    if kind == 'standard':
        return dict(
            type='StandardRoIHead',
            bbox_roi_extractor=extractor,
            bbox_head=bbox_head,
            mask_roi_extractor=mask_extractor,
            mask_head=mask_head,
            train_cfg=ConfigDict(rcnn),
            test_cfg=None)
    stages = [
        dict(rcnn, assigner=dict(rcnn['assigner'], pos_iou_thr=t, neg_iou_thr=t, min_pos_iou=t))
        for t in (0.5, 0.6, 0.7)
    ]
    return dict(
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=extractor,
        bbox_head=[bbox_head] * 3,
        mask_roi_extractor=mask_extractor,
        mask_head=mask_head,
        train_cfg=[ConfigDict(s) for s in stages],
        test_cfg=None)


def _inputs():
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    torch.manual_seed(0)
    x = (torch.randn(1, 4, 16, 16), )
    gt_boxes = torch.tensor([[4., 4., 28., 30.], [34., 36., 60., 60.]])
    masks = np.zeros((2, 64, 64), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(gt_boxes.int().tolist()):
        masks[k, y0:y1, x0:x1] = 1
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)))
    sample.gt_instances = InstanceData(
        bboxes=gt_boxes, labels=torch.zeros(2, dtype=torch.long), masks=BitmapMasks(masks, 64, 64))
    # Two proposals near the GT boxes, 30 random ones (top-left + size).
    corners = torch.rand(30, 2) * 40
    random_boxes = torch.cat([corners, corners + torch.rand(30, 2) * 20 + 2], 1)
    proposals = torch.cat([gt_boxes + torch.tensor([1., 2., -1., 1.]), random_boxes])
    return x, InstanceData(bboxes=proposals, scores=torch.rand(32)), sample


def _loss(cfg, seed=0):
    from mmdet.registry import MODELS
    torch.manual_seed(1)
    head = MODELS.build(copy.deepcopy(cfg))
    x, proposals, sample = _inputs()
    torch.manual_seed(seed)
    np.random.seed(seed)
    return head.loss(x, [proposals], [sample])


@pytest.mark.parametrize('kind', ['standard', 'cascade'])
def test_roi_heads_equal_mmdet_when_nothing_or_everything_is_dropped(kind):
    plain_cfg = _roi_head_cfg(kind)
    drop_type = 'DropLossStandardRoIHead' if kind == 'standard' else 'DropLossCascadeRoIHead'
    plain = _loss(plain_cfg)
    keep_all = _loss(dict(plain_cfg, type=drop_type, drop_loss=dict(type='DropLoss', iou_thr=-1.0)))
    drop_all = _loss(dict(plain_cfg, type=drop_type, drop_loss=dict(type='DropLoss', iou_thr=1.0)))
    off = _loss(dict(plain_cfg, type=drop_type, drop_loss=None))
    cls_keys = [k for k in plain if k.endswith('loss_cls')]
    assert cls_keys and len(cls_keys) == (1 if kind == 'standard' else 3)
    assert set(off) == set(keep_all) == set(
        drop_all) == set(plain) | {k.replace('loss_cls', 'drop_ratio')
                                   for k in cls_keys}
    for key, value in plain.items():
        assert torch.allclose(keep_all[key], value), key
        assert torch.allclose(off[key], value), key
        if key.endswith('loss_cls'):
            assert float(drop_all[key]) == 0.0, key
        else:
            assert torch.allclose(drop_all[key], value), key  # box / mask terms untouched
    assert all(float(v) == 0.0 for k, v in off.items() if k.endswith('drop_ratio'))
    ratios = [float(v) for k, v in drop_all.items() if k.endswith('drop_ratio')]
    assert ratios and all(r == 1.0 for r in ratios)
    assert all(float(v) == 0.0 for k, v in keep_all.items() if k.endswith('drop_ratio'))
