# Copyright (c) mmuol contributors. All rights reserved.
"""Tiny synthetic CorLoc datasets (VOC and COCO layouts) for tests.

Each image is dark noise with one bright rectangle (the "object"), saved as
JPEG. The annotations exercise the corner cases of the CorLoc protocol:

* VOC image 0: the object plus a ``difficult`` box;
* VOC image 1: the object marked ``truncated`` (hard under ``--no_hard``);
* VOC image 2: only a ``difficult`` object (skipped when ``hard=False``).
* COCO: a crowd annotation (always removed), fractional boxes (rounded),
  and one image that is not in the image list.

:func:`make_bad_voc_dataset` adds one entry of each kind of bad input a user
meets (malformed XML, missing files, undecodable images, ...) next to good
images stored in odd formats (palette, CMYK, 16-bit); :func:`write_image_as`
writes those formats and :func:`save_tiny_vit` a tiny backbone checkpoint,
so that end-to-end tests can recompute the expected result.
"""
import json
import os
import os.path as osp
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .data import synthetic_image
from .models import TINY_VIT_ARCH

if TYPE_CHECKING:
    from mmengine.config import Config

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
                     seed: int = 0,
                     layout: Optional[Sequence[tuple]] = None) -> Dict[str, object]:
    """Write a 3-image VOC dataset under ``root/VOCdevkit/VOC{year}``.

    Args:
        root (str): Output directory.
        year (str): ``'2007'`` or ``'2012'``.
        image_hw (tuple[int, int]): Image size ``(H, W)``.
        seed (int): Noise seed.
        layout (Sequence[tuple], optional): Entries ``(img_id, drawn box,
            (difficult, truncated), extra objects)`` like ``_VOC_LAYOUT``
            (the default), optionally followed by the annotated box of the
            first object when it differs from the drawn one (a planted miss).

    Returns:
        dict: ``data_root`` (``.../VOCdevkit/``), ``sub_data_root``
        (``'VOC2007/'``), ``ann_file`` (relative to ``data_root``),
        ``img_ids``, ``image_hw`` and ``gt`` (per image id, a list of
        ``(box_lost, difficult, truncated)`` with LOST's
        ``[xmin - 1, ymin - 1, xmax, ymax]`` boxes).
    """
    layout = _VOC_LAYOUT if layout is None else list(layout)
    rng = np.random.default_rng(seed)
    data_root = osp.join(root, 'VOCdevkit')
    sub = f'VOC{year}'
    base = osp.join(data_root, sub)
    os.makedirs(osp.join(base, 'Annotations'), exist_ok=True)
    os.makedirs(osp.join(base, 'ImageSets', 'Main'), exist_ok=True)
    h, w = image_hw
    gt: Dict[str, List[tuple]] = {}
    for img_id, box, (diff, trunc), extras, *annotated in layout:
        _write_image(osp.join(base, 'JPEGImages', f'{img_id}.jpg'), image_hw, box, rng)
        box = tuple(annotated[0]) if annotated else box
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
        f.write('\n'.join(i for i, *_ in layout) + '\n')
    return dict(
        data_root=data_root + os.sep,
        sub_data_root=sub + '/',
        ann_file=f'{sub}/ImageSets/Main/trainval.txt',
        img_ids=[i for i, *_ in layout],
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


#: Image formats :func:`write_image_as` writes (all decodable).
IMAGE_FORMATS = ('jpeg', 'palette', 'cmyk', 'rgb16', 'gray16')


def write_image_as(path: str, rgb: np.ndarray, fmt: str) -> np.ndarray:
    """Save an RGB image in one of :data:`IMAGE_FORMATS`, whatever the suffix.

    * ``'jpeg'``: an RGB JPEG; ``'cmyk'``: a CMYK JPEG;
    * ``'palette'``: a ``P`` mode PNG (the image reduced to 16 colours);
    * ``'rgb16'``: a 16-bit RGB PNG (``value * 257``);
    * ``'gray16'``: a 16-bit grayscale PNG of the image's mean channel
      (``value * 257``).

    Args:
        path (str): Output file (its suffix is not looked at).
        rgb (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        fmt (str): One of :data:`IMAGE_FORMATS`.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB image the official loader (PIL,
        ``convert('RGB')``, 16 bits scaled by ``>> 8``) reads back.
    """
    import cv2
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    if fmt == 'jpeg':
        Image.fromarray(rgb).save(path, format='JPEG', quality=95)
    elif fmt == 'cmyk':
        Image.fromarray(rgb).convert('CMYK').save(path, format='JPEG', quality=95)
    elif fmt == 'palette':
        Image.fromarray(rgb).quantize(16).save(path, format='PNG')
    elif fmt == 'rgb16':
        ok, buf = cv2.imencode('.png', rgb[..., ::-1].astype(np.uint16) * 257)
        assert ok
        with open(path, 'wb') as f:
            f.write(buf.tobytes())
        return rgb.copy()
    elif fmt == 'gray16':
        gray = rgb.mean(axis=2).round().astype(np.uint16)
        ok, buf = cv2.imencode('.png', gray * 257)
        assert ok
        with open(path, 'wb') as f:
            f.write(buf.tobytes())
        return np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2)
    else:
        raise ValueError(f'fmt must be one of {IMAGE_FORMATS}, got {fmt!r}')
    with Image.open(path) as im:
        return np.array(im.convert('RGB'))


#: Kinds of bad VOC entries :func:`make_bad_voc_dataset` writes. The first
#: six are found when the dataset loads, the last three when the image is
#: decoded or reaches the detector.
BAD_VOC_KINDS = ('malformed_xml', 'no_bndbox', 'non_numeric', 'inverted_box', 'missing_image',
                 'missing_annotation', 'truncated_jpeg', 'empty_jpeg', 'tiny_image')
LOAD_TIME_KINDS = BAD_VOC_KINDS[:6]

#: Good images of the bad-input set: (id, format, drawn box, annotated box).
#: ``000004``'s annotation is elsewhere than its object (a planted miss).
_GOOD_VOC = [
    ('000001', 'jpeg', (16, 8, 48, 40), (16, 8, 48, 40)),
    ('000002', 'gray16', (8, 16, 40, 44), (8, 16, 40, 44)),
    ('000003', 'palette', (24, 4, 56, 30), (24, 4, 56, 30)),
    ('000004', 'cmyk', (32, 16, 60, 44), (0, 0, 12, 12)),
    ('000005', 'rgb16', (4, 4, 36, 28), (4, 4, 36, 28)),
]


def make_bad_voc_dataset(root: str,
                         kinds: Sequence[str] = BAD_VOC_KINDS,
                         image_hw: Tuple[int, int] = (48, 64),
                         seed: int = 0) -> Dict[str, object]:
    """A VOC2007-layout set: good images in odd formats + one bad entry per kind.

    The ImageSets list also holds a blank line (not an entry). Good images are
    dark noise with a bright rectangle, stored as ``.jpg`` files in the
    formats of ``_GOOD_VOC`` (JPEG, 16-bit gray PNG, palette PNG, CMYK JPEG,
    16-bit RGB PNG); each has one object, ``000004``'s annotated away from
    its rectangle.

    Args:
        root (str): Output directory.
        kinds (Sequence[str]): Bad entries to add, from :data:`BAD_VOC_KINDS`.
        image_hw (tuple[int, int]): Image size ``(H, W)``.
        seed (int): Noise seed.

    Returns:
        dict: ``data_root``, ``ann_file``, ``valid_ids`` (list order),
        ``images`` (valid id -> ``(H, W, 3)`` uint8 RGB the official loader
        reads), ``gt`` (valid id -> LOST boxes ``[[xmin - 1, ymin - 1, xmax,
        ymax]]``), ``bad`` (kind -> id) and ``paths`` (kind -> the file an
        error must name).
    """
    unknown = set(kinds) - set(BAD_VOC_KINDS)
    if unknown:
        raise ValueError(f'unknown kinds {sorted(unknown)}; use {BAD_VOC_KINDS}')
    rng = np.random.default_rng(seed)
    data_root = osp.join(root, 'VOCdevkit')
    base = osp.join(data_root, 'VOC2007')
    ann_dir, img_dir = osp.join(base, 'Annotations'), osp.join(base, 'JPEGImages')
    for d in (ann_dir, img_dir, osp.join(base, 'ImageSets', 'Main')):
        os.makedirs(d, exist_ok=True)
    h, w = image_hw

    def write_xml(img_id: str, objects: str) -> str:
        path = osp.join(ann_dir, f'{img_id}.xml')
        with open(path, 'w') as f:
            f.write(f'<annotation><filename>{img_id}.jpg</filename><size><width>{w}</width>'
                    f'<height>{h}</height><depth>3</depth></size>{objects}</annotation>')
        return path

    images, gt = {}, {}
    for img_id, fmt, drawn, annotated in _GOOD_VOC:
        rgb = synthetic_image(h, w, drawn, rng=rng, background=(0, 40), foreground=(200, 256))
        images[img_id] = write_image_as(osp.join(img_dir, f'{img_id}.jpg'), rgb, fmt)
        write_xml(img_id, _voc_object('dog', annotated))
        x0, y0, x1, y1 = annotated
        gt[img_id] = [[x0, y0, x1, y1]]  # LOST's [xmin - 1, ymin - 1, xmax, ymax]
    bad, paths = {}, {}
    good_box = _voc_object('dog', (8, 8, 24, 24))
    for k, kind in enumerate(kinds):
        img_id = f'bad{k:03d}'
        bad[kind] = img_id
        img_path = osp.join(img_dir, f'{img_id}.jpg')
        xml_path = osp.join(ann_dir, f'{img_id}.xml')
        rgb = synthetic_image(h, w, (8, 8, 24, 24), rng=rng)
        if kind != 'missing_image':
            write_image_as(img_path, rgb, 'jpeg')
        objects = good_box
        if kind == 'no_bndbox':
            objects = '<object><name>dog</name><difficult>0</difficult></object>'
        elif kind == 'non_numeric':
            objects = good_box.replace('<xmax>24</xmax>', '<xmax>24px</xmax>')
        elif kind == 'inverted_box':
            objects = _voc_object('dog', (30, 8, 10, 24))  # xmin 31 > xmax 10
        if kind != 'missing_annotation':
            write_xml(img_id, objects)
        if kind == 'malformed_xml':
            with open(xml_path, 'w') as f:
                f.write('<annotation><object><name>dog</name>')  # cut short
        elif kind == 'truncated_jpeg':
            with open(img_path, 'rb') as f:
                data = f.read()
            with open(img_path, 'wb') as f:
                f.write(data[:len(data) // 2])
        elif kind == 'empty_jpeg':
            open(img_path, 'wb').close()
        elif kind == 'tiny_image':
            Image.fromarray(rgb[:1, :1]).save(img_path, format='JPEG')
        image_kinds = ('missing_image', 'truncated_jpeg', 'empty_jpeg', 'tiny_image')
        paths[kind] = img_path if kind in image_kinds else xml_path
    # Bad entries between the good ones, and a blank line.
    ids = [i for i, *_ in _GOOD_VOC]
    listed = ids[:2] + [''] + list(bad.values()) + ids[2:]
    with open(osp.join(base, 'ImageSets', 'Main', 'trainval.txt'), 'w') as f:
        f.write('\n'.join(listed) + '\n')
    return dict(
        data_root=data_root + os.sep,
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        valid_ids=ids,
        images=images,
        gt=gt,
        bad=bad,
        paths=paths)


def save_tiny_vit(path: str, seed: int = 0) -> dict:
    """Save a seeded tiny ``DINOViT`` (:data:`TINY_VIT_ARCH`) state dict.

    Args:
        path (str): Output ``.pth`` file.
        seed (int): ``torch.manual_seed`` of the random weights.

    Returns:
        dict: Backbone config that loads it
        (``init_cfg=dict(type='Pretrained', checkpoint=path)``).
    """
    import torch

    from mmuol.models.backbones import DINOViT
    torch.manual_seed(seed)
    vit = DINOViT(arch=dict(TINY_VIT_ARCH), init_cfg=None)
    vit.init_weights()
    torch.save(vit.state_dict(), path)
    return dict(
        type='DINOViT',
        arch=dict(TINY_VIT_ARCH),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))


def expected_boxes(localizer: dict, backbone, rgb: np.ndarray) -> List[List[float]]:
    """Boxes the core gives for one image, recomputed without the detector.

    The image goes through the CorLoc preprocessing (ImageNet normalisation
    in RGB, zero padding to a multiple of the patch size), the backbone's
    last block and one core function of :mod:`mmuol.localization`, chosen by
    ``localizer['type']`` with the config's arguments.

    Args:
        localizer (dict): The ``model.localizer`` config (``type`` and
            arguments; a ``FOUNDHeadLocalizer`` needs ``decoder_checkpoint``).
        backbone (DINOViT): The backbone, with the run's weights.
        rgb (np.ndarray): ``(H, W, 3)`` uint8 RGB image.

    Returns:
        list[list[float]]: The non-empty masks' boxes ``[x0, y0, x1, y1]``,
        best first (the order of the detector's predictions).
    """
    import torch

    from mmuol.localization import (dino_seg, found_background, found_decoder_logits,
                                    found_foreground, largest_component, load_found_decoder, lost,
                                    mask_to_box, maskcut, pad_to_patch_multiple, tokencut)
    from mmuol.utils.constants import IMAGENET_MEAN_255, IMAGENET_STD_255
    mean = torch.tensor(IMAGENET_MEAN_255).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD_255).view(3, 1, 1)
    x = (torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() - mean) / std
    ps = backbone.patch_size
    with torch.no_grad():
        out = backbone.forward_last_block(
            pad_to_patch_multiple(x[None], ps), with_qkv=True, with_attn='cls')
    keys, attn, grid = out.patch_keys[0], out.cls_attn[0], tuple(out.grid_hw)
    kwargs = {k: v for k, v in localizer.items() if k != 'type'}
    kind = localizer['type']
    clip = rgb.shape[:2]
    if kind == 'LOSTLocalizer':
        masks = [lost(keys, grid, **kwargs).mask]
    elif kind == 'TokenCutLocalizer':
        masks = [tokencut(keys, grid, **kwargs).mask]
    elif kind == 'DINOSegLocalizer':
        clip = None if not kwargs.pop('clip_boxes', False) else clip
        masks = [dino_seg(attn, grid, **kwargs).mask]
    elif kind == 'FOUNDBkgLocalizer':
        masks = [largest_component(found_background(attn, keys, grid, **kwargs).object_mask)]
    elif kind == 'MaskCutLocalizer':
        kwargs.pop('score', None)
        masks = [stage.mask for stage in maskcut(keys, grid, **kwargs)]
    elif kind == 'FOUNDHeadLocalizer':
        dec = load_found_decoder(kwargs['decoder_checkpoint'])
        chw = keys.T.reshape(1, keys.shape[1], *grid)
        logits = found_decoder_logits(chw, dec['weight'], dec['bias'])[0, 0]
        masks = [found_foreground(logits, kwargs.get('threshold', 0.5)).mask]
    else:
        raise ValueError(f'unknown localizer {kind!r}')
    return [mask_to_box(m, ps, clip).float().tolist() for m in masks if bool(m.any())]


#: Repository root (tools/ and configs/ of a source checkout).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def write_corloc_config(path: str, base: str, data_root: str, backbone: dict, localizer: dict,
                        **dataset) -> 'Config':
    """Write a config inheriting a shipped CorLoc config, for tiny models and data.

    Args:
        path (str): Output ``.py`` file.
        base (str): Shipped config, relative to the repository root.
        data_root (str): ``test_dataloader.dataset.data_root``.
        backbone (dict): Backbone config replacing the shipped one.
        localizer (dict): Overrides of ``model.localizer``.
        **dataset: Overrides of ``test_dataloader.dataset``.

    Returns:
        Config: The loaded config.
    """
    from mmengine.config import Config
    patch = TINY_VIT_ARCH['patch_size'] if backbone.get('arch') == TINY_VIT_ARCH else None
    pad = '' if patch is None else f'data_preprocessor=dict(pad_size_divisor={patch}),'
    dataset = dict(data_root=data_root, **dataset)
    text = f"""_base_ = [{osp.join(REPO_ROOT, base)!r}]
model = dict(
    backbone=dict(_delete_=True, **{backbone!r}), {pad}
    localizer=dict({', '.join(f'{k}={v!r}' for k, v in localizer.items())}))
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict({', '.join(f'{k}={v!r}' for k, v in dataset.items())}))
"""
    with open(path, 'w') as f:
        f.write(text)
    return Config.fromfile(path)


def start_test_tool(cfg_path: str, work_dir: str, *args: str):
    """Start ``tools/test.py CONFIG --work-dir DIR ARGS`` single-threaded.

    Returns:
        subprocess.Popen: The process, stdout and stderr merged into text.
    """
    import subprocess
    import sys
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    return subprocess.Popen([
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'test.py'), cfg_path, '--work-dir', work_dir, *args
    ],
                            cwd=REPO_ROOT,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)


def read_test_metrics(work_dir: str) -> dict:
    """The metrics json ``tools/test.py`` writes under ``work_dir/<timestamp>/``.

    (mmengine's json drops integer scalars: read those from the log text.)
    """
    from glob import glob
    found = glob(osp.join(work_dir, '*', '*.json'))
    if len(found) != 1:
        raise FileNotFoundError(f'expected one metrics json under {work_dir}, got {found}')
    with open(found[0]) as f:
        return json.load(f)
