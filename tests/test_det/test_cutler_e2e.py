# Copyright (c) mmuol contributors. All rights reserved.
"""CutLER end to end through the tools, on images the test draws (objects
with known masks) and a MaskCut json written with our writer:

1. ``tools/train.py`` trains a tiny Mask R-CNN with DropLoss and CutLER's
   copy-paste for 3 iterations, then ``SelfTrainingHook`` runs one round:
   the round-1 file is written, the data point at it, training continues 2
   iterations with the round's learning rate;
2. ``tools/test.py`` evaluates the round-0 weights on the same images with
   ``ClassAgnosticCocoMetric`` and ``--out``: the metric equals pycocotools
   run here on the dumped predictions, and the round-1 file equals
   ``merge_self_training`` of those predictions;
3. ``tools/train.py --resume`` from the checkpoint at the end of round 0,
   with the round-1 file deleted (a run killed while writing it), writes the
   same file again byte for byte and finishes the round.
"""
import glob
import json
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmuol.pseudo_labels import load_json, merge_self_training
from mmuol.testing.cutler_data import make_maskcut_dataset

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')
BASE = osp.join(ROOT, 'configs', 'cutler', '_base_', 'mask-rcnn_r50-dino-fpn_droploss.py')
ROUND_LR = 0.0125

CONFIG = """
_base_ = [{base!r}, 'mmdet::_base_/default_runtime.py']
randomness = dict(seed=0)
bn = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(depth=18, base_channels=8, norm_cfg=bn, init_cfg=None),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16, norm_cfg=bn),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=16),
        bbox_head=dict(in_channels=16, fc_out_channels=32),
        mask_roi_extractor=dict(out_channels=16),
        mask_head=dict(num_convs=1, in_channels=16, conv_out_channels=16)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100),
                   rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=50), rcnn=dict(max_per_img=10)))
data_root = {data_root!r}
ann_file = {ann_file!r}
maskcut = dict(
    type='MaskCutDataset', data_root=data_root, ann_file=ann_file,
    data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=True),
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
              dict(type='RandomFlip', prob=0.5)])
def _loader(ratio):
    return dict(
        batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(type='MultiImageMixDataset', dataset=maskcut,
                     pipeline=[dict(type='CutLERCopyPaste', ratio_range=ratio),
                               dict(type='PackDetInputs')]))
train_dataloader = _loader((0.3, 1.0))
test_pipeline = [dict(type='LoadImageFromFile'),
                 dict(type='Resize', scale=(64, 48), keep_ratio=True),
                 dict(type='PackDetInputs')]
test_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='MaskCutDataset', data_root=data_root, ann_file=ann_file,
                 data_prefix=dict(img='train/'), test_mode=True, pipeline=test_pipeline))
test_evaluator = dict(type='ClassAgnosticCocoMetric', ann_file=data_root + ann_file,
                      metric=['bbox', 'segm'])
test_cfg = dict(type='TestLoop')
train_cfg = dict(type='IterBasedTrainLoop', max_iters=5, val_interval=1000)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=5e-5))
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)]
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1))
log_processor = dict(by_epoch=False, window_size=1)
custom_hooks = [dict(
    type='SelfTrainingHook', initial_iters=3, round_iters=2, score_thrs=(0.0, ),
    max_per_img=3, infer_pipeline=test_pipeline, infer_num_workers=0,
    round_dataloader=_loader((0.5, 1.0)), round_optim=dict(lr={round_lr}, weight_decay=1e-4))]
"""


def _run(args, log):
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    with open(log, 'w') as f:
        return subprocess.Popen(
            [sys.executable] + args, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)


def _wait(proc, log, timeout=240):
    proc.wait(timeout=timeout)
    with open(log) as f:
        text = f.read()
    assert proc.returncode == 0, text[-5000:]
    return text


def _scalars(work_dir):
    """Per-iteration training scalars of the (last) run in work_dir."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    with open(files[-1]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r['iter']: r for r in rows if 'lr' in r}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    for tool in (TRAIN, TEST):
        assert osp.isfile(tool), f'{tool} is missing'
    tmp = tmp_path_factory.mktemp('cutler')
    data = make_maskcut_dataset(str(tmp / 'data'), num_images=4, image_hw=(48, 64))
    cfg = str(tmp / 'cutler_tiny.py')
    with open(cfg, 'w') as f:
        f.write(
            CONFIG.format(
                base=BASE,
                data_root=data['data_root'],
                ann_file=data['ann_file'],
                round_lr=ROUND_LR))
    work_dir = str(tmp / 'work')
    log = str(tmp / 'train.log')
    text = _wait(_run([TRAIN, cfg, '--work-dir', work_dir], log), log)
    return dict(tmp=tmp, data=data, cfg=cfg, work_dir=work_dir, log=text)


@pytest.fixture(scope='module')
def followups(trained):
    """tools/test.py on the round-0 weights and a resume, run in parallel."""
    tmp, work_dir = trained['tmp'], trained['work_dir']
    st_dir = osp.join(work_dir, 'self_training')
    round1 = osp.join(st_dir, 'pseudo_labels_round1.json')
    with open(round1, 'rb') as f:
        original = f.read()
    os.remove(round1)  # as if the run had been killed while writing it
    test_dir = str(tmp / 'test')
    preds = str(tmp / 'preds.pkl')
    test_log, resume_log = str(tmp / 'test.log'), str(tmp / 'resume.log')
    test_proc = _run([
        TEST, trained['cfg'],
        osp.join(st_dir, 'model_round0.pth'), '--work-dir', test_dir, '--out', preds
    ], test_log)
    resume_proc = _run([
        TRAIN, trained['cfg'], '--work-dir', work_dir, '--resume',
        osp.join(work_dir, 'iter_3.pth')
    ], resume_log)
    test_text = _wait(test_proc, test_log)
    resume_text = _wait(resume_proc, resume_log)
    return dict(
        original_round1=original,
        round1=round1,
        preds=preds,
        test_dir=test_dir,
        test_log=test_text,
        resume_log=resume_text)


def test_training_runs_one_self_training_round(trained):
    work_dir = trained['work_dir']
    st_dir = osp.join(work_dir, 'self_training')
    for name in ('model_round0.pth', 'model_round1.pth', 'pseudo_labels_round1.json'):
        assert osp.isfile(osp.join(st_dir, name)), name
    assert 'self-training round 1/1 (iterations 3-5): training on' in trained['log']
    assert 'pseudo_labels_round1.json' in trained['log']
    ckpt = torch.load(osp.join(work_dir, 'iter_5.pth'), map_location='cpu', weights_only=False)
    assert ckpt['meta']['cutler_self_training_round'] == 1
    assert ckpt['meta']['iter'] == 5
    scalars = _scalars(work_dir)
    assert sorted(scalars) == [1, 2, 3, 4, 5]
    # DropLoss drops RoIs in the initial round only (CutLER's rounds train
    # without it); the round's constant lr replaces the schedule.
    assert all(scalars[i]['drop_ratio'] > 0 for i in (1, 2, 3))
    assert [scalars[i]['drop_ratio'] for i in (4, 5)] == [0.0, 0.0]
    assert 'self-training round 1: wrote' in trained['log']
    assert [scalars[i]['lr'] for i in (4, 5)] == [ROUND_LR, ROUND_LR]
    assert scalars[3]['lr'] == pytest.approx(0.02)
    # The round-1 file is a valid MaskCutDataset (the data the round trained on).
    from mmdet.registry import DATASETS

    import mmuol.det.cutler  # noqa: F401
    init_default_scope('mmdet')
    round1 = osp.join(st_dir, 'pseudo_labels_round1.json')
    ds = DATASETS.build(
        dict(
            type='MaskCutDataset',
            data_root=trained['data']['data_root'],
            ann_file=round1,
            data_prefix=dict(img='train/'),
            test_mode=True,
            pipeline=[]))
    data, _ = load_json(round1)
    assert len(ds) == 4
    assert sum(len(ds.get_data_info(i)['instances'])
               for i in range(4)) == len(data['annotations']) > 0


def _predictions(pkl):
    with open(pkl, 'rb') as f:
        samples = pickle.load(f)
    preds = []
    for s in samples:
        inst = s['pred_instances']
        for box, score, rle in zip(inst['bboxes'].tolist(), inst['scores'].tolist(), inst['masks']):
            x1, y1, x2, y2 = box
            preds.append(
                dict(
                    image_id=s['img_id'],
                    score=score,
                    category_id=1,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    segmentation=dict(size=list(rle['size']), counts=rle['counts'].decode())))
    return preds


def test_round1_file_is_the_merge_of_the_round0_predictions(trained, followups):
    prev, _ = load_json(osp.join(trained['data']['data_root'], trained['data']['ann_file']))
    preds = _predictions(followups['preds'])
    assert {p['image_id'] for p in preds} == {1, 2, 3, 4}
    expected, stats = merge_self_training(
        prev,
        preds,
        score_thr=0.0,
        max_per_image=3,
        info={'description': 'CutLER self-training round 1 (mmuol)'})
    written = json.loads(followups['original_round1'])
    assert written == json.loads(json.dumps(expected))
    assert stats.num_images_relabelled > 0
    # The resumed run regenerated the same file byte for byte.
    with open(followups['round1'], 'rb') as f:
        assert f.read() == followups['original_round1']


def test_resume_continues_in_round_1(trained, followups):
    log = followups['resume_log']
    assert 'self-training: predicting on the training images' in log  # regenerated
    assert 'self-training round 1/1 (iterations 3-5)' in log
    ckpt = torch.load(
        osp.join(trained['work_dir'], 'iter_5.pth'), map_location='cpu', weights_only=False)
    assert ckpt['meta']['cutler_self_training_round'] == 1
    scalars = _scalars(trained['work_dir'])
    assert [scalars[i]['lr'] for i in (4, 5)] == [ROUND_LR, ROUND_LR]


def test_class_agnostic_metric_equals_pycocotools(trained, followups):
    files = glob.glob(osp.join(followups['test_dir'], '*', '*.json'))
    assert files, 'no metric json written by tools/test.py'
    with open(files[0]) as f:
        metrics = json.load(f)
    preds = _predictions(followups['preds'])
    gt_data, _ = load_json(osp.join(trained['data']['data_root'], trained['data']['ann_file']))
    for ann in gt_data['annotations']:
        ann['category_id'] = 1
    gt = COCO()
    gt.dataset = gt_data
    gt.createIndex()
    names = [
        'mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l', 'AR@1', 'AR@10', 'AR@100', 'AR_s@100',
        'AR_m@100', 'AR_l@100'
    ]
    for iou_type in ('bbox', 'segm'):
        results = [dict(p) for p in preds]
        for r in results:
            r.pop('segmentation' if iou_type == 'bbox' else 'bbox')
        ev = COCOeval(gt, gt.loadRes(results), iou_type)
        ev.params.imgIds = [1, 2, 3, 4]
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        got = [metrics[f'coco/{iou_type}_{n}'] for n in names]
        np.testing.assert_allclose(got, ev.stats, rtol=0, atol=1e-9, err_msg=iou_type)
    assert 'class-agnostic segm: AP' in followups['test_log']
    shutil.rmtree(trained['tmp'], ignore_errors=True)
