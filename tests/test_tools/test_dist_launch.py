# Copyright (c) mmuol contributors. All rights reserved.
"""tools/dist_test.sh and tools/dist_train.sh as the README writes them: no
activated venv (no ``torchrun`` on PATH) and, on a machine without GPU, two
processes on the CPU with the gloo backend."""
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmuol.evaluation import corloc_hit
from mmuol.models.backbones import DINOViT
from mmuol.testing.data import make_semseg_dataset
from mmuol.testing.det_data import (REPO_ROOT, expected_boxes, make_voc_dataset, save_tiny_vit,
                                    write_corloc_config)

NPROC = 2 if not torch.cuda.is_available() else min(2, torch.cuda.device_count())


def _start(script, *args, port):
    env = dict(os.environ, PATH='/usr/bin:/bin', PORT=str(port), OMP_NUM_THREADS='1')
    if not osp.exists(osp.join(REPO_ROOT, '.venv', 'bin', 'python')):
        env['PYTHON'] = sys.executable  # the script's fallback after ./.venv
    return subprocess.Popen(['bash', osp.join(REPO_ROOT, 'tools', script), *args],
                            cwd=REPO_ROOT,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc):
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-4000:]
    assert 'torchrun: command not found' not in out
    if not torch.cuda.is_available():
        assert f'No GPU: running {NPROC} processes on the CPU with the gloo backend' in out
    return out


def test_dist_scripts(tmp_path):
    # dist_test.sh: CorLoc of LOST with a tiny ViT, split over the processes.
    voc = make_voc_dataset(str(tmp_path / 'voc'))
    backbone = save_tiny_vit(str(tmp_path / 'vit.pth'))
    cfg = write_corloc_config(
        str(tmp_path / 'lost.py'), 'configs/lost/lost_dino-vits16_voc07.py', voc['data_root'],
        backbone, {})
    test = _start(
        'dist_test.sh',
        str(tmp_path / 'lost.py'),
        str(NPROC),
        '--work-dir',
        str(tmp_path / 'work_test'),
        port=29561)
    # dist_train.sh: one iteration of the tiny FCN (trainable, so DDP wraps it).
    make_semseg_dataset(tmp_path / 'seg')
    opts = [
        f'{split}_dataloader.dataset.data_root={tmp_path / "seg"}/'
        for split in ('train', 'val', 'test')
    ]
    train = _start(
        'dist_train.sh',
        osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'fcn_tiny-dinovit_semseg.py'),
        str(NPROC),
        '--work-dir',
        str(tmp_path / 'work_train'),
        '--cfg-options',
        *opts,
        port=29562)
    out = _finish(test)
    vit = DINOViT(**{k: v for k, v in backbone.items() if k != 'type'})
    base = osp.join(voc['data_root'], voc['sub_data_root'], 'JPEGImages')
    hits = []
    for img_id in voc['img_ids']:
        rgb = np.asarray(Image.open(osp.join(base, f'{img_id}.jpg')).convert('RGB'))
        box = expected_boxes(cfg.model.localizer.to_dict(), vit, rgb)[0]
        gt = torch.tensor([b for b, _, _ in voc['gt'][img_id]], dtype=torch.float)
        hits.append(corloc_hit(torch.tensor(box), gt))
    printed = re.search(r'corloc: ([\d.]+)\s+num_images: (\d+)', out)
    assert printed, out[-2000:]
    assert float(printed.group(1)) == pytest.approx(100.0 * sum(hits) / len(hits), abs=1e-4)
    assert int(printed.group(2)) == len(hits)  # every image once, over all processes
    out = _finish(train)
    assert 'Iter(train) [1/1]' in out
    assert osp.isfile(tmp_path / 'work_train' / 'iter_1.pth')
