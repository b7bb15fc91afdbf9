# Copyright (c) mmuol contributors. All rights reserved.
"""CorLoc, the single-object discovery metric of LOST / TokenCut / FOUND.

:func:`bbox_iou` is LOST's ``datasets.bbox_iou`` (YOLOv5 code, shared by
TokenCut and FOUND), vectorised; :func:`corloc_hit` applies the CorLoc rule
(IoU >= 0.5 with *any* ground-truth box); :func:`corloc` is the fraction of
images with a hit. Host-free (numpy / torch only).
"""
from typing import Sequence

import torch

from mmuol.utils.arrays import ArrayLike

__all__ = ['bbox_iou', 'corloc_hit', 'corloc']


def bbox_iou(box1: ArrayLike, box2: ArrayLike, eps: float = 1e-7):
    """IoU of boxes exactly as LOST's ``datasets.bbox_iou``, vectorised.

    ``inter = clamp(min(x2) - max(x1), 0) * clamp(min(y2) - max(y1), 0)``,
    ``union = w1 * (h1 + eps) + w2 * (h2 + eps) - inter + eps``. Boxes are
    ``[x1, y1, x2, y2]`` in continuous coordinates (no +1 on widths). The
    arithmetic is done in torch with the same operation order, so integer
    boxes give float32 results bit-identical to LOST's.

    Args:
        box1 (np.ndarray | torch.Tensor): (4,) or (M, 4) predicted boxes.
        box2 (np.ndarray | torch.Tensor): (4,) or (K, 4) ground-truth boxes.
        eps (float): LOST's epsilon.

    Returns:
        np.ndarray | torch.Tensor: (M, K) IoUs, or (K,) when ``box1`` is 1-D
        (LOST's case); a tensor if either input is a tensor. Float32 for
        integer boxes, else the input float dtype.
    """
    as_tensor = isinstance(box1, torch.Tensor) or isinstance(box2, torch.Tensor)
    b1 = torch.as_tensor(box1)
    b2 = torch.as_tensor(box2)
    for name, b in (('box1', b1), ('box2', b2)):
        if b.ndim not in (1, 2) or b.shape[-1] != 4:
            raise ValueError(f'{name} must be (4,) or (N, 4), got shape '
                             f'{tuple(b.shape)}')
    single = b1.ndim == 1
    b1 = b1.reshape(-1, 1, 4)
    b2 = b2.reshape(1, -1, 4)
    b1_x1, b1_y1, b1_x2, b1_y2 = b1.unbind(-1)
    b2_x1, b2_y1, b2_x2, b2_y2 = b2.unbind(-1)
    inter = (torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(0) * \
        (torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)).clamp(0)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if single:
        iou = iou[0]
    return iou if as_tensor else iou.numpy()


def corloc_hit(pred_box: ArrayLike, gt_boxes: ArrayLike, iou_thr: float = 0.5) -> bool:
    """CorLoc hit: IoU >= ``iou_thr`` with any ground-truth box.

    Args:
        pred_box (np.ndarray | torch.Tensor): (4,) predicted box.
        gt_boxes (np.ndarray | torch.Tensor): (K, 4) ground-truth boxes
            (K may be 0).
        iou_thr (float): Threshold (0.5).

    Returns:
        bool: Whether the prediction localises an object (False if K = 0).
    """
    gt = torch.as_tensor(gt_boxes)
    if gt.numel() == 0:
        return False
    ious = torch.as_tensor(bbox_iou(pred_box, gt.reshape(-1, 4)))
    return bool((ious >= iou_thr).any())


def corloc(pred_boxes: Sequence[ArrayLike],
           gt_boxes: Sequence[ArrayLike],
           iou_thr: float = 0.5) -> float:
    """CorLoc over a dataset: fraction of images with a hit.

    Args:
        pred_boxes (Sequence): One (4,) box per image.
        gt_boxes (Sequence): Per image, a (K_i, 4) array of GT boxes.
        iou_thr (float): IoU threshold.

    Returns:
        float: hits / images (0.0 for no images).
    """
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(f'{len(pred_boxes)} predictions for '
                         f'{len(gt_boxes)} ground truths')
    if len(pred_boxes) == 0:
        return 0.0
    hits = sum(corloc_hit(p, g, iou_thr) for p, g in zip(pred_boxes, gt_boxes))
    return hits / len(pred_boxes)
