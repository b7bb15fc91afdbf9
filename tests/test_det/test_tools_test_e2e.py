# Copyright (c) mmuol contributors. All rights reserved.
"""End to end: ``tools/test.py`` on the shipped CorLoc configs, one run per
localizer, with a tiny random DINOViT and a tiny VOC dataset; CorLoc is
reported and ``--show-dir`` writes the drawn images.

The six runs are independent processes; they are started together (the
import of mmdet dominates each run) and awaited by the parametrized tests.
"""
import json
import os
import os.path as osp
import subprocess
import sys
from glob import glob

import pytest
import torch

from mmuol.testing.det_data import make_voc_dataset
from mmuol.testing.models import TINY_VIT_ARCH

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOL = osp.join(ROOT, 'tools', 'test.py')

# localizer -> (shipped config, extra localizer overrides)
RUNS = {
    'LOSTLocalizer': ('configs/lost/lost_dino-vits16_voc07.py', {}),
    'TokenCutLocalizer': ('configs/tokencut/tokencut_dino-vits16_voc07.py', {}),
    # The tiny ViT has 3 heads; LOST's default head 4 does not exist.
    'DINOSegLocalizer': ('configs/dinoseg/dinoseg_dino-vits16_voc07.py', dict(head=0)),
    'MaskCutLocalizer': ('configs/maskcut/maskcut_dino-vitb8_voc07.py', {}),
    'FOUNDBkgLocalizer': ('configs/found/found-bkg_dino-vits8_voc07.py', {}),
    'FOUNDHeadLocalizer':
    ('configs/found/found_dino-vits8_voc07.py', dict(decoder_checkpoint='DECODER')),
}


def _write_config(path, base, data_root, localizer):
    text = f"""_base_ = [{osp.join(ROOT, base)!r}]
model = dict(
    backbone=dict(_delete_=True, type='DINOViT', arch={dict(TINY_VIT_ARCH)!r},
                  init_cfg=None),
    data_preprocessor=dict(pad_size_divisor={TINY_VIT_ARCH['patch_size']}),
    localizer=dict({', '.join(f'{k}={v!r}' for k, v in localizer.items())}))
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root={data_root!r}))
"""
    with open(path, 'w') as f:
        f.write(text)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Start every tools/test.py run at once; yield name -> (proc, dir)."""
    if not osp.isfile(TOOL):
        pytest.skip('tools/test.py is missing')
    tmp = tmp_path_factory.mktemp('e2e')
    voc = make_voc_dataset(str(tmp))
    decoder = str(tmp / 'decoder_weights.pt')
    torch.save({'decoder': {'weight': torch.randn(1, 48, 1, 1), 'bias': torch.zeros(1)}}, decoder)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    procs = {}
    for name, (base, overrides) in RUNS.items():
        overrides = {k: decoder if v == 'DECODER' else v for k, v in overrides.items()}
        cfg = str(tmp / f'{name}.py')
        _write_config(cfg, base, voc['data_root'], overrides)
        work_dir = str(tmp / f'work_{name}')
        proc = subprocess.Popen(
            [sys.executable, TOOL, cfg, '--work-dir', work_dir, '--show-dir', 'show'],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True)
        procs[name] = (proc, work_dir)
    yield procs
    for proc, _ in procs.values():
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize('name', list(RUNS))
def test_tools_test_reports_corloc_and_draws(runs, name):
    proc, work_dir = runs[name]
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-4000:]
    assert 'corloc:' in out and 'num_images: 3' in out, out[-2000:]
    results = glob(osp.join(work_dir, '*', '*.json'))
    assert results, f'no metrics json under {work_dir}'
    with open(results[0]) as f:
        metrics = json.load(f)
    # (mmengine's json log drops int scalars, so num_images is read above.)
    assert 0.0 <= metrics['corloc'] <= 100.0
    drawn = glob(osp.join(work_dir, '*', 'show', '*.jpg'))
    assert len(drawn) == 3, drawn
