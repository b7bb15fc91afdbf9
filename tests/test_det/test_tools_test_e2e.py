# Copyright (c) mmuol contributors. All rights reserved.
"""End to end: ``tools/test.py`` on the shipped CorLoc configs, one run per
localizer, with a seeded tiny DINOViT checkpoint and a tiny VOC dataset.

The expected answer is recomputed here: the same images through the same
backbone weights and the core function of each method
(:func:`mmuol.testing.det_data.expected_boxes`). Each run must dump exactly
those boxes (``--out``), report the CorLoc they give (the fourth image is
annotated away from its object: a planted miss when the object is found) and
draw every image (``--show-dir``).

The six runs are independent processes; they are started together (the
import of mmdet dominates each run) and awaited by the parametrized tests.
"""
import os.path as osp
import pickle
import re
from glob import glob

import numpy as np
import pytest
import torch
from PIL import Image

from mmuol.evaluation import corloc_hit
from mmuol.models.backbones import DINOViT
from mmuol.testing.det_data import (expected_boxes, make_voc_dataset, read_test_metrics,
                                    save_tiny_vit, start_test_tool, write_corloc_config)
from mmuol.testing.models import TINY_VIT_ARCH

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOL = osp.join(ROOT, 'tools', 'test.py')

# localizer -> (shipped config, localizer overrides for the tiny ViT)
RUNS = {
    'LOSTLocalizer': ('configs/lost/lost_dino-vits16_voc07.py', {}),
    'TokenCutLocalizer': ('configs/tokencut/tokencut_dino-vits16_voc07.py', {}),
    # The tiny ViT has 3 heads; LOST's default head 4 does not exist.
    'DINOSegLocalizer': ('configs/dinoseg/dinoseg_dino-vits16_voc07.py', dict(head=0)),
    'MaskCutLocalizer': ('configs/maskcut/maskcut_dino-vitb8_voc07.py', {}),
    'FOUNDBkgLocalizer': ('configs/found/found-bkg_dino-vits8_voc07.py', {}),
    'FOUNDHeadLocalizer':
    ('configs/found/found_dino-vits8_voc07.py',
     dict(in_channels=TINY_VIT_ARCH['embed_dim'], decoder_checkpoint='DECODER')),
}

#: The default 3-image layout plus an image annotated away from its object.
LAYOUT = [
    ('000001', (16, 8, 48, 40), (0, 0), [((2, 2, 10, 10), 1, 0)]),
    ('000002', (8, 16, 40, 44), (0, 1), []),
    ('000003', (24, 4, 56, 30), (1, 0), []),
    ('000004', (32, 16, 60, 44), (0, 0), [], (0, 0, 12, 12)),
]


def test_tool_exists():
    """A missing tool is a failure, not a skip."""
    assert osp.isfile(TOOL)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Start every tools/test.py run at once; yield name -> run info."""
    tmp = tmp_path_factory.mktemp('e2e')
    voc = make_voc_dataset(str(tmp), layout=LAYOUT)
    backbone = save_tiny_vit(str(tmp / 'tiny_vit.pth'))
    decoder = str(tmp / 'decoder_weights.pt')
    gen = torch.Generator().manual_seed(0)
    torch.save(
        {
            'decoder': {
                'weight': torch.randn(1, TINY_VIT_ARCH['embed_dim'], 1, 1, generator=gen),
                'bias': torch.zeros(1)
            }
        }, decoder)
    procs = {}
    for name, (base, overrides) in RUNS.items():
        overrides = {k: decoder if v == 'DECODER' else v for k, v in overrides.items()}
        cfg_path = str(tmp / f'{name}.py')
        cfg = write_corloc_config(cfg_path, base, voc['data_root'], backbone, overrides)
        work_dir = str(tmp / f'work_{name}')
        out = str(tmp / f'{name}.pkl')
        proc = start_test_tool(cfg_path, work_dir, '--show-dir', 'show', '--out', out)
        procs[name] = dict(proc=proc, work_dir=work_dir, out=out, localizer=cfg.model.localizer)
    yield dict(procs=procs, voc=voc, backbone=backbone)
    for run in procs.values():
        if run['proc'].poll() is None:
            run['proc'].kill()


@pytest.mark.parametrize('name', list(RUNS))
def test_tools_test_gives_the_cores_answer(runs, name):
    run, voc = runs['procs'][name], runs['voc']
    out, _ = run['proc'].communicate(timeout=300)
    assert run['proc'].returncode == 0, out[-4000:]
    vit = DINOViT(**{k: v for k, v in runs['backbone'].items() if k != 'type'})
    base = osp.join(voc['data_root'], voc['sub_data_root'], 'JPEGImages')
    with open(run['out'], 'rb') as f:
        dumped = pickle.load(f)
    assert [osp.basename(d['img_path']) for d in dumped] == [f'{i}.jpg' for i in voc['img_ids']]
    hits = []
    for img_id, pred in zip(voc['img_ids'], dumped):
        rgb = np.asarray(Image.open(osp.join(base, f'{img_id}.jpg')).convert('RGB'))
        expected = expected_boxes(run['localizer'].to_dict(), vit, rgb)
        # Never an empty answer on these images: every one holds an object.
        assert expected, f'{name} found nothing in {img_id}'
        assert pred['pred_instances']['bboxes'].tolist() == expected, img_id
        gt = [box for box, _, _ in voc['gt'][img_id]]  # hard=True: every box
        hits.append(corloc_hit(torch.tensor(expected[0]), torch.tensor(gt, dtype=torch.float)))
    corloc = 100.0 * sum(hits) / len(hits)
    assert read_test_metrics(run['work_dir'])['corloc'] == pytest.approx(corloc, abs=1e-4)
    printed = re.search(r'corloc: ([\d.]+)\s+num_images: (\d+)\s+num_hits: (\d+)', out)
    assert printed, out[-2000:]
    assert float(printed.group(1)) == pytest.approx(corloc, abs=1e-4)
    assert (int(printed.group(2)), int(printed.group(3))) == (len(hits), sum(hits))
    drawn = glob(osp.join(run['work_dir'], '*', 'show', '*.jpg'))
    assert sorted(osp.basename(p) for p in drawn) == [f'{i}.jpg' for i in voc['img_ids']]
