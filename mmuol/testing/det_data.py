# Copyright (c) mmuol contributors. All rights reserved.
"""Tiny synthetic CorLoc datasets (VOC and COCO layouts) for tests.

Each image is dark noise with one bright rectangle (the "object"), saved as
JPEG. The annotations exercise the corner cases of the CorLoc protocol:

* VOC image 0: the object plus a ``difficult`` box;
* VOC image 1: the object marked ``truncated`` (hard under ``--no_hard``);
* VOC image 2: only a ``difficult`` object (skipped when ``hard=False``).
* COCO: a crowd annotation (always removed), fractional boxes (rounded),
  and one image that is not in the image list.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from .data import synthetic_image

Box = Tuple[int, int, int, int]


def _write_image(path: str, hw: Tuple[int, int], box: Box, rng: np.random.Generator) -> None:
    """Dark noise + a bright rectangle ``box = (x0, y0, x1, y1)`` (exclusive)."""
    img = synthetic_image(*hw, box, rng=rng, background=(0, 40), foreground=(200, 256))
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, quality=95)


def _voc_object(name: str, box: Box, difficult: int = 0, truncated: int = 0) -> str:
    # VOC stores 1-based inclusive pixels: xmin = x0 + 1, xmax = x1.
    x0, y0, x1, y1 = box
    return (f'<object><name>{name}</name><pose>Unspecified</pose>'
            f'<truncated>{truncated}</truncated>'
            f'<difficult>{difficult}</difficult><bndbox>'
            f'<xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin>'
            f'<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>')


#: (image id, object box, extra objects as (box, difficult, truncated)),
#: object box flags (difficult, truncated).
_VOC_LAYOUT = [
    ('000001', (16, 8, 48, 40), (0, 0), [((2, 2, 10, 10), 1, 0)]),
    ('000002', (8, 16, 40, 44), (0, 1), []),
    ('000003', (24, 4, 56, 30), (1, 0), []),
]


def make_voc_dataset(root: str,
                     year: str = '2007',
                     image_hw: Tuple[int, int] = (48, 64),
                     seed: int = 0) -> Dict[str, object]:
    """Write a 3-image VOC dataset under ``root/VOCdevkit/VOC{year}``.

    Args:
        root (str): Output directory.
        year (str): ``'2007'`` or ``'2012'``.
        image_hw (tuple[int, int]): Image size ``(H, W)``.
        seed (int): Noise seed.

    Returns:
        dict: ``data_root`` (``.../VOCdevkit/``), ``sub_data_root``
        (``'VOC2007/'``), ``ann_file`` (relative to ``data_root``),
        ``img_ids``, ``image_hw`` and ``gt`` (per image id, a list of
        ``(box_lost, difficult, truncated)`` with LOST's
        ``[xmin - 1, ymin - 1, xmax, ymax]`` boxes).
    """
    rng = np.random.default_rng(seed)
    data_root = osp.join(root, 'VOCdevkit')
    sub = f'VOC{year}'
    base = osp.join(data_root, sub)
    os.makedirs(osp.join(base, 'Annotations'), exist_ok=True)
    os.makedirs(osp.join(base, 'ImageSets', 'Main'), exist_ok=True)
    h, w = image_hw
    gt: Dict[str, List[tuple]] = {}
    for img_id, box, (diff, trunc), extras in _VOC_LAYOUT:
        _write_image(osp.join(base, 'JPEGImages', f'{img_id}.jpg'), image_hw, box, rng)
        objects = [_voc_object('dog', box, diff, trunc)]
        gt[img_id] = [(list(box), diff, trunc)]
        for ebox, ediff, etrunc in extras:
            objects.append(_voc_object('person', ebox, ediff, etrunc))
            gt[img_id].append((list(ebox), ediff, etrunc))
        xml = (f'<annotation><folder>{sub}</folder>'
               f'<filename>{img_id}.jpg</filename><size><width>{w}</width>'
               f'<height>{h}</height><depth>3</depth></size>'
               f'<segmented>0</segmented>{"".join(objects)}</annotation>')
        with open(osp.join(base, 'Annotations', f'{img_id}.xml'), 'w') as f:
            f.write(xml)
    with open(osp.join(base, 'ImageSets', 'Main', 'trainval.txt'), 'w') as f:
        f.write('\n'.join(i for i, *_ in _VOC_LAYOUT) + '\n')
    return dict(
        data_root=data_root + os.sep,
        sub_data_root=sub + '/',
        ann_file=f'{sub}/ImageSets/Main/trainval.txt',
        img_ids=[i for i, *_ in _VOC_LAYOUT],
        image_hw=tuple(image_hw),
        gt=gt)


def make_coco_dataset(root: str,
                      image_hw: Tuple[int, int] = (48, 64),
                      seed: int = 0) -> Dict[str, object]:
    """Write a 3-image COCO train2014-style dataset under ``root/coco``.

    Images 1 and 2 are listed in ``coco_list.txt`` (the COCO20k-style image
    list); image 3 is not.

    Args:
        root (str): Output directory.
        image_hw (tuple[int, int]): Image size ``(H, W)``.
        seed (int): Noise seed.

    Returns:
        dict: ``data_root``, ``ann_file`` and ``image_list`` (relative to
        ``data_root`` / absolute), ``img_prefix``, ``listed_ids`` and ``gt``
        (per listed image id, the expected LOST boxes).
    """
    rng = np.random.default_rng(seed)
    data_root = osp.join(root, 'coco')
    h, w = image_hw
    images, annotations = [], []
    layout: Sequence[tuple] = [
        # id, drawn box, [(bbox xywh, iscrowd)]
        (1, (16, 8, 48, 40), [((16.4, 7.6, 31.5, 32.2), 0), ((0.0, 0.0, 10.0, 10.0), 1)]),
        (2, (8, 16, 40, 44), [((8.0, 16.0, 32.0, 28.0), 0), ((40.5, 2.5, 1.0, 2.0), 0)]),
        (3, (24, 4, 56, 30), [((24.0, 4.0, 32.0, 26.0), 0)]),
    ]
    ann_id = 1
    gt: Dict[int, List[List[int]]] = {}
    for img_id, box, anns in layout:
        name = f'COCO_train2014_{img_id:012d}.jpg'
        _write_image(osp.join(data_root, 'train2014', name), image_hw, box, rng)
        images.append(dict(id=img_id, file_name=name, height=h, width=w))
        gt[img_id] = []
        for (x, y, bw, bh), crowd in anns:
            annotations.append(
                dict(
                    id=ann_id,
                    image_id=img_id,
                    category_id=18,
                    bbox=[x, y, bw, bh],
                    area=bw * bh,
                    iscrowd=crowd,
                    segmentation=[[x, y, x + bw, y, x + bw, y + bh]]))
            ann_id += 1
            if not crowd:
                gt[img_id].append([int(round(v)) for v in (x, y, x + bw, y + bh)])
    os.makedirs(osp.join(data_root, 'annotations'), exist_ok=True)
    ann_file = osp.join('annotations', 'instances_train2014.json')
    with open(osp.join(data_root, ann_file), 'w') as f:
        json.dump(
            dict(
                images=images,
                annotations=annotations,
                categories=[dict(id=18, name='dog', supercategory='animal')]), f)
    image_list = osp.join(data_root, 'coco_list.txt')
    listed = [1, 2]
    with open(image_list, 'w') as f:
        f.write(''.join(f'train2014/COCO_train2014_{i:012d}.jpg\n' for i in listed))
    return dict(
        data_root=data_root + os.sep,
        ann_file=ann_file,
        img_prefix='train2014/',
        image_list=image_list,
        listed_ids=listed,
        gt={i: gt[i]
            for i in listed})
