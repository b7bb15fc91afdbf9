# Copyright (c) mmuol contributors. All rights reserved.
"""ClassAgnosticCocoMetric against pycocotools run here on the same data:
categories merged, crowd kept ignored, maxDets (1, 10, 100), only the
evaluated images count; box-only ground truth from the dataset."""
import json

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import mmuol.det.cutler  # noqa: F401
from mmuol.pseudo_labels import encode_mask
from mmuol.testing.cutler_data import boxes_of

H, W = 30, 40


def _block(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


GT = {  # image id -> [(mask, category, iscrowd)]
    1: [(_block(0, 10, 0, 10), 3, 0), (_block(15, 30, 20, 40), 7, 0)],
    2: [(_block(5, 25, 5, 25), 7, 0), (_block(0, 4, 30, 40), 3, 1)],
    3: [(_block(0, 30, 0, 40), 3, 0)],  # never evaluated
}
PRED = {  # image id -> [(mask, score, label)]
    1: [(_block(0, 10, 0, 9), 0.9, 0), (_block(16, 30, 20, 40), 0.8, 5),
        (_block(20, 30, 0, 10), 0.7, 2)],
    2: [(_block(5, 24, 6, 25), 0.95, 1), (_block(0, 4, 30, 40), 0.6, 0)],
}


def _gt_file(tmp_path):
    images = [dict(id=i, file_name=f'{i}.jpg', height=H, width=W) for i in GT]
    anns, k = [], 1
    for img_id, objs in GT.items():
        for m, cat, crowd in objs:
            rle = encode_mask(m)
            x, y, w, h = mask_utils.toBbox(dict(rle, counts=rle['counts'].encode())).tolist()
            anns.append(
                dict(
                    id=k,
                    image_id=img_id,
                    category_id=cat,
                    iscrowd=crowd,
                    segmentation=rle,
                    area=int(m.sum()),
                    bbox=[x, y, w, h]))
            k += 1
    cats = [dict(id=3, name='a'), dict(id=7, name='b')]
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    return str(path)


def _samples(with_instances=False):
    out = []
    for img_id, preds in PRED.items():
        masks = [m for m, _, _ in preds]
        sample = dict(
            img_id=img_id,
            ori_shape=(H, W),
            pred_instances=dict(
                bboxes=torch.from_numpy(boxes_of(masks)),
                scores=torch.tensor([s for _, s, _ in preds]),
                labels=torch.tensor([lab for _, _, lab in preds]),
                masks=torch.from_numpy(np.stack(masks))))
        if with_instances:
            gt_boxes = boxes_of([m for m, _, _ in GT[img_id]])
            sample['instances'] = [
                dict(bbox=box.tolist(), bbox_label=1, ignore_flag=crowd)
                for box, (_, _, crowd) in zip(gt_boxes, GT[img_id])
            ]
        out.append(sample)
    return out


def _reference(gt_dict, iou_type):
    """pycocotools on the merged-category ground truth and our predictions."""
    gt_dict = json.loads(json.dumps(gt_dict))
    for ann in gt_dict['annotations']:
        ann['category_id'] = 1
    gt_dict['categories'] = [dict(id=1, name='object')]
    coco = COCO()
    coco.dataset = gt_dict
    coco.createIndex()
    results = []
    for img_id, preds in PRED.items():
        for m, score, _ in preds:
            rle = encode_mask(m)
            entry = dict(image_id=img_id, category_id=1, score=score)
            if iou_type == 'segm':
                entry['segmentation'] = rle
            else:
                ys, xs = np.nonzero(m)
                entry['bbox'] = [
                    float(xs.min()),
                    float(ys.min()),
                    float(xs.max() + 1 - xs.min()),
                    float(ys.max() + 1 - ys.min())
                ]
            results.append(entry)
    ev = COCOeval(coco, coco.loadRes(results), iou_type)
    ev.params.imgIds = sorted(PRED)
    ev.params.maxDets = [1, 10, 100]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


NAMES = [
    'mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l', 'AR@1', 'AR@10', 'AR@100', 'AR_s@100',
    'AR_m@100', 'AR_l@100'
]


def _metric(**kwargs):
    from mmdet.registry import METRICS
    init_default_scope('mmdet')
    metric = METRICS.build(dict(type='ClassAgnosticCocoMetric', **kwargs))
    metric.dataset_meta = dict(classes=('fg', ))
    return metric


def test_matches_pycocotools_boxes_and_masks(tmp_path):
    ann_file = _gt_file(tmp_path)
    metric = _metric(ann_file=ann_file, metric=['bbox', 'segm'])
    metric.process({}, _samples())
    values = metric.evaluate(size=len(PRED))
    with open(ann_file) as f:
        gt = json.load(f)
    for iou_type in ('bbox', 'segm'):
        ref = _reference(gt, iou_type)
        got = [values[f'coco/{iou_type}_{n}'] for n in NAMES]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12, err_msg=iou_type)
    # Known by hand: image 1 has 2 GT (IoU 0.9 / 0.93 matches), image 2 one GT
    # matched at IoU 0.95 and the crowd box ignored -> AP50 = 1.
    assert values['coco/bbox_mAP_50'] == pytest.approx(1.0)
    assert values['coco/segm_AR@1'] == pytest.approx(ref[6])


def test_box_only_ground_truth_from_the_dataset():
    metric = _metric(ann_file=None, metric='bbox')
    metric.process({}, _samples(with_instances=True))
    values = metric.evaluate(size=len(PRED))
    gt = dict(images=[dict(id=i, height=H, width=W) for i in PRED], annotations=[], categories=[])
    for img_id in PRED:
        for m, _, crowd in GT[img_id]:
            ys, xs = np.nonzero(m)
            box = [
                float(xs.min()),
                float(ys.min()),
                float(xs.max() + 1 - xs.min()),
                float(ys.max() + 1 - ys.min())
            ]
            gt['annotations'].append(
                dict(
                    id=len(gt['annotations']) + 1,
                    image_id=img_id,
                    bbox=box,
                    area=box[2] * box[3],
                    iscrowd=crowd))
    ref = _reference(gt, 'bbox')
    np.testing.assert_allclose([values[f'coco/bbox_{n}'] for n in NAMES], ref, atol=1e-12)


def test_no_prediction_and_bad_arguments(tmp_path):
    ann_file = _gt_file(tmp_path)
    metric = _metric(ann_file=ann_file, metric='bbox')
    samples = _samples()
    for s in samples:
        s['pred_instances'] = {k: v[:0] for k, v in s['pred_instances'].items()}
    metric.process({}, samples)
    values = metric.evaluate(size=len(samples))
    assert set(values.values()) == {0.0} and len(values) == 12
    with pytest.raises(ValueError, match="'segm' needs ann_file"):
        _metric(ann_file=None, metric='segm')
    with pytest.raises(ValueError, match='three increasing'):
        _metric(ann_file=ann_file, max_dets=(100, ))
    with pytest.raises(TypeError, match='classwise'):
        _metric(ann_file=ann_file, classwise=True)
    with pytest.raises(ValueError, match="add 'instances' to the meta_keys"):
        _metric(ann_file=None, metric='bbox').process({}, _samples())
    other = _metric(ann_file=ann_file, metric='bbox')
    bad = _samples()
    bad[0]['img_id'] = 99
    other.process({}, bad)
    with pytest.raises(ValueError, match='not in the ground truth'):
        other.evaluate(size=2)


def test_format_only_writes_predictions_without_ground_truth(tmp_path):
    metric = _metric(
        ann_file=None, metric='segm', format_only=True, outfile_prefix=str(tmp_path / 'preds'))
    metric.process({}, _samples())
    assert metric.evaluate(size=len(PRED)) == {}
    with open(tmp_path / 'preds.segm.json') as f:
        written = json.load(f)
    assert [(p['image_id'], p['category_id'], p['score']) for p in written
            ] == [(img, 1, pytest.approx(s)) for img, preds in PRED.items() for _, s, _ in preds]
    for p, (m, _, _) in zip(written, [x for preds in PRED.values() for x in preds]):
        assert p['segmentation'] == encode_mask(m)
