# Copyright (c) mmuol contributors. All rights reserved.
"""Class-agnostic zero-shot datasets: every category (COCO / LVIS-style json,
VOC XML of any class name) becomes label 0; LVIS images are found through
``coco_url``; difficult VOC objects are ignored; errors name the file."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

import mmuol.det.cutler  # noqa: F401
from mmuol.testing.det_data import make_voc_dataset


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def _build(**cfg):
    from mmdet.registry import DATASETS
    return DATASETS.build(cfg)


def test_coco_and_lvis_style_json(tmp_path):
    os.makedirs(tmp_path / 'val2017')
    for name in ('a.jpg', 'b.jpg'):
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / 'val2017' / name)
    poly = [[2, 2, 12, 2, 12, 10, 2, 10]]
    lvis = dict(
        images=[
            dict(id=1, coco_url='http://images.cocodataset.org/val2017/a.jpg', height=20, width=30),
            dict(id=2, coco_url='http://images.cocodataset.org/val2017/b.jpg', height=20, width=30)
        ],
        annotations=[
            # No "iscrowd" (LVIS): not crowd. Two categories -> label 0 both.
            dict(id=1, image_id=1, category_id=5, bbox=[2, 2, 10, 8], area=80, segmentation=poly),
            dict(
                id=2,
                image_id=1,
                category_id=9,
                bbox=[0, 0, 4, 4],
                area=16,
                segmentation=[[0, 0, 4, 0, 4, 4, 0, 4]]),
            dict(
                id=3,
                image_id=2,
                category_id=9,
                bbox=[1, 1, 5, 5],
                area=25,
                iscrowd=1,
                segmentation=[[1, 1, 6, 1, 6, 6, 1, 6]]),
        ],
        categories=[dict(id=5, name='x'), dict(id=9, name='y')])
    (tmp_path / 'lvis.json').write_text(json.dumps(lvis))
    ds = _build(
        type='ClassAgnosticCocoDataset',
        data_root=str(tmp_path),
        ann_file='lvis.json',
        data_prefix=dict(img=''),
        test_mode=True,
        pipeline=[])
    assert len(ds) == 2
    info = ds.get_data_info(0)
    assert info['img_path'] == osp.join(str(tmp_path), 'val2017/a.jpg')
    assert [i['bbox_label'] for i in info['instances']] == [0, 0]
    assert [i['bbox'] for i in info['instances']] == [[2, 2, 12, 10], [0, 0, 4, 4]]
    assert [i['ignore_flag'] for i in info['instances']] == [0, 0]
    assert ds.get_data_info(1)['instances'][0]['ignore_flag'] == 1
    assert ds.metainfo['classes'] == ('object', )
    lvis['images'][0].pop('coco_url')
    (tmp_path / 'lvis.json').write_text(json.dumps(lvis))
    with pytest.raises(ValueError, match='image id 1 has neither "file_name" nor "coco_url"'):
        _build(
            type='ClassAgnosticCocoDataset',
            data_root=str(tmp_path),
            ann_file='lvis.json',
            test_mode=True,
            pipeline=[])


def test_voc_layout_any_class_as_object(tmp_path):
    voc = make_voc_dataset(str(tmp_path))
    ds = _build(
        type='ClassAgnosticVOCDataset',
        data_root=voc['data_root'],
        ann_file=voc['ann_file'],
        data_prefix=dict(sub_data_root=voc['sub_data_root']),
        test_mode=True,
        pipeline=[])
    assert len(ds) == 3
    first = ds.get_data_info(0)['instances']
    # 'dog' + a difficult 'person' (mmdet's VOC convention: -1 on every coordinate).
    (x0, y0, x1, y1), (dx0, dy0, dx1, dy1) = voc['gt']['000001'][0][0], voc['gt']['000001'][1][0]
    assert [i['bbox'] for i in first] == [[x0, y0, x1 - 1, y1 - 1], [dx0, dy0, dx1 - 1, dy1 - 1]]
    assert [(i['bbox_label'], i['ignore_flag']) for i in first] == [(0, 0), (0, 1)]
    counted = _build(
        type='ClassAgnosticVOCDataset',
        data_root=voc['data_root'],
        ann_file=voc['ann_file'],
        difficult_as_ignore=False,
        data_prefix=dict(sub_data_root=voc['sub_data_root']),
        test_mode=True,
        pipeline=[])
    assert [i['ignore_flag'] for i in counted.get_data_info(0)['instances']] == [0, 0]
    xml = osp.join(voc['data_root'], voc['sub_data_root'], 'Annotations', '000002.xml')
    with open(xml) as f:
        text = f.read()
    with open(xml, 'w') as f:
        f.write(text.replace('<xmin>', '<xmin>oops'))
    with pytest.raises(ValueError, match=r'000002.xml: object 0 has no complete numeric'):
        _build(
            type='ClassAgnosticVOCDataset',
            data_root=voc['data_root'],
            ann_file=voc['ann_file'],
            data_prefix=dict(sub_data_root=voc['sub_data_root']),
            test_mode=True,
            pipeline=[])
