# Copyright (c) mmuol contributors. All rights reserved.
"""CutLER's self-training merge: new pseudo-labels from a detector's output.

After a training round the detector predicts on the training images; the
next round's labels are, per image (CutLER, arXiv 2301.11320, Sec. 3.3 and
its ``get_self_training_ann.py``):

1. the image's predictions, best ``max_per_image`` by score (30 in CutLER),
   kept when ``score >= score_thr`` (0.7 for round 1, 0.65 for round 2);
2. plus the previous labels whose mask IoU with **every** kept prediction
   is ``< mask_iou_thr`` (0.5): objects the detector missed persist;
3. an image without a kept prediction keeps its previous labels unchanged.

Annotation ids are renumbered 1..N in image order (kept predictions by
descending score, then the surviving previous labels in their order).

Two quirks of the official tool are **not** reproduced, on purpose:

* it overwrites ``area`` with the box area ``w * h``; here ``area`` stays
  the mask's pixel area (what COCO tools expect; ``area`` only matters for
  the small/medium/large split of an evaluation, not for training);
* it writes each annotation's ``width`` / ``height`` from the RLE size in
  swapped order; here annotations carry no size and image entries keep
  the correct one (the previous file's, size-corrected on reading).

A prediction's ``bbox`` is its mask's tight box (as CutLER's training uses
after copy-paste recomputes boxes from masks); its score is kept as
``score``. Mask IoUs are computed on the RLEs by pycocotools, on the CPU,
without decoding.

Nothing here imports mmdet or mmseg.
"""
from collections import defaultdict
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from .coco_json import _to_pycoco, annotation_entry, build_dataset

__all__ = ['merge_self_training', 'MergeStats', 'select_predictions']


class MergeStats(NamedTuple):
    """Counts of one merge.

    Attributes:
        num_images (int): Images in the output file.
        num_images_relabelled (int): Images with at least one kept prediction.
        num_predictions_kept (int): Predictions written.
        num_previous_kept (int): Previous labels written alongside kept
            predictions (IoU < ``mask_iou_thr`` with all of them).
        num_previous_replaced (int): Previous labels dropped because a kept
            prediction overlaps them.
        num_previous_unchanged (int): Previous labels of images without a kept
            prediction.
        num_annotations (int): Annotations in the output file.
    """
    num_images: int
    num_images_relabelled: int
    num_predictions_kept: int
    num_previous_kept: int
    num_previous_replaced: int
    num_previous_unchanged: int
    num_annotations: int


def select_predictions(predictions: Sequence[dict],
                       score_thr: float,
                       max_per_image: Optional[int] = 30) -> Dict[int, List[dict]]:
    """Per image, the best ``max_per_image`` predictions with ``score >= score_thr``.

    Args:
        predictions (Sequence[dict]): COCO result entries (``image_id``,
            ``score``, ``segmentation`` RLE; other keys ignored).
        score_thr (float): Minimum score (inclusive).
        max_per_image (int, optional): Top-k by score taken *before* the
            threshold (CutLER predicts 30 per image). None keeps all.

    Returns:
        dict[int, list[dict]]: Kept predictions per image id, by descending
        score (ties keep input order).
    """
    by_image: Dict[int, List[dict]] = defaultdict(list)
    for pred in predictions:
        by_image[int(pred['image_id'])].append(pred)
    kept = {}
    for img_id, preds in by_image.items():
        preds = sorted(preds, key=lambda p: -float(p['score']))
        if max_per_image is not None:
            preds = preds[:max_per_image]
        preds = [p for p in preds if float(p['score']) >= score_thr]
        if preds:
            kept[img_id] = preds
    return kept


def _as_coco_rle(seg, image_hw) -> dict:
    """pycocotools RLE of a segmentation (RLE dict or polygons)."""
    if isinstance(seg, list):  # polygons of a hand-made / converted file
        return mask_utils.merge(mask_utils.frPyObjects(seg, *image_hw))
    return _to_pycoco(seg)


def merge_self_training(previous: dict,
                        predictions: Sequence[dict],
                        score_thr: float = 0.7,
                        mask_iou_thr: float = 0.5,
                        max_per_image: Optional[int] = 30,
                        info: Optional[dict] = None) -> tuple:
    """Next round's pseudo-labels from predictions and the previous labels.

    Args:
        previous (dict): COCO dict of the previous round (the MaskCut file
            for round 1), image sizes already correct
            (:func:`~mmuol.pseudo_labels.load_json` fixes official files).
        predictions (Sequence[dict]): COCO "results" entries of the detector
            on the images of ``previous``: ``image_id``, ``score`` and a
            ``segmentation`` RLE at the image's size (the ``*.segm.json`` of
            mmdet's ``CocoMetric`` / detectron2's
            ``coco_instances_results.json``).
        score_thr (float): Keep predictions with ``score >= score_thr``.
        mask_iou_thr (float): A previous label survives when its mask IoU with
            every kept prediction of its image is ``< mask_iou_thr``.
        max_per_image (int, optional): Predictions per image considered,
            best first (CutLER: 30). None = all.
        info (dict, optional): ``info`` block of the output.

    Returns:
        tuple[dict, MergeStats]: The new COCO dict (images of ``previous``,
        category of ``previous``, ids renumbered) and its counts.

    Raises:
        ValueError: Predictions of an image that ``previous`` does not list,
            or a predicted mask whose size differs from its image's.
    """
    images = sorted(previous['images'], key=lambda im: im['id'])
    image_hw = {im['id']: (im['height'], im['width']) for im in images}
    unknown = {int(p['image_id']) for p in predictions} - set(image_hw)
    if unknown:
        raise ValueError(f'{len(unknown)} predicted image ids are not in the previous '
                         f'pseudo-label file (e.g. {min(unknown)}): predictions and file do '
                         'not belong together')
    kept = select_predictions(predictions, score_thr, max_per_image)
    old_by_image: Dict[int, List[dict]] = defaultdict(list)
    for ann in sorted(previous['annotations'], key=lambda a: a['id']):
        old_by_image[ann['image_id']].append(ann)
    categories = previous.get('categories') or None
    category_id = categories[0]['id'] if categories else 1

    out: List[dict] = []
    n_relabelled = n_pred = n_old_kept = n_replaced = n_unchanged = 0
    for img in images:
        img_id = img['id']
        olds = old_by_image.get(img_id, [])
        preds = kept.get(img_id, [])
        new_preds = []
        for pred in preds:
            size = tuple(pred['segmentation']['size'])
            if size != image_hw[img_id]:
                raise ValueError(f'image id {img_id}: predicted mask size {list(size)} differs '
                                 f'from the image height x width {image_hw[img_id]}')
            ann = annotation_entry(
                0, img_id, pred['segmentation'], category_id, score=float(pred['score']))
            if ann is not None:  # empty predicted masks carry no label
                new_preds.append(ann)
        if not new_preds:
            out.extend(dict(a) for a in olds)
            n_unchanged += len(olds)
            continue
        n_relabelled += 1
        n_pred += len(new_preds)
        out.extend(new_preds)
        if olds:
            hw = image_hw[img_id]
            ious = mask_utils.iou([_as_coco_rle(a['segmentation'], hw) for a in olds],
                                  [_as_coco_rle(a['segmentation'], hw) for a in new_preds],
                                  [0] * len(new_preds))
            survive = np.asarray(ious).reshape(len(olds), len(new_preds)).max(1) < mask_iou_thr
            out.extend(dict(a) for a, keep in zip(olds, survive) if keep)
            n_old_kept += int(survive.sum())
            n_replaced += int((~survive).sum())
    for new_id, ann in enumerate(out, start=1):
        ann['id'] = new_id
    data = build_dataset([dict(im) for im in images],
                         out,
                         categories=categories,
                         info=info if info is not None else previous.get('info'))
    stats = MergeStats(
        num_images=len(images),
        num_images_relabelled=n_relabelled,
        num_predictions_kept=n_pred,
        num_previous_kept=n_old_kept,
        num_previous_replaced=n_replaced,
        num_previous_unchanged=n_unchanged,
        num_annotations=len(out))
    return data, stats
