# Copyright (c) mmuol contributors. All rights reserved.
"""Bad input through ``tools/test.py``, as a new user meets it: a VOC07-layout
set with good images in odd formats (16-bit gray, palette, CMYK, 16-bit RGB)
and one bad entry of each kind (malformed XML, object without box,
non-numeric and inverted coordinates, missing image / annotation, truncated,
0-byte and 1x1 images, a blank list line).

* ``skip_invalid=True``: the run finishes, its CorLoc is the core's on the
  good images (recomputed here), the skipped images are counted and logged,
  and only the good images are drawn.
* default: the run stops before any image is processed, with an error that
  names the bad files and the option.
"""
import os.path as osp
import pickle
from glob import glob

import pytest
import torch

from mmuol.evaluation import corloc_hit
from mmuol.models.backbones import DINOViT
from mmuol.testing.det_data import (BAD_VOC_KINDS, expected_boxes, make_bad_voc_dataset,
                                    read_test_metrics, save_tiny_vit, start_test_tool,
                                    write_corloc_config)

BASE = 'configs/lost/lost_dino-vits16_voc07.py'


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('bad_e2e')
    info = make_bad_voc_dataset(str(tmp))
    backbone = save_tiny_vit(str(tmp / 'tiny_vit.pth'))
    procs = {}
    for name, skip in (('skip', True), ('default', False)):
        cfg_path = str(tmp / f'{name}.py')
        cfg = write_corloc_config(
            cfg_path, BASE, info['data_root'], backbone, {}, skip_invalid=skip)
        work_dir = str(tmp / f'work_{name}')
        out = str(tmp / f'{name}.pkl')
        procs[name] = dict(
            proc=start_test_tool(cfg_path, work_dir, '--show-dir', 'show', '--out', out),
            work_dir=work_dir,
            out=out,
            localizer=cfg.model.localizer.to_dict())
    yield dict(procs=procs, info=info, backbone=backbone)
    for run in procs.values():
        if run['proc'].poll() is None:
            run['proc'].kill()


def test_skip_invalid_finishes_with_the_right_corloc(runs):
    run, info = runs['procs']['skip'], runs['info']
    out, _ = run['proc'].communicate(timeout=300)
    assert run['proc'].returncode == 0, out[-4000:]
    vit = DINOViT(**{k: v for k, v in runs['backbone'].items() if k != 'type'})
    with open(run['out'], 'rb') as f:
        dumped = {osp.basename(d['img_path'])[:-4]: d for d in pickle.load(f)}
    hits = []
    for img_id in info['valid_ids']:
        # The decoded image is the official loader's (16-bit gray not white).
        expected = expected_boxes(run['localizer'], vit, info['images'][img_id])
        assert expected, img_id
        assert dumped[img_id]['pred_instances']['bboxes'].tolist() == expected, img_id
        hits.append(
            corloc_hit(
                torch.tensor(expected[0]), torch.tensor(info['gt'][img_id], dtype=torch.float)))
    # Images that fail at test time are in the dump, without boxes.
    for kind in ('truncated_jpeg', 'empty_jpeg', 'tiny_image'):
        assert len(dumped[info['bad'][kind]]['pred_instances']['bboxes']) == 0
    corloc = 100.0 * sum(hits) / len(hits)
    assert read_test_metrics(run['work_dir'])['corloc'] == pytest.approx(corloc, abs=1e-4)
    assert f'num_images: {len(hits)}' in out and f'num_hits: {sum(hits)}' in out
    num_bad = len(BAD_VOC_KINDS)
    assert f'num_skipped: {num_bad}' in out
    assert f'{num_bad} invalid images skipped' in out
    assert f'6 of {len(info["valid_ids"]) + num_bad} entries are invalid and were skipped' in out
    for kind in ('malformed_xml', 'truncated_jpeg', 'empty_jpeg'):
        assert info['paths'][kind] in out, kind
    drawn = glob(osp.join(run['work_dir'], '*', 'show', '*.jpg'))
    assert sorted(osp.basename(p)[:-4] for p in drawn) == info['valid_ids']


def test_default_stops_early_naming_the_files(runs):
    run, info = runs['procs']['default'], runs['info']
    out, _ = run['proc'].communicate(timeout=300)
    assert run['proc'].returncode != 0
    assert 'ValueError: VOCCorLocDataset' in out and '6 of 14 entries are invalid' in out
    # The dataset is checked before any image is processed.
    assert 'Epoch(test)' not in out
    for kind in ('malformed_xml', 'no_bndbox', 'non_numeric', 'inverted_box', 'missing_image'):
        assert info['paths'][kind] in out, kind
    assert 'skip_invalid=True' in out
    assert not osp.exists(run['out'])
