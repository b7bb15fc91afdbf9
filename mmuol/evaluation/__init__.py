# Copyright (c) mmuol contributors. All rights reserved.
"""Host-free evaluation helpers: CorLoc (:mod:`.corloc`), saliency metrics
(:mod:`.saliency`) and the cluster-to-class matching of unsupervised semantic
segmentation (:mod:`.hungarian`). Import from the package; one line per
module."""
from .corloc import bbox_iou, corloc, corloc_hit
from .hungarian import (MATCHING_MODES, HungarianMatch, confusion_matrix, invalid_label_values,
                        iou_from_histogram, match_clusters, remap_clusters)
from .saliency import (FOUND_BETA_SQ, SALIENCY_CONVENTIONS, SALIENCY_THRESHOLDS, TOKENCUT_BETA_SQ,
                       SaliencyAccumulator, aggregate_saliency, binarize_saliency_gt,
                       found_saliency_metrics, saliency_image_stats, tokencut_saliency_metrics)

__all__ = [
    # corloc
    'bbox_iou',
    'corloc_hit',
    'corloc',
    # saliency
    'SALIENCY_THRESHOLDS',
    'SALIENCY_CONVENTIONS',
    'TOKENCUT_BETA_SQ',
    'FOUND_BETA_SQ',
    'binarize_saliency_gt',
    'saliency_image_stats',
    'aggregate_saliency',
    'found_saliency_metrics',
    'tokencut_saliency_metrics',
    'SaliencyAccumulator',
    # hungarian (cluster-to-class matching)
    'MATCHING_MODES',
    'HungarianMatch',
    'confusion_matrix',
    'invalid_label_values',
    'iou_from_histogram',
    'match_clusters',
    'remap_clusters',
]
