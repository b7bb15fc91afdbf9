# Copyright (c) mmuol contributors. All rights reserved.
"""Host-free evaluation helpers (CorLoc, saliency metrics)."""
from .functional import (FOUND_BETA_SQ, SALIENCY_CONVENTIONS, SALIENCY_THRESHOLDS, TOKENCUT_BETA_SQ,
                         SaliencyAccumulator, aggregate_saliency, binarize_saliency_gt, bbox_iou,
                         corloc, corloc_hit, found_saliency_metrics, saliency_image_stats,
                         tokencut_saliency_metrics)

__all__ = [
    'bbox_iou', 'corloc_hit', 'corloc', 'SALIENCY_THRESHOLDS', 'SALIENCY_CONVENTIONS',
    'TOKENCUT_BETA_SQ', 'FOUND_BETA_SQ', 'binarize_saliency_gt', 'saliency_image_stats',
    'aggregate_saliency', 'found_saliency_metrics', 'tokencut_saliency_metrics',
    'SaliencyAccumulator'
]
