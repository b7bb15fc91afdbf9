# Copyright (c) mmuol contributors. All rights reserved.
"""``tools/cutler/self_train_merge.py``: COCO-results json and ``--out`` pkl
inputs give the merge of :func:`merge_self_training`, from an official
(size-swapped) previous file."""
import json
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import torch

from mmuol.pseudo_labels import dump_json, encode_mask, load_json, merge_self_training
from mmuol.testing.cutler_data import make_maskcut_dataset
from mmuol.testing.scripts import load_script

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOL = osp.join(ROOT, 'tools', 'cutler', 'self_train_merge.py')


def _predictions(hw):
    h, w = hw
    masks = np.zeros((3, h, w), bool)
    masks[0, 5:20, 6:30] = True  # overlaps image 1's rectangle
    masks[1, 30:40, 40:60] = True
    masks[2, 0:4, 0:4] = True
    return [
        dict(image_id=1, score=0.875, segmentation=encode_mask(masks[0])),
        dict(image_id=1, score=0.625, segmentation=encode_mask(masks[1])),
        dict(image_id=2, score=0.75, segmentation=encode_mask(masks[2])),
    ]


def test_tool_json_and_pkl_inputs(tmp_path):
    assert osp.isfile(TOOL), 'tools/cutler/self_train_merge.py is missing'
    data = make_maskcut_dataset(str(tmp_path), num_images=3, official=True)
    previous = osp.join(data['data_root'], data['ann_file'])
    preds = _predictions(data['image_hw'])
    preds_json = str(tmp_path / 'preds.segm.json')
    dump_json(preds, preds_json)
    out = str(tmp_path / 'r1.json')
    proc = subprocess.run([sys.executable, TOOL, previous, preds_json, out, '--score-thr', '0.7'],
                          capture_output=True,
                          text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert 'swapped back width/height of 3 image entries' in proc.stdout
    prev_data, _ = load_json(previous)
    expected, stats = merge_self_training(prev_data, preds, score_thr=0.7)
    with open(out) as f:
        assert json.load(f) == json.loads(json.dumps(expected))
    assert stats.num_images_relabelled == 2 and stats.num_predictions_kept == 2
    assert f'{stats.num_annotations} annotations on 3 images' in proc.stdout

    # The pkl of `tools/test.py --out` (DumpDetResults: RLE counts as bytes).
    samples = []
    for img_id in (1, 2):
        mine = [p for p in preds if p['image_id'] == img_id]
        samples.append(
            dict(
                img_id=img_id,
                pred_instances=dict(
                    scores=torch.tensor([p['score'] for p in mine]),
                    masks=[
                        dict(
                            size=p['segmentation']['size'],
                            counts=p['segmentation']['counts'].encode()) for p in mine
                    ])))
    pkl = str(tmp_path / 'preds.pkl')
    with open(pkl, 'wb') as f:
        pickle.dump(samples, f)
    out_pkl = str(tmp_path / 'r1_pkl.json')
    tool = load_script(TOOL, 'self_train_merge')
    tool.main([previous, pkl, out_pkl, '--score-thr', '0.7'])
    with open(out_pkl, 'rb') as a, open(out, 'rb') as b:
        assert a.read() == b.read()
    # Bad input: the bbox results file instead of the segm one.
    bbox_json = str(tmp_path / 'preds.bbox.json')
    dump_json([dict(image_id=1, score=0.9, bbox=[0, 0, 1, 1])], bbox_json)
    proc = subprocess.run([sys.executable, TOOL, previous, bbox_json, out],
                          capture_output=True,
                          text=True,
                          cwd=ROOT)
    assert proc.returncode != 0 and 'segm.json' in proc.stderr
