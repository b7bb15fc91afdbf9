# Copyright (c) mmuol contributors. All rights reserved.
"""Pseudo-label json writer / reader: official annotation dicts reproduced,
boxes and RLE against pycocotools, the official width/height swap read back,
byte-identical and atomic writes, malformed RLE detected."""
import json
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mmuol.pseudo_labels import (CATEGORY, PseudoLabelFileError, annotation_entry,
                                 annotations_from_masks, build_dataset, check_rles, decode_mask,
                                 dump_json, encode_mask, fix_swapped_sizes, image_entry, load_json,
                                 rle_run_totals)
from mmuol.testing import golden_path


def _masks(h=37, w=53, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((4, h, w), bool)
    masks[0, 3:20, 5:40] = True
    masks[1] = rng.random((h, w)) < 0.3  # many runs
    masks[2, -1, -1] = True  # one pixel in the last corner
    return masks  # masks[3] is empty


@pytest.mark.parametrize(
    'case', ['maskcut_60x60_d768_rect_ellipse.npz', 'maskcut_60x60_d768_three_objects.npz'])
def test_annotations_equal_official_maskcut_dicts(case):
    """The official create_annotation_info dicts (golden) are reproduced exactly
    from the official post-CRF masks; empty masks are dropped as officially."""
    z = np.load(golden_path('maskcut', case))
    meta = json.loads(str(z['meta_json']))['crf']
    official = meta['annotations']
    anns = annotations_from_masks(z['crf_post_mask'], image_id=1, first_id=1)
    kept = [a for a in official if a is not None]
    assert len(anns) == len(kept) >= 2
    for ours, theirs in zip(anns, kept):
        for key in ('segmentation', 'bbox', 'area', 'iscrowd', 'category_id', 'image_id', 'id'):
            assert ours[key] == theirs[key], key
    assert CATEGORY == {'id': 1, 'name': 'fg', 'supercategory': 'fg'}


def test_rle_box_area_against_pycocotools():
    masks = _masks()
    anns = annotations_from_masks(masks, image_id=7, first_id=10, scores=[0.9, 0.8, 0.7, 0.6])
    assert [a['id'] for a in anns] == [10, 11, 12]  # the empty mask takes no id
    assert [a['score'] for a in anns] == [0.9, 0.8, 0.7]
    for ann, mask in zip(anns, masks[:3]):
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ann['segmentation'] == {'size': [37, 53], 'counts': ref['counts'].decode('ascii')}
        assert isinstance(ann['segmentation']['counts'], str)
        assert ann['bbox'] == mask_utils.toBbox(ref).tolist()
        assert ann['area'] == int(mask.sum()) == int(mask_utils.area(ref))
        np.testing.assert_array_equal(decode_mask(ann['segmentation']), mask)
    assert anns[0]['bbox'] == [5.0, 3.0, 35.0, 17.0]
    assert anns[2]['bbox'] == [52.0, 36.0, 1.0, 1.0]
    assert annotation_entry(1, 1, masks[3]) is None


def test_round_trip_and_byte_identical(tmp_path):
    masks = _masks()
    images = [
        image_entry(2, 'b/y.JPEG', height=37, width=53),
        image_entry(1, 'a/x.JPEG', height=37, width=53, license=1)
    ]
    anns = annotations_from_masks(masks, 2, 1) + annotations_from_masks(masks[:1], 1, 4)
    data = build_dataset(images, anns)
    assert [im['id'] for im in data['images']] == [1, 2]
    dump_json(data, str(tmp_path / 'a.json'))
    # Same content built in another order -> same bytes.
    dump_json(build_dataset(images[::-1], anns[::-1]), str(tmp_path / 'b.json'))
    assert (tmp_path / 'a.json').read_bytes() == (tmp_path / 'b.json').read_bytes()
    loaded, fixed = load_json(str(tmp_path / 'a.json'))
    assert fixed == 0
    assert loaded == json.loads(json.dumps(data))
    assert loaded['images'][0] == {
        'id': 1,
        'file_name': 'a/x.JPEG',
        'height': 37,
        'width': 53,
        'license': 1
    }
    assert 'date' not in (tmp_path / 'a.json').read_text()


def test_build_dataset_rejects_bad_ids():
    img = image_entry(1, 'x', 4, 4)
    ann = annotation_entry(1, 1, np.ones((4, 4), bool))
    with pytest.raises(ValueError, match='duplicate image ids'):
        build_dataset([img, dict(img)], [])
    with pytest.raises(ValueError, match='duplicate annotation ids'):
        build_dataset([img], [ann, dict(ann)])
    with pytest.raises(ValueError, match='unlisted image ids'):
        build_dataset([img], [dict(ann, image_id=5)])
    with pytest.raises(ValueError, match='>= 1'):
        image_entry(1, 'x', 0, 4)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / 'labels.json'
    dump_json({'a': 1}, str(path))
    old = path.read_bytes()
    with pytest.raises(ValueError):
        dump_json({'a': float('nan')}, str(path))  # not json: fails mid-write
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ['labels.json']  # no temporary file left behind
    dump_json({'b': [2, 1]}, str(path))
    assert path.read_text() == '{"b":[2,1]}\n'
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)


def _official_like(h=37, w=53):
    """An official MaskCut json (image width/height swapped)."""
    masks = _masks(h, w)
    anns = annotations_from_masks(masks[:2], 1, 1) + annotations_from_masks(masks[:1], 3, 3)
    images = [
        dict(id=1, file_name='a.JPEG', width=h, height=w),
        dict(id=2, file_name='b.JPEG', width=h, height=w),  # no annotation
        dict(id=3, file_name='c.JPEG', width=h, height=w)
    ]
    return dict(images=images, annotations=anns, categories=[CATEGORY])


def test_official_swapped_sizes_are_fixed(tmp_path):
    path = str(tmp_path / 'official.json')
    with open(path, 'w') as f:
        json.dump(_official_like(), f)
    data, fixed = load_json(path)
    assert fixed == 3  # including image 2, which has no mask to compare with
    assert [(im['height'], im['width']) for im in data['images']] == [(37, 53)] * 3
    data, fixed = load_json(path, swapped_size=False)
    assert fixed == 0 and data['images'][0]['width'] == 37
    # Forced: swaps whatever is there.
    data = _official_like()
    data['images'][0].update(width=53, height=37)
    assert fix_swapped_sizes(data, True) == 3
    assert data['images'][0]['width'] == 37
    # 'auto' follows the majority of the masks (image 1: 2 consistent, image 3:
    # 1 swapped -> not an official file; image 3's mask is a bad annotation).
    data = _official_like()
    data['images'][0].update(width=53, height=37)
    assert fix_swapped_sizes(data, 'auto') == 0
    # A tie is refused.
    data = _official_like()
    data['images'][0].update(width=53, height=37)
    data['annotations'] = data['annotations'][1:]
    with pytest.raises(PseudoLabelFileError, match='swapped_size=True'):
        fix_swapped_sizes(data, 'auto', source='x.json')


def test_load_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.json'):
        load_json(str(tmp_path / 'nope.json'))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [')
    with pytest.raises(PseudoLabelFileError, match='bad.json is not a json file'):
        load_json(str(bad))
    bad.write_text('{"images": []}')
    with pytest.raises(PseudoLabelFileError, match='"annotations" is missing'):
        load_json(str(bad))
    bad.write_text(
        json.dumps(dict(images=[dict(id=1, file_name='x')], annotations=[], categories=[])))
    with pytest.raises(PseudoLabelFileError, match=r'images\[0\]'):
        load_json(str(bad))


def test_rle_run_totals_and_check_rles():
    rng = np.random.default_rng(1)
    counts, expected = [], []
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        m = rng.random((h, w)) < rng.random()
        counts.append(encode_mask(m)['counts'])
        expected.append(h * w)
    totals = rle_run_totals(counts, chunk_chars=500)  # several chunks
    np.testing.assert_array_equal(totals, expected)
    # '62304' = runs 6, 2, 3, 0+2, 4 -> 17 (pycocotools' own encoding of a 5x4 mask is 6230<...).
    good = mask_utils.encode(np.asfortranarray(np.eye(5, 4, dtype=np.uint8)))['counts'].decode()
    np.testing.assert_array_equal(
        rle_run_totals(['', '0', '1111', 'zz', good, 'P']), [0, 0, 5, -1, 20, -1])
    anns = [
        dict(id=1, image_id=1, segmentation={
            'size': [5, 4],
            'counts': good
        }),
        dict(id=2, image_id=1, segmentation={
            'size': [5, 4],
            'counts': '1111'
        }),  # 5 != 20
        dict(id=3, image_id=1, segmentation={
            'size': [4, 5],
            'counts': good
        }),  # wrong size
        dict(id=4, image_id=1, segmentation={
            'size': [5, 4],
            'counts': [3, 17]
        }),
        dict(id=5, image_id=1, segmentation={
            'size': [5, 4],
            'counts': [3, 16]
        }),
        dict(id=6, image_id=1, segmentation={'counts': good}),
        dict(id=7, image_id=1, segmentation=[[0, 0, 3, 0, 3, 3]]),  # polygon: accepted
    ]
    bad = check_rles(anns, {1: (5, 4)}, source='f.json')
    assert sorted(bad) == [1, 2, 4, 5]
    assert 'f.json: annotation id 2 (image id 1): malformed RLE counts' in bad[1]
    assert 'differs from the image' in bad[2]
