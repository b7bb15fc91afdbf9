# Copyright (c) mmuol contributors. All rights reserved.
"""Deep Spectral Methods single-object segmentation through tools/test.py.

The expected answer is recomputed here from the core: the same images
through the same tiny backbone weights, ``dsm_eigenvectors`` ->
``dsm_single_region`` -> nearest up-sampling -> ``dsm_crf``, scored with the
core saliency functions; tools/test.py must report exactly those metrics.
On these synthetic images (one bright object) the CRF snaps the mask to the
object, so the IoU with the ground truth is also known to be ~1.
"""
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS
from PIL import Image

import mmuol.seg  # noqa: F401
from mmuol.evaluation import aggregate_saliency, saliency_image_stats
from mmuol.localization import dsm_crf
from mmuol.localization.dsm import dsm_eigenvectors, dsm_single_region, upsample_patch_labels
from mmuol.models.backbones import DINOViT
from mmuol.testing.det_data import read_test_metrics, save_tiny_vit
from mmuol.testing.seg_data import TINY_VIT_ARCH, make_saliency_dataset
from mmuol.utils.constants import IMAGENET_MEAN_255, IMAGENET_STD_255

REPO = Path(__file__).resolve().parents[2]
DSM_DIR = REPO / 'configs' / 'dsm'
SEG_CONFIGS = [
    DSM_DIR / f'dsm_dino-vits16_{d}.py' for d in ('ecssd', 'duts-te', 'dut-omron', 'cub')
]
MEAN = torch.tensor(IMAGENET_MEAN_255).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD_255).view(3, 1, 1)


def _expected_mask(vit: DINOViT, rgb: np.ndarray, K: int = 2) -> np.ndarray:
    """The core pipeline on one RGB image (crop, keys, eigvecs, CRF)."""
    x = (torch.from_numpy(rgb).permute(2, 0, 1).float() - MEAN) / STD
    p = vit.patch_size
    h, w = rgb.shape[0] // p, rgb.shape[1] // p
    with torch.no_grad():
        out = vit.forward_last_block(x[None, :, :h * p, :w * p], with_qkv=True, with_attn=False)
    eigs = dsm_eigenvectors(out.patch_keys[0], (h, w), K=K, patch_size=p)
    mask = dsm_single_region(eigs).numpy().astype(np.int64)
    full = upsample_patch_labels(mask, p, rgb.shape[:2])
    return dsm_crf(rgb, full, num_classes=2).numpy()


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=lambda p: p.name)
def test_configs_build_with_the_official_recipe(path):
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports.imports == ['mmuol.seg']
    assert cfg.model.backbone.arch == 'dino_vits16'
    assert cfg.model.data_preprocessor.get('size_divisor') is None  # crop, not pad
    expected = dict(
        K=2,
        which_matrix='laplacian',
        image_color_lambda=0.0,
        image_downsample_factor=None,
        solver='auto',
        crf=True,
        center_crop='cub' in path.name,
        gt_threshold=127 if 'cub' in path.name else None)
    assert cfg.model.test_cfg.to_dict() == expected
    assert cfg.test_evaluator.type == 'SaliencyMetric'
    assert 'tokencut' in cfg.test_evaluator.conventions
    cfg.model.backbone = dict(type='DINOViT', arch=TINY_VIT_ARCH, init_cfg=None)
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'DSMSegmentor'


def test_tools_test_reports_the_core_answer(tmp_path):
    data = make_saliency_dataset(tmp_path / 'data', 'ecssd')
    backbone = save_tiny_vit(str(tmp_path / 'tiny_vit.pth'))
    cfg_path = tmp_path / 'dsm_ecssd.py'
    cfg_path.write_text(f"""
_base_ = [{str(DSM_DIR / 'dsm_dino-vits16_ecssd.py')!r}]
model = dict(backbone=dict(_delete_=True, **{backbone!r}))
test_dataloader = dict(num_workers=0, persistent_workers=False,
                       dataset=dict(data_root={data['data_root']!r}))
""")
    work = tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable,
         str(REPO / 'tools' / 'test.py'),
         str(cfg_path), '--work-dir',
         str(work)],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reported = read_test_metrics(str(work))

    vit = DINOViT(**{k: v for k, v in backbone.items() if k != 'type'})
    vit.init_weights()
    vit.eval()
    root = Path(data['data_root'])
    stats = {'tokencut': [], 'found': []}
    for stem in data['stems']:
        rgb = np.array(Image.open(root / data['img_path'] / f'{stem}.jpg').convert('RGB'))
        gt = np.asarray(Image.open(root / data['seg_map_path'] / f'{stem}.png'))
        pred = _expected_mask(vit, rgb).astype(np.float32)
        # The known answer: the CRF recovers the synthetic object.
        inter, union = ((pred > 0) & (gt > 0)).sum(), ((pred > 0) | (gt > 0)).sum()
        assert inter / union > 0.95, stem
        for conv in stats:
            stats[conv].append(saliency_image_stats(pred, gt, conv))
    for conv, per_image in stats.items():
        expected = aggregate_saliency(per_image, conv)
        for name in ('max_fbeta', 'iou', 'accuracy', 'mae'):
            assert reported[f'saliency/{conv}_{name}'] == pytest.approx(
                expected[name], abs=1e-6), (conv, name)


def test_cub_protocol_crops_and_binarises(tmp_path):
    """``center_crop`` / ``gt_threshold``: prediction and ground truth are
    cropped to the centred square, the soft GT binarised at > 127."""
    init_default_scope('mmseg')
    data = make_saliency_dataset(tmp_path / 'data', 'ecssd', sizes=[(40, 56)])
    gt_path = Path(data['data_root']) / data['seg_map_path'] / f'{data["stems"][0]}.png'
    soft = np.asarray(Image.open(gt_path)).copy()
    soft[soft == 255] = 200
    soft[:, :4] = 100  # below the threshold: background
    Image.fromarray(soft).save(gt_path)
    cfg = Config.fromfile(str(DSM_DIR / 'dsm_dino-vits16_cub.py'))
    cfg.model.backbone = dict(type='DINOViT', arch=TINY_VIT_ARCH, init_cfg=None)
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.update(
        data_root=data['data_root'],
        ann_file=None,
        data_prefix=dict(img_path=data['img_path'], seg_map_path=data['seg_map_path']),
        expected_num_images=None)
    ds_cfg.pop('ann_file')
    dataset = DATASETS.build(ds_cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    uncropped = copy.deepcopy(model)
    uncropped.test_cfg.center_crop = False
    uncropped.test_cfg.gt_threshold = None
    sample = dataset[0]
    out = model.test_step(pseudo_collate([sample]))[0]
    full = uncropped.test_step(pseudo_collate([copy.deepcopy(sample)]))[0]
    # 40x56 -> centred 40x40 square, columns 8..47.
    assert tuple(out.pred_sem_seg.data.shape[-2:]) == (40, 40)
    assert torch.equal(out.pred_sem_seg.data, full.pred_sem_seg.data[..., 8:48])
    expected_gt = (soft[:, 8:48] > 127).astype(np.uint8) * 255
    np.testing.assert_array_equal(out.gt_sem_seg.data[0].numpy(), expected_gt)
