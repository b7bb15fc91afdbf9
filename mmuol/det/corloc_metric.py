# Copyright (c) mmuol contributors. All rights reserved.
"""CorLoc (correct localization) for single-object discovery.

The protocol of LOST's ``main_lost.py`` (valeoai/LOST, Apache-2.0), reused by
TokenCut and FOUND: one predicted box per image; the image is a hit if the
box has IoU >= 0.5 with **any** ground-truth box (``bbox_iou`` of LOST, which
adds ``eps = 1e-7`` to heights and to the union); CorLoc = hits / evaluated
images. An image without a prediction is a miss.

Images skipped as invalid (``skip_invalid=True`` of the CorLoc datasets: at
load time, ``dataset_meta['invalid_images']``, or at test time, samples with
``invalid_reason``) are not evaluated; their number is logged and reported
as ``num_skipped``.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from torch import Tensor

from mmuol.evaluation import bbox_iou
from .datasets import _quote


def _boxes(instances: Optional[dict]) -> Tensor:
    """``(K, 4)`` boxes of an ``InstanceData`` dict (``(0, 4)`` if none)."""
    if not instances or 'bboxes' not in instances:
        return torch.zeros((0, 4))
    boxes = instances['bboxes']
    if hasattr(boxes, 'tensor'):  # mmdet HorizontalBoxes
        boxes = boxes.tensor
    return torch.as_tensor(boxes).reshape(-1, 4).detach().cpu()


def _as_lost_dtype(boxes: Tensor) -> Tensor:
    """Integer-valued boxes as int64, as LOST computes the IoU (int64 boxes,
    float32 after adding eps); anything else stays floating point."""
    if boxes.is_floating_point() and bool((boxes == boxes.round()).all()):
        return boxes.round().to(torch.int64)
    return boxes


@METRICS.register_module()
class CorLocMetric(BaseMetric):
    """CorLoc of the top-scored predicted box per image, in percent.

    Args:
        iou_thr (float): IoU needed for a hit. Defaults to 0.5.
        hard (bool): Use every ground-truth box, including the difficult /
            truncated ones that the dataset flags with ``ignore_flag``
            (``ignored_instances``); images without any box are counted as
            misses. This is LOST's default protocol. ``False`` = LOST's
            ``--no_hard``: only ``gt_instances`` are used and images left
            without a box are skipped. Defaults to True.
        eps (float): ``bbox_iou`` epsilon. Defaults to 1e-7 (LOST).
        collect_device (str): ``'cpu'`` or ``'gpu'`` for distributed
            collection. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to no
            (keys ``corloc``, ``num_images``, ``num_hits``, plus
            ``num_skipped`` when invalid images were skipped).
    """

    # '' = no prefix (keys 'corloc', 'num_images') and no mmengine warning.
    default_prefix: Optional[str] = ''

    def __init__(self,
                 iou_thr: float = 0.5,
                 hard: bool = True,
                 eps: float = 1e-7,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0.0 < iou_thr <= 1.0:
            raise ValueError(f'iou_thr must be in (0, 1], got {iou_thr}')
        self.iou_thr = iou_thr
        self.hard = hard
        self.eps = eps

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Score one batch: append ``(evaluated, hit, invalid_reason)`` per image.

        Args:
            data_batch (dict): The data from the dataloader (unused).
            data_samples (Sequence[dict]): Model outputs as dicts with
                ``pred_instances`` (``bboxes``, ``scores``), ``gt_instances``
                and ``ignored_instances``; a skipped image has
                ``invalid_reason``.
        """
        for sample in data_samples:
            reason = sample.get('invalid_reason')
            if reason is not None:
                self.results.append((False, False, str(reason)))
                continue
            gt = _boxes(sample.get('gt_instances'))
            if self.hard:
                gt = torch.cat([gt, _boxes(sample.get('ignored_instances'))])
            elif len(gt) == 0:
                # --no_hard: images with only hard objects are not evaluated.
                self.results.append((False, False, None))
                continue
            pred = sample.get('pred_instances') or {}
            boxes = _boxes(pred)
            hit = False
            if len(boxes) > 0 and len(gt) > 0:
                scores = pred.get('scores')
                top = 0 if scores is None or len(scores) == 0 else int(
                    torch.as_tensor(scores).argmax())
                ious = bbox_iou(_as_lost_dtype(boxes[top]), _as_lost_dtype(gt), eps=self.eps)
                hit = bool((ious >= self.iou_thr).any())
            self.results.append((True, hit, None))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Aggregate the per-image results.

        Args:
            results (list[tuple]): ``(evaluated, hit, invalid_reason)`` per
                image.

        Returns:
            dict: ``corloc`` (percent), ``num_images`` (evaluated images),
            ``num_hits`` and, when invalid images were skipped,
            ``num_skipped``.
        """
        num_images = sum(1 for evaluated, _, _ in results if evaluated)
        num_hits = sum(1 for evaluated, hit, _ in results if evaluated and hit)
        corloc = 100.0 * num_hits / num_images if num_images else 0.0
        no_gt = sum(1 for evaluated, _, reason in results if not evaluated and reason is None)
        invalid = list((self.dataset_meta or {}).get('invalid_images', []))
        invalid += [reason for _, _, reason in results if reason is not None]
        logger = MMLogger.get_current_instance()
        logger.info(f'CorLoc: {corloc:.2f} ({num_hits}/{num_images} images' +
                    (f', {no_gt} without non-hard objects skipped)' if no_gt else ')'))
        metrics = dict(corloc=corloc, num_images=num_images, num_hits=num_hits)
        if invalid:
            logger.warning(f'CorLoc: {len(invalid)} invalid images skipped (not evaluated, '
                           f'skip_invalid=True):{_quote(invalid)}')
            metrics['num_skipped'] = len(invalid)
        return metrics
