# Copyright (c) mmuol contributors. All rights reserved.
"""MaskCutDataset on files the tests write: our json and the official layout
(swapped image sizes) give the drawn masks and boxes through
LoadAnnotations; it works inside MultiImageMixDataset with mmdet's CopyPaste
and CutLERCopyPaste; bad files give errors naming the entry, or logged
skips."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

import mmuol.det.cutler  # noqa: F401
from mmuol.pseudo_labels import PseudoLabelFileError
from mmuol.testing.cutler_data import boxes_of, make_maskcut_dataset

LOAD = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def _build(data, **kwargs):
    from mmdet.registry import DATASETS
    cfg = dict(
        type='MaskCutDataset',
        data_root=data['data_root'],
        ann_file=data['ann_file'],
        data_prefix=dict(img=data['img_prefix']),
        pipeline=LOAD)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


@pytest.mark.parametrize('official', [False, True])
def test_masks_and_boxes_through_load_annotations(tmp_path, official):
    data = make_maskcut_dataset(str(tmp_path), num_images=4, image_hw=(48, 64), official=official)
    ds = _build(data, filter_cfg=dict(filter_empty_gt=True))
    assert ds.num_swapped_fixed == (4 if official else 0)
    # Image 3 has no object: dropped from training.
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == [1, 2, 4]
    assert ds.metainfo['classes'] == ('fg', )
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert (info['height'], info['width']) == (48, 64)
        out = ds[i]
        masks = data['masks'][info['img_id']]
        assert out['img'].shape == (48, 64, 3)
        np.testing.assert_array_equal(out['gt_masks'].masks, masks.astype(np.uint8))
        np.testing.assert_allclose(out['gt_bboxes'].numpy(), boxes_of(masks))
        np.testing.assert_array_equal(out['gt_bboxes_labels'], np.zeros(len(masks)))
        assert not out['gt_ignore_flags'].any()
    test_ds = _build(data, test_mode=True, filter_cfg=dict(filter_empty_gt=True))
    assert len(test_ds) == 4  # every image is predicted on (self-training)


def test_copy_paste_wrappers(tmp_path):
    from mmdet.registry import DATASETS
    data = make_maskcut_dataset(str(tmp_path), num_images=4)
    inner = dict(
        type='MaskCutDataset',
        data_root=data['data_root'],
        ann_file=data['ann_file'],
        data_prefix=dict(img=data['img_prefix']),
        pipeline=LOAD,
        filter_cfg=dict(filter_empty_gt=True))
    for transform in (dict(type='CopyPaste',
                           max_num_pasted=3), dict(type='CutLERCopyPaste', ratio_range=(0.3, 1.0))):
        ds = DATASETS.build(
            dict(
                type='MultiImageMixDataset',
                dataset=inner,
                pipeline=[transform, dict(type='PackDetInputs')]))
        np.random.seed(0)
        for i in range(len(ds)):
            sample = ds[i]['data_samples']
            gt = sample.gt_instances
            assert len(gt) >= 1
            masks = gt.masks.masks.astype(bool)
            # Every box is the tight box of its mask (copy-paste recomputes them).
            np.testing.assert_allclose(gt.bboxes.numpy(), boxes_of(masks), err_msg=str(transform))


def _rewrite(data, edit):
    path = osp.join(data['data_root'], data['ann_file'])
    with open(path) as f:
        content = json.load(f)
    edit(content)
    with open(path, 'w') as f:
        json.dump(content, f)


def test_missing_image_error_and_skip(tmp_path, caplog):
    data = make_maskcut_dataset(str(tmp_path), num_images=3)
    os.remove(osp.join(data['data_root'], 'train', data['file_names'][1]))
    with pytest.raises(
            ValueError,
            match=r'1 of 3 images are invalid:\n.*img_002.png: image '
            r'file not found \(image id 2\)'):
        _build(data)
    ds = _build(data, skip_invalid=True)
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == [1, 3]
    assert ds.check_images
    # Without the existence check the dataset loads (and a worker would fail later).
    assert len(_build(data, check_images=False)) == 3


def test_malformed_rle_structure_and_counts(tmp_path):
    data = make_maskcut_dataset(str(tmp_path), num_images=2)

    def wrong_size(content):
        content['annotations'][1]['segmentation']['size'] = [64, 48]

    _rewrite(data, wrong_size)
    with pytest.raises(
            ValueError,
            match=r'annotation id 2 \(image id 1\): mask size \[64, 48\] '
            r'differs from the image entry'):
        _build(data)
    ds = _build(data, skip_invalid=True)
    assert len(ds.get_data_info(0)['instances']) == 1  # the other mask of image 1 is kept

    data = make_maskcut_dataset(str(tmp_path / 'b'), num_images=2)

    def truncated(content):
        seg = content['annotations'][0]['segmentation']
        seg['counts'] = seg['counts'][:len(seg['counts']) // 2]

    _rewrite(data, truncated)
    ds = _build(data)  # run-length totals are checked when the image is loaded
    with pytest.raises(ValueError, match=r'annotation id 1 \(image id 1\): malformed RLE counts'):
        ds[0]
    ds = _build(data, skip_invalid=True)
    out = ds[0]
    np.testing.assert_array_equal(out['gt_masks'].masks, data['masks'][1][1:].astype(np.uint8))


def test_bad_files(tmp_path):
    data = make_maskcut_dataset(str(tmp_path), num_images=3)
    _rewrite(data, lambda c: c['annotations'].clear())
    with pytest.raises(ValueError, match='has no annotation at all'):
        _build(data)
    assert len(_build(data, test_mode=True)) == 3
    _rewrite(data, lambda c: c.pop('images'))
    with pytest.raises(PseudoLabelFileError, match=r'maskcut.json: "images" is missing'):
        _build(data)
    with pytest.raises(FileNotFoundError, match='nothere.json'):
        _build(dict(data, ann_file='annotations/nothere.json'))
    with pytest.raises(ValueError, match='swapped_size'):
        _build(data, swapped_size='yes')
