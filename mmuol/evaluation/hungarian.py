# Copyright (c) mmuol contributors. All rights reserved.
"""Cluster-to-class matching metrics of unsupervised semantic segmentation.

An unsupervised segmenter predicts *cluster ids*, not class ids. Its mIoU is
computed after matching clusters to classes on the whole evaluation set; the
only state needed is the ``(num_clusters, num_classes)`` confusion matrix
``confusion[cluster, class]`` (pixel counts), so evaluation memory does not
grow with the number of images and confusions of several workers simply add.

Three matching modes, named by what they do:

================  ===========================================================
``'max_pixels'``  STEGO's ``UnsupervisedMetrics`` (Hamilton et al., ICLR
                  2022): Hungarian assignment maximising the number of
                  matched **pixels** (``linear_sum_assignment(confusion,
                  maximize=True)``). With more clusters than classes STEGO
                  *drops* every pixel predicted in a cluster id
                  ``>= num_classes`` before counting
                  (``drop_extra_cluster_pixels=True``, its behaviour) and
                  gathers the clusters left unassigned into one extra
                  "class" row that can only be wrong. mIoU is the mean over
                  the classes whose IoU is defined (0/0 skipped).
``'max_iou'``     Deep Spectral Methods' ``eval.py`` (Melas-Kyriazi et al.,
                  CVPR 2022): Hungarian assignment maximising the summed
                  **IoU** when there are as many clusters as classes, else a
                  majority vote (each cluster goes to the class it overlaps
                  best in IoU; several clusters may share a class). mIoU is
                  the mean over all classes (a class without pixels counts
                  as 0).
``'none'``        No matching (a linear probe predicts class ids): the
                  confusion is used as it is; mIoU as in ``'max_pixels'``.
================  ===========================================================

Pixel accuracy is the fraction of counted pixels whose matched class is the
ground truth. Values here are fractions in [0, 1]; the mmseg metric reports
them x100. See ``configs/stego/README.md`` for the protocol.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from mmuol.utils.arrays import ArrayLike, to_numpy

__all__ = [
    'MATCHING_MODES', 'HungarianMatch', 'confusion_matrix', 'invalid_label_values',
    'match_clusters', 'iou_from_histogram', 'remap_clusters'
]

MATCHING_MODES = ('max_pixels', 'max_iou', 'none')


class HungarianMatch(NamedTuple):
    """What :func:`match_clusters` returns.

    Attributes:
        miou (float): Mean IoU, fraction.
        accuracy (float): Pixel accuracy, fraction.
        iou (np.ndarray): ``(num_classes,)`` per-class IoU (float64); NaN
            where undefined (no pixel predicted or labelled) in the
            ``'max_pixels'`` / ``'none'`` modes, 0 in ``'max_iou'``.
        cluster_to_class (np.ndarray): ``(num_clusters,)`` int64 class of
            every cluster, ``-1`` for a cluster left unassigned.
        histogram (np.ndarray): Matched confusion, rows = predicted class,
            columns = ground-truth class, float64 ``(num_classes,
            num_classes)``; in ``'max_pixels'`` mode with more clusters than
            classes, STEGO's ``(num_classes + 1, num_classes + 1)`` matrix
            whose last row holds the unassigned clusters' pixels.
        extra_iou (float | None): IoU of that extra row's pseudo-class (0 when
            unassigned clusters hold pixels, NaN when they hold none, and
            included in ``miou`` as STEGO does); None when there is no extra
            row.
        num_pixels (int): Pixels counted (after dropping).
    """
    miou: float
    accuracy: float
    iou: np.ndarray
    cluster_to_class: np.ndarray
    histogram: np.ndarray
    extra_iou: Optional[float]
    num_pixels: int


def _as_int_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f'{name} must hold integer ids, got dtype {t.dtype}')
    return t.reshape(-1).long()


def invalid_label_values(labels: ArrayLike,
                         num_classes: int,
                         ignore_index: Optional[int] = 255) -> np.ndarray:
    """Label values that are neither a class id nor the ignore index.

    Args:
        labels (np.ndarray | torch.Tensor): Ground-truth label map(s), any
            shape.
        num_classes (int): Number of classes (valid ids ``0..num_classes-1``).
        ignore_index (int, optional): The "no label" value (255 in mmseg).

    Returns:
        np.ndarray: Sorted unique offending values (empty when all are fine).
    """
    lab = _as_int_tensor(labels, 'labels')
    bad = (lab < 0) | (lab >= num_classes)
    if ignore_index is not None:
        bad &= lab != ignore_index
    return torch.unique(lab[bad]).cpu().numpy()


def confusion_matrix(preds: ArrayLike, labels: ArrayLike, num_clusters: int,
                     num_classes: int) -> np.ndarray:
    """Pixel counts ``confusion[cluster, class]`` of one or more label maps.

    Only pixels with ``0 <= label < num_classes`` are counted, so the ignore
    value (255, or STEGO's -1) and any other out-of-range label are skipped,
    as in STEGO's ``UnsupervisedMetrics.update``. Computed with one
    ``bincount`` on the input's device.

    Args:
        preds (np.ndarray | torch.Tensor): Predicted cluster ids, any shape.
        labels (np.ndarray | torch.Tensor): Ground-truth class ids, the same
            number of elements.
        num_clusters (int): Number of clusters (rows).
        num_classes (int): Number of classes (columns).

    Returns:
        np.ndarray: ``(num_clusters, num_classes)`` int64 counts.

    Raises:
        ValueError: Different sizes, or a counted pixel predicted outside
            ``[0, num_clusters)`` (the model has more outputs than the metric
            was told).
    """
    pred = _as_int_tensor(preds, 'preds')
    lab = _as_int_tensor(labels, 'labels').to(pred.device)
    if pred.numel() != lab.numel():
        raise ValueError(f'preds ({pred.numel()} pixels) and labels ({lab.numel()} pixels) '
                         'differ in size')
    keep = (lab >= 0) & (lab < num_classes)
    pred, lab = pred[keep], lab[keep]
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_clusters):
        bad = torch.unique(pred[(pred < 0) | (pred >= num_clusters)]).cpu().tolist()
        raise ValueError(f'predicted cluster ids {bad[:10]} are outside [0, {num_clusters}); '
                         'is num_clusters the number of outputs of the model?')
    counts = torch.bincount(pred * num_classes + lab, minlength=num_clusters * num_classes)
    return counts.reshape(num_clusters, num_classes).cpu().numpy().astype(np.int64)


def iou_from_histogram(histogram: np.ndarray) -> np.ndarray:
    """Per-column IoU of a square matched confusion (rows = prediction).

    ``iou[k] = hist[k, k] / (rowsum[k] + colsum[k] - hist[k, k])``; NaN when
    the denominator is 0 (class neither predicted nor present).

    Args:
        histogram (np.ndarray): ``(n, n)`` counts.

    Returns:
        np.ndarray: ``(n,)`` float64.
    """
    hist = np.asarray(histogram, dtype=np.float64)
    tp = np.diag(hist)
    denom = hist.sum(0) + hist.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        return tp / denom


def _check_confusion(confusion: ArrayLike) -> np.ndarray:
    conf = to_numpy(confusion)
    if conf.ndim != 2:
        raise ValueError(f'confusion must be (num_clusters, num_classes), got shape {conf.shape}')
    if not np.issubdtype(conf.dtype, np.number) or (conf < 0).any():
        raise ValueError('confusion must hold non-negative pixel counts')
    if conf.shape[0] < conf.shape[1]:
        raise ValueError(f'{conf.shape[0]} clusters for {conf.shape[1]} classes: every matching '
                         'mode needs at least as many clusters as classes (set num_clusters >= '
                         'num_classes)')
    return conf.astype(np.float64)


def _max_pixels(conf: np.ndarray,
                drop_extra: bool) -> Tuple[np.ndarray, np.ndarray, Optional[float]]:
    """STEGO's matching; returns (cluster_to_class, histogram, extra_iou)."""
    n_clusters, n_classes = conf.shape
    if drop_extra:
        conf = conf.copy()
        conf[n_classes:] = 0
    rows, cols = linear_sum_assignment(conf, maximize=True)
    cluster_to_class = np.full(n_clusters, -1, dtype=np.int64)
    cluster_to_class[rows] = cols
    if n_clusters == n_classes:
        return cluster_to_class, conf[np.argsort(cols)], None
    # STEGO builds the histogram from a second assignment solved on the
    # transpose (class -> cluster); both agree unless the optimum is tied.
    _, clusters_of_class = linear_sum_assignment(conf.T, maximize=True)
    unassigned = np.setdiff1d(np.arange(n_clusters), rows)
    hist = np.zeros((n_classes + 1, n_classes + 1))
    hist[:n_classes, :n_classes] = conf[clusters_of_class]
    hist[n_classes, :n_classes] = conf[unassigned].sum(0)
    extra_iou = 0.0 if hist[n_classes].sum() > 0 else float('nan')
    return cluster_to_class, hist, extra_iou


def _max_iou(conf: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """DSM's matching; returns (cluster_to_class, histogram)."""
    n_clusters, n_classes = conf.shape
    union = conf.sum(1, keepdims=True) + conf.sum(0, keepdims=True) - conf
    iou = conf / np.maximum(union, 1e-8)
    if n_clusters == n_classes:
        rows, cols = linear_sum_assignment(iou, maximize=True)
        cluster_to_class = np.empty(n_clusters, dtype=np.int64)
        cluster_to_class[rows] = cols
    else:
        cluster_to_class = iou.argmax(1).astype(np.int64)
    hist = np.zeros((n_classes, n_classes))
    np.add.at(hist, cluster_to_class, conf)
    return cluster_to_class, hist


def match_clusters(confusion: ArrayLike,
                   mode: str = 'max_pixels',
                   drop_extra_cluster_pixels: bool = True) -> HungarianMatch:
    """Match clusters to classes and score the matched prediction.

    Args:
        confusion (np.ndarray | torch.Tensor): ``(num_clusters, num_classes)``
            pixel counts (:func:`confusion_matrix`, summed over images and
            workers). ``num_clusters >= num_classes``; ``'none'`` needs them
            equal.
        mode (str): ``'max_pixels'`` (STEGO), ``'max_iou'`` (DSM) or
            ``'none'`` (linear probe); see the module docstring.
        drop_extra_cluster_pixels (bool): ``'max_pixels'`` only: discard the
            pixels predicted in clusters ``>= num_classes`` before matching,
            as STEGO does (True); False keeps them, so a pixel in an
            unassigned cluster counts as an error.

    Returns:
        HungarianMatch: mIoU, accuracy, per-class IoU, assignment, matched
        confusion.

    Raises:
        ValueError: Unknown mode, fewer clusters than classes, a non-square
            confusion in ``'none'`` mode, or no counted pixel at all.
    """
    if mode not in MATCHING_MODES:
        raise ValueError(f'mode must be one of {MATCHING_MODES}, got {mode!r}')
    conf = _check_confusion(confusion)
    n_clusters, n_classes = conf.shape
    extra_iou = None
    if mode == 'max_pixels':
        cluster_to_class, hist, extra_iou = _max_pixels(conf, drop_extra_cluster_pixels)
    elif mode == 'max_iou':
        cluster_to_class, hist = _max_iou(conf)
    else:
        if n_clusters != n_classes:
            raise ValueError(f"mode='none' scores class predictions: the confusion must be "
                             f'square, got {n_clusters} predicted ids for {n_classes} classes')
        cluster_to_class, hist = np.arange(n_classes, dtype=np.int64), conf
    total = hist.sum()
    if total == 0:
        raise ValueError('no pixel was counted: every label is ignored or outside '
                         f'[0, {n_classes}) (or every prediction fell in a dropped extra '
                         'cluster); check the label mapping and num_classes')
    accuracy = float(np.trace(hist) / total)
    if mode == 'max_iou':
        tp = np.diag(hist)
        iou = tp / np.maximum(hist.sum(0) + hist.sum(1) - tp, 1e-8)
        miou = float(iou.mean())
    else:
        full = iou_from_histogram(hist)
        miou = float(np.nanmean(full)) if not np.isnan(full).all() else float('nan')
        iou = full[:n_classes]
        if extra_iou is not None:
            extra_iou = float(full[n_classes])
    return HungarianMatch(miou, accuracy, iou, cluster_to_class, hist, extra_iou, int(total))


def remap_clusters(preds: ArrayLike, cluster_to_class: Sequence[int]) -> np.ndarray:
    """Map a cluster-id map to class ids with an assignment (``-1`` stays).

    Args:
        preds (np.ndarray | torch.Tensor): Cluster ids, any shape.
        cluster_to_class (Sequence[int]): ``HungarianMatch.cluster_to_class``.

    Returns:
        np.ndarray: Class ids (int64), ``-1`` for unassigned clusters.
    """
    table = np.asarray(cluster_to_class, dtype=np.int64)
    return table[to_numpy(preds)]
