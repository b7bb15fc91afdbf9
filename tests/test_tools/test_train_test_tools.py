# Copyright (c) mmuol contributors. All rights reserved.
"""tools/train.py and tools/test.py run mmdet and mmseg configs on DINOViT."""
import glob
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest

from mmuol.testing.data import make_coco_detection, make_semseg_dataset

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'tests' / 'data' / 'configs'


def run_tool(tool: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / tool), *args],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.parametrize('config,make_data,metric', [
    ('retinanet_tiny-dinovit_coco.py', make_coco_detection, 'coco/bbox_mAP'),
    ('fcn_tiny-dinovit_semseg.py', make_semseg_dataset, 'mIoU'),
])
def test_one_iteration_then_test(tmp_path, config, make_data, metric):
    data_root = tmp_path / 'data'
    make_data(data_root)
    work = tmp_path / 'work'
    opts = [
        f'{split}_dataloader.dataset.data_root={data_root}/' for split in ('train', 'val', 'test')
    ]
    if 'coco' in config:
        opts += [
            f'{split}_evaluator.ann_file={data_root}/annotations.json' for split in ('val', 'test')
        ]
    out = run_tool('train.py', str(CONFIGS / config), '--work-dir', str(work), '--cfg-options',
                   *opts)
    assert 'Iter(train) [1/1]' in out and 'loss' in out
    ckpt = work / 'iter_1.pth'
    assert ckpt.is_file()
    out = run_tool('test.py', str(CONFIGS / config), str(ckpt), '--work-dir', str(work),
                   '--show-dir', 'vis', '--cfg-options', *opts)
    assert metric in out
    assert glob.glob(osp.join(work, '**', 'vis', '**', '*.*g'), recursive=True)


def test_rejects_config_without_host_scope(tmp_path):
    cfg = tmp_path / 'bare.py'
    cfg.write_text('model = dict(type="DINOViT")\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'test.py'),
         str(cfg)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True)
    assert proc.returncode != 0 and 'default_scope' in proc.stderr
