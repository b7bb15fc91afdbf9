# Copyright (c) mmuol contributors. All rights reserved.
"""``DSMLocalizer``: the official box on golden features, and CorLoc through
tools/test.py on a tiny VOC set with the answer recomputed from the core."""
import os.path as osp
import pickle
import re

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from PIL import Image

from mmuol.evaluation import corloc_hit
from mmuol.localization import pad_to_patch_multiple
from mmuol.localization.dsm import dsm_eigenvectors, dsm_localize
from mmuol.models.backbones import DINOViT
from mmuol.testing.det_data import (make_voc_dataset, read_test_metrics, save_tiny_vit,
                                    start_test_tool, write_corloc_config)
from mmuol.testing.localization import load_golden, maskcut_features

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
#: Three objects plus one image annotated away from its object (a planted miss).
LAYOUT = [
    ('000001', (16, 8, 48, 40), (0, 0), []),
    ('000002', (8, 16, 40, 44), (0, 0), []),
    ('000003', (24, 4, 56, 30), (0, 0), []),
    ('000004', (32, 16, 60, 44), (0, 0), [], (0, 0, 12, 12)),
]


def _adapter(**kwargs):
    init_default_scope('mmdet')
    from mmdet.registry import TASK_UTILS

    import mmuol.det  # noqa: F401
    return TASK_UTILS.build(dict(type='DSMLocalizer', **kwargs))


@pytest.mark.parametrize(
    'name',
    ['dsm_eigs_14x14_d384_two_objects_lam0_K5', 'dsm_eigs_12x16_d384_three_objects_lam0_K6'])
def test_golden_box(name):
    from mmuol.det import PatchFeatures
    arrays, meta = load_golden(f'stego_dsm/{name}')
    keys = torch.from_numpy(maskcut_features(arrays).T.copy())
    feats = PatchFeatures(
        keys=keys,
        cls_attn=None,
        grid_hw=(meta['h'], meta['w']),
        patch_size=meta['patch_size'],
        image_hw=tuple(meta['image_hw']))
    out = _adapter(K=meta['call']['K'])(feats)
    assert out.boxes.tolist() == [arrays['loc_box_xyxy'].tolist()]
    assert out.scores.tolist() == [1.0]
    assert out.masks.shape == (1, meta['h'], meta['w']) and out.masks.any()


def test_bad_arguments():
    with pytest.raises(ValueError, match='which_matrix'):
        _adapter(which_matrix='matting')
    with pytest.raises(ValueError, match='K'):
        _adapter(K=1)


def _expected_box(vit, rgb):
    x = (torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() - MEAN) / STD
    ps = vit.patch_size
    with torch.no_grad():
        out = vit.forward_last_block(
            pad_to_patch_multiple(x[None], ps), with_qkv=True, with_attn=False)
    eigs = dsm_eigenvectors(out.patch_keys[0], tuple(out.grid_hw), K=5, patch_size=ps)
    return dsm_localize(eigs, image_hw=rgb.shape[:2]).box.float().tolist()


def test_tools_test_gives_the_cores_answer(tmp_path):
    voc = make_voc_dataset(str(tmp_path), layout=LAYOUT)
    backbone = save_tiny_vit(str(tmp_path / 'tiny_vit.pth'))
    cfg_path = str(tmp_path / 'dsm.py')
    write_corloc_config(cfg_path, 'configs/dsm/dsm_dino-vits16_voc07.py', voc['data_root'],
                        backbone, {})
    work_dir, out = str(tmp_path / 'work'), str(tmp_path / 'out.pkl')
    proc = start_test_tool(cfg_path, work_dir, '--out', out)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-4000:]
    vit = DINOViT(**{k: v for k, v in backbone.items() if k != 'type'})
    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    base = osp.join(voc['data_root'], voc['sub_data_root'], 'JPEGImages')
    hits = []
    for img_id, pred in zip(voc['img_ids'], dumped):
        rgb = np.asarray(Image.open(osp.join(base, f'{img_id}.jpg')).convert('RGB'))
        expected = _expected_box(vit, rgb)
        assert pred['pred_instances']['bboxes'].tolist() == [expected], img_id
        gt = [box for box, _, _ in voc['gt'][img_id]]
        hits.append(corloc_hit(torch.tensor(expected), torch.tensor(gt, dtype=torch.float)))
    corloc = 100.0 * sum(hits) / len(hits)
    assert not hits[-1]  # the planted miss
    assert read_test_metrics(work_dir)['corloc'] == pytest.approx(corloc, abs=1e-4)
    printed = re.search(r'corloc: ([\d.]+)', log)
    assert printed and float(printed.group(1)) == pytest.approx(corloc, abs=1e-4)
