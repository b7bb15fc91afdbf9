# Copyright (c) mmuol contributors. All rights reserved.
"""End to end: tools/train.py (FOUND recipe, tiny) then tools/test.py."""
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmuol.seg  # noqa: F401
from mmseg.registry import MODELS
from mmuol.testing.seg_data import TINY_VIT_ARCH, make_saliency_dataset

REPO = Path(__file__).resolve().parents[2]
FOUND_DIR = REPO / 'configs' / 'found'
TRAIN_CFG = FOUND_DIR / 'found_dino-vits8_1xb50-500it_duts-tr.py'
SEG_CONFIGS = sorted(
    p for p in FOUND_DIR.glob('found_dino-vits8*.py')
    if re.search(r'(ecssd|duts-te|dut-omron|duts-tr)\.py$', p.name))
TINY_BACKBONE = dict(_delete_=True, type='DINOViT', arch=TINY_VIT_ARCH,
                     init_cfg=None)


def _run(args, cwd):
    proc = subprocess.run([sys.executable] + args, cwd=str(cwd),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _scalars(work_dir: Path):
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    return [json.loads(line) for line in files[-1].read_text().splitlines()]


def test_configs_are_the_official_recipe():
    cfg = Config.fromfile(str(TRAIN_CFG))
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports.imports == ['mmuol.seg']
    assert cfg.train_dataloader.batch_size == 50
    assert cfg.train_cfg.max_iters == 501
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 0.05
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.01
    sched = cfg.param_scheduler[0]
    assert (sched.type, sched.step_size, sched.gamma) == ('StepLR', 50, 0.95)
    assert sched.by_epoch is False  # stepped every optimizer step, as upstream
    assert cfg.randomness.seed == 0
    m = cfg.model
    assert m.type == 'FOUNDSegmentor' and m.feature == 'k'
    assert m.backbone.arch == 'dino_vits8'
    assert dict(m.decode_head.loss_weights) == dict(bs=1.5, bkg=1.0, self=4.0)
    assert m.train_cfg.stop_bkg_loss == 100 and m.train_cfg.bkg_tau == 0.3
    assert dict(m.train_cfg.bilateral_solver) == dict(
        sigma_spatial=16, sigma_luma=16, sigma_chroma=8, iou_gate=0.5)
    pipe = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert pipe == ['LoadSaliencyImageFromFile', 'FOUNDRandomScale',
                    'FOUNDGaussianBlur', 'PackSegInputs']
    assert cfg.default_hooks.visualization.type == 'SegVisualizationHook'


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=lambda p: p.name)
def test_seg_configs_build(path):
    """Every mmseg FOUND config parses and builds (tiny backbone swapped in,
    no weights downloaded)."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmseg'
    assert cfg.default_hooks.visualization.type == 'SegVisualizationHook'
    cfg.merge_from_dict(
        dict(model=dict(backbone=copy.deepcopy(TINY_BACKBONE),
                        decode_head=dict(in_channels=48))))
    model = MODELS.build(cfg.model)
    assert model.test_cfg.saliency_mode == (
        'multi' if '-multi' in path.name else 'single')
    assert bool(model.test_cfg.bilateral_solver) == ('-bs' in path.name)
    if 'duts-tr' not in path.name:
        assert cfg.test_evaluator.type == 'SaliencyMetric'
        assert cfg.model.decode_head.init_cfg.checkpoint == \
            'checkpoints/found/decoder_weights.pt'


def test_readme_links_exist():
    text = (FOUND_DIR / 'README.md').read_text()
    links = re.findall(r'\]\(([^)#:]+\.py)\)', text)
    assert links
    for link in links:
        assert (FOUND_DIR / link).is_file(), link
    for cmd_path in re.findall(r'(configs/found/[\w.\-]+\.py)', text):
        assert (REPO / cmd_path).is_file(), cmd_path
    assert 'images/s' in text and 'benchmark_found.py' in text  # measured speed table


def test_train_then_test(tmp_path):
    data = tmp_path / 'data'
    tr = make_saliency_dataset(
        data, 'duts-tr', sizes=[(40, 48), (48, 40), (56, 64), (64, 56),
                                (40, 40), (72, 48)], with_masks=False)
    te = make_saliency_dataset(data, 'ecssd')
    train_cfg = tmp_path / 'tiny_train.py'
    train_cfg.write_text(f"""
_base_ = [{str(TRAIN_CFG)!r}]
model = dict(
    backbone={TINY_BACKBONE!r},
    decode_head=dict(in_channels=48),
    train_cfg=dict(stop_bkg_loss=4))
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={tr['data_root']!r}, pipeline=[
        dict(type='LoadSaliencyImageFromFile'),
        dict(type='FOUNDRandomScale', size=64, scale_range=(0.5, 1.5)),
        dict(type='FOUNDGaussianBlur', prob=0.5),
        dict(type='PackSegInputs')]))
train_cfg = dict(max_iters=12)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=100, save_last=True))
log_processor = dict(window_size=1)
""")
    work = tmp_path / 'work'
    _run([str(REPO / 'tools/train.py'), str(train_cfg), '--work-dir',
          str(work)], tmp_path)
    logs = [r for r in _scalars(work) if 'loss' in r]
    assert [r['iter'] for r in logs] == list(range(1, 13))
    # Background pseudo-labels for steps 0..3, self-training afterwards.
    assert all(r['decode.loss_bkg'] > 0 and r['decode.loss_self'] == 0
               for r in logs[:4])
    assert all(r['decode.loss_bkg'] == 0 and r['decode.loss_self'] > 0
               for r in logs[4:])
    # lr 0.05 held (StepLR step 50).
    assert all(abs(r['lr'] - 0.05) < 1e-9 for r in logs)
    first = sum(r['loss'] for r in logs[:3]) / 3
    last = sum(r['loss'] for r in logs[-3:]) / 3
    assert last < first, [r['loss'] for r in logs]
    ckpt = work / 'iter_12.pth'
    assert ckpt.is_file()
    sd = torch.load(str(ckpt), map_location='cpu')['state_dict']
    assert sd['decode_head.conv_seg.weight'].shape == (1, 48, 1, 1)

    test_cfg = tmp_path / 'tiny_test.py'
    test_cfg.write_text(f"""
_base_ = [{str(FOUND_DIR / 'found_dino-vits8_ecssd.py')!r}]
model = dict(backbone={TINY_BACKBONE!r},
             decode_head=dict(in_channels=48, init_cfg=None))
test_dataloader = dict(num_workers=0, persistent_workers=False,
                       dataset=dict(data_root={te['data_root']!r}))
""")
    out = _run([str(REPO / 'tools/test.py'), str(test_cfg), str(ckpt),
                '--work-dir', str(tmp_path / 'test'), '--show-dir', 'vis',
                '--out', str(tmp_path / 'maps')], tmp_path)
    metrics = re.findall(r'saliency/(\w+): ([0-9.]+)', out.stdout + out.stderr)
    metrics = {k: float(v) for k, v in metrics}
    for conv in ('tokencut', 'found'):
        for name in ('max_fbeta', 'iou', 'accuracy', 'mae'):
            assert 0.0 <= metrics[f'{conv}_{name}'] <= 1.0
    assert len(list((tmp_path / 'maps').glob('*.png'))) == 3
    assert len(list((tmp_path / 'test').rglob('vis_image/*.png'))) == 3
