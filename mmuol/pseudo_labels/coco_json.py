# Copyright (c) mmuol contributors. All rights reserved.
"""COCO-format pseudo-label files: build, validate, read and write.

The format is the one of CutLER's MaskCut files (one class-agnostic
category ``fg``, compressed RLE masks with ASCII ``counts``), with two
differences on the writing side:

* image entries carry the **correct** ``width`` / ``height``; the official
  MaskCut json swaps them (its ``create_image_info`` is called with
  ``(height, width)`` where it expects ``(width, height)``). Files with the
  swap are read correctly (:func:`fix_swapped_sizes`), never written.
* output is deterministic: images and annotations sorted by id, keys sorted,
  no timestamp, so the same input gives a byte-identical file; every write is
  atomic (:func:`dump_json`: temporary file + ``os.replace``).

Nothing here imports mmdet or mmseg.

Example:
    >>> masks = np.zeros((2, 4, 6), bool); masks[0, 1:3, 2:5] = True
    >>> image = image_entry(1, 'n01440764/a.JPEG', height=4, width=6)
    >>> anns = annotations_from_masks(masks, image_id=1, first_id=1)  # empty masks skipped
    >>> dump_json(build_dataset([image], anns), 'pseudo_labels.json')
"""
import json
import os
import os.path as osp
import tempfile
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from pycocotools import mask as mask_utils

__all__ = [
    'CATEGORY', 'encode_mask', 'decode_mask', 'rle_area_bbox', 'image_entry', 'annotation_entry',
    'annotations_from_masks', 'build_dataset', 'dump_json', 'load_json', 'fix_swapped_sizes',
    'check_rles', 'rle_run_totals', 'PseudoLabelFileError'
]

#: The single class-agnostic category of MaskCut / CutLER files.
CATEGORY: Dict[str, Any] = {'id': 1, 'name': 'fg', 'supercategory': 'fg'}

Rle = Dict[str, Any]


class PseudoLabelFileError(ValueError):
    """A pseudo-label file (or one of its entries) cannot be used."""


def encode_mask(mask: np.ndarray) -> Rle:
    """Compressed COCO RLE of one binary mask, ``counts`` as ASCII ``str``.

    Args:
        mask (np.ndarray): ``(H, W)`` mask; non-zero = foreground.

    Returns:
        dict: ``{'size': [H, W], 'counts': str}`` (pycocotools' encoding,
        ``counts`` decoded to ASCII so it can be written as json).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'encode_mask expects one (H, W) mask, got shape {mask.shape}')
    rle = mask_utils.encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return {
        'size': [int(rle['size'][0]), int(rle['size'][1])],
        'counts': rle['counts'].decode('ascii')
    }


def _to_pycoco(rle: Rle) -> Rle:
    """An RLE dict as pycocotools' C code wants it (bytes or list counts)."""
    counts = rle['counts']
    if isinstance(counts, list):
        h, w = rle['size']
        return mask_utils.frPyObjects(rle, int(h), int(w))
    if isinstance(counts, str):
        counts = counts.encode('ascii')
    return {'size': [int(v) for v in rle['size']], 'counts': counts}


def decode_mask(rle: Rle) -> np.ndarray:
    """Decode one RLE (compressed ``str``/``bytes`` or uncompressed list).

    Only call it on an RLE that passed :func:`check_rles` (pycocotools reads
    past the buffer on an RLE whose runs do not add up to ``H * W``).

    Returns:
        np.ndarray: ``(H, W)`` uint8 mask of 0/1.
    """
    return mask_utils.decode(_to_pycoco(rle))


def rle_area_bbox(rle: Rle) -> Tuple[int, List[float]]:
    """Pixel area and ``[x, y, w, h]`` box (pycocotools ``area`` / ``toBbox``).

    Returns:
        tuple[int, list[float]]: Area and box of the mask.
    """
    coco_rle = _to_pycoco(rle)
    area = int(mask_utils.area(coco_rle))
    bbox = [float(v) for v in mask_utils.toBbox(coco_rle)]
    return area, bbox


def image_entry(image_id: int, file_name: str, height: int, width: int, **extra: Any) -> dict:
    """One ``images`` entry with the correct (unswapped) size.

    Args:
        image_id (int): Image id (unique in the file).
        file_name (str): Path relative to the image root, e.g.
            ``'n01440764/n01440764_10026.JPEG'``.
        height (int): Image height in pixels.
        width (int): Image width in pixels.
        **extra: More keys to store (json-serialisable).

    Returns:
        dict: ``{'id', 'file_name', 'height', 'width', **extra}``.
    """
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f'image {file_name!r}: height and width must be >= 1, got '
                         f'{height} x {width}')
    return dict(
        extra, id=int(image_id), file_name=str(file_name), height=int(height), width=int(width))


def annotation_entry(ann_id: int,
                     image_id: int,
                     mask: Union[np.ndarray, Rle],
                     category_id: int = CATEGORY['id'],
                     score: Optional[float] = None,
                     bbox: Optional[Sequence[float]] = None) -> Optional[dict]:
    """One ``annotations`` entry from a binary mask or an RLE.

    ``area`` is the mask's pixel area and ``bbox`` its tight box (pycocotools'
    ``toBbox``), as in the official MaskCut files.

    Args:
        ann_id (int): Annotation id.
        image_id (int): Id of the image it belongs to.
        mask (np.ndarray | dict): ``(H, W)`` binary mask, or an RLE dict.
        category_id (int): Defaults to 1 (``fg``).
        score (float, optional): Detector score, stored as ``score`` for
            self-training labels (ignored by COCO readers).
        bbox (Sequence[float], optional): ``[x, y, w, h]`` to store instead of
            the mask's box.

    Returns:
        dict | None: The entry, or None for an empty mask (dropped, like the
        official writer does).
    """
    rle = encode_mask(mask) if isinstance(mask, np.ndarray) else {
        'size': [int(v) for v in mask['size']],
        'counts':
        (mask['counts'].decode('ascii') if isinstance(mask['counts'], bytes) else mask['counts'])
    }
    area, mask_box = rle_area_bbox(rle)
    if area < 1:
        return None
    ann = dict(
        id=int(ann_id),
        image_id=int(image_id),
        category_id=int(category_id),
        iscrowd=0,
        area=area,
        bbox=[float(v) for v in (mask_box if bbox is None else bbox)],
        segmentation=rle)
    if score is not None:
        ann['score'] = float(score)
    return ann


def annotations_from_masks(masks: Union[np.ndarray, Sequence[np.ndarray]],
                           image_id: int,
                           first_id: int,
                           scores: Optional[Sequence[float]] = None) -> List[dict]:
    """Annotations of one image's masks, empty masks skipped.

    Args:
        masks (np.ndarray | Sequence[np.ndarray]): ``(N, H, W)`` binary masks.
        image_id (int): The image's id.
        first_id (int): Id of the first written annotation; the next ones
            count up (ids of skipped masks are not consumed).
        scores (Sequence[float], optional): One score per mask.

    Returns:
        list[dict]: Annotations in mask order.
    """
    anns, next_id = [], int(first_id)
    for k, mask in enumerate(masks):
        ann = annotation_entry(
            next_id, image_id, np.asarray(mask), score=None if scores is None else scores[k])
        if ann is not None:
            anns.append(ann)
            next_id += 1
    return anns


def build_dataset(images: Iterable[dict],
                  annotations: Iterable[dict],
                  categories: Optional[Sequence[dict]] = None,
                  info: Optional[dict] = None) -> dict:
    """A COCO dict with images and annotations sorted by id.

    Args:
        images (Iterable[dict]): Image entries (:func:`image_entry`).
        annotations (Iterable[dict]): Annotation entries.
        categories (Sequence[dict], optional): Defaults to ``[CATEGORY]``.
        info (dict, optional): The ``info`` block. Defaults to a fixed
            description (no date, so files stay byte-identical).

    Returns:
        dict: ``{'info', 'licenses', 'categories', 'images', 'annotations'}``.

    Raises:
        ValueError: Duplicate image or annotation ids, or an annotation of an
            image that is not listed.
    """
    images = sorted(images, key=lambda im: im['id'])
    annotations = sorted(annotations, key=lambda a: a['id'])
    image_ids = [im['id'] for im in images]
    if len(set(image_ids)) != len(image_ids):
        raise ValueError('duplicate image ids')
    ann_ids = [a['id'] for a in annotations]
    if len(set(ann_ids)) != len(ann_ids):
        raise ValueError('duplicate annotation ids')
    unknown = {a['image_id'] for a in annotations} - set(image_ids)
    if unknown:
        raise ValueError(f'annotations of unlisted image ids, e.g. {min(unknown)}')
    return dict(
        info=dict(info) if info is not None else {'description': 'mmuol pseudo-labels'},
        licenses=[],
        categories=[dict(c) for c in (categories if categories is not None else [CATEGORY])],
        images=images,
        annotations=annotations)


def dump_json(data: Any, path: str) -> None:
    """Write json atomically and deterministically.

    The text goes to a temporary file in the destination folder, is flushed
    to disk and then renamed over ``path`` (``os.replace``), so a reader (or
    a job killed mid-write) sees the old file or the new one, never half of
    one. Keys are sorted and separators compact, so equal data gives equal
    bytes.

    Args:
        data: json-serialisable object.
        path (str): Destination file; its folder is created if needed.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(data, f, sort_keys=True, separators=(',', ':'), allow_nan=False)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def load_json(path: str, swapped_size: Union[str, bool] = 'auto') -> Tuple[dict, int]:
    """Read a COCO pseudo-label file (ours or an official MaskCut file).

    Checks the top-level structure, then fixes swapped image sizes
    (:func:`fix_swapped_sizes`).

    Args:
        path (str): json file.
        swapped_size (str | bool): ``'auto'`` (detect the official swap from
            the masks' RLE sizes), True (the file is an official MaskCut file:
            swap every image's width/height) or False (trust the file).

    Returns:
        tuple[dict, int]: The COCO dict (image sizes corrected) and the
        number of image entries whose width/height were swapped back.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PseudoLabelFileError: Not json, or not a COCO dict with ``images``,
            ``annotations`` and ``categories`` lists, or image entries
            without an integer id / ``file_name`` / size.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'pseudo-label file not found: {path}')
    try:
        with open(path) as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise PseudoLabelFileError(f'{path} is not a json file ({err})') from None
    if not isinstance(data, dict):
        raise PseudoLabelFileError(f'{path}: expected a COCO dict, got {type(data).__name__}')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            raise PseudoLabelFileError(f'{path}: "{key}" is missing or not a list (is this a COCO '
                                       'annotation file?)')
    for k, img in enumerate(data['images']):
        ok = isinstance(img, dict) and isinstance(img.get('id'), int) and all(
            isinstance(img.get(key), int) and img[key] > 0 for key in ('width', 'height'))
        if not ok or not isinstance(img.get('file_name'), str) or not img['file_name']:
            raise PseudoLabelFileError(f'{path}: images[{k}] = {str(img)[:200]} needs an int '
                                       '"id", a "file_name" and positive int "width"/"height"')
    for k, ann in enumerate(data['annotations']):
        if not (isinstance(ann, dict) and isinstance(ann.get('id'), int)
                and isinstance(ann.get('image_id'), int)):
            raise PseudoLabelFileError(f'{path}: annotations[{k}] = {str(ann)[:200]} needs int '
                                       '"id" and "image_id"')
    num_fixed = fix_swapped_sizes(data, swapped_size, source=path)
    return data, num_fixed


def _rle_size(ann: dict) -> Optional[Tuple[int, int]]:
    seg = ann.get('segmentation')
    if isinstance(seg, dict):
        size = seg.get('size')
        if (isinstance(size, (list, tuple)) and len(size) == 2
                and all(isinstance(v, int) for v in size)):
            return int(size[0]), int(size[1])
    return None


def fix_swapped_sizes(data: dict, swapped_size: Union[str, bool] = 'auto', source: str = '') -> int:
    """Swap back the image width/height of an official MaskCut file, in place.

    With ``'auto'`` each annotation with a non-square RLE ``size = [H, W]``
    votes: *swapped* when its image entry's ``(height, width)`` is ``(W, H)``,
    *consistent* when it is ``(H, W)``. More swapped than consistent votes
    make the file an official one: every image entry is swapped back,
    including those without (non-square) masks. The minority are bad
    annotations that a reader reports as a size mismatch. Square images are
    unaffected either way.

    Args:
        data (dict): COCO dict (modified in place).
        swapped_size (str | bool): ``'auto'``, True (swap all) or False.
        source (str): File name for error messages.

    Returns:
        int: Number of image entries changed.

    Raises:
        PseudoLabelFileError: With ``'auto'``, as many swapped as consistent
            votes (pass ``swapped_size`` explicitly, or fix the file).
    """
    if swapped_size not in ('auto', True, False):
        raise ValueError(f"swapped_size must be 'auto', True or False, got {swapped_size!r}")
    if swapped_size is False:
        return 0
    if swapped_size == 'auto':
        by_id = {img['id']: img for img in data['images']}
        swapped = consistent = 0
        for ann in data['annotations']:
            size, img = _rle_size(ann), by_id.get(ann.get('image_id'))
            if size is None or img is None or size[0] == size[1]:
                continue
            hw = (img['height'], img['width'])
            consistent += hw == size
            swapped += hw == size[::-1]
        if swapped and swapped == consistent:
            raise PseudoLabelFileError(
                f'{source}: as many masks match their image entry\'s width/height swapped '
                f'({swapped}) as unswapped; pass swapped_size=True (official MaskCut file) or '
                'False.')
        if swapped <= consistent:
            return 0
    changed = 0
    for img in data['images']:
        if img['width'] != img['height']:
            img['width'], img['height'] = img['height'], img['width']
            changed += 1
    return changed


#: Compressed-RLE alphabet: 6-bit groups stored as ASCII 48..111 (pycocotools'
#: ``rleToString``: 5 value bits per group, bit 5 = "another group follows",
#: bit 4 of the last group = sign; from the 4th count on, counts are stored as
#: differences to the count two places earlier).
_RLE_CHAR_MIN, _RLE_CHAR_MAX = 48, 48 + 63


def rle_run_totals(counts: Sequence[Union[str, bytes]], chunk_chars: int = 1 << 22) -> np.ndarray:
    """Sum of all run lengths of each compressed RLE string, vectorised.

    A valid RLE of an ``H x W`` mask has runs adding up to ``H * W``;
    pycocotools does not check this and reads past its buffer when decoding
    one that does not. The strings are decoded with numpy, a chunk at a time
    (about 0.2-0.5 µs per character on one CPU core; a MaskCut mask of a
    480 px image is ~300 characters).

    Args:
        counts (Sequence[str | bytes]): Compressed ``counts`` strings.
        chunk_chars (int): Characters decoded per numpy pass (bounds the
            memory to ~100 bytes per character of one chunk).

    Returns:
        np.ndarray: ``(len(counts),)`` int64 totals; -1 for a string with a
        character outside the alphabet, an unterminated last group or a
        negative run.
    """
    out, begin, size = [], 0, 0
    for k, c in enumerate(counts):
        size += len(c)
        if size >= chunk_chars:
            out.append(_rle_run_totals(counts[begin:k + 1]))
            begin, size = k + 1, 0
    out.append(_rle_run_totals(counts[begin:]))
    return np.concatenate(out)


def _rle_run_totals(counts: Sequence[Union[str, bytes]]) -> np.ndarray:
    """:func:`rle_run_totals` of one chunk."""
    n = len(counts)
    raw = [c.encode('ascii', 'replace') if isinstance(c, str) else bytes(c) for c in counts]
    lengths = np.fromiter((len(r) for r in raw), np.int64, n)
    totals = np.zeros(n, np.int64)
    if lengths.sum() == 0:
        return totals
    chars = np.frombuffer(b''.join(raw), np.uint8).astype(np.int64)
    owner = np.repeat(np.arange(n), lengths)
    bad = np.zeros(n, bool)
    bad[owner[(chars < _RLE_CHAR_MIN) | (chars > _RLE_CHAR_MAX)]] = True
    value = (chars - _RLE_CHAR_MIN) & 0x3F
    last = (value & 0x20) == 0  # no continuation bit: the group ends a number
    ends = np.cumsum(lengths)[lengths > 0] - 1
    bad[owner[ends[~last[ends]]]] = True
    last[ends] = True  # never let a number run into the next string
    # Number index of each character and its group index inside the number.
    number = np.concatenate([[0], np.cumsum(last)[:-1]])
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    group = np.minimum(np.arange(len(chars)) - starts[number], 12)
    numbers = np.add.reduceat((value & 0x1F) << (5 * group), starts)
    last_idx = np.flatnonzero(last)
    negative = (value[last_idx] & 0x10) != 0
    numbers[negative] -= np.int64(1) << (5 * (group[last_idx][negative] + 1))
    owner_of_number = owner[last_idx]
    pos = np.arange(len(numbers)) - np.searchsorted(owner_of_number, owner_of_number)
    # counts[i] = numbers[i] + counts[i - 2] for i > 2: running sums over the
    # odd positions (from 1) and the even positions (from 2) of each string.
    runs = numbers.copy()
    for sel in (np.flatnonzero(pos % 2 == 1), np.flatnonzero((pos % 2 == 0) & (pos >= 2))):
        if len(sel) == 0:
            continue
        csum = np.cumsum(numbers[sel])
        string = owner_of_number[sel]
        first = np.concatenate([[True], string[1:] != string[:-1]])
        seg_start = np.maximum.accumulate(np.where(first, np.arange(len(sel)), 0))
        runs[sel] = csum - np.where(seg_start > 0, csum[seg_start - 1], 0)
    bad[owner_of_number[runs < 0]] = True
    has_numbers = lengths > 0
    totals[has_numbers] = np.add.reduceat(
        runs, np.searchsorted(owner_of_number, np.flatnonzero(has_numbers)))
    totals[bad] = -1
    return totals


def check_rles(annotations: Sequence[dict],
               image_hw: Dict[int, Tuple[int, int]],
               source: str = '') -> Dict[int, str]:
    """Find annotations whose mask cannot be used.

    An annotation is invalid when its ``segmentation`` is not an RLE dict
    (``size`` ``[H, W]`` of ints, ``counts`` a compressed string or a list of
    non-negative ints), when ``size`` differs from its image's
    ``(height, width)``, or when the runs do not add up to ``H * W``.
    Polygon segmentations (lists) are accepted as they are.

    Args:
        annotations (Sequence[dict]): COCO annotations.
        image_hw (dict[int, tuple[int, int]]): ``(height, width)`` per image id.
        source (str): File name for the messages.

    Returns:
        dict[int, str]: Reason per invalid annotation index.
    """
    invalid: Dict[int, str] = {}
    compressed_idx, compressed, expected = [], [], []
    for k, ann in enumerate(annotations):
        where = f'{source}: annotation id {ann.get("id")} (image id {ann.get("image_id")})'
        seg = ann.get('segmentation')
        if isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
            continue  # polygons: pycocotools rasterises them at the image size
        size = _rle_size(ann)
        if size is None or 'counts' not in seg:
            invalid[k] = f'{where}: segmentation is not an RLE dict with "size" [H, W] and "counts"'
            continue
        hw = image_hw.get(ann['image_id'])
        if hw is not None and tuple(hw) != size:
            invalid[k] = (f'{where}: mask size {list(size)} differs from the image entry\'s '
                          f'height x width {hw[0]} x {hw[1]}')
            continue
        counts = seg['counts']
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0
                       for c in counts) or sum(counts) != (size[0] * size[1]):
                invalid[k] = f'{where}: uncompressed RLE counts do not add up to H * W'
        elif isinstance(counts, (str, bytes)):
            compressed_idx.append(k)
            compressed.append(counts)
            expected.append(size[0] * size[1])
        else:
            invalid[k] = f'{where}: RLE counts is a {type(counts).__name__}'
    if compressed:
        totals = rle_run_totals(compressed)
        for k, total, want in zip(compressed_idx, totals, expected):
            if total != want:
                ann = annotations[k]
                invalid[k] = (f'{source}: annotation id {ann.get("id")} (image id '
                              f'{ann.get("image_id")}): malformed RLE counts (runs add up to '
                              f'{total if total >= 0 else "an invalid string"}, expected {want})')
    return invalid
