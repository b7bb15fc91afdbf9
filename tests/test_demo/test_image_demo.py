# Copyright (c) mmuol contributors. All rights reserved.
"""demo/image_demo.py: clear offline error, runs with --checkpoint."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mmuol.models.backbones import DINOViT
from mmuol.testing.models import TINY_VIT_ARCH

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'demo' / 'image_demo.py'


def run_demo(tmp_path, *args):
    env = dict(os.environ, TORCH_HOME=str(tmp_path / 'torch_home'), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(DEMO), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_demo_without_weights_fails_clearly(tmp_path):
    proc = run_demo(tmp_path, str(ROOT / 'demo' / 'images' / 'chelsea.jpg'), '--out-dir',
                    str(tmp_path / 'out'))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'https://dl.fbaipublicfiles.com/dino/' in proc.stderr
    assert '--checkpoint' in proc.stderr and 'Traceback' not in proc.stderr


def test_demo_runs_with_local_checkpoint(tmp_path):
    ckpt = tmp_path / 'tiny.pth'
    torch.manual_seed(0)
    torch.save(DINOViT(arch=dict(TINY_VIT_ARCH), frozen=False).state_dict(), ckpt)
    out = tmp_path / 'out'
    proc = run_demo(tmp_path, str(ROOT / 'demo' / 'images'), '--checkpoint', str(ckpt),
                    '--arch', json.dumps(TINY_VIT_ARCH), '--max-size', '96',
                    '--out-dir', str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    images = sorted(p.stem for p in (ROOT / 'demo' / 'images').glob('*.jpg'))
    assert len(images) == 4
    for stem in images:
        for method in ('lost', 'tokencut', 'found', 'maskcut', 'all'):
            assert (out / f'{stem}_{method}.jpg').is_file()
    assert 'image(s) ->' in proc.stdout
