# Copyright (c) mmuol contributors. All rights reserved.
"""CorLoc datasets: LOST's GT conventions for VOC and COCO20k."""
import os.path as osp

import numpy as np
import pytest
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmuol.det  # noqa: F401
from mmuol.det.datasets import COCO20K_FILE_LIST
from mmuol.testing.det_data import make_coco_dataset, make_voc_dataset

CONFIGS = osp.join(osp.dirname(__file__), '..', '..', 'configs', '_base_', 'datasets')


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


@pytest.fixture(scope='module')
def voc(tmp_path_factory):
    return make_voc_dataset(str(tmp_path_factory.mktemp('voc')))


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    return make_coco_dataset(str(tmp_path_factory.mktemp('coco')))


def _voc_cfg(voc, **kwargs):
    cfg = Config.fromfile(osp.join(CONFIGS, 'voc07_corloc.py'))
    ds = cfg.test_dataloader.dataset
    ds.update(data_root=voc['data_root'], **kwargs)
    return ds


def test_voc_boxes_are_losts(voc):
    """[xmin - 1, ymin - 1, xmax, ymax]; all objects; hard ones flagged."""
    ds = DATASETS.build(_voc_cfg(voc))
    assert len(ds) == 3
    assert ds.metainfo['classes'] == ('foreground', )
    assert ds.metainfo['dataset_type'] == 'VOC2007'
    for i, img_id in enumerate(voc['img_ids']):
        info = ds.get_data_info(i)
        assert info['img_id'] == img_id
        expected = voc['gt'][img_id]
        assert [inst['bbox'] for inst in info['instances']] == \
            [box for box, _, _ in expected]
        assert [inst['ignore_flag'] for inst in info['instances']] == \
            [int(bool(d or t)) for _, d, t in expected]
        assert all(inst['bbox_label'] == 0 for inst in info['instances'])


def test_voc_pipeline_splits_hard_boxes(voc):
    ds = DATASETS.build(_voc_cfg(voc))
    sample = ds[0]['data_samples']
    assert sample.gt_instances.bboxes.tensor.tolist() == [[16, 8, 48, 40]]
    assert sample.ignored_instances.bboxes.tensor.tolist() == [[2, 2, 10, 10]]
    assert sample.img_shape == voc['image_hw'] == sample.ori_shape
    assert ds[0]['inputs'].shape == (3, *voc['image_hw'])
    # Truncated object: hard by default, not with hard_attributes=difficult.
    assert len(ds[1]['data_samples'].gt_instances) == 0
    ds = DATASETS.build(_voc_cfg(voc, hard_attributes=('difficult', )))
    assert len(ds[1]['data_samples'].gt_instances) == 1
    with pytest.raises(ValueError, match='hard_attributes'):
        DATASETS.build(_voc_cfg(voc, hard_attributes=('occluded', )))


def test_voc12_config(voc, tmp_path):
    cfg = Config.fromfile(osp.join(CONFIGS, 'voc12_corloc.py'))
    ds = cfg.test_dataloader.dataset
    assert ds.ann_file == 'VOC2012/ImageSets/Main/trainval.txt'
    info = make_voc_dataset(str(tmp_path), year='2012')
    ds.data_root = info['data_root']
    built = DATASETS.build(ds)
    assert len(built) == 3 and built.metainfo['dataset_type'] == 'VOC2012'


def _coco_cfg(coco, **kwargs):
    cfg = Config.fromfile(osp.join(CONFIGS, 'coco20k_corloc.py'))
    ds = cfg.test_dataloader.dataset
    ds.update(dict(data_root=coco['data_root'], image_list=coco['image_list']))
    ds.update(kwargs)
    return ds


def test_coco20k_selection_and_boxes(coco):
    """Listed images only; boxes rounded like LOST (round half to even);
    crowd boxes removed."""
    ds = DATASETS.build(_coco_cfg(coco))
    assert len(ds) == 2
    assert ds.metainfo['classes'] == ('foreground', )
    for i, img_id in enumerate(coco['listed_ids']):
        info = ds.get_data_info(i)
        assert info['img_id'] == img_id
        assert [inst['bbox'] for inst in info['instances']] == \
            coco['gt'][img_id]
    # 40.5 -> 40 and 2.5 -> 2: Python's round, as LOST's int(round(x)).
    assert ds.get_data_info(1)['instances'][1]['bbox'] == [40, 2, 42, 4]
    sample = ds[0]['data_samples']
    assert sample.gt_instances.bboxes.tensor.tolist() == [[16, 8, 48, 40]]
    assert len(sample.ignored_instances) == 0
    # image_list=None: every image of the annotation file.
    assert len(DATASETS.build(_coco_cfg(coco, image_list=None))) == 3


def test_coco20k_missing_images(coco, tmp_path):
    bad = tmp_path / 'list.txt'
    bad.write_text('train2014/COCO_train2014_000000000099.jpg\n')
    with pytest.raises(ValueError, match='instances_train2014'):
        DATASETS.build(_coco_cfg(coco, image_list=str(bad)))


def test_shipped_coco20k_list():
    cfg = Config.fromfile(osp.join(CONFIGS, 'coco20k_corloc.py'))
    assert 'image_list' not in cfg.test_dataloader.dataset  # the default
    with open(COCO20K_FILE_LIST) as f:
        lines = [line.strip() for line in f if line.strip()]
    assert len(lines) == len(set(lines)) == 19817
    assert all(line.startswith('train2014/COCO_train2014_') for line in lines)
    assert osp.isfile(osp.join(osp.dirname(COCO20K_FILE_LIST), 'README.md'))


def test_preprocessing_matches_lost(voc):
    """Shipped pipeline + data preprocessor == LOST's PIL ToTensor/Normalize
    followed by zero padding to a multiple of the patch size."""
    cfg = Config.fromfile(osp.join(CONFIGS, '..', '..', 'lost', 'lost_dino-vits16_voc07.py'))
    pre = MODELS.build(cfg.model.data_preprocessor)
    ds = DATASETS.build(_voc_cfg(voc))
    item = ds[1]
    data = pre(dict(inputs=[item['inputs']], data_samples=[item['data_samples']]), False)
    x = data['inputs'][0]
    with open(item['data_samples'].img_path, 'rb') as f:
        img = np.asarray(Image.open(f).convert('RGB'), dtype=np.float32) / 255
    ref = (img - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    h, w = img.shape[:2]
    assert x.shape == (3, 48, 64) and (h, w) == (48, 64)
    np.testing.assert_allclose(x.numpy(), ref.transpose(2, 0, 1), atol=1e-5)
    # Padding: 48x64 -> nothing; an odd size pads with zeros at bottom/right.
    odd = pre(dict(inputs=[item['inputs'][:, :40, :50]], data_samples=None), False)['inputs']
    assert odd.shape[-2:] == (48, 64)
    assert (odd[0, :, 40:, :] == 0).all() and (odd[0, :, :, 50:] == 0).all()
