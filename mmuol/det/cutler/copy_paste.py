# Copyright (c) mmuol contributors. All rights reserved.
"""``CutLERCopyPaste``: CutLER's copy-paste with down-scaled source images."""
import random
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import autocast_box_type
from mmdet.structures.mask import BitmapMasks

__all__ = ['CutLERCopyPaste']


@TRANSFORMS.register_module()
class CutLERCopyPaste(BaseTransform):
    """Paste objects of a down-scaled second image, as CutLER trains.

    Steps (CutLER's training loop, done here in the dataloader workers):

    1. the **whole** source image and its masks are resized (bilinear; a
       mask pixel is set where the resized mask is > 0) to ``r x`` the
       destination's height and width, ``r ~ U(ratio_range)``, and placed at
       a uniformly random offset inside the destination;
    2. a random subset of the source's instances is chosen: 1 if it has one,
       else between 1 and ``n - 1`` (never all);
    3. a chosen instance covering ``>= occluded_thr`` of an existing
       destination mask (intersection / that mask's area) is discarded;
    4. the remaining instances' pixels replace the destination's; existing
       masks lose the covered pixels, emptied ones are removed, and **all**
       boxes are recomputed from the masks.

    It differs from mmdet's ``CopyPaste`` (same-size source, no rescaling,
    occlusion thresholds on the destination's boxes and mask areas). Use it
    in a ``MultiImageMixDataset`` after the resize / flip transforms::

        train_dataloader = dict(dataset=dict(
            type='MultiImageMixDataset',
            dataset=dict(type='MaskCutDataset', ..., pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='RandomChoiceResize', ...), dict(type='RandomFlip', prob=0.5)]),
            pipeline=[dict(type='CutLERCopyPaste', ratio_range=(0.3, 1.0)),
                      dict(type='PackDetInputs')]))

    Required keys: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_ignore_flags``, ``gt_masks`` (``BitmapMasks``), ``mix_results``.
    Modified keys: the same, except ``mix_results``.

    Args:
        ratio_range (tuple[float, float]): Range of the source scale ``r``.
            CutLER: ``(0.3, 1.0)`` in the first round, ``(0.5, 1.0)`` in the
            self-training rounds.
        prob (float): Probability of pasting. Defaults to 1.0 (CutLER).
        occluded_thr (float): Discard a pasted instance covering at least this
            fraction of an existing mask. Defaults to 0.5.
    """

    def __init__(self,
                 ratio_range: Sequence[float] = (0.3, 1.0),
                 prob: float = 1.0,
                 occluded_thr: float = 0.5) -> None:
        low, high = (float(v) for v in ratio_range)
        if not 0 < low <= high <= 1:
            raise ValueError(f'ratio_range must satisfy 0 < low <= high <= 1, got {ratio_range}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.ratio_range = (low, high)
        self.prob = float(prob)
        self.occluded_thr = float(occluded_thr)

    @cache_randomness
    def get_indexes(self, dataset) -> int:
        """Index of the source image (any image of the dataset)."""
        return random.randint(0, len(dataset) - 1)

    @cache_randomness
    def _draw(self, num_src: int, dst_hw: Tuple[int, int]) -> Optional[tuple]:
        """Random choices of one paste: (scale, offset, chosen instances)."""
        if np.random.rand() >= self.prob or num_src == 0:
            return None
        ratio = np.random.uniform(*self.ratio_range)
        h, w = (max(1, int(round(ratio * s))) for s in dst_hw)
        y0 = np.random.randint(0, dst_hw[0] - h + 1)
        x0 = np.random.randint(0, dst_hw[1] - w + 1)
        num = 1 if num_src == 1 else np.random.randint(1, num_src)
        chosen = np.sort(np.random.choice(num_src, size=num, replace=False))
        return (h, w), (y0, x0), chosen

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        """Paste a down-scaled copy of ``results['mix_results'][0]``.

        Args:
            results (dict): Destination results with one ``mix_results``.

        Returns:
            dict: The updated destination.
        """
        if len(results.get('mix_results', [])) != 1:
            raise ValueError('CutLERCopyPaste needs exactly one source image in '
                             "results['mix_results']: wrap the dataset in MultiImageMixDataset")
        src = results.pop('mix_results')[0]
        dst_img = results['img']
        dst_hw = dst_img.shape[:2]
        src_masks = src['gt_masks']
        draw = self._draw(len(src_masks), dst_hw)
        if draw is None:
            return results
        (h, w), (y0, x0), chosen = draw

        # 1. whole source image and chosen masks, resized to r x the destination.
        src_img = cv2.resize(src['img'], (w, h), interpolation=cv2.INTER_LINEAR)
        pasted = np.zeros((len(chosen), *dst_hw), dtype=np.uint8)
        for k, idx in enumerate(chosen):
            small = cv2.resize(
                src_masks.masks[idx].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            pasted[k, y0:y0 + h, x0:x0 + w] = small > 0

        # 3. drop pasted instances that would cover most of an existing object.
        dst_masks = results['gt_masks'].masks.astype(bool)
        if len(dst_masks):
            inter = np.einsum('phw,dhw->pd', pasted.astype(np.float32),
                              dst_masks.astype(np.float32))
            dst_area = dst_masks.sum(axis=(1, 2)).astype(np.float32)
            covered = inter / np.maximum(dst_area, 1)[None] >= self.occluded_thr
            covered &= dst_area[None] > 0
            keep = ~covered.any(axis=1)
        else:
            keep = np.ones(len(chosen), bool)
        keep &= pasted.reshape(len(chosen), -1).any(axis=1)
        if not keep.any():
            return results
        pasted, chosen = pasted[keep].astype(bool), chosen[keep]

        # 4. paste pixels, occlude existing masks, recompute boxes from masks.
        union = pasted.any(axis=0)
        canvas = dst_img.copy()
        region = canvas[y0:y0 + h, x0:x0 + w]
        local = union[y0:y0 + h, x0:x0 + w]
        region[local] = src_img[local]
        occluded = dst_masks & ~union[None]
        alive = occluded.reshape(len(occluded), -1).any(axis=1)
        masks = np.concatenate([occluded[alive], pasted]).astype(np.uint8)
        bitmap = BitmapMasks(masks, *dst_hw)
        results['img'] = canvas
        results['gt_masks'] = bitmap
        results['gt_bboxes'] = bitmap.get_bboxes(type(results['gt_bboxes']))
        results['gt_bboxes_labels'] = np.concatenate(
            [results['gt_bboxes_labels'][alive], src['gt_bboxes_labels'][chosen]])
        results['gt_ignore_flags'] = np.concatenate(
            [results['gt_ignore_flags'][alive], src['gt_ignore_flags'][chosen]])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(ratio_range={self.ratio_range}, prob={self.prob}, '
                f'occluded_thr={self.occluded_thr})')
