# Copyright (c) mmuol contributors. All rights reserved.
"""``ClassAgnosticCocoMetric``: CutLER's zero-shot evaluation protocol."""
import copy
import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS
from mmengine.fileio import load
from mmengine.logging import MMLogger
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ['ClassAgnosticCocoMetric', 'class_agnostic_coco']

#: The one category every annotation and prediction is mapped to.
AGNOSTIC_CATEGORY = {'id': 1, 'name': 'object', 'supercategory': 'object'}


def class_agnostic_coco(dataset: dict) -> COCO:
    """A pycocotools ``COCO`` with every category merged into one.

    Args:
        dataset (dict): A COCO-style dict (COCO, LVIS, UVO, CutLER's
            ``*_cls_agnostic.json``, ...). Not modified.

    Returns:
        COCO: Same images; every annotation has ``category_id`` 1 and an
        ``iscrowd`` flag (0 when absent, as in LVIS files).
    """
    anns = []
    for ann in dataset.get('annotations', []):
        ann = dict(ann, category_id=AGNOSTIC_CATEGORY['id'])
        ann.setdefault('iscrowd', 0)
        anns.append(ann)
    coco = COCO()
    coco.dataset = dict(
        images=copy.deepcopy(dataset.get('images', [])),
        annotations=anns,
        categories=[dict(AGNOSTIC_CATEGORY)])
    coco.createIndex()
    return coco


@METRICS.register_module()
class ClassAgnosticCocoMetric(CocoMetric):
    """COCO AP / AR with every category merged into one (CutLER's protocol).

    The ground truth is re-labelled in memory (every annotation becomes one
    category ``object``; crowd annotations stay ignored), every prediction
    is counted whatever its label, and pycocotools' ``COCOeval`` runs with
    ``maxDets = max_dets`` (CutLER: ``[1, 10, 100]``, also for LVIS, where
    300 detections are predicted but only the best 100 count). Only the
    evaluated images count (e.g. the 19,817 COCO20k images of
    ``instances_train2014.json``).

    Reported keys (fractions in [0, 1], prefix ``coco/``): per ``metric`` in
    ``('bbox', 'segm')``: ``{metric}_mAP``, ``_mAP_50``, ``_mAP_75``,
    ``_mAP_s``, ``_mAP_m``, ``_mAP_l``, ``_AR@{d}`` for each ``d`` in
    ``max_dets``, and ``_AR_s@``/``_AR_m@``/``_AR_l@{max_dets[-1]}``.
    CutLER's tables quote ``AP50`` / ``AR100`` in percent.

    Args:
        ann_file (str, optional): COCO-style ground truth. Needed for
            ``segm``. None builds box ground truth from the dataset
            (``ignore_flag`` -> crowd), e.g. for VOC-layout datasets. Not
            needed with ``format_only=True``, which only writes the
            predictions (``{outfile_prefix}.bbox.json`` / ``.segm.json``).
        metric (str | Sequence[str]): ``'bbox'`` and/or ``'segm'``.
        max_dets (Sequence[int]): The three ``maxDets`` of COCOeval.
        **kwargs: Other :class:`mmdet.evaluation.CocoMetric` arguments
            (``format_only``, ``outfile_prefix``, ``backend_args``,
            ``collect_device``, ``prefix``).
    """

    def __init__(self,
                 ann_file: Optional[str] = None,
                 metric: Union[str, Sequence[str]] = ('bbox', 'segm'),
                 max_dets: Sequence[int] = (1, 10, 100),
                 **kwargs) -> None:
        metrics = [metric] if isinstance(metric, str) else list(metric)
        unknown = set(metrics) - {'bbox', 'segm'}
        if unknown:
            raise ValueError(f"ClassAgnosticCocoMetric: metric must be 'bbox' and/or 'segm', got "
                             f'{sorted(unknown)}')
        if len(max_dets) != 3 or list(max_dets) != sorted(max_dets):
            raise ValueError(f'max_dets must be three increasing numbers, got {max_dets}')
        if ann_file is None and 'segm' in metrics and not kwargs.get('format_only', False):
            raise ValueError("ClassAgnosticCocoMetric: metric 'segm' needs ann_file (mask ground "
                             'truth); use metric=\'bbox\' for box-only datasets such as VOC')
        for key in ('classwise', 'proposal_nums', 'iou_thrs', 'metric_items'):
            if key in kwargs:
                raise TypeError(f'ClassAgnosticCocoMetric does not take {key!r}')
        super().__init__(ann_file=ann_file, metric=metrics, proposal_nums=max_dets, **kwargs)
        self.max_dets = [int(d) for d in max_dets]
        if self._coco_api is not None:
            self._coco_api = class_agnostic_coco(self._coco_api.dataset)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store predictions (labels merged to 0) and, without ``ann_file``, GT."""
        if self._coco_api is None:
            if self.format_only:  # predictions only: no ground truth needed
                data_samples = [dict(s, instances=s.get('instances', [])) for s in data_samples]
            elif data_samples and 'instances' not in data_samples[0]:
                raise ValueError('ClassAgnosticCocoMetric without ann_file reads the ground truth '
                                 "from the data samples: add 'instances' to the meta_keys of "
                                 'PackDetInputs in the test pipeline')
        start = len(self.results)
        super().process(data_batch, data_samples)
        for gt, pred in self.results[start:]:
            pred['labels'] = np.zeros_like(pred['labels'])
            for ann in gt.get('anns', []):
                ann['bbox_label'] = 0

    def _ground_truth(self, gts: Sequence[dict], outfile_prefix: str) -> COCO:
        if self._coco_api is not None:
            return self._coco_api
        self.dataset_meta = dict(self.dataset_meta or {}, classes=(AGNOSTIC_CATEGORY['name'], ))
        path = self.gt_to_coco_json(gt_dicts=gts, outfile_prefix=outfile_prefix)
        return class_agnostic_coco(load(path))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """COCO AP / AR of the merged category.

        Args:
            results (list): ``(gt, prediction)`` pairs from :meth:`process`.

        Returns:
            dict[str, float]: The metrics named in the class docstring.
        """
        logger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        tmp_dir = None
        if self.outfile_prefix is None:
            tmp_dir = tempfile.TemporaryDirectory()
            outfile_prefix = osp.join(tmp_dir.name, 'results')
        else:
            outfile_prefix = self.outfile_prefix
        try:
            self.cat_ids = [AGNOSTIC_CATEGORY['id']]
            if self.format_only:
                # Predictions only (e.g. the self-training inputs): no ground truth needed.
                files = self.results2json(preds, outfile_prefix)
                logger.info(f'predictions written to {", ".join(sorted(files.values()))}')
                return OrderedDict()
            coco_gt = self._ground_truth(gts, outfile_prefix)
            img_ids = sorted({p['img_id'] for p in preds})
            missing = set(img_ids) - set(coco_gt.getImgIds())
            if missing:
                raise ValueError(f'{len(missing)} evaluated image ids are not in the ground truth '
                                 f'(e.g. {min(missing)}): wrong ann_file for this dataset?')
            result_files = self.results2json(preds, outfile_prefix)
            out: Dict[str, float] = OrderedDict()
            for metric in self.metrics:
                out.update(self._evaluate(coco_gt, load(result_files[metric]), metric, img_ids))
            return out
        finally:
            if tmp_dir is not None:
                tmp_dir.cleanup()

    def _names(self, metric: str) -> List[str]:
        last = self.max_dets[-1]
        return ([
            f'{metric}_mAP', f'{metric}_mAP_50', f'{metric}_mAP_75', f'{metric}_mAP_s',
            f'{metric}_mAP_m', f'{metric}_mAP_l'
        ] + [f'{metric}_AR@{d}' for d in self.max_dets] +
                [f'{metric}_AR_s@{last}', f'{metric}_AR_m@{last}', f'{metric}_AR_l@{last}'])

    def _evaluate(self, coco_gt: COCO, predictions: List[dict], metric: str,
                  img_ids: List[int]) -> Dict[str, float]:
        """Run COCOeval for one IoU type; all zeros when nothing was predicted."""
        logger = MMLogger.get_current_instance()
        names = self._names(metric)
        if not predictions:
            logger.warning(f'ClassAgnosticCocoMetric: no {metric} prediction at all; '
                           'every AP / AR is 0')
            return OrderedDict((name, 0.0) for name in names)
        if metric == 'segm':
            # Mask area (not box area) decides small / medium / large.
            for pred in predictions:
                pred.pop('bbox', None)
        coco_dt = coco_gt.loadRes(predictions)
        coco_eval = COCOeval(coco_gt, coco_dt, metric)
        coco_eval.params.catIds = [AGNOSTIC_CATEGORY['id']]
        coco_eval.params.imgIds = img_ids
        coco_eval.params.maxDets = list(self.max_dets)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        values = OrderedDict((name, float(v)) for name, v in zip(names, coco_eval.stats))
        logger.info(f'class-agnostic {metric}: AP {100 * values[names[0]]:.1f}, AP50 '
                    f'{100 * values[names[1]]:.1f}, AR@{self.max_dets[-1]} '
                    f'{100 * values[names[8]]:.1f}')
        return values
