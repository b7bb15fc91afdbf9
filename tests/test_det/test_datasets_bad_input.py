# Copyright (c) mmuol contributors. All rights reserved.
"""Bad input in the detection path: each kind gives an error naming the file,
or, with ``skip_invalid=True``, a skip that is counted; odd image formats are
decoded like the official loader (one decoder)."""
import json
import os.path as osp

import numpy as np
import pytest
from mmdet.registry import DATASETS, TRANSFORMS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmuol.det  # noqa: F401
from mmuol.testing.det_data import (BAD_VOC_KINDS, IMAGE_FORMATS, LOAD_TIME_KINDS,
                                    make_bad_voc_dataset, make_coco_dataset, write_image_as)

CONFIGS = osp.join(osp.dirname(__file__), '..', '..', 'configs', '_base_', 'datasets')
TEST_TIME_KINDS = [k for k in BAD_VOC_KINDS if k not in LOAD_TIME_KINDS]

#: What the error says for each load-time kind.
LOAD_MESSAGES = {
    'malformed_xml': 'malformed XML',
    'no_bndbox': 'has no <bndbox>',
    'non_numeric': "<xmax> is '24px', not a number",
    'inverted_box': 'inverted box xmin=31',
    'missing_image': 'image file not found',
    'missing_annotation': 'annotation file not found',
}


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def _voc_cfg(data_root, **kwargs):
    ds = Config.fromfile(osp.join(CONFIGS, 'voc07_corloc.py')).test_dataloader.dataset
    ds.update(data_root=data_root, **kwargs)
    return ds


@pytest.mark.parametrize('kind', LOAD_TIME_KINDS)
def test_voc_load_time_errors_name_the_file(tmp_path, kind):
    info = make_bad_voc_dataset(str(tmp_path), kinds=[kind])
    with pytest.raises(ValueError) as err:
        DATASETS.build(_voc_cfg(info['data_root']))
    msg = str(err.value)
    assert f'{info["paths"][kind]}: ' in msg and LOAD_MESSAGES[kind] in msg, msg
    assert '1 of 6 entries are invalid' in msg  # the blank line is no entry
    assert 'skip_invalid=True' in msg


def test_voc_skip_invalid_keeps_the_good_entries(tmp_path):
    info = make_bad_voc_dataset(str(tmp_path))
    ds = DATASETS.build(_voc_cfg(info['data_root'], skip_invalid=True))
    # Load-time kinds are dropped; decode-time ones are only found later.
    kept = [ds.get_data_info(i)['img_id'] for i in range(len(ds))]
    late = [info['bad'][k] for k in TEST_TIME_KINDS]
    assert kept == info['valid_ids'][:2] + late + info['valid_ids'][2:]
    invalid = ds.metainfo['invalid_images']
    assert len(invalid) == len(LOAD_TIME_KINDS)
    for kind in LOAD_TIME_KINDS:
        assert any(line.startswith(info['paths'][kind]) for line in invalid), kind
    # Valid boxes are LOST's, and the pipeline sees the option.
    first = ds[0]
    assert first['data_samples'].gt_instances.bboxes.tensor.tolist() == info['gt']['000001']
    assert first['data_samples'].skip_invalid is True


def test_voc_empty_or_all_invalid_list(tmp_path):
    info = make_bad_voc_dataset(str(tmp_path), kinds=['malformed_xml'])
    ann = osp.join(info['data_root'], info['ann_file'])
    with open(ann, 'w') as f:
        f.write('\n\n')
    with pytest.raises(ValueError, match='trainval.txt lists no image'):
        DATASETS.build(_voc_cfg(info['data_root']))
    with open(ann, 'w') as f:
        f.write(info['bad']['malformed_xml'] + '\n')
    with pytest.raises(ValueError, match='no valid image left'):
        DATASETS.build(_voc_cfg(info['data_root'], skip_invalid=True))


@pytest.mark.parametrize('kind', TEST_TIME_KINDS)
def test_undecodable_images(tmp_path, kind):
    """Decode failures raise naming the file, or are skipped with a reason.

    The 1x1 image decodes: the detector rejects it (see test_localizer).
    """
    info = make_bad_voc_dataset(str(tmp_path), kinds=[kind])
    ds = DATASETS.build(_voc_cfg(info['data_root']))
    idx = [ds.get_data_info(i)['img_id'] for i in range(len(ds))].index(info['bad'][kind])
    path = info['paths'][kind]
    if kind == 'tiny_image':
        assert ds[idx]['inputs'].shape == (3, 1, 1)
        return
    cause = {'truncated_jpeg': 'image file is truncated', 'empty_jpeg': 'empty \\(0 bytes\\)'}[kind]
    with pytest.raises(ValueError, match=f'cannot read image {path}: .*{cause}.*skip_invalid=True'):
        ds[idx]
    ds = DATASETS.build(_voc_cfg(info['data_root'], skip_invalid=True))
    sample = ds[idx]['data_samples']
    assert sample.invalid_reason.startswith(f'cannot read image {path}')
    assert sample.skip_invalid is True and sample.img_shape == (1, 1)


def test_missing_image_at_test_time_names_it(tmp_path):
    """An image deleted after the dataset loaded."""
    load = TRANSFORMS.build(dict(type='LoadCorLocImageFromFile'))
    path = str(tmp_path / 'gone.jpg')
    with pytest.raises(ValueError, match='cannot read image .*gone.jpg: FileNotFoundError'):
        load(dict(img_path=path))


@pytest.mark.parametrize('fmt', IMAGE_FORMATS)
def test_image_formats_decode_like_the_official_loader(tmp_path, fmt):
    """Palette, CMYK, 16-bit RGB and 16-bit gray files give the image the
    official loader sees (16-bit gray is not clipped to white), in BGR."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(12, 20, 3), dtype=np.uint8)
    rgb[2:8, 4:12] = 250
    path = str(tmp_path / 'img.jpg')
    expected = write_image_as(path, rgb, fmt)
    if fmt in ('rgb16', 'gray16'):
        with Image.open(path) as im:
            assert im.mode != 'RGB' or fmt == 'rgb16'
    out = TRANSFORMS.build(dict(type='LoadCorLocImageFromFile'))(dict(img_path=path))
    assert out['img'].dtype == np.uint8 and out['img_shape'] == out['ori_shape'] == (12, 20)
    np.testing.assert_array_equal(out['img'], expected[..., ::-1])
    if fmt == 'gray16':
        assert out['img'].min() < 100  # not an all-white image


def _coco_cfg(coco, **kwargs):
    ds = Config.fromfile(osp.join(CONFIGS, 'coco20k_corloc.py')).test_dataloader.dataset
    ds.update(dict(data_root=coco['data_root'], image_list=coco['image_list']))
    ds.update(kwargs)
    return ds


def test_coco_malformed_json(tmp_path):
    coco = make_coco_dataset(str(tmp_path))
    ann = osp.join(coco['data_root'], coco['ann_file'])
    with open(ann, 'w') as f:
        f.write('{"images": [')
    with pytest.raises(ValueError, match='instances_train2014.json is not a valid COCO'):
        DATASETS.build(_coco_cfg(coco))
    with open(ann, 'w') as f:
        f.write('[1, 2]')
    with pytest.raises(ValueError, match='instances_train2014.json is not a valid COCO'):
        DATASETS.build(_coco_cfg(coco))
    with pytest.raises(FileNotFoundError, match='nope.json'):
        DATASETS.build(_coco_cfg(coco, ann_file='nope.json'))


def test_coco_invalid_entries(tmp_path):
    coco = make_coco_dataset(str(tmp_path))
    ann = osp.join(coco['data_root'], coco['ann_file'])
    with open(ann) as f:
        data = json.load(f)
    data['annotations'][0]['bbox'] = [16, 8, -4, 10]  # image 1: negative width
    with open(ann, 'w') as f:
        json.dump(data, f)
    missing = osp.join(coco['data_root'], 'train2014', 'COCO_train2014_000000000002.jpg')
    Image.open(missing).close()
    import os
    os.remove(missing)
    with pytest.raises(ValueError) as err:
        DATASETS.build(_coco_cfg(coco))
    msg = str(err.value)
    assert '2 of 2 entries are invalid' in msg
    assert 'image id 1' in msg and 'bbox [16, 8, -4, 10]' in msg
    assert f'{missing}: image file not found' in msg
    with pytest.raises(ValueError, match='no valid image left'):
        DATASETS.build(_coco_cfg(coco, skip_invalid=True))
    ds = DATASETS.build(_coco_cfg(coco, image_list=None, skip_invalid=True))
    assert len(ds) == 1 and len(ds.metainfo['invalid_images']) == 2
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n')
    with pytest.raises(ValueError, match='empty.txt lists no image'):
        DATASETS.build(_coco_cfg(coco, image_list=str(empty)))


def test_coco_bbox_of_strings_is_invalid(tmp_path):
    coco = make_coco_dataset(str(tmp_path))
    ann = osp.join(coco['data_root'], coco['ann_file'])
    with open(ann) as f:
        data = json.load(f)
    data['annotations'][0]['bbox'] = ['16', '8', '4', '10']
    with open(ann, 'w') as f:
        json.dump(data, f)
    with pytest.raises(ValueError) as err:
        DATASETS.build(_coco_cfg(coco))
    assert "bbox ['16', '8', '4', '10']" in str(err.value) and ann in str(err.value)
