# Copyright (c) mmuol contributors. All rights reserved.
"""Training-free object localization on ViT patch features (pure torch).

Every method takes the patch tokens of one image (no CLS token), flattened
row-major over a ``grid_hw = (h, w)`` patch grid, and returns a small
``NamedTuple`` whose first two fields are ``mask`` (``(h, w)`` bool, on the
input device) and ``seed`` (a flat patch index, Python int). Boxes in image
pixels come from :func:`mask_to_box`; an all-False ``mask`` means that no
object was found and has no box::

    res = tokencut(keys, grid_hw)
    box = mask_to_box(res.mask, 16, image_hw) if res.mask.any() else None

* :func:`lost` - LOST (keys, raw dot products, seed expansion).
* :func:`tokencut` - TokenCut (normalized cut of a cosine graph).
* :func:`maskcut` - MaskCut / CutLER (iterative NCut, several masks).
* :func:`found_background` - FOUND stage 1 (coarse background mask);
  :func:`load_found_decoder` / :func:`found_foreground` - FOUND's head.
* :func:`dino_seg` - LOST's DINO-seg attention baseline.
* :func:`dsm_eigenvectors` / :func:`dsm_localize` - Deep Spectral Methods.
* :func:`ncut_bipartition` / :func:`ncut_from_keys` - the shared NCut
  eigensolver.
* :func:`bilateral_solver` - Barron & Poole's solver (FOUND / TokenCut
  mask refinement).
* :func:`dense_crf` - the fully-connected CRF (MaskCut pseudo-labels,
  STEGO and DSM post-processing).
* :func:`maskclip_dense_features` / :func:`guided_pool` - MaskCLIP dense
  features and CLIP-DINOiser's correlation-guided pooling.
* :func:`stego_correspondence_loss` / :func:`cluster_probe_loss` - STEGO's
  feature-correspondence distillation and cluster probe.
* :func:`check_graph_memory` - fail early when an N x N patch graph cannot
  fit in memory.

No mmdet/mmseg import happens here. One import line per module below.
"""
from .bilateral_solver import (batch_bilateral_solver, bilateral_solver, bilateral_solver_output,
                               refine_mask_with_bilateral_solver)
from .clip_dinoiser import clip_dinoiser_losses, dino_correlation_target, found_background_target
from .dense_crf import (DSM_CRF, MASKCUT_CRF, STEGO_CRF, DenseCRFParams, MaskCutCRFResult,
                        batch_maskcut_crf_postprocess, dense_crf, dsm_crf, maskcut_crf,
                        maskcut_crf_postprocess, stego_crf)
from .dino_seg import DinoSegResult, dino_seg
from .dsm import (DSMEigenvectors, DSMLocalization, DSMSegmentBoxes, dsm_eigenvectors, dsm_localize,
                  dsm_multi_region, dsm_segment_boxes, dsm_single_region)
from .found import (FoundBackgroundResult, FoundForeground, found_background, found_decoder_logits,
                    found_decoder_state_dict, found_foreground, found_single_component,
                    load_found_decoder)
from .guided_pooling import background_rule, guided_pool, patch_correlations, threshold_correlations
from .lost import LOSTResult, lost
from .maskclip import (CLIP_MEAN, CLIP_STD, IMAGENET_TEMPLATES, MaskCLIPFeatures, check_class_names,
                       classify_patches, clip_normalize, maskclip_dense_features,
                       prompt_ensemble_embeddings, resize_clip_pos_embed)
from .maskcut import MaskCutStage, maskcut
from .ncut import (MaskedNCut, NCutResult, cosine_affinity, ncut_bipartition, ncut_confidence,
                   ncut_from_keys)
from .stego import (STEGOCorrespondence, cluster_log_probs, cluster_probe_inner, cluster_probe_loss,
                    five_crop_boxes, knn_table, stego_correspondence_loss)
from .tokencut import TokenCutResult, tokencut
from .utils import (check_cls_attn, check_graph_memory, check_grid_hw, check_keys,
                    component_containing, connected_components, graph_memory_bytes,
                    largest_component, mask_iou, mask_iou_or_nan, mask_to_box,
                    pad_to_patch_multiple, patch_grid)

__all__ = [
    # bilateral_solver
    'bilateral_solver',
    'bilateral_solver_output',
    'refine_mask_with_bilateral_solver',
    'batch_bilateral_solver',
    # clip_dinoiser
    'clip_dinoiser_losses',
    'dino_correlation_target',
    'found_background_target',
    # dense_crf
    'dense_crf',
    'DenseCRFParams',
    'MASKCUT_CRF',
    'STEGO_CRF',
    'DSM_CRF',
    'maskcut_crf',
    'maskcut_crf_postprocess',
    'batch_maskcut_crf_postprocess',
    'MaskCutCRFResult',
    'stego_crf',
    'dsm_crf',
    # dino_seg
    'dino_seg',
    'DinoSegResult',
    # found
    'found_background',
    'FoundBackgroundResult',
    'FoundForeground',
    'found_foreground',
    'found_decoder_logits',
    'found_decoder_state_dict',
    'load_found_decoder',
    'found_single_component',
    # guided_pooling
    'patch_correlations',
    'threshold_correlations',
    'guided_pool',
    'background_rule',
    # lost
    'lost',
    'LOSTResult',
    # maskclip
    'maskclip_dense_features',
    'MaskCLIPFeatures',
    'resize_clip_pos_embed',
    'clip_normalize',
    'classify_patches',
    'prompt_ensemble_embeddings',
    'check_class_names',
    'IMAGENET_TEMPLATES',
    'CLIP_MEAN',
    'CLIP_STD',
    # maskcut
    'maskcut',
    'MaskCutStage',
    # ncut
    'ncut_bipartition',
    'MaskedNCut',
    'ncut_from_keys',
    'NCutResult',
    'cosine_affinity',
    'ncut_confidence',
    # stego
    'stego_correspondence_loss',
    'STEGOCorrespondence',
    'cluster_probe_inner',
    'cluster_probe_loss',
    'cluster_log_probs',
    'five_crop_boxes',
    'knn_table',
    # tokencut
    'tokencut',
    'TokenCutResult',
    # utils
    'connected_components',
    'component_containing',
    'largest_component',
    'mask_to_box',
    'mask_iou',
    'mask_iou_or_nan',
    'check_keys',
    'check_cls_attn',
    'check_grid_hw',
    'check_graph_memory',
    'graph_memory_bytes',
    'pad_to_patch_multiple',
    'patch_grid',
]
# dsm
__all__ += [
    'dsm_eigenvectors', 'dsm_localize', 'dsm_single_region', 'dsm_multi_region',
    'dsm_segment_boxes', 'DSMEigenvectors', 'DSMLocalization', 'DSMSegmentBoxes'
]
