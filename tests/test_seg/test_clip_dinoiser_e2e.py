# Copyright (c) mmuol contributors. All rights reserved.
"""End to end on the tiny golden open_clip model: CLIP-DINOiser training
through tools/train.py (stub teachers), evaluation through tools/test.py on
the golden slide image (mIoU against the official prediction), and the demo."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from mmseg.registry import MODELS

import mmuol.seg  # noqa: F401
from mmuol.testing.data import synthetic_image
from mmuol.testing.golden import golden_path
from mmuol.testing.localization import load_golden
from mmuol.testing.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
CFG_DIR = REPO / 'configs' / 'clip_dinoiser'
TRAIN_CFG = CFG_DIR / 'clip-dinoiser_vit-b16-laion2b_1xb16-100e_imagenet1k-1k.py'
EVAL_CFG = CFG_DIR / 'clip-dinoiser_vit-b16-laion2b_voc12.py'
NAMES = ['background', 'person', 'bicycle', 'road', 'tree']
HEAD_KEYS = [
    'decode_head.bkg_decoder.bias', 'decode_head.bkg_decoder.weight', 'decode_head.obj_proj.bias',
    'decode_head.obj_proj.weight'
]


def tiny_backbone() -> dict:
    return dict(
        _delete_=True,
        type='MaskCLIPBackbone',
        model_name=None,
        model_config=str(golden_path('clip_dinoiser', 'mmuol-tiny-vit.json')),
        pretrained=str(golden_path('clip_dinoiser', 'tiny_openclip_state_dict_fp16.pt')))


def tiny_vit(patch: int) -> dict:
    return dict(
        type='DINOViT',
        arch=dict(patch_size=patch, embed_dim=48, depth=2, num_heads=3, img_size=32),
        init_cfg=None)


def _run(args, cwd):
    proc = subprocess.run(
        [sys.executable] + [str(a) for a in args],
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _load(path: Path):
    return load_script(path)


def test_train_then_test_through_the_tools(tmp_path):
    # 6 unlabeled images in an ImageFolder tree, 8 drawn with replacement.
    root = tmp_path / 'imagenet' / 'train'
    for i in range(6):
        d = root / f'n0{i % 2}'
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f'{i}.JPEG'), synthetic_image(72, 88, [20, 16, 60, 56], seed=i))
    decoder = tmp_path / 'decoder_weights.pt'
    g = torch.Generator().manual_seed(0)
    torch.save(
        {'decoder': {
            'weight': torch.randn(1, 48, 1, 1, generator=g),
            'bias': torch.zeros(1)
        }}, str(decoder))
    train_cfg = tmp_path / 'tiny_train.py'
    train_cfg.write_text(f"""
_base_ = [{str(TRAIN_CFG)!r}]
model = dict(
    backbone={tiny_backbone()!r},
    decode_head=dict(in_channels=None, embed_dims=None, class_names={NAMES!r}),
    train_cfg=dict(
        dino_teacher=dict(_delete_=True, **{tiny_vit(16)!r}),
        found_teacher=dict(_delete_=True, backbone={tiny_vit(8)!r}, decoder={str(decoder)!r})))
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={str(tmp_path / 'imagenet')!r}, num_samples=8, pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='ResizeShortestEdge', scale=64, max_size=100000),
        dict(type='RandomCrop', crop_size=(64, 64)),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomBrightnessJitter', brightness=0.5),
        dict(type='PackSegInputs')]))
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[3], gamma=0.1, begin=0)]
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=1)
""")
    work = tmp_path / 'work'
    _run([REPO / 'tools/train.py', train_cfg, '--work-dir', work], tmp_path)
    logs = [
        json.loads(line)
        for line in sorted(work.glob('*/vis_data/scalars.json'))[-1].read_text().splitlines()
    ]
    logs = [r for r in logs if 'decode.loss_corr' in r]
    assert [r['iter'] for r in logs] == [1, 2, 3, 4]  # 8 images / batch 4 x 2 epochs
    for r in logs:
        assert r['loss'] == pytest.approx(r['decode.loss_corr'] + r['decode.loss_bkg'], abs=1e-4)
        # cosine logits in [0, 1] against 0/1 targets: BCE in [log(1 + e^-1), log(1 + e)]
        assert 0.31 < r['decode.loss_corr'] < 1.32
    # lr 5e-5, x0.1 from iteration 4 (milestone 3, stepped per iteration)
    assert [r['lr'] for r in logs] == pytest.approx([5e-5, 5e-5, 5e-5, 5e-6], rel=1e-6)
    first = torch.load(str(work / 'epoch_1.pth'), map_location='cpu', weights_only=False)
    ckpt = torch.load(str(work / 'epoch_2.pth'), map_location='cpu', weights_only=False)
    assert sorted(ckpt['state_dict']) == HEAD_KEYS  # no open_clip / teacher weights
    assert ckpt['state_dict']['decode_head.obj_proj.weight'].shape == (256, 64, 3, 3)
    for key in HEAD_KEYS:
        assert not torch.equal(first['state_dict'][key], ckpt['state_dict'][key]), key
    # two learning rates: obj_proj 5e-5 and bkg_decoder 200 x (found_lr 1e-2), after decay
    lrs = {round(g['lr'], 12) for g in ckpt['optimizer']['param_groups']}
    assert lrs == {5e-6, 1e-3}
    # the trained heads load into a fresh model (frozen weights come from open_clip)
    init_default_scope('mmseg')
    model = MODELS.build(
        dict(
            type='CLIPDINOiser',
            backbone={
                k: v
                for k, v in tiny_backbone().items() if k != '_delete_'
            },
            decode_head=dict(
                type='DINOiserHead', in_channels=None, embed_dims=None, class_names=NAMES)))
    load_checkpoint(model, str(work / 'epoch_2.pth'), map_location='cpu', strict=True)
    assert torch.equal(model.decode_head.obj_proj.weight,
                       ckpt['state_dict']['decode_head.obj_proj.weight'])

    # --- evaluation: the golden slide image, GT = official prediction, edited
    z, _ = load_golden('clip_dinoiser/slide_inference')
    voc = tmp_path / 'VOCdevkit' / 'VOC2012'
    for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (voc / sub).mkdir(parents=True)
    cv2.imwrite(str(voc / 'JPEGImages' / 'img0.png'), z['src_image_uint8'][..., ::-1])
    pred = z['seg'].astype(np.uint8)
    gt = pred.copy()
    gt[:20, :20] = 255  # ignored
    gt[100:130, 40:120] = (gt[100:130, 40:120] + 1) % 5  # wrong on purpose
    cv2.imwrite(str(voc / 'SegmentationClass' / 'img0.png'), gt)
    (voc / 'ImageSets/Segmentation/val.txt').write_text('img0\n')
    heads = tmp_path / 'golden_heads.pth'
    _load(REPO / 'tools/model_converters/clip_dinoiser_to_mmuol.py').convert(
        str(golden_path('clip_dinoiser', 'heads_state_dict.pt')), str(heads))
    test_cfg = tmp_path / 'tiny_test.py'
    test_cfg.write_text(f"""
_base_ = [{str(EVAL_CFG)!r}]
model = dict(backbone={tiny_backbone()!r},
             decode_head=dict(in_channels=None, embed_dims=None, class_names={NAMES!r},
                              init_cfg=None))
test_dataloader = dict(num_workers=0, persistent_workers=False,
                       dataset=dict(data_root={str(voc)!r}, img_suffix='.png'))
""")
    work = tmp_path / 'work_test'
    _run([REPO / 'tools/test.py', test_cfg, heads, '--work-dir', work], tmp_path)
    metrics = json.loads(sorted(work.glob('*/*.json'))[-1].read_text())
    valid = gt != 255
    ious = []
    for c in range(21):  # PascalVOCDataset: 21 classes, absent ones are NaN
        inter = ((pred == c) & (gt == c) & valid).sum()
        union = (((pred == c) | (gt == c)) & valid).sum()
        if union:
            ious.append(inter / union)
    expected = 100 * float(np.mean(ious))
    assert 50 < expected < 99  # the edit matters, the rest is right
    assert metrics['mIoU'] == pytest.approx(expected, abs=0.006)


def test_demo_with_local_checkpoint(tmp_path, capsys):
    z, _ = load_golden('clip_dinoiser/slide_inference')
    img = tmp_path / 'img.png'
    cv2.imwrite(str(img), z['src_image_uint8'][..., ::-1])
    common = [
        '--clip-model-config',
        str(golden_path('clip_dinoiser', 'mmuol-tiny-vit.json')), '--clip-checkpoint',
        str(golden_path('clip_dinoiser', 'tiny_openclip_state_dict_fp16.pt')), '--heads',
        str(golden_path('clip_dinoiser', 'heads_state_dict.pt')), '--device', 'cpu'
    ]
    out, pred = tmp_path / 'out' / 'seg.jpg', tmp_path / 'out' / 'pred.png'
    demo = _load(REPO / 'demo/clip_dinoiser_demo.py')
    rc = demo.main(
        [str(img), '--prompts', *NAMES, '--out-file',
         str(out), '--save-pred',
         str(pred)] + common)
    assert rc == 0
    assert 'background rule on' in capsys.readouterr().out
    labels = cv2.imread(str(pred), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(labels, z['seg'])  # = the official slide inference
    vis = cv2.imread(str(out))
    assert vis.shape[1] == 200 and vis.shape[0] > 168  # image + legend
    # bad input: exit code 2 and a message naming the problem
    assert demo.main([str(img), '--out-file', str(out)] + common) == 2
    assert 'no prompts' in capsys.readouterr().err
    assert demo.main([str(img), '--prompts', 'cat', 'cat', '--out-file', str(out)] + common) == 2
    assert 'duplicate' in capsys.readouterr().err
    assert demo.main([str(tmp_path / 'nope.jpg'), '--prompts', 'a', 'b'] + common) == 2
    assert 'not found' in capsys.readouterr().err
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(cv2.imencode('.jpg', z['src_image_uint8'])[1].tobytes()[:300])
    assert demo.main([str(broken), '--prompts', 'a', 'b', '--out-file', str(out)] + common) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and 'truncated' in err
