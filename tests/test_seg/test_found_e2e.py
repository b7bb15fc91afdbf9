# Copyright (c) mmuol contributors. All rights reserved.
"""End to end: tools/train.py (FOUND recipe, tiny) then tools/test.py, with
values checked against the core metric functions, the visualizer's drawing
and, for a constant predictor, closed-form metrics."""
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import DATASETS, MODELS
from PIL import Image

import mmuol.seg  # noqa: F401
from mmuol.evaluation import aggregate_saliency, binarize_saliency_gt, saliency_image_stats
from mmuol.seg.saliency_visualizer import draw_saliency
from mmuol.testing.seg_data import TINY_VIT_ARCH, make_saliency_dataset

REPO = Path(__file__).resolve().parents[2]
FOUND_DIR = REPO / 'configs' / 'found'
TRAIN_CFG = FOUND_DIR / 'found_dino-vits8_1xb50-500it_duts-tr.py'
SEG_CONFIGS = sorted(
    p for p in FOUND_DIR.glob('found_dino-vits8*.py')
    if re.search(r'(ecssd|duts-te|dut-omron|duts-tr)\.py$', p.name))
TINY_BACKBONE = dict(_delete_=True, type='DINOViT', arch=TINY_VIT_ARCH, init_cfg=None)


def _run(args, cwd):
    proc = subprocess.run(
        [sys.executable] + args, cwd=str(cwd), capture_output=True, text=True, timeout=300)
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
    assert m.decode_head.get('init_cfg') is None  # PyTorch's default init, as upstream
    assert dict(m.decode_head.loss_weights) == dict(bs=1.5, bkg=1.0, self=4.0)
    assert m.decode_head.threshold == 0.5
    assert m.train_cfg.to_dict() == dict(
        stop_bkg_loss=100,
        background=dict(tau=0.3, head_weights=True),
        bilateral_solver=dict(sigma_spatial=16, sigma_luma=16, sigma_chroma=8, iou_gate=0.5))
    pipe = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert pipe == [
        'LoadSaliencyImageFromFile', 'FOUNDRandomScale', 'FOUNDGaussianBlur', 'PackSegInputs'
    ]
    assert cfg.default_hooks.visualization.type == 'SegVisualizationHook'
    assert cfg.get('val_cfg') is None and cfg.get('val_dataloader') is None
    # The evaluation recipe (evaluation/saliency.py).
    test = Config.fromfile(str(FOUND_DIR / 'found_dino-vits8_ecssd.py'))
    assert test.model.test_cfg.to_dict() == dict(
        mode='whole',
        saliency_mode='single',
        bilateral_solver=False,
        bilateral_solver_cfg=dict(sigma_spatial=16, sigma_luma=16, sigma_chroma=8, iou_gate=0.5))
    assert test.visualizer.type == 'SaliencyVisualizer'
    assert test.test_dataloader.batch_size == 1


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=lambda p: p.name)
def test_seg_configs_build(path):
    """Every mmseg FOUND config parses and builds (tiny backbone swapped in,
    no weights downloaded)."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmseg'
    assert cfg.default_hooks.visualization.type == 'SegVisualizationHook'
    assert cfg.visualizer.type == 'SaliencyVisualizer'
    cfg.merge_from_dict(
        dict(model=dict(backbone=copy.deepcopy(TINY_BACKBONE), decode_head=dict(in_channels=48))))
    model = MODELS.build(cfg.model)
    assert model.test_cfg.saliency_mode == ('multi' if '-multi' in path.name else 'single')
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


def _test_config(tmp_path: Path, data_root: str, base: str = 'found_dino-vits8_ecssd.py') -> Path:
    path = tmp_path / f'tiny_{base}'
    path.write_text(f"""
_base_ = [{str(FOUND_DIR / base)!r}]
model = dict(backbone={TINY_BACKBONE!r},
             decode_head=dict(in_channels=48, init_cfg=None))
test_dataloader = dict(num_workers=0, persistent_workers=False,
                       dataset=dict(data_root={data_root!r}))
""")
    return path


def _json_metrics(work_dir: Path) -> dict:
    """The metrics tools/test.py wrote (full precision) in <work_dir>/<ts>/<ts>.json."""
    files = sorted(p for p in work_dir.glob('*/*.json') if p.stem == p.parent.name)
    assert files, f'no metrics json under {work_dir}'
    return json.loads(files[-1].read_text())


def _printed_metrics(proc) -> dict:
    found = re.findall(r'saliency/(\w+): ([0-9.]+)', proc.stdout + proc.stderr)
    return {k: float(v) for k, v in found}


def _predict_in_process(cfg_path: Path, ckpt: Path) -> list:
    """The model of ``cfg_path`` with ``ckpt`` on its test set, outside the runner."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(cfg_path))
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, str(ckpt), map_location='cpu', strict=False, logger='silent')
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    outputs = []
    for i in range(len(dataset)):
        with torch.no_grad():
            outputs += model.test_step(pseudo_collate([dataset[i]]))
    return outputs


def test_train_then_test(tmp_path):
    data = tmp_path / 'data'
    tr = make_saliency_dataset(
        data,
        'duts-tr',
        sizes=[(40, 48), (48, 40), (56, 64), (64, 56), (40, 40), (72, 48)],
        with_masks=False)
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
    _run([str(REPO / 'tools/train.py'), str(train_cfg), '--work-dir', str(work)], tmp_path)
    logs = [r for r in _scalars(work) if 'loss' in r]
    assert [r['iter'] for r in logs] == list(range(1, 13))
    # Background pseudo-labels for steps 0..3, self-training afterwards.
    assert all(r['decode.loss_bkg'] > 0 and r['decode.loss_self'] == 0 for r in logs[:4])
    assert all(r['decode.loss_bkg'] == 0 and r['decode.loss_self'] > 0 for r in logs[4:])
    # lr 0.05 held (StepLR step 50).
    assert all(abs(r['lr'] - 0.05) < 1e-9 for r in logs)
    first = sum(r['loss'] for r in logs[:3]) / 3
    last = sum(r['loss'] for r in logs[-3:]) / 3
    assert last < first, [r['loss'] for r in logs]
    ckpt = work / 'iter_12.pth'
    assert ckpt.is_file()
    sd = torch.load(str(ckpt), map_location='cpu', weights_only=False)['state_dict']
    assert sd['decode_head.conv_seg.weight'].shape == (1, 48, 1, 1)

    test_cfg = _test_config(tmp_path, te['data_root'])
    out = _run([
        str(REPO / 'tools/test.py'),
        str(test_cfg),
        str(ckpt), '--work-dir',
        str(tmp_path / 'test'), '--show-dir', 'vis', '--out',
        str(tmp_path / 'maps')
    ], tmp_path)

    # What tools/test.py reports == the core metric functions applied to the
    # same model's predictions computed here.
    preds = _predict_in_process(test_cfg, ckpt)
    assert [Path(p.img_path).stem for p in preds] == te['stems']
    reported = _json_metrics(tmp_path / 'test')
    printed = _printed_metrics(out)
    for conv in ('tokencut', 'found'):
        stats = [
            saliency_image_stats(p.pred_saliency.data[0].numpy(), p.gt_sem_seg.data[0].numpy(),
                                 conv) for p in preds
        ]
        expected = aggregate_saliency(stats, conv)
        for name in ('max_fbeta', 'iou', 'accuracy', 'mae'):
            key = f'{conv}_{name}'
            assert reported[f'saliency/{key}'] == pytest.approx(expected[name], abs=1e-6), key
            assert printed[key] == pytest.approx(expected[name], abs=1e-4), key
    # --out: one 8-bit map per image, round(255 * pred_saliency).
    for p in preds:
        saved = np.array(Image.open(tmp_path / 'maps' / f'{Path(p.img_path).stem}.png'))
        np.testing.assert_array_equal(
            saved,
            np.round(p.pred_saliency.data[0].numpy() * 255).astype(np.uint8))
    # --show-dir: the saliency visualizer's drawing of each prediction.
    pictures = sorted((tmp_path / 'test').rglob('vis_image/*.png'))
    assert len(pictures) == len(preds)
    for p, picture in zip(preds, pictures):
        assert Path(p.img_path).name in picture.name
        image = mmcv.imread(p.img_path, channel_order='rgb')
        gt = binarize_saliency_gt(p.gt_sem_seg.data[0].numpy())
        expected = draw_saliency(image, p.pred_sem_seg.data[0].numpy(), gt)
        np.testing.assert_array_equal(mmcv.imread(str(picture), channel_order='rgb'), expected)


def _constant_f_beta(frac: float, beta_sq: float) -> float:
    """F-beta of an all-foreground prediction: precision = frac, recall = 1."""
    return (1 + beta_sq) * frac / (beta_sq * frac + 1)


def test_known_answer_through_tools(tmp_path):
    """A released-layout decoder (weight 0, bias +10) predicts every pixel as
    foreground; converted with the tool and evaluated with tools/test.py, the
    metrics must equal their closed forms in the GT's foreground fractions."""
    te = make_saliency_dataset(tmp_path / 'data', 'ecssd')
    official = tmp_path / 'decoder_weights.pt'
    torch.save({'decoder': {
        'weight': torch.zeros(1, 48, 1, 1),
        'bias': torch.tensor([10.0])
    }}, official)
    ckpt = tmp_path / 'found.pth'
    _run([str(REPO / 'tools/model_converters/found_decoder_to_mmuol.py'),
          str(official),
          str(ckpt)], tmp_path)
    _run([
        str(REPO / 'tools/test.py'),
        str(_test_config(tmp_path, te['data_root'])),
        str(ckpt), '--work-dir',
        str(tmp_path / 'test')
    ], tmp_path)
    reported = _json_metrics(tmp_path / 'test')
    gt_dir = Path(te['data_root']) / te['seg_map_path']
    frac = np.array([(np.array(Image.open(gt_dir / f'{stem}.png')) == 255).mean()
                     for stem in te['stems']])
    assert 0.05 < frac.min() and frac.max() < 0.5  # a GT that makes the metrics differ
    for conv, beta_sq in (('tokencut', 0.3), ('found', 0.09)):
        expected = dict(
            iou=frac.mean(),
            accuracy=frac.mean(),
            mae=1 - frac.mean(),
            max_fbeta=np.mean([_constant_f_beta(f, beta_sq) for f in frac]))
        for name, value in expected.items():
            assert reported[f'saliency/{conv}_{name}'] == pytest.approx(
                value, abs=1e-5), (conv, name)
