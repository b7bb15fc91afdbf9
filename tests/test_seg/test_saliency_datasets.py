# Copyright (c) mmuol contributors. All rights reserved.
"""Saliency datasets, FOUND transforms and bad inputs."""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS, TRANSFORMS
from PIL import Image

import mmuol.seg  # noqa: F401
from mmuol.evaluation import aggregate_saliency, saliency_image_stats
from mmuol.testing.seg_data import SALIENCY_LAYOUTS, make_saliency_dataset, tiny_found_segmentor_cfg
from mmuol.utils import decode_image, decode_mask

REPO = Path(__file__).resolve().parents[2]
TEST_PIPELINE = [
    dict(type='LoadSaliencyImageFromFile'),
    dict(type='LoadSaliencyAnnotations'),
    dict(type='PackSegInputs'),
]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _png_bytes(arr, mode=None):
    buf = io.BytesIO()
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(buf, format='PNG')
    return buf.getvalue()


@pytest.mark.parametrize('layout', sorted(SALIENCY_LAYOUTS))
def test_datasets_in_released_layouts(tmp_path, layout):
    info = make_saliency_dataset(tmp_path, layout)
    base = {
        'ecssd': 'ecssd_saliency.py',
        'duts-te': 'duts-te_saliency.py',
        'dut-omron': 'dut-omron_saliency.py',
    }.get(layout)
    if base is None:  # DUTS-TR: training images only
        ds = DATASETS.build(
            dict(
                type='DUTSDataset',
                data_root=info['data_root'],
                data_prefix=dict(img_path=info['img_path']),
                pipeline=[dict(type='LoadSaliencyImageFromFile'),
                          dict(type='PackSegInputs')]))
        item = ds[0]
        assert 'gt_sem_seg' not in item['data_samples']
        assert len(ds) == 3
        return
    cfg = Config.fromfile(str(REPO / 'configs/_base_/datasets' / base))
    dcfg = cfg.test_dataloader.dataset
    assert dcfg.type == info['dataset_type']
    assert dcfg.data_prefix.img_path == info['img_path']
    assert dcfg.data_prefix.seg_map_path == info['seg_map_path']
    dcfg.data_root = info['data_root']
    ds = DATASETS.build(dcfg)
    assert len(ds) == 3
    assert ds.metainfo['classes'] == ('background', 'foreground')
    item = ds[1]
    gt = item['data_samples'].gt_sem_seg.data
    assert item['inputs'].shape[1:] == gt.shape[1:] == (48, 40)
    assert set(gt.unique().tolist()) == {0, 255}
    assert item['data_samples'].ori_shape == (48, 40)


def test_dataset_errors(tmp_path):
    info = make_saliency_dataset(tmp_path, 'ecssd')
    cfg = dict(
        type='ECSSDDataset',
        data_root=info['data_root'],
        data_prefix=dict(img_path='images', seg_map_path='ground_truth_mask'))
    (tmp_path / 'ECSSD' / 'ground_truth_mask' / f'{info["stems"][0]}.png').unlink()
    with pytest.raises(FileNotFoundError, match='no mask'):
        DATASETS.build(cfg)
    with pytest.raises(FileNotFoundError, match='image folder'):
        DATASETS.build(dict(cfg, data_root=str(tmp_path / 'nope')))
    # ann_file with stems selects a subset.
    ann = tmp_path / 'subset.txt'
    ann.write_text(f'{info["stems"][1]}\n{info["stems"][2]}.jpg\n')
    ds = DATASETS.build(dict(cfg, ann_file=str(ann)))
    assert len(ds) == 2


def test_found_random_scale_geometry():
    t = TRANSFORMS.build(dict(type='FOUNDRandomScale', size=224, scale_range=(0.1, 3.0)))
    # Shorter side -> 224 keeping the aspect, int() on the longer side.
    assert t._sizes(300, 451, 0.5)[0] == (224, int(451 / 300 * 224))
    assert t._sizes(451, 300, 0.5)[0] == (int(451 / 300 * 224), 224)
    assert t._sizes(300, 451, 0.5)[1] == (112, int(int(451 / 300 * 224) * 0.5))
    img = np.random.default_rng(0).integers(0, 255, (60, 90, 3), np.uint8)
    np.random.seed(0)
    out = t(dict(img=img.copy(), gt_seg_map=np.zeros((60, 90), np.uint8)))
    assert out['img'].shape == (224, 224, 3) and out['img'].dtype == np.uint8
    assert out['gt_seg_map'].shape == (224, 224)
    assert 0.1 <= out['found_scale'] <= 3.0
    assert out['img'].flags.writeable
    np.random.seed(0)
    again = t(dict(img=img.copy()))
    np.testing.assert_array_equal(again['img'], out['img'])
    with pytest.raises(ValueError):
        TRANSFORMS.build(dict(type='FOUNDRandomScale', scale_range=(0, 1)))


def test_found_gaussian_blur():
    import cv2
    img = np.random.default_rng(1).integers(0, 255, (224, 224, 3), np.uint8)
    never = TRANSFORMS.build(dict(type='FOUNDGaussianBlur', prob=0.0))
    np.testing.assert_array_equal(never(dict(img=img.copy()))['img'], img)
    always = TRANSFORMS.build(dict(type='FOUNDGaussianBlur', prob=1.0))
    np.random.seed(3)
    out = always(dict(img=img.copy()))
    sigma = out['found_blur_sigma']
    assert 0.1 <= sigma <= 2.0
    # Kernel int(0.1 * 224 // 2 * 2) + 1 = 23 as upstream.
    np.testing.assert_array_equal(out['img'], cv2.GaussianBlur(img, (23, 23), sigma))
    with pytest.raises(ValueError):
        TRANSFORMS.build(dict(type='FOUNDGaussianBlur', kernel_size=4))


def test_bad_images_are_converted():
    rgb = np.random.default_rng(2).integers(0, 255, (9, 11, 3), np.uint8)
    gray = rgb[..., 0]
    # Grayscale -> 3 equal channels.
    out = decode_image(_png_bytes(gray), 'rgb')
    assert out.shape == (9, 11, 3)
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, 2))
    # RGBA -> alpha dropped (PIL convert('RGB'), as the official code).
    rgba = np.concatenate([rgb, np.full((9, 11, 1), 7, np.uint8)], 2)
    np.testing.assert_array_equal(decode_image(_png_bytes(rgba), 'rgb'), rgb)
    # BGR by default (mmseg convention).
    np.testing.assert_array_equal(decode_image(_png_bytes(rgb)), rgb[..., ::-1])
    # 16-bit grayscale PNG -> >> 8 (PIL would clip it to 255).
    g16 = (np.arange(99).reshape(9, 11) * 600).astype(np.uint16)
    out = decode_image(_png_bytes(g16), 'rgb')
    np.testing.assert_array_equal(out[..., 0], (g16 >> 8).astype(np.uint8))
    with pytest.raises(ValueError, match='cannot decode'):
        decode_image(b'not an image')


def test_bad_masks():
    m = np.zeros((5, 6), np.uint8)
    m[1:3, 2:5] = 255
    np.testing.assert_array_equal(decode_mask(_png_bytes(m)), m)
    # RGB mask -> L as the official convert('L').
    rgb = np.repeat(m[..., None], 3, 2)
    np.testing.assert_array_equal(decode_mask(_png_bytes(rgb)), m)
    # 16-bit mask {0, 65535} -> {0, 255}.
    m16 = m.astype(np.uint16) * 257
    np.testing.assert_array_equal(decode_mask(_png_bytes(m16)), m)


def _write(path, arr):
    Image.fromarray(arr).save(path)


def test_loading_transforms_on_bad_files(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 255, (12, 10, 3), np.uint8)
    mask = np.zeros((12, 10), np.uint8)
    mask[3:9, 2:8] = 255
    _write(tmp_path / 'img.png', rgb)
    load = TRANSFORMS.build(dict(type='LoadSaliencyImageFromFile'))
    res = load(dict(img_path=str(tmp_path / 'img.png')))
    assert res['ori_shape'] == (12, 10) and res['img'].shape == (12, 10, 3)
    ann = TRANSFORMS.build(dict(type='LoadSaliencyAnnotations'))
    # GT/image size mismatch: a clear error naming both files.
    _write(tmp_path / 'small.png', mask[:10])
    with pytest.raises(ValueError, match='10x10 but its image'):
        ann(dict(res, seg_map_path=str(tmp_path / 'small.png')))
    # Values other than {0, 255}: kept by default, strict mode raises.
    soft = mask.copy()
    soft[3, 2] = 128
    _write(tmp_path / 'soft.png', soft)
    out = ann(dict(res, seg_map_path=str(tmp_path / 'soft.png')))
    assert out['gt_seg_map'][3, 2] == 128
    strict = TRANSFORMS.build(dict(type='LoadSaliencyAnnotations', strict_binary=True))
    with pytest.raises(ValueError, match='outside'):
        strict(dict(res, seg_map_path=str(tmp_path / 'soft.png')))
    (tmp_path / 'broken.jpg').write_bytes(b'garbage')
    with pytest.raises(ValueError, match='broken.jpg'):
        load(dict(img_path=str(tmp_path / 'broken.jpg')))


def test_tiny_image_and_grayscale_end_to_end(tmp_path):
    """Images smaller than a patch and grayscale / RGBA / 16-bit files run
    through dataset -> model -> metric."""
    from mmengine.dataset import pseudo_collate
    root = tmp_path / 'ECSSD'
    (root / 'images').mkdir(parents=True)
    (root / 'ground_truth_mask').mkdir()
    rng = np.random.default_rng(4)
    files = {
        'a_tiny': rng.integers(0, 255, (5, 3, 3), np.uint8),
        'b_gray': rng.integers(0, 255, (20, 17), np.uint8),
        'c_rgba': rng.integers(0, 255, (16, 24, 4), np.uint8),
        'd_16bit': (rng.integers(0, 65535, (18, 18))).astype(np.uint16),
    }
    for stem, arr in files.items():
        _write(root / 'images' / f'{stem}.png', arr)
        m = np.zeros(arr.shape[:2], np.uint8)
        m[:arr.shape[0] // 2] = 255
        _write(root / 'ground_truth_mask' / f'{stem}.png', m)
    ds = DATASETS.build(
        dict(
            type='ECSSDDataset',
            data_root=str(root),
            data_prefix=dict(img_path='images', seg_map_path='ground_truth_mask'),
            pipeline=TEST_PIPELINE))
    model = MODELS.build(tiny_found_segmentor_cfg()).eval()
    from mmseg.registry import METRICS
    metric = METRICS.build(dict(type='SaliencyMetric'))
    metric.dataset_meta = ds.metainfo
    stats = []
    for i, stem in enumerate(sorted(files)):
        batch = pseudo_collate([ds[i]])
        arr = files[stem]
        # Decoded as documented: gray -> 3 channels, alpha dropped, 16 bit >> 8 (BGR order).
        eight_bit = (arr >> 8).astype(np.uint8) if arr.dtype == np.uint16 else arr
        if eight_bit.ndim == 2:
            rgb = np.repeat(eight_bit[..., None], 3, 2)
        else:
            rgb = eight_bit[..., :3]
        np.testing.assert_array_equal(batch['inputs'][0].permute(1, 2, 0).numpy(), rgb[..., ::-1])
        with torch.no_grad():
            out = model.test_step(batch)
        h, w = arr.shape[:2]
        assert out[0].pred_saliency.shape == (h, w)
        metric.process(batch, [o.to_dict() for o in out])
        gt = np.zeros((h, w), np.uint8)
        gt[:h // 2] = 255
        stats.append(saliency_image_stats(out[0].pred_saliency.data[0].numpy(), gt))
    res = metric.evaluate(len(ds))
    expected = aggregate_saliency(stats)
    for name in ('max_fbeta', 'iou', 'accuracy', 'mae'):
        assert res[f'saliency/tokencut_{name}'] == pytest.approx(expected[name], abs=1e-9), name
