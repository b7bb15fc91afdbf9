# Copyright (c) mmuol contributors. All rights reserved.
"""Saliency metrics (pixel accuracy, IoU, max F-beta, MAE) in the two
conventions of the upstream code bases, which disagree. Host-free.

================  ======================================  ====================================
                  ``'tokencut'`` (default)                ``'found'`` (FOUND / SelfMask)
================  ======================================  ====================================
GT foreground     ``gt > 0.5`` in GT units (uint8 PNG:    ``gt == 255`` (``== 1`` for a GT in
                  any non-zero pixel)                     [0, 1]; ``True`` for bool)
P, R              ``tp/(tp+fp)``, ``tp/(tp+fn)``; P = 1   ``tp/(tp+fp+1e-7)``,
                  if the prediction is empty, R = 1 if    ``tp/(tp+fn+1e-7)``
                  the GT is empty
F-beta            ``(1+b²)PR/(b²P+R)``, NaN -> 0          ``(1+b²)PR/(b²P+R+1e-7)``
b² default        0.3                                     **0.09** (SelfMask squares its
                                                          ``beta_square=0.3`` again)
max F-beta        max over thresholds of the              mean over images of the per-image
                  **dataset-mean** F curve                max over thresholds
MAE (``'mae'``)   on the soft prediction (standard)       on the 0.5-binarised prediction
================  ======================================  ====================================

Shared: thresholds ``arange(0, 1, 1/255)`` (255 values), foreground is
``pred > t``, compared in float32 as the upstream torch code does; IoU and
accuracy use ``pred > 0.5`` and are averaged over images. ``beta_sq`` overrides
b² in either convention (e.g. the standard 0.3 with FOUND's aggregation).

An IoU with an empty union (empty prediction and empty GT) is 0 (upstream:
NaN in TokenCut's form, 0 in FOUND's eps form).
"""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from mmuol.utils.arrays import ArrayLike, to_numpy

__all__ = [
    'SALIENCY_THRESHOLDS', 'SALIENCY_CONVENTIONS', 'TOKENCUT_BETA_SQ', 'FOUND_BETA_SQ',
    'binarize_saliency_gt', 'saliency_image_stats', 'aggregate_saliency', 'found_saliency_metrics',
    'tokencut_saliency_metrics', 'SaliencyAccumulator'
]

#: The 255 thresholds of both code bases, float32 like their torch tensors.
SALIENCY_THRESHOLDS = np.arange(0, 1, 1 / 255).astype(np.float32)
SALIENCY_CONVENTIONS = ('tokencut', 'found')
#: TokenCut's b² (the standard saliency value).
TOKENCUT_BETA_SQ = 0.3
#: FOUND / SelfMask's effective b²: ``beta_square = 0.3`` squared again.
FOUND_BETA_SQ = 0.3**2
_FOUND_EPS = 1e-7


def _check_convention(convention: str) -> str:
    if convention not in SALIENCY_CONVENTIONS:
        raise ValueError(f'convention must be one of {SALIENCY_CONVENTIONS},'
                         f' got {convention!r}')
    return convention


def _default_beta_sq(convention: str, beta_sq: Optional[float]) -> float:
    if beta_sq is not None:
        return float(beta_sq)
    return TOKENCUT_BETA_SQ if convention == 'tokencut' else FOUND_BETA_SQ


def _check_pred(pred: ArrayLike) -> np.ndarray:
    p = to_numpy(pred)
    if p.ndim != 2:
        raise ValueError(f'prediction must be 2-D (H, W), got shape '
                         f'{tuple(p.shape)}')
    if p.dtype == bool:
        return p.astype(np.float32)
    if not np.issubdtype(p.dtype, np.number):
        raise TypeError(f'prediction must be numeric, got {p.dtype}')
    # Validate before the float32 cast so that e.g. 1 + 1e-12 is rejected.
    if p.size and not (np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1):
        raise ValueError('prediction values must be finite and in [0, 1], '
                         f'got range [{p.min()}, {p.max()}]')
    return p.astype(np.float32)


def binarize_saliency_gt(gt: ArrayLike, convention: str = 'tokencut') -> np.ndarray:
    """Foreground mask of a saliency ground truth, per convention.

    * bool GT: used as is (both conventions).
    * numeric GT (values must be finite and in [0, 255]):
      ``'tokencut'``: ``gt > 0.5`` in the GT's own units, i.e. for the usual
      uint8 {0, 255} PNG any non-zero pixel (anti-aliased edge pixels count
      as foreground); ``'found'``: ``gt == 255``, or ``gt == 1`` if the GT
      lies in [0, 1] (max <= 1), i.e. only fully-on pixels (anti-aliased edge
      pixels count as background).

    Args:
        gt (np.ndarray | torch.Tensor): (H, W) ground truth.
        convention (str): ``'tokencut'`` or ``'found'``.

    Returns:
        np.ndarray: (H, W) bool foreground mask.
    """
    _check_convention(convention)
    g = to_numpy(gt)
    if g.ndim != 2:
        raise ValueError(f'ground truth must be 2-D (H, W), got shape '
                         f'{tuple(g.shape)}')
    if g.dtype == bool:
        return g
    if not np.issubdtype(g.dtype, np.number):
        raise TypeError(f'ground truth must be bool or numeric, got '
                        f'{g.dtype}')
    if g.size == 0:
        return np.zeros(g.shape, dtype=bool)
    gmin, gmax = g.min(), g.max()
    if not (np.isfinite(gmin) and np.isfinite(gmax) and gmin >= 0 and gmax <= 255):
        raise ValueError('ground-truth values must be in [0, 255], got range '
                         f'[{gmin}, {gmax}]')
    if convention == 'tokencut':
        return g > 0.5
    return g == (1 if gmax <= 1 else 255)


def _f_beta(tp: np.ndarray, n_pred: np.ndarray, n_gt: int, beta_sq: float,
            convention: str) -> np.ndarray:
    """F-beta from counts (arrays over thresholds), per convention."""
    tp = tp.astype(np.float64)
    n_pred = n_pred.astype(np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        if convention == 'found':
            prec = tp / (n_pred + _FOUND_EPS)
            rec = tp / (n_gt + _FOUND_EPS)
            return (1 + beta_sq) * prec * rec / (beta_sq * prec + rec + _FOUND_EPS)
        prec = np.where(n_pred > 0, tp / n_pred, 1.0)
        rec = tp / n_gt if n_gt > 0 else np.ones_like(tp)
        f = (1 + beta_sq) * prec * rec / (beta_sq * prec + rec)
    return np.nan_to_num(f, nan=0.0)


def saliency_image_stats(pred: ArrayLike,
                         gt: ArrayLike,
                         convention: str = 'tokencut',
                         beta_sq: Optional[float] = None) -> Dict[str, Union[float, np.ndarray]]:
    """Per-image saliency statistics (small; enough to aggregate later).

    Args:
        pred (np.ndarray | torch.Tensor): (H, W) soft prediction in [0, 1].
        gt (np.ndarray | torch.Tensor): (H, W) ground truth (bool, {0, 1} or
            uint8 {0, 255}; see :func:`binarize_saliency_gt`).
        convention (str): ``'tokencut'`` or ``'found'`` (module docstring).
        beta_sq (float, optional): b²; default per convention (0.3 / 0.09).

    Returns:
        dict: ``f_curve`` (255,) float64 F-beta per threshold; scalars
        ``f_max`` (max of the curve), ``f_adaptive`` (threshold
        ``2 * mean(pred)``), ``f_half`` (threshold 0.5), ``iou``,
        ``accuracy``, ``mae_binary`` (MAE of ``pred > 0.5``), ``mae_soft``.

    Raises:
        ValueError: on shape mismatch, a prediction outside [0, 1] or a GT
            outside [0, 255].
    """
    _check_convention(convention)
    beta_sq = _default_beta_sq(convention, beta_sq)
    p_shape = tuple(to_numpy(pred).shape)
    g_shape = tuple(to_numpy(gt).shape)
    if p_shape != g_shape:
        raise ValueError(f'prediction shape {p_shape} does not match ground '
                         f'truth shape {g_shape}')
    p = _check_pred(pred)
    fg = binarize_saliency_gt(gt, convention)
    n_gt = int(np.count_nonzero(fg))

    # pred > thr[k]  <=>  k < (number of thresholds strictly below pred):
    # one searchsorted + two bincounts give the counts at all thresholds.
    nthr = SALIENCY_THRESHOLDS.size
    bins = np.searchsorted(SALIENCY_THRESHOLDS, p.ravel(), side='left')
    hist_all = np.bincount(bins, minlength=nthr + 1)
    hist_fg = np.bincount(bins[fg.ravel()], minlength=nthr + 1)
    # n_above[k] = #{bins > k} for k = 0..nthr-1
    n_pred = hist_all[::-1].cumsum()[::-1][1:]
    tp = hist_fg[::-1].cumsum()[::-1][1:]
    f_curve = _f_beta(tp, n_pred, n_gt, beta_sq, convention)

    def f_at(thr: float) -> float:
        pb = p > np.float32(thr)
        tp_ = np.count_nonzero(pb & fg)
        return float(
            _f_beta(np.array([tp_]), np.array([np.count_nonzero(pb)]), n_gt, beta_sq,
                    convention)[0])

    pb = p > 0.5
    inter = np.count_nonzero(pb & fg)
    union = np.count_nonzero(pb | fg)
    npix = max(p.size, 1)
    acc = np.count_nonzero(pb == fg) / npix
    return dict(
        f_curve=f_curve,
        f_max=float(f_curve.max()),
        # Adaptive threshold as SelfMask: 2 * mean, capped at 1.
        f_adaptive=f_at(min(2 * float(p.mean(dtype=np.float64)), 1.0)),
        f_half=f_at(0.5),
        iou=inter / union if union else 0.0,
        accuracy=acc,
        mae_binary=1.0 - acc,
        mae_soft=float(np.abs(p.astype(np.float64) - fg).mean()) if p.size else 0.0,
    )


def aggregate_saliency(stats: Sequence[Dict], convention: str = 'tokencut') -> Dict[str, float]:
    """Dataset-level saliency metrics from per-image statistics.

    Args:
        stats (Sequence[dict]): Outputs of :func:`saliency_image_stats`
            computed with the same convention and b².
        convention (str): ``'tokencut'`` (max of the mean F curve) or
            ``'found'`` (mean of per-image max F).

    Returns:
        dict: ``max_fbeta`` (per convention), ``mean_max_fbeta`` (mean of
        per-image maxima), ``max_mean_fbeta`` (max of the mean curve),
        ``adaptive_fbeta``, ``fbeta_half``, ``iou``, ``accuracy``, ``mae``
        (per convention: soft for tokencut, binarised for found),
        ``mae_soft``, ``mae_binary``, ``num_images``. Empty input gives NaNs.
    """
    _check_convention(convention)
    n = len(stats)
    if n == 0:
        keys = ('max_fbeta', 'mean_max_fbeta', 'max_mean_fbeta', 'adaptive_fbeta', 'fbeta_half',
                'iou', 'accuracy', 'mae', 'mae_soft', 'mae_binary')
        out = {k: float('nan') for k in keys}
        out['num_images'] = 0
        return out

    def mean(key):
        return float(np.mean([s[key] for s in stats]))

    mean_curve = np.mean([s['f_curve'] for s in stats], axis=0)
    out = dict(
        mean_max_fbeta=mean('f_max'),
        max_mean_fbeta=float(mean_curve.max()),
        adaptive_fbeta=mean('f_adaptive'),
        fbeta_half=mean('f_half'),
        iou=mean('iou'),
        accuracy=mean('accuracy'),
        mae_soft=mean('mae_soft'),
        mae_binary=mean('mae_binary'),
        num_images=n,
    )
    if convention == 'tokencut':
        out['max_fbeta'] = out['max_mean_fbeta']
        out['mae'] = out['mae_soft']
    else:
        out['max_fbeta'] = out['mean_max_fbeta']
        out['mae'] = out['mae_binary']
    return out


class SaliencyAccumulator:
    """Streaming saliency evaluation (e.g. inside an mmseg metric).

    Keeps only per-image statistics (a 255-value F curve and a few scalars),
    never the images.

    Args:
        convention (str): ``'tokencut'`` (default) or ``'found'``.
        beta_sq (float, optional): b²; default per convention.

    Example:
        >>> acc = SaliencyAccumulator('tokencut')
        >>> for pred, gt in pairs:  # pred (H, W) in [0, 1], gt uint8
        ...     acc.add(pred, gt)
        >>> acc.compute()['max_fbeta']
    """

    def __init__(self, convention: str = 'tokencut', beta_sq: Optional[float] = None) -> None:
        self.convention = _check_convention(convention)
        self.beta_sq = _default_beta_sq(convention, beta_sq)
        self.stats: List[Dict] = []

    def add(self, pred: ArrayLike, gt: ArrayLike) -> Dict:
        """Add one image; returns its statistics (see
        :func:`saliency_image_stats`)."""
        s = saliency_image_stats(pred, gt, self.convention, self.beta_sq)
        self.stats.append(s)
        return s

    def extend(self, stats: Sequence[Dict]) -> None:
        """Add precomputed per-image statistics (e.g. gathered from ranks)."""
        self.stats.extend(stats)

    def compute(self) -> Dict[str, float]:
        """Dataset metrics (see :func:`aggregate_saliency`)."""
        return aggregate_saliency(self.stats, self.convention)

    def reset(self) -> None:
        self.stats = []

    def __len__(self) -> int:
        return len(self.stats)


def found_saliency_metrics(pred: ArrayLike,
                           gt: ArrayLike,
                           beta_sq: float = FOUND_BETA_SQ) -> Dict[str, Union[float, np.ndarray]]:
    """FOUND / SelfMask per-image metrics, with their names.

    Args:
        pred (np.ndarray | torch.Tensor): (H, W) soft prediction in [0, 1].
        gt (np.ndarray | torch.Tensor): (H, W) GT (bool, or ``== 255``).
        beta_sq (float): Effective b² (FOUND: 0.09, see module docstring).

    Returns:
        dict: ``f_max``, ``f_mean`` (adaptive threshold), ``f_measure``
        (threshold 0.5), ``all_f`` (255,), ``iou``, ``pixel_acc``, ``mae``
        (on the 0.5-binarised prediction, as FOUND), ``mae_soft``.
    """
    s = saliency_image_stats(pred, gt, 'found', beta_sq)
    return dict(
        f_max=s['f_max'],
        f_mean=s['f_adaptive'],
        f_measure=s['f_half'],
        all_f=s['f_curve'],
        iou=s['iou'],
        pixel_acc=s['accuracy'],
        mae=s['mae_binary'],
        mae_soft=s['mae_soft'])


def tokencut_saliency_metrics(preds: Sequence[ArrayLike],
                              gts: Sequence[ArrayLike],
                              beta_sq: float = TOKENCUT_BETA_SQ) -> Dict[str, float]:
    """TokenCut's dataset metrics (``metric.metrics``), with its names.

    Args:
        preds (Sequence): (H_i, W_i) soft predictions in [0, 1].
        gts (Sequence): (H_i, W_i) GTs (uint8 {0, 255}: any non-zero is
            foreground).
        beta_sq (float): b² (0.3).

    Returns:
        dict: ``IoU``, ``accuracy`` (means over images at 0.5) and
        ``F_max`` (max over thresholds of the dataset-mean F).
    """
    if len(preds) != len(gts):
        raise ValueError(f'{len(preds)} predictions for {len(gts)} ground '
                         'truths')
    acc = SaliencyAccumulator('tokencut', beta_sq)
    for p, g in zip(preds, gts):
        acc.add(p, g)
    out = acc.compute()
    return dict(IoU=out['iou'], accuracy=out['accuracy'], F_max=out['max_fbeta'])
