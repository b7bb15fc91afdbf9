# Copyright (c) mmuol contributors. All rights reserved.
"""Saliency metric for MMSegmentation (pixel accuracy, IoU, max F-beta, MAE).

A thin mmseg adapter over :mod:`mmuol.evaluation`: per image it
keeps only a 255-value F curve and a few scalars (never the maps), so it
scales to DUTS-TE / DUT-OMRON and gathers across ranks.

Two named conventions, since TokenCut and FOUND compute these differently:

============  ==========================  ==================================
convention    ``'tokencut'`` (default)    ``'found'``
============  ==========================  ==================================
GT            ``gt > 0`` (uint8 PNG)      ``gt == 255``
β²            0.3 (standard)              0.09 (FOUND's code squares 0.3)
max Fβ        max over thresholds of      mean over images of the per-image
              the dataset-mean F          max F
MAE           soft prediction             0.5-binarised prediction
============  ==========================  ==================================

Thresholds are ``arange(0, 1, 1/255)`` (``pred > t``); IoU and accuracy use
``pred > 0.5`` and are averaged over images; all at the original GT
resolution. ``beta_sq`` overrides β² (e.g. the standard 0.3 with FOUND's
aggregation).
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmengine.utils import mkdir_or_exist
from mmseg.registry import METRICS
from PIL import Image

from mmuol.evaluation import SALIENCY_CONVENTIONS, aggregate_saliency, saliency_image_stats

__all__ = ['SaliencyMetric']

#: Reported per convention, as ``<convention>_<name>``.
DEFAULT_METRICS = ('max_fbeta', 'iou', 'accuracy', 'mae')
_ALL_METRICS = ('max_fbeta', 'mean_max_fbeta', 'max_mean_fbeta', 'adaptive_fbeta', 'fbeta_half',
                'iou', 'accuracy', 'mae', 'mae_soft', 'mae_binary')


def _saliency_map(sample: dict, pred_key: str) -> torch.Tensor:
    """The map to score: ``pred_key``, else 1-channel ``seg_logits`` (mmseg
    stores the sigmoid there for binary heads), else ``pred_sem_seg``."""
    for key in (pred_key, 'seg_logits', 'pred_sem_seg'):
        field = sample.get(key)
        if field is None:
            continue
        data = field['data'] if isinstance(field, dict) else field.data
        if key == 'seg_logits' and data.shape[0] != 1:
            continue
        return data
    raise KeyError(f'no prediction in the data sample: expected '
                   f"'{pred_key}', a 1-channel 'seg_logits' or "
                   "'pred_sem_seg'")


@METRICS.register_module()
class SaliencyMetric(BaseMetric):
    """Saliency metrics in TokenCut's and/or FOUND's convention.

    Reported keys are ``saliency/<convention>_<metric>``, e.g.
    ``saliency/tokencut_max_fbeta``, ``saliency/tokencut_iou``,
    ``saliency/tokencut_accuracy``, ``saliency/tokencut_mae``.

    Args:
        conventions (str | Sequence[str]): ``'tokencut'`` (standard
            β² = 0.3, default) and/or ``'found'``.
        beta_sq (float, optional): Override β² for every convention.
        metrics (Sequence[str]): Which aggregates to report: any of
            ``max_fbeta`` (per convention), ``mean_max_fbeta``,
            ``max_mean_fbeta``, ``adaptive_fbeta``, ``fbeta_half``, ``iou``,
            ``accuracy``, ``mae`` (per convention), ``mae_soft``,
            ``mae_binary``. Defaults to max_fbeta, iou, accuracy, mae.
        pred_key (str): Data-sample field holding the scored map in [0, 1]
            (``FOUNDSegmentor`` writes ``pred_saliency``); falls back to a
            1-channel ``seg_logits`` then ``pred_sem_seg``.
        output_dir (str, optional): Also save each scored map as an 8-bit
            PNG (``round(255 * map)``) named after the image.
        format_only (bool): Only save maps (no GT needed, no metrics).
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): Metric-name prefix (``'saliency'``).
        **kwargs: Ignored (``keep_results`` from ``tools/test.py --out``).
    """

    default_prefix: Optional[str] = 'saliency'

    def __init__(self,
                 conventions: Union[str, Sequence[str]] = 'tokencut',
                 beta_sq: Optional[float] = None,
                 metrics: Sequence[str] = DEFAULT_METRICS,
                 pred_key: str = 'pred_saliency',
                 output_dir: Optional[str] = None,
                 format_only: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(conventions, str):
            conventions = (conventions, )
        conventions = tuple(conventions)
        bad = [c for c in conventions if c not in SALIENCY_CONVENTIONS]
        if bad or not conventions:
            raise ValueError(f'conventions must be a non-empty subset of '
                             f'{SALIENCY_CONVENTIONS}, got {conventions}')
        bad = [m for m in metrics if m not in _ALL_METRICS]
        if bad:
            raise ValueError(f'unknown metrics {bad}; choose from '
                             f'{_ALL_METRICS}')
        self.conventions = conventions
        self.beta_sq = beta_sq
        self.metrics = tuple(metrics)
        self.pred_key = pred_key
        self.output_dir = output_dir
        self.format_only = format_only
        if output_dir and is_main_process():
            mkdir_or_exist(output_dir)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Per-image statistics of a batch.

        Args:
            data_batch (dict): Unused.
            data_samples (Sequence[dict]): Model outputs with
                ``gt_sem_seg`` (original resolution, values in [0, 255]).

        Raises:
            ValueError: A prediction and GT of different sizes.
        """
        for sample in data_samples:
            pred = _saliency_map(sample, self.pred_key).float()
            pred = pred.squeeze(0).cpu().numpy() if pred.dim() == 3 \
                else pred.cpu().numpy()
            if self.output_dir is not None:
                name = osp.splitext(osp.basename(sample.get('img_path', f'{len(self.results)}')))[0]
                Image.fromarray(np.round(np.clip(pred, 0, 1) * 255).astype(np.uint8)).save(
                    osp.join(self.output_dir, f'{name}.png'))
            if self.format_only:
                continue
            if 'gt_sem_seg' not in sample:
                raise KeyError('SaliencyMetric needs gt_sem_seg (add '
                               'LoadSaliencyAnnotations to the pipeline) or '
                               'format_only=True')
            gt = sample['gt_sem_seg']['data']
            gt = gt.squeeze(0) if gt.dim() == 3 else gt
            gt = gt.cpu().numpy()
            if pred.shape != gt.shape:
                raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} of '
                                 f'{sample.get("img_path")} differ in size; saliency is '
                                 'scored at the original GT resolution')
            result = {
                conv: saliency_image_stats(pred, gt, conv, self.beta_sq)
                for conv in self.conventions
            }
            result['nonbinary_gt'] = bool(not np.isin(np.unique(gt), (0, 255)).all())
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Aggregate per convention.

        Args:
            results (list[dict]): Per-image statistics from all ranks.

        Returns:
            dict[str, float]: ``<convention>_<metric>`` values (fractions,
            not percent).
        """
        logger = MMLogger.get_current_instance()
        if self.format_only:
            logger.info(f'saliency maps saved to {self.output_dir}')
            return {}
        out: Dict[str, float] = {}
        lines = []
        for conv in self.conventions:
            agg = aggregate_saliency([r[conv] for r in results], conv)
            for name in self.metrics:
                out[f'{conv}_{name}'] = float(agg[name])
            lines.append(f'{conv}: ' + ', '.join(f'{k}={agg[k]:.4f}' for k in _ALL_METRICS))
        nonbinary = sum(r['nonbinary_gt'] for r in results)
        lines.append(f'{len(results)} images, {nonbinary} GT masks with '
                     'values outside {0, 255} (tokencut: >0 is foreground, '
                     'found: ==255)')
        print_log('SaliencyMetric\n' + '\n'.join(lines), logger=logger)
        return out
