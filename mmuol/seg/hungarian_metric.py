# Copyright (c) mmuol contributors. All rights reserved.
"""Hungarian-matched mIoU for MMSegmentation (unsupervised semantic seg.).

A thin mmseg adapter over :mod:`mmuol.evaluation.hungarian`: ``process``
adds each image's ``(num_clusters, num_classes)`` confusion into one running
matrix (memory independent of the number of images), ranks' matrices are
summed, and ``compute_metrics`` matches clusters to classes and reports mIoU,
pixel accuracy, per-class IoU and the assignment. It works with any mmseg
segmentor whose ``pred_sem_seg`` holds cluster ids (or class ids with
``matching='none'``). Protocol and commands: ``configs/stego/README.md``.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmengine.utils import mkdir_or_exist
from mmseg.registry import METRICS
from PIL import Image

from mmuol.evaluation import MATCHING_MODES, confusion_matrix, invalid_label_values, match_clusters

__all__ = ['HungarianIoUMetric']

_INVALID_LABELS = ('error', 'ignore')


def _pixel_data(sample: dict, key: str) -> torch.Tensor:
    field = sample[key]
    data = field['data'] if isinstance(field, dict) else field.data
    return data.squeeze(0) if data.dim() == 3 else data


@METRICS.register_module()
class HungarianIoUMetric(BaseMetric):
    """mIoU / pixel accuracy after matching predicted clusters to classes.

    Reported keys: ``mIoU`` and ``aAcc`` (x100, like mmseg's ``IoUMetric``),
    ``IoU_per_class`` (x100, list, NaN where undefined) and ``assignment``
    (list: the class of every cluster, -1 if unassigned); a per-class table
    is printed.

    Matching modes (see :mod:`mmuol.evaluation.hungarian`):
    ``'max_pixels'`` (STEGO: Hungarian on pixel counts; pixels predicted in
    clusters ``>= num_classes`` are dropped as STEGO does, switch with
    ``drop_extra_cluster_pixels``), ``'max_iou'`` (Deep Spectral Methods:
    Hungarian on IoU, majority vote with more clusters than classes) and
    ``'none'`` (class predictions, e.g. a linear probe).

    Under distributed evaluation the sampler must not pad the dataset
    (``sampler=dict(type='DefaultSampler', shuffle=False, round_up=False)``,
    as the configs do): a padded duplicate would be counted twice, since the
    metric keeps counts, not per-image results. The metric warns when it
    counted more images than the dataset holds.

    Args:
        num_classes (int, optional): Number of ground-truth classes; defaults
            to ``len(dataset_meta['classes'])``.
        num_clusters (int, optional): Number of predicted ids (classes plus
            STEGO's ``extra_clusters``); defaults to ``num_classes``. Must be
            ``>= num_classes`` (``==`` for ``'none'``).
        matching (str): ``'max_pixels'``, ``'max_iou'`` or ``'none'``.
        drop_extra_cluster_pixels (bool): ``'max_pixels'`` only; True
            reproduces STEGO.
        ignore_index (int): Label value that marks unlabelled pixels (255).
        invalid_labels (str): What to do with a label that is neither a class
            id nor ``ignore_index`` (a missing label mapping, e.g. 171-class
            COCO-Stuff ids fed to a 27-class metric): ``'error'`` (default)
            raises naming the file; ``'ignore'`` skips those pixels (STEGO's
            behaviour) and reports how many were skipped.
        pred_key (str): Data-sample field with the predictions.
        output_dir (str, optional): Save every predicted cluster map as a
            PNG named after the image, and ``assignment.json`` at the end
            (``tools/test.py --out``).
        format_only (bool): Only save predictions (no ground truth needed).
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): Prefix of the metric names.
        **kwargs: Ignored (``keep_results`` from ``tools/test.py --out``).
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 num_classes: Optional[int] = None,
                 num_clusters: Optional[int] = None,
                 matching: str = 'max_pixels',
                 drop_extra_cluster_pixels: bool = True,
                 ignore_index: int = 255,
                 invalid_labels: str = 'error',
                 pred_key: str = 'pred_sem_seg',
                 output_dir: Optional[str] = None,
                 format_only: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if matching not in MATCHING_MODES:
            raise ValueError(f'matching must be one of {MATCHING_MODES}, got {matching!r}')
        if invalid_labels not in _INVALID_LABELS:
            raise ValueError(f'invalid_labels must be one of {_INVALID_LABELS}, got '
                             f'{invalid_labels!r}')
        for name, value in (('num_classes', num_classes), ('num_clusters', num_clusters)):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        self.matching = matching
        self.drop_extra_cluster_pixels = drop_extra_cluster_pixels
        self.ignore_index = ignore_index
        self.invalid_labels = invalid_labels
        self.pred_key = pred_key
        self.output_dir = output_dir
        self.format_only = format_only
        self._num_classes = num_classes
        self._num_clusters = num_clusters
        self._dataset_size: Optional[int] = None
        if num_classes is not None:
            self._check_counts(num_classes, num_clusters or num_classes)
        if output_dir and is_main_process():
            mkdir_or_exist(output_dir)

    # ------------------------------------------------------------------ #
    # sizes
    # ------------------------------------------------------------------ #
    def _check_counts(self, num_classes: int, num_clusters: int) -> None:
        if num_clusters < num_classes:
            raise ValueError(
                f'HungarianIoUMetric: num_clusters={num_clusters} < num_classes={num_classes}; '
                'matching needs at least one cluster per class (STEGO uses num_classes + '
                'extra_clusters)')
        if self.matching == 'none' and num_clusters != num_classes:
            raise ValueError(f"matching='none' scores class ids: num_clusters ({num_clusters}) "
                             f'must equal num_classes ({num_classes})')

    @property
    def num_classes(self) -> int:
        """Number of classes (from the config or ``dataset_meta``)."""
        if self._num_classes is None:
            classes = (self.dataset_meta or {}).get('classes')
            if not classes:
                raise ValueError('HungarianIoUMetric needs num_classes, or a dataset whose '
                                 "metainfo has 'classes'")
            self._num_classes = len(classes)
            self._check_counts(self._num_classes, self.num_clusters)
        return self._num_classes

    @property
    def num_clusters(self) -> int:
        """Number of predicted ids (defaults to ``num_classes``)."""
        if self._num_clusters is None:
            return self.num_classes
        return self._num_clusters

    def _class_names(self) -> List[str]:
        classes = list((self.dataset_meta or {}).get('classes') or [])
        if len(classes) != self.num_classes:
            classes = [str(i) for i in range(self.num_classes)]
        return classes

    # ------------------------------------------------------------------ #
    # per batch
    # ------------------------------------------------------------------ #
    def _save(self, pred: torch.Tensor, sample: dict) -> None:
        name = osp.splitext(osp.basename(sample.get('img_path', f'{id(sample)}')))[0]
        arr = pred.cpu().numpy()
        arr = arr.astype(np.uint8) if self.num_clusters <= 256 else arr.astype(np.uint16)
        Image.fromarray(arr).save(osp.join(self.output_dir, f'{name}.png'))

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Add the batch's confusion to the running matrix.

        Args:
            data_batch (dict): Unused.
            data_samples (Sequence[dict]): Outputs with ``pred_sem_seg``
                (cluster ids) and ``gt_sem_seg`` of the same size.

        Raises:
            KeyError: No ground truth (and not ``format_only``).
            ValueError: Prediction / label size mismatch, cluster ids out of
                range, or invalid label values with ``invalid_labels='error'``.
        """
        if not self.results:
            self.results.append(
                dict(
                    confusion=np.zeros((self.num_clusters, self.num_classes), np.int64),
                    num_images=0,
                    invalid_pixels=0))
        state = self.results[0]
        for sample in data_samples:
            path = sample.get('img_path', '<unknown image>')
            pred = _pixel_data(sample, self.pred_key)
            if self.output_dir is not None:
                self._save(pred, sample)
            if self.format_only:
                continue
            if 'gt_sem_seg' not in sample:
                raise KeyError('HungarianIoUMetric needs gt_sem_seg (LoadAnnotations in the test '
                               'pipeline) unless format_only=True')
            gt = _pixel_data(sample, 'gt_sem_seg').to(pred.device)
            if pred.shape != gt.shape:
                raise ValueError(
                    f'{path}: prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} '
                    "differ in size (the segmentor resizes to 'ori_shape'; a pipeline that "
                    'resizes or crops the labels must also update it, see STEGOResizeCenterCrop)')
            bad = invalid_label_values(gt, self.num_classes, self.ignore_index)
            if bad.size:
                if self.invalid_labels == 'error':
                    raise ValueError(
                        f'{sample.get("seg_map_path", path)}: label values {bad[:10].tolist()} '
                        f'are neither a class id in [0, {self.num_classes}) nor ignore_index='
                        f'{self.ignore_index}; is the label mapping of the dataset missing '
                        "(e.g. 171-class COCO-Stuff ids for 27 classes)? invalid_labels='ignore' "
                        'skips such pixels')
                state['invalid_pixels'] += int(
                    torch.isin(gt, torch.as_tensor(bad, device=gt.device)).sum())
            try:
                conf = confusion_matrix(pred, gt, self.num_clusters, self.num_classes)
            except ValueError as e:
                raise ValueError(f'{path}: {e}') from None
            state['confusion'] += conf
            state['num_images'] += 1

    # ------------------------------------------------------------------ #
    # whole set
    # ------------------------------------------------------------------ #
    def evaluate(self, size: int) -> dict:
        """Remember the dataset size (to detect padded duplicates), then
        evaluate as :class:`~mmengine.evaluator.BaseMetric`."""
        self._dataset_size = size
        return super().evaluate(size)

    def compute_metrics(self, results: List[dict]) -> Dict[str, object]:
        """Sum the ranks' confusions, match, score.

        Args:
            results (list[dict]): One running state per rank.

        Returns:
            dict: ``mIoU``, ``aAcc`` (x100), ``IoU_per_class`` (x100) and
            ``assignment``.
        """
        logger = MMLogger.get_current_instance()
        if self.format_only:
            logger.info(f'cluster maps saved to {self.output_dir}')
            return {}
        if not results:
            raise ValueError('HungarianIoUMetric received no prediction')
        confusion = sum(r['confusion'] for r in results)
        num_images = sum(r['num_images'] for r in results)
        invalid = sum(r['invalid_pixels'] for r in results)
        if self._dataset_size is not None and num_images > self._dataset_size:
            print_log(
                f'HungarianIoUMetric counted {num_images} images for a dataset of '
                f'{self._dataset_size}: the sampler padded the last batch (use '
                "sampler=dict(type='DefaultSampler', shuffle=False, round_up=False))",
                logger=logger,
                level=30)
        res = match_clusters(confusion, self.matching, self.drop_extra_cluster_pixels)
        names = self._class_names()
        clusters_of = {
            k: np.flatnonzero(res.cluster_to_class == k).tolist()
            for k in range(self.num_classes)
        }
        present = confusion.sum(0)
        lines = [f'{"class":<24}{"IoU":>8}  {"GT pixels":>10}  clusters']
        for k, name in enumerate(names):
            lines.append(f'{name:<24}{res.iou[k] * 100:>8.2f}  {int(present[k]):>10}  '
                         f'{clusters_of[k]}')
        if res.extra_iou is not None:
            unassigned = np.flatnonzero(res.cluster_to_class < 0).tolist()
            lines.append(f'{"(unassigned clusters)":<24}{res.extra_iou * 100:>8.2f}  '
                         f'{"":>10}  {unassigned}')
        empty = [names[k] for k in range(self.num_classes) if present[k] == 0]
        lines.append(f'{num_images} images, {res.num_pixels} pixels counted, matching '
                     f"'{self.matching}'; classes without ground-truth pixels: {empty or 'none'}")
        if invalid:
            lines.append(f'{invalid} pixels with invalid label values were skipped')
        print_log('HungarianIoUMetric\n' + '\n'.join(lines), logger=logger)
        if self.output_dir is not None:
            with open(osp.join(self.output_dir, 'assignment.json'), 'w') as f:
                json.dump(
                    dict(
                        cluster_to_class=res.cluster_to_class.tolist(),
                        classes=names,
                        matching=self.matching), f)
        return {
            'mIoU': res.miou * 100,
            'aAcc': res.accuracy * 100,
            'IoU_per_class': [float(v) * 100 for v in res.iou],
            'assignment': res.cluster_to_class.tolist(),
        }
