# Copyright (c) mmuol contributors. All rights reserved.
"""CutLER's DropLoss and the two-stage RoI heads that apply it.

DropLoss (CutLER, arXiv 2301.11320, Sec. 3.2): a region whose prediction
does not overlap any pseudo-label is not penalised for calling itself an
object, so the detector can find objects MaskCut missed. As coded in
CutLER's RoI heads, per stage and per **sampled** RoI (foreground and
background alike):

* the stage's **regressed** box (its deltas applied to the RoI, not the RoI
  itself) is compared with the image's pseudo-GT boxes;
* weight 0 if its max IoU is ``<= iou_thr`` (0.01), else 1 (no gradient
  through the weight);
* only the **classification** loss is weighted, and it stays normalised by
  the number of **all** sampled RoIs, dropped ones included (mmdet's
  ``BBoxHead.loss`` would divide by the kept RoIs only). Box regression
  (foreground RoIs only anyway), mask and RPN losses are unchanged.

Difference to CutLER's code: it compares with "the matched GT boxes of the
first k RoIs" (k = number of unique boxes among the first 100), which can
miss GT objects; here the reference set is all of the image's GT boxes, as
in the paper's formula. An image without GT boxes drops nothing (CutLER
skips DropLoss when GT is absent).

Usage in a config: replace ``StandardRoIHead`` / ``CascadeRoIHead`` by
``DropLossStandardRoIHead`` / ``DropLossCascadeRoIHead`` (same arguments,
plus ``drop_loss=dict(type='DropLoss', iou_thr=0.01)``; ``drop_loss=None``
makes them the plain heads, as in CutLER's self-training rounds). Any
``BBoxHead`` subclass (``Shared2FCBBoxHead``, ``Shared4Conv1FCBBoxHead``,
...) works, so Faster / Mask / Cascade (Mask) R-CNN can all use it.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.models.losses import accuracy
from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi, bbox_overlaps, get_box_tensor
from mmengine.config import ConfigDict
from torch import Tensor, nn

__all__ = ['drop_loss_weights', 'DropLoss', 'DropLossStandardRoIHead', 'DropLossCascadeRoIHead']


def drop_loss_weights(pred_boxes: Tensor, gt_boxes: Tensor, iou_thr: float = 0.01) -> Tensor:
    """DropLoss weights of one image's RoIs.

    Args:
        pred_boxes (Tensor): ``(N, 4)`` regressed boxes ``[x1, y1, x2, y2]``.
        gt_boxes (Tensor): ``(G, 4)`` pseudo-GT boxes of the same image.
        iou_thr (float): A box whose max IoU with the GT boxes is
            ``<= iou_thr`` is dropped.

    Returns:
        Tensor: ``(N,)`` float weights, 0 = dropped, 1 = kept (all ones when
        ``G == 0``).
    """
    if gt_boxes.numel() == 0 or pred_boxes.numel() == 0:
        return pred_boxes.new_ones(pred_boxes.shape[0])
    max_iou = bbox_overlaps(pred_boxes.float(), gt_boxes.float()).max(dim=1).values
    return (max_iou > iou_thr).to(pred_boxes.dtype)


@MODELS.register_module()
class DropLoss(nn.Module):
    """The classification term of a box head, with CutLER's DropLoss.

    Args:
        iou_thr (float): Drop a sampled RoI whose regressed box has max IoU
            ``<= iou_thr`` with the image's pseudo-GT boxes. Defaults to 0.01
            (CutLER's ``DROPLOSS_IOU_THRESH``).
    """

    def __init__(self, iou_thr: float = 0.01) -> None:
        super().__init__()
        self.iou_thr = float(iou_thr)

    @staticmethod
    def regressed_boxes(bbox_head: nn.Module, rois: Tensor, cls_score: Tensor, bbox_pred: Tensor,
                        labels: Tensor) -> Tensor:
        """Each RoI's box after the stage's regression (not clipped).

        Args:
            bbox_head (nn.Module): The stage's ``BBoxHead`` (its ``bbox_coder``,
                ``num_classes``, ``reg_class_agnostic``).
            rois (Tensor): ``(N, 5)`` ``[batch_idx, x1, y1, x2, y2]``.
            cls_score (Tensor): ``(N, C + 1)`` logits.
            bbox_pred (Tensor): ``(N, 4)`` or ``(N, 4 * C)`` deltas.
            labels (Tensor): ``(N,)`` sampled targets (``C`` = background).

        Returns:
            Tensor: ``(N, 4)`` boxes. Class-specific regression uses the
            target class for foreground RoIs and the best-scoring object class
            for background ones (as mmdet's ``refine_bboxes``).
        """
        deltas = bbox_pred.detach()
        if not bbox_head.reg_class_agnostic:
            num_classes = bbox_head.num_classes
            reg_dim = bbox_head.bbox_coder.encode_size
            best = cls_score.detach()[:, :num_classes].argmax(dim=1)
            cls = torch.where(labels < num_classes, labels, best)
            deltas = deltas.view(deltas.size(0), num_classes, reg_dim)
            deltas = deltas[torch.arange(deltas.size(0), device=deltas.device), cls]
        boxes = bbox_head.bbox_coder.decode(rois[:, 1:].detach(), deltas)
        return get_box_tensor(boxes)

    def keep_weights(self, pred_boxes: Tensor, roi_batch_idx: Tensor,
                     batch_gt_bboxes: Sequence[Tensor]) -> Tensor:
        """DropLoss weights of a batch of RoIs.

        Args:
            pred_boxes (Tensor): ``(N, 4)`` regressed boxes.
            roi_batch_idx (Tensor): ``(N,)`` image index of each RoI.
            batch_gt_bboxes (Sequence[Tensor]): Per image, ``(G_i, 4)`` GT boxes.

        Returns:
            Tensor: ``(N,)`` 0/1 weights.
        """
        keep = pred_boxes.new_ones(pred_boxes.shape[0])
        idx = roi_batch_idx.long()
        for i, gt in enumerate(batch_gt_bboxes):
            sel = idx == i
            if sel.any():
                keep[sel] = drop_loss_weights(pred_boxes[sel], gt.to(pred_boxes), self.iou_thr)
        return keep

    def forward(self, bbox_head: nn.Module, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor,
                labels: Tensor, label_weights: Tensor,
                batch_gt_bboxes: Sequence[Tensor]) -> Tuple[dict, Tensor]:
        """Classification loss and accuracy with DropLoss.

        Args:
            bbox_head (nn.Module): The stage's box head; its ``loss_cls`` is
                the per-RoI loss being weighted.
            cls_score (Tensor): ``(N, C + 1)`` logits of the sampled RoIs.
            bbox_pred (Tensor): ``(N, 4)`` / ``(N, 4 * C)`` deltas.
            rois (Tensor): ``(N, 5)`` sampled RoIs.
            labels (Tensor): ``(N,)`` targets.
            label_weights (Tensor): ``(N,)`` weights from the box head's
                ``get_targets``.
            batch_gt_bboxes (Sequence[Tensor]): Per image, its GT boxes.

        Returns:
            tuple[dict, Tensor]: ``loss_cls`` (and ``acc``, ``drop_ratio``)
            as the box head names them, and the ``(N,)`` keep weights.
        """
        with torch.no_grad():
            boxes = self.regressed_boxes(bbox_head, rois, cls_score, bbox_pred, labels)
            keep = self.keep_weights(boxes, rois[:, 0], batch_gt_bboxes)
        # CutLER's normaliser: every sampled RoI, dropped ones included.
        avg_factor = max(float((label_weights > 0).sum()), 1.)
        loss = bbox_head.loss_cls(cls_score, labels, label_weights * keep, avg_factor=avg_factor)
        out = dict(loss) if isinstance(loss, dict) else dict(loss_cls=loss)
        if getattr(bbox_head, 'custom_activation', False):
            out.update(bbox_head.loss_cls.get_accuracy(cls_score, labels))
        else:
            out['acc'] = accuracy(cls_score, labels)
        num = max(keep.numel(), 1)
        out['drop_ratio'] = (keep.numel() - keep.sum()) / num
        return out, keep


class _DropLossMixin:
    """Shared part of the DropLoss RoI heads.

    ``loss`` remembers the batch's GT boxes; ``bbox_loss`` lets the host head
    compute everything as usual and then replaces its classification term by
    :class:`DropLoss`'s. Box regression, mask and RPN terms are untouched.
    """

    drop_loss: Optional[DropLoss]
    _batch_gt_bboxes: Optional[List[Tensor]] = None

    def _build_drop_loss(self, drop_loss: Optional[dict]) -> None:
        self.drop_loss = MODELS.build(drop_loss) if drop_loss is not None else None

    def loss(self, x: Tuple[Tensor], rpn_results_list, batch_data_samples: SampleList) -> dict:
        """The host head's ``loss`` with the GT boxes at hand for DropLoss."""
        self._batch_gt_bboxes = [
            get_box_tensor(sample.gt_instances.bboxes) for sample in batch_data_samples
        ]
        try:
            return super().loss(x, rpn_results_list, batch_data_samples)
        finally:
            self._batch_gt_bboxes = None

    def _apply_drop_loss(self, bbox_head: nn.Module, bbox_results: dict,
                         sampling_results: List[SamplingResult], train_cfg: ConfigDict) -> None:
        """Overwrite ``bbox_results['loss_bbox']``'s classification term."""
        if self._batch_gt_bboxes is None:
            return
        if self.drop_loss is None:
            # Logged as 0 so a log never shows a stale ratio once DropLoss is off.
            bbox_results['loss_bbox']['drop_ratio'] = bbox_results['cls_score'].new_zeros(())
            return
        rois = bbox2roi([res.priors for res in sampling_results])
        labels, label_weights, _, _ = bbox_head.get_targets(sampling_results, train_cfg)
        cls_terms, _ = self.drop_loss(bbox_head, bbox_results['cls_score'],
                                      bbox_results['bbox_pred'], rois, labels, label_weights,
                                      self._batch_gt_bboxes)
        bbox_results['loss_bbox'].update(cls_terms)


@MODELS.register_module()
class DropLossStandardRoIHead(_DropLossMixin, StandardRoIHead):
    """``StandardRoIHead`` (Faster / Mask R-CNN) with CutLER's DropLoss.

    Args:
        drop_loss (dict, optional): ``dict(type='DropLoss', iou_thr=0.01)``;
            None turns DropLoss off (a plain ``StandardRoIHead``).
        **kwargs: ``StandardRoIHead`` arguments.
    """

    def __init__(self, *args, drop_loss: Optional[dict] = dict(type='DropLoss'), **kwargs):
        super().__init__(*args, **kwargs)
        self._build_drop_loss(drop_loss)

    def bbox_loss(self, x: Tuple[Tensor], sampling_results: List[SamplingResult]) -> dict:
        """``StandardRoIHead.bbox_loss`` with the DropLoss classification term."""
        bbox_results = super().bbox_loss(x, sampling_results)
        self._apply_drop_loss(self.bbox_head, bbox_results, sampling_results, self.train_cfg)
        return bbox_results


@MODELS.register_module()
class DropLossCascadeRoIHead(_DropLossMixin, CascadeRoIHead):
    """``CascadeRoIHead`` with CutLER's DropLoss in every stage.

    Each stage compares its own regressed boxes with the GT boxes, as
    CutLER's cascade head does.

    Args:
        drop_loss (dict, optional): ``dict(type='DropLoss', iou_thr=0.01)``;
            None turns DropLoss off (a plain ``CascadeRoIHead``).
        **kwargs: ``CascadeRoIHead`` arguments.
    """

    def __init__(self, *args, drop_loss: Optional[dict] = dict(type='DropLoss'), **kwargs):
        super().__init__(*args, **kwargs)
        self._build_drop_loss(drop_loss)

    def bbox_loss(self, stage: int, x: Tuple[Tensor],
                  sampling_results: List[SamplingResult]) -> dict:
        """``CascadeRoIHead.bbox_loss`` with the DropLoss classification term."""
        bbox_results = super().bbox_loss(stage, x, sampling_results)
        self._apply_drop_loss(self.bbox_head[stage], bbox_results, sampling_results,
                              self.train_cfg[stage])
        return bbox_results
