# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO data side: label maps, transforms, datasets, the KNN-partner wrapper
and the five-crop tool."""
import collections
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, TRANSFORMS
from PIL import Image

import mmuol.seg  # noqa: F401
from mmuol.seg.stego.label_maps import (COCOSTUFF27_CLASSES, COCOSTUFF182_TO_27,
                                        COCOSTUFF_UNUSED_IDS, LABEL_MAPS, label_lut)
from mmuol.testing.scripts import load_script

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _tool(relpath):
    return load_script(REPO / relpath)


def test_cocostuff_label_maps():
    # fingerprint of STEGO's fine_to_coarse: fine ids per coarse class
    counts = collections.Counter(COCOSTUFF182_TO_27.values())
    assert [counts[c] for c in range(27)] == [
        6, 6, 10, 10, 8, 8, 8, 10, 6, 1, 10, 8, 2, 6, 4, 11, 4, 11, 7, 2, 6, 11, 9, 2, 6, 5, 5
    ]
    names = COCOSTUFF27_CLASSES
    for fine, coarse in ((0, 'person'), (2, 'vehicle'), (17, 'animal'), (156, 'sky'), (171, 'wall'),
                         (180, 'window'), (177, 'water'), (120, 'food-stuff'), (53, 'food-things'),
                         (101, 'ceiling')):
        assert names[COCOSTUFF182_TO_27[fine]] == coarse
    lut = label_lut('cocostuff182_to_27')
    assert lut[255] == 255 and lut[182] == 255 and lut[156] == 23
    # mmseg's 171 contiguous ids skip the 11 unused COCO ids
    lut171 = label_lut('cocostuff171_to_27')
    used = [i for i in range(182) if i not in COCOSTUFF_UNUSED_IDS]
    assert len(LABEL_MAPS['cocostuff171_to_27']) == 171
    assert all(lut171[k] == COCOSTUFF182_TO_27[fine] for k, fine in enumerate(used))
    assert lut171[11] == COCOSTUFF182_TO_27[12]  # 171-id 11 is COCO id 12 (stop sign)
    assert lut171[171] == 255


def test_cityscapes_and_potsdam_maps():
    lut = label_lut('cityscapes_labelids_to_27')
    np.testing.assert_array_equal(lut[[0, 6, 7, 8, 33, 34, 255]], [255, 255, 0, 1, 26, 255, 255])
    lut = label_lut('potsdam6_to_3')
    np.testing.assert_array_equal(lut[[0, 1, 2, 3, 4, 5, 6, 255]], [0, 1, 2, 2, 0, 1, 255, 255])
    with pytest.raises(KeyError, match='unknown label mapping'):
        label_lut('voc')


def test_remap_and_resize_center_crop_transforms():
    remap = TRANSFORMS.build(dict(type='STEGORemapLabels', mapping='cityscapes_labelids_to_27'))
    seg = np.array([[7, 33], [0, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(remap(dict(gt_seg_map=seg))['gt_seg_map'], [[0, 26], [255, 255]])
    with pytest.raises(ValueError, match='x.png: label values in \\[0, 300\\]'):
        remap(dict(gt_seg_map=np.array([[0, 300]]), seg_map_path='x.png'))
    crop = TRANSFORMS.build(dict(type='STEGOResizeCenterCrop', size=4, eval_at_crop=True))
    img = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    seg = np.arange(48, dtype=np.uint8).reshape(6, 8)
    out = crop(dict(img=img, gt_seg_map=seg, seg_fields=['gt_seg_map'], ori_shape=(6, 8)))
    # shorter side 6 -> 4, longer 8 -> int(4 * 8 / 6) = 5; PIL nearest rows
    # [0, 2, 3, 5], columns [0, 2, 4, 5, 7] -> centre 4 columns [0, 2, 4, 5]
    np.testing.assert_array_equal(out['gt_seg_map'], seg[[0, 2, 3, 5]][:, [0, 2, 4, 5]])
    np.testing.assert_array_equal(out['img'], img[[0, 2, 3, 5]][:, [0, 2, 4, 5]])
    assert out['img_shape'] == (4, 4) and out['ori_shape'] == (4, 4)
    with pytest.raises(ValueError, match='label map of'):
        crop(dict(img=img, gt_seg_map=seg[:3], seg_fields=['gt_seg_map']))


def test_load_potsdam_mat(tmp_path):
    from scipy.io import savemat
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (6, 5, 4), dtype=np.uint8)
    gt = np.array([[0, 1, 2, 3, 4]] * 5 + [[5, 255, 0, 0, 0]], dtype=np.uint8)
    savemat(tmp_path / 'img.mat', {'img': img})
    savemat(tmp_path / 'gt.mat', {'gt': gt})
    pipe = [
        TRANSFORMS.build(dict(type='LoadPotsdamMat')),
        TRANSFORMS.build(dict(type='STEGORemapLabels', mapping='potsdam6_to_3'))
    ]
    res = dict(img_path=str(tmp_path / 'img.mat'), seg_map_path=str(tmp_path / 'gt.mat'))
    for t in pipe:
        res = t(res)
    np.testing.assert_array_equal(res['img'], img[..., [2, 1, 0]])  # RGB -> BGR, IR dropped
    np.testing.assert_array_equal(res['gt_seg_map'][0], [0, 1, 2, 2, 0])
    np.testing.assert_array_equal(res['gt_seg_map'][5], [1, 255, 0, 0, 0])
    savemat(tmp_path / 'bad.mat', {'image': img})
    with pytest.raises(KeyError, match="bad.mat has no 'img'"):
        pipe[0](dict(img_path=str(tmp_path / 'bad.mat')))


def _write_images(folder: Path, n: int, size=(20, 24), with_labels=True):
    """n images with raw labels 0..5 (Potsdam's 6 classes) in blocks."""
    (folder / 'img').mkdir(parents=True, exist_ok=True)
    (folder / 'ann').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = size
    for i in range(n):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        seg = np.zeros((h, w), np.uint8)
        seg[:, w // 2:] = i % 6
        Image.fromarray(img).save(folder / 'img' / f'im{i}.jpg', quality=95)
        if with_labels:
            Image.fromarray(seg).save(folder / 'ann' / f'im{i}.png')


def test_five_crop_tool_writes_resumes_and_checks(tmp_path, capsys):
    src = tmp_path / 'src'
    _write_images(src, 3)
    tool = _tool('tools/stego/five_crop.py')
    out = tmp_path / 'crops'
    args = [
        '--img-dir',
        str(src / 'img'), '--ann-dir',
        str(src / 'ann'), '--out-dir',
        str(out), '--workers', '1'
    ]
    tool.main(args)
    assert '3 images cropped now, 0 already done' in capsys.readouterr().out
    crops = (out / 'crops.txt').read_text().split()
    assert crops == [f'im{i}_{k}' for i in range(3) for k in range(5)]
    img = np.array(Image.open(src / 'img' / 'im1.jpg').convert('RGB'))
    seg = np.array(Image.open(src / 'ann' / 'im1.png'))
    # crop 3 = bottom-right 10x12, crop 4 = centre (top 5, left 6)
    np.testing.assert_array_equal(np.array(Image.open(out / 'label' / 'im1_3.png')), seg[10:, 12:])
    np.testing.assert_array_equal(
        np.array(Image.open(out / 'label' / 'im1_4.png')), seg[5:15, 6:18])
    crop_img = np.array(Image.open(out / 'img' / 'im1_4.jpg'))
    assert crop_img.shape == (10, 12, 3)
    assert np.abs(crop_img.astype(int) - img[5:15, 6:18]).mean() < 20  # JPEG, quality 75
    # resume: nothing rewritten; a deleted crop is redone
    (out / 'img' / 'im2_0.jpg').unlink()
    tool.main(args + ['--workers', '2'])
    assert '1 images cropped now, 2 already done' in capsys.readouterr().out
    assert (out / 'img' / 'im2_0.jpg').is_file()
    assert not list(out.rglob('*.part'))
    # a label map of another size names both files
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(src / 'ann' / 'im0.png')
    (out / 'label' / 'im0_0.png').unlink()
    with pytest.raises(ValueError, match='im0.png is 5x5 but .*im0.jpg is 20x24'):
        tool.main(args)
    with pytest.raises(FileNotFoundError, match='--img-list'):
        tool.main(args + ['--img-list', str(tmp_path / 'nope.txt')])


def test_five_crop_tool_skips_an_unreadable_image(tmp_path, capsys):
    src = tmp_path / 'src'
    _write_images(src, 3)
    data = (src / 'img' / 'im1.jpg').read_bytes()
    (src / 'img' / 'im1.jpg').write_bytes(data[:len(data) // 2])  # truncated
    out = tmp_path / 'crops'
    _tool('tools/stego/five_crop.py').main(
        ['--img-dir', str(src / 'img'), '--out-dir',
         str(out), '--workers', '1'])
    captured = capsys.readouterr()
    assert 'im1.jpg' in captured.out + captured.err and 'truncated' in captured.out + captured.err
    assert '2 unreadable' not in captured.out and '1 unreadable skipped' in captured.out
    assert (out /
            'crops.txt').read_text().split() == [f'im{i}_{k}' for i in (0, 2) for k in range(5)]
    assert json.loads((out / 'five_crop.json').read_text())['unreadable_images'] == ['im1']


def test_five_crop_dataset_and_knn_pair_wrapper(tmp_path):
    src = tmp_path / 'src'
    _write_images(src, 4)
    _tool('tools/stego/five_crop.py').main([
        '--img-dir',
        str(src / 'img'), '--ann-dir',
        str(src / 'ann'), '--out-dir',
        str(tmp_path / 'c'), '--workers', '1'
    ])
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='STEGORemapLabels', mapping='potsdam6_to_3'),
        dict(type='STEGOResizeCenterCrop', size=8),
        dict(type='PackSegInputs')
    ]
    inner = dict(
        type='FiveCropDataset',
        benchmark='potsdam3',
        data_root=str(tmp_path / 'c'),
        pipeline=pipeline)
    ds = DATASETS.build(inner)
    assert len(ds) == 20 and ds.metainfo['classes'][0] == 'roads and cars'
    from mmuol.seg.stego import knn_image_keys
    keys = knn_image_keys(ds)
    assert keys[:2] == ['im0_0.jpg', 'im0_1.jpg']
    # a table whose neighbour 1 of image i is image (i + 1) % 20
    nns = np.stack([(np.arange(20) + k) % 20 for k in range(4)], 1)
    knn = tmp_path / 'knn.npz'
    np.savez(knn, nns=nns, img_keys=np.array(keys))
    pairs = DATASETS.build(
        dict(type='STEGOKNNPairDataset', dataset=inner, knn_file=str(knn), num_neighbors=1))
    assert len(pairs) == 20 and pairs.metainfo['classes'] == ds.metainfo['classes']
    item = pairs[7]
    sample = item['data_samples']
    assert sample.img_pos.shape == (3, 8, 8) and sample.img_pos.dtype == torch.uint8
    assert sample.img_pos_path.endswith('im1_3.jpg')  # index 8
    torch.testing.assert_close(sample.img_pos, ds[8]['inputs'])
    # errors: wrong images, wrong length, too few columns, no file
    np.savez(knn, nns=nns, img_keys=np.array(keys[::-1]))
    with pytest.raises(ValueError, match='computed for other images: entry 0'):
        DATASETS.build(
            dict(type='STEGOKNNPairDataset', dataset=inner, knn_file=str(knn), num_neighbors=1))
    np.savez(knn, nns=nns[:5])
    with pytest.raises(ValueError, match='5 rows for a dataset of 20'):
        DATASETS.build(
            dict(type='STEGOKNNPairDataset', dataset=inner, knn_file=str(knn), num_neighbors=1))
    np.savez(knn, nns=nns)
    with pytest.raises(ValueError, match='num_neighbors=7 needs more than 7 columns'):
        DATASETS.build(dict(type='STEGOKNNPairDataset', dataset=inner, knn_file=str(knn)))
    with pytest.raises(FileNotFoundError, match='precompute_knns.py'):
        DATASETS.build(
            dict(type='STEGOKNNPairDataset', dataset=inner, knn_file=str(tmp_path / 'none.npz')))
    with pytest.raises(FileNotFoundError, match='five_crop.py'):
        DATASETS.build(dict(type='FiveCropDataset', data_root=str(tmp_path / 'src')))


def test_benchmark_datasets_read_their_layouts(tmp_path):
    root = tmp_path / 'cocostuff'
    (root / 'images' / 'val2017').mkdir(parents=True)
    (root / 'annotations' / 'val2017').mkdir(parents=True)
    (root / 'curated' / 'val2017').mkdir(parents=True)
    for stem in ('000000000139', '000000000285'):
        Image.fromarray(np.zeros((4, 4, 3),
                                 np.uint8)).save(root / 'images' / 'val2017' / f'{stem}.jpg')
        Image.fromarray(np.full((4, 4), 156,
                                np.uint8)).save(root / 'annotations' / 'val2017' / f'{stem}.png')
    (root / 'curated' / 'val2017' / 'list.txt').write_text('000000000285\n')
    ds = DATASETS.build(
        dict(
            type='COCOStuff27Dataset',
            data_root=str(root),
            ann_file='curated/val2017/list.txt',
            data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017'),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations'),
                dict(type='STEGORemapLabels', mapping='cocostuff182_to_27'),
                dict(type='PackSegInputs')
            ]))
    assert len(ds) == 1 and len(ds.metainfo['classes']) == 27
    assert (ds[0]['data_samples'].gt_sem_seg.data == 23).all()  # sky
    city = DATASETS.build(dict(type='Cityscapes27Dataset', data_root=str(tmp_path), lazy_init=True))
    assert city.img_suffix == '_leftImg8bit.png' and city.seg_map_suffix == '_gtFine_labelIds.png'
    assert len(city.metainfo['classes']) == 27
    pots = DATASETS.build(dict(type='Potsdam3Dataset', data_root=str(tmp_path), lazy_init=True))
    assert pots.img_suffix == '.mat' and len(pots.metainfo['classes']) == 3
