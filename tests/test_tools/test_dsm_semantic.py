# Copyright (c) mmuol contributors. All rights reserved.
"""DSM semantic segmentation end to end: tools/dsm/semantic_segmentation.py
(tiny backbone, tiny VOC-layout data) then tools/test.py on the shipped
semantic config.

Checked values: the tool's segments equal the core functions' on the same
image; its clusters are k-means on the PCA of the normalised crop
embeddings it saved; the maps follow DSM's mapping (background 0, segment ->
cluster); a second run resumes without recomputing; and the mIoU
tools/test.py reports equals the host-free Hungarian-on-IoU evaluation of the
saved maps against the ground truth.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmuol.evaluation.hungarian import confusion_matrix, match_clusters
from mmuol.localization.dsm import (dsm_eigenvectors, dsm_multi_region, dsm_segment_boxes, kmeans,
                                    pca_reduce)
from mmuol.models.backbones import DINOViT
from mmuol.testing.det_data import read_test_metrics
from mmuol.testing.scripts import load_script
from mmuol.testing.seg_data import TINY_VIT_ARCH

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'dsm' / 'semantic_segmentation.py'
CONFIG = REPO / 'configs' / 'dsm' / 'dsm_dino-vits16_voc12-semantic.py'
TRAIN_CONFIG = REPO / 'configs' / 'dsm' / 'dsm_dino-vits16-fcn_1xb16-4k_voc12-pseudo.py'


def test_tool_exists():
    assert TOOL.is_file()


def _tool():
    return load_script(TOOL, 'dsm_semantic_tool')


def _voc(root: Path, n: int = 6):
    """VOC-layout images: a red square (class 1) or a blue disc (class 15)
    on a grey textured background; GT in SegmentationClass."""
    base = root / 'VOC2012'
    for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (base / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    stems = []
    for i in range(n):
        h, w = (48, 64) if i % 2 else (56, 48)
        img = rng.normal(110, 10, size=(h, w, 3))
        gt = np.zeros((h, w), np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx, r = h // 2 + (i % 3) - 1, w // 2, 13
        if i % 2:
            obj = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            img[obj] = (220, 30, 30)
            gt[obj] = 1
        else:
            obj = (yy - cy)**2 + (xx - cx)**2 <= r * r
            img[obj] = (30, 40, 220)
            gt[obj] = 15
        gt[0, :] = 255  # an ignored row
        stem = f'2007_{i:06d}'
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            base / 'JPEGImages' / f'{stem}.jpg', quality=95)
        Image.fromarray(gt).save(base / 'SegmentationClass' / f'{stem}.png')
        stems.append(stem)
    (base / 'ImageSets/Segmentation/val.txt').write_text('\n'.join(stems) + '\n')
    return base, stems


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('dsm_semantic')
    base, stems = _voc(tmp / 'data')
    torch.manual_seed(0)
    vit = DINOViT(arch=dict(TINY_VIT_ARCH), init_cfg=None)
    weights = tmp / 'tiny_vit.pth'
    torch.save(vit.state_dict(), str(weights))
    backbone = dict(
        type='DINOViT',
        arch=dict(TINY_VIT_ARCH),
        init_cfg=dict(type='Pretrained', checkpoint=str(weights)))
    out_dir = tmp / 'work'
    cfg_path = tmp / 'semantic.py'
    cfg_path.write_text(f"""
_base_ = [{str(CONFIG)!r}]
pseudo_labels = dict(
    backbone=dict(_delete_=True, **{backbone!r}),
    img_dir={str(base / 'JPEGImages')!r},
    out_dir={str(out_dir)!r},
    segments=dict(num_segments=3),
    clusters=dict(pca_dim=4, num_clusters=3))
test_dataloader = dict(num_workers=0, persistent_workers=False,
                       dataset=dict(data_root={str(base)!r},
                                    pred_dir={str(out_dir / 'semantic')!r}))
""")
    tool = _tool()
    tool.main([str(cfg_path), '--device', 'cpu'])
    return dict(
        tmp=tmp, base=base, stems=stems, cfg=cfg_path, out=out_dir, tool=tool, backbone=backbone)


def test_segments_are_the_core_answer(run):
    vit = DINOViT(**{k: v for k, v in run['backbone'].items() if k != 'type'}).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    for stem in run['stems']:
        rgb = np.array(Image.open(run['base'] / 'JPEGImages' / f'{stem}.jpg').convert('RGB'))
        p = vit.patch_size
        h, w = rgb.shape[0] // p, rgb.shape[1] // p
        x = ((torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - mean) / std)[None]
        with torch.no_grad():
            keys = vit.forward_last_block(x[..., :h * p, :w * p], with_attn=False).patch_keys[0]
        eigs = dsm_eigenvectors(keys, (h, w), K=5, patch_size=p)
        segmap = dsm_multi_region(eigs, num_segments=3, seed=0)
        boxes = dsm_segment_boxes(segmap, 2, 5, p)
        with np.load(run['out'] / 'segments' / f'{stem}.npz') as z:
            np.testing.assert_array_equal(z['segmap'], segmap.numpy())
            np.testing.assert_array_equal(z['boxes'], boxes.boxes.numpy())
            assert z['features'].shape == (len(boxes.segment_indices), TINY_VIT_ARCH['embed_dim'])
            # Crop embedding = the normed CLS token of the box's crop.
            x0, y0, x1, y1 = boxes.boxes[0].tolist()
            with torch.no_grad():
                cls = vit.forward_last_block(
                    x[..., y0:y1, x0:x1], with_qkv=False, with_attn=False).tokens[0, 0]
            np.testing.assert_allclose(z['features'][0], cls.numpy(), atol=1e-5)


def test_clusters_and_maps(run):
    feats, ids, segmaps = [], [], []
    for stem in run['stems']:
        with np.load(run['out'] / 'segments' / f'{stem}.npz') as z:
            feats.append(z['features'])
            ids.append(z['segment_indices'])
            segmaps.append(z['segmap'])
    allf = np.concatenate(feats).astype(np.float64)
    allf /= np.linalg.norm(allf, axis=1, keepdims=True)
    labels, _ = kmeans(pca_reduce(allf, 4), 3, seed=0)
    with np.load(run['out'] / 'clusters.npz') as z:
        np.testing.assert_array_equal(z['labels'], labels)
    start = 0
    for stem, seg, sid in zip(run['stems'], segmaps, ids):
        sem = np.array(Image.open(run['out'] / 'semantic' / f'{stem}.png'))
        expected = np.zeros_like(seg, dtype=np.int64)
        for k, s in enumerate(sid.tolist()):
            expected[seg == s] = labels[start + k]
        start += len(sid)
        np.testing.assert_array_equal(sem, expected)


def test_second_run_resumes(run, capsys):
    before = {p.name: p.read_bytes() for p in (run['out'] / 'semantic').glob('*.png')}
    victim = run['out'] / 'segments' / f'{run["stems"][0]}.npz'
    victim_bytes = victim.read_bytes()
    victim.unlink()
    run['tool'].main([str(run['cfg']), '--device', 'cpu'])
    out = capsys.readouterr().out
    assert f'{len(run["stems"]) - 1} of {len(run["stems"])} images already done' in out
    assert victim.read_bytes() == victim_bytes  # recomputed identically
    after = {p.name: p.read_bytes() for p in (run['out'] / 'semantic').glob('*.png')}
    assert after == before
    # Other settings in the same folder: refused, not mixed.
    with pytest.raises(RuntimeError, match='other settings'):
        run['tool'].main([
            str(run['cfg']), '--device', 'cpu', '--cfg-options',
            'pseudo_labels.segments.num_segments=4'
        ])


def test_tools_test_scores_the_maps(run):
    work = run['tmp'] / 'test_work'
    proc = subprocess.run(
        [sys.executable,
         str(REPO / 'tools' / 'test.py'),
         str(run['cfg']), '--work-dir',
         str(work)],
        cwd=str(run['tmp']),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reported = read_test_metrics(str(work))
    # Host-free recomputation: maps stretched to the GT (cv2 nearest), one
    # confusion over the dataset, DSM's matching.
    import cv2
    conf = np.zeros((21, 21), np.int64)
    for stem in run['stems']:
        gt = np.array(Image.open(run['base'] / 'SegmentationClass' / f'{stem}.png'))
        sem = np.array(Image.open(run['out'] / 'semantic' / f'{stem}.png'))
        sem = cv2.resize(sem, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        conf += confusion_matrix(sem.astype(np.int64), gt.astype(np.int64), 21, 21)
    res = match_clusters(conf, 'max_iou')
    assert reported['mIoU'] == pytest.approx(100 * res.miou, abs=1e-6)
    assert reported['aAcc'] == pytest.approx(100 * res.accuracy, abs=1e-6)


def test_semantic_map_rule(run):
    seg = np.array([[0, 1, 1], [2, 2, 0]])
    sem = run['tool'].semantic_map(seg, np.array([1, 2]), np.array([0, 4]))
    np.testing.assert_array_equal(sem, [[0, 0, 0], [4, 4, 0]])  # cluster 0 shares bg's id
    sem = run['tool'].semantic_map(seg, np.array([1, 2]), np.array([0, 4]), offset=1)
    np.testing.assert_array_equal(sem, [[0, 1, 1], [5, 5, 0]])
    with pytest.raises(ValueError, match='background'):
        run['tool'].semantic_map(seg, np.array([0, 1]), np.array([0, 1]))


def test_self_training_config_builds():
    from mmseg.registry import MODELS

    import mmuol.seg  # noqa: F401
    init_default_scope('mmseg')
    cfg = Config.fromfile(str(TRAIN_CONFIG))
    assert cfg.train_dataloader.dataset.data_prefix.seg_map_path.endswith('/semantic')
    assert [t.type for t in cfg.train_dataloader.dataset.pipeline][:3] == \
        ['LoadImageFromFile', 'LoadAnnotations', 'ResizeLabelToImage']
    assert cfg.val_evaluator.matching == 'max_iou'
    cfg.model.backbone = dict(type='DINOViT', arch=TINY_VIT_ARCH, init_cfg=None)
    cfg.model.decode_head.in_channels = cfg.model.decode_head.channels = 48
    model = MODELS.build(cfg.model)
    out = model(torch.randn(1, 3, 32, 32), mode='tensor')
    assert out.shape == (1, 21, 4, 4)


def test_resize_label_to_image():
    from mmuol.seg.dsm_segmentor import ResizeLabelToImage
    labels = np.array([[1, 2], [3, 4]], np.uint8)
    out = ResizeLabelToImage()(dict(img=np.zeros((4, 6, 3), np.uint8), gt_seg_map=labels))
    np.testing.assert_array_equal(out['gt_seg_map'],
                                  [[1, 1, 1, 2, 2, 2]] * 2 + [[3, 3, 3, 4, 4, 4]] * 2)


def test_a_truncated_image_stops_with_its_name_and_keeps_the_work(tmp_path):
    base, stems = _voc(tmp_path / 'data', n=3)
    jpg = base / 'JPEGImages' / f'{stems[2]}.jpg'
    data = jpg.read_bytes()
    jpg.write_bytes(data[:len(data) // 2])
    torch.manual_seed(0)
    weights = tmp_path / 'tiny_vit.pth'
    torch.save(DINOViT(arch=dict(TINY_VIT_ARCH), init_cfg=None).state_dict(), str(weights))
    out_dir = tmp_path / 'work'
    cfg_path = tmp_path / 'semantic.py'
    cfg_path.write_text(f"""
_base_ = [{str(CONFIG)!r}]
pseudo_labels = dict(
    backbone=dict(_delete_=True, type='DINOViT', arch={dict(TINY_VIT_ARCH)!r},
                  init_cfg=dict(type='Pretrained', checkpoint={str(weights)!r})),
    img_dir={str(base / 'JPEGImages')!r}, out_dir={str(out_dir)!r},
    segments=dict(num_segments=3), clusters=dict(pca_dim=4, num_clusters=3))
""")
    proc = subprocess.run(
        [sys.executable, str(TOOL), str(cfg_path), '--device', 'cpu'],
        capture_output=True,
        text=True,
        cwd=REPO)
    assert proc.returncode == 2
    assert str(jpg) in proc.stderr and 'truncated' in proc.stderr
    assert 'Traceback' not in proc.stderr
    done = sorted(p.stem for p in (out_dir / 'segments').glob('*.npz'))
    assert done == stems[:2]  # the images before it are kept for the re-run
