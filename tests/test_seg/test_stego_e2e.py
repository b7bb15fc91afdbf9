# Copyright (c) mmuol contributors. All rights reserved.
"""End to end on a handful of synthetic images: five-crop + KNN preparation
(tools/stego), a few STEGO training steps through tools/train.py, and an
evaluation through tools/test.py whose printed mIoU must equal the value
computed here by brute force over all cluster-to-class matchings."""
import json
import re
import subprocess
import sys
from itertools import permutations
from pathlib import Path

import numpy as np
import torch
from mmengine.registry import init_default_scope
from PIL import Image

import mmuol.seg  # noqa: F401
from mmuol.testing.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
BASE_CFG = REPO / 'configs' / 'stego' / 'stego_dino-vits8_1xb16-5000it_cocostuff27.py'
# Raw labels 0/1/2 are Potsdam's impervious / building / low vegetation ->
# classes 0/1/2 of Potsdam-3 through the 'potsdam6_to_3' mapping; 255 is unlabelled.
COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200))


def _tool(relpath):
    return load_script(REPO / relpath)


def _stripes(folder: Path, n: int, hw, seed: int):
    """Images of three vertical colour stripes (random widths and noise) and
    their raw labels; a few pixels are unlabelled (255)."""
    (folder / 'img').mkdir(parents=True)
    (folder / 'ann').mkdir(parents=True)
    rng = np.random.default_rng(seed)
    h, w = hw
    for i in range(n):
        cuts = np.sort(rng.choice(np.arange(6, w - 6), 2, replace=False))
        seg = np.zeros((h, w), np.uint8)
        seg[:, cuts[0]:cuts[1]] = 1
        seg[:, cuts[1]:] = 2
        img = np.array(COLOURS, np.float64)[seg] + rng.normal(0, 12, (h, w, 3))
        seg[rng.random((h, w)) < 0.02] = 255
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / 'img' / f's{i}.png')
        Image.fromarray(seg).save(folder / 'ann' / f's{i}.png')


def _run(args, cwd):
    proc = subprocess.run(
        [sys.executable] + args, cwd=str(cwd), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _brute_force(preds, gts, n=3):
    """STEGO's metric by hand: best permutation by matched pixels, then IoU
    per class (classes never predicted nor present are skipped)."""
    pred = np.concatenate([p.ravel() for p in preds]).astype(int)
    gt = np.concatenate([g.ravel() for g in gts]).astype(int)
    keep = gt < n
    pred, gt = pred[keep], gt[keep]
    best = max(permutations(range(n)), key=lambda p: (np.array(p)[pred] == gt).sum())
    mapped = np.array(best)[pred]
    ious = []
    for k in range(n):
        inter = ((mapped == k) & (gt == k)).sum()
        union = ((mapped == k) | (gt == k)).sum()
        if union:
            ious.append(inter / union)
    return 100 * float(np.mean(ious)), 100 * float((mapped == gt).mean()), list(best)


def test_prepare_train_evaluate(tmp_path):
    init_default_scope('mmseg')
    _stripes(tmp_path / 'train_src', 6, (32, 48), seed=0)
    _stripes(tmp_path / 'val', 4, (32, 32), seed=1)
    crops = tmp_path / 'crops'
    _tool('tools/stego/five_crop.py').main([
        '--img-dir',
        str(tmp_path / 'train_src' / 'img'), '--ann-dir',
        str(tmp_path / 'train_src' / 'ann'), '--img-suffix', '.png', '--out-dir',
        str(crops), '--workers', '1'
    ])
    knn_file = tmp_path / 'nns.npz'
    tiny = dict(
        type='DINOViT',
        arch=dict(patch_size=8, embed_dim=48, depth=2, num_heads=3, img_size=32),
        init_cfg=None,
        _delete_=True)
    cfg = tmp_path / 'stego_tiny.py'
    cfg.write_text(f"""
_base_ = [{str(BASE_CFG)!r}]
model = dict(
    backbone={tiny!r},
    decode_head=dict(in_channels=48, channels=8, num_classes=3,
                     loss_corr=dict(feature_samples=4, neg_samples=2)))
train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
    dict(type='STEGORemapLabels', mapping='potsdam6_to_3'),
    dict(type='STEGOResizeCenterCrop', size=16), dict(type='PackSegInputs')]
knn_pipeline = [dict(type='LoadImageFromFile'), dict(type='STEGOResizeCenterCrop', size=16),
                dict(type='PackSegInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
    dict(type='STEGORemapLabels', mapping='potsdam6_to_3'),
    dict(type='STEGOResizeCenterCrop', size=32, eval_at_crop=True), dict(type='PackSegInputs')]
train_dataloader = dict(
    batch_size=6, num_workers=0, persistent_workers=False,
    dataset=dict(knn_file={str(knn_file)!r}, num_neighbors=3,
                 dataset=dict(benchmark='potsdam3', data_root={str(crops)!r},
                              img_suffix='.jpg', pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='BaseSegDataset',
                 metainfo=dict(classes=('roads and cars', 'buildings and clutter',
                                        'trees and vegetation')),
                 data_root={str(tmp_path / 'val')!r}, img_suffix='.png', seg_map_suffix='.png',
                 data_prefix=dict(img_path='img', seg_map_path='ann'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(num_classes=3)
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=5e-3))
train_cfg = dict(max_iters=12, val_interval=100)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=12, save_best=None, max_keep_ckpts=1))
log_processor = dict(window_size=1)
""")
    _tool('tools/stego/precompute_knns.py').main(
        [str(cfg), '--device', 'cpu', '--batch-size', '8', '--topk', '5', '--num-workers', '0'])
    with np.load(knn_file) as z:
        nns, keys = z['nns'], z['img_keys'].tolist()
    assert nns.shape == (30, 5) and keys[:2] == ['s0_0.jpg', 's0_1.jpg']
    assert (nns[:, 0] == np.arange(30)).mean() > 0.9  # each crop is its own nearest

    work = tmp_path / 'work'
    _run([str(REPO / 'tools/train.py'), str(cfg), '--work-dir', str(work)], tmp_path)
    logs = [
        json.loads(line)
        for line in sorted(work.glob('*/vis_data/scalars.json'))[-1].read_text().splitlines()
    ]
    logs = [r for r in logs if 'loss' in r]
    assert [r['iter'] for r in logs] == list(range(1, 13))
    for key in ('decode.loss_corr_intra', 'decode.loss_corr_inter', 'decode.loss_corr_neg',
                'decode.loss_cluster', 'decode.loss_linear'):
        assert all(np.isfinite(r[key]) for r in logs), key
    first = np.mean([r['loss'] for r in logs[:3]])
    last = np.mean([r['loss'] for r in logs[-3:]])
    assert last < first, [r['loss'] for r in logs]
    ckpt = work / 'iter_12.pth'
    sd = torch.load(str(ckpt), map_location='cpu', weights_only=False)['state_dict']
    assert sd['decode_head.clusters'].shape == (3, 8)

    maps = tmp_path / 'maps'
    out = _run([
        str(REPO / 'tools/test.py'),
        str(cfg),
        str(ckpt), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(maps)
    ], tmp_path)
    printed = dict(re.findall(r'(mIoU|aAcc): ([0-9.]+)', out))
    assignment = json.loads((maps / 'assignment.json').read_text())['cluster_to_class']
    preds = [np.array(Image.open(maps / f's{i}.png')) for i in range(4)]
    gts = [np.array(Image.open(tmp_path / 'val' / 'ann' / f's{i}.png')) for i in range(4)]
    miou, acc, best = _brute_force(preds, gts)
    assert float(printed['mIoU']) == np.round(miou, 4)
    assert float(printed['aAcc']) == np.round(acc, 4)
    assert assignment == best
