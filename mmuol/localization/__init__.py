# Copyright (c) mmuol contributors. All rights reserved.
"""Training-free object localization on ViT patch features (pure torch).

Every method takes the patch tokens of one image (no CLS token), flattened
row-major over a ``grid_hw = (h, w)`` patch grid, and returns a small
``NamedTuple`` whose first two fields are ``mask`` (``(h, w)`` bool, on the
input device) and ``seed`` (a flat patch index, Python int). Boxes in image
pixels come from :func:`mask_to_box`.

* :func:`lost` - LOST (keys, raw dot products, seed expansion).
* :func:`tokencut` - TokenCut (normalized cut of a cosine graph).
* :func:`maskcut` - MaskCut / CutLER (iterative NCut, several masks).
* :func:`found_background` - FOUND stage 1 (coarse background mask).
* :func:`dino_seg` - LOST's DINO-seg attention baseline.
* :func:`ncut_bipartition` - the fast shared NCut eigensolver.
* :func:`bilateral_solver` - Barron & Poole's solver (FOUND / TokenCut
  mask refinement).

No mmdet/mmseg import happens here.
"""
from .bilateral_solver import (batch_bilateral_solver, bilateral_solver,
                               bilateral_solver_output,
                               refine_mask_with_bilateral_solver)
from .dino_seg import DinoSegResult, dino_seg
from .found import FoundBackgroundResult, found_background
from .lost import LOSTResult, lost
from .maskcut import MaskCutStage, maskcut
from .ncut import (NCutResult, cosine_affinity, ncut_bipartition,
                   ncut_from_keys)
from .tokencut import TokenCutResult, ncut_confidence, tokencut
from .utils import (check_cls_attn, check_grid_hw, check_keys,
                    component_containing, connected_components,
                    largest_component, mask_to_box)

__all__ = [
    'bilateral_solver', 'bilateral_solver_output',
    'refine_mask_with_bilateral_solver', 'batch_bilateral_solver',
    'lost', 'LOSTResult', 'tokencut', 'TokenCutResult', 'maskcut',
    'MaskCutStage', 'found_background', 'FoundBackgroundResult', 'dino_seg',
    'DinoSegResult', 'ncut_bipartition', 'ncut_from_keys', 'NCutResult',
    'cosine_affinity',
    'ncut_confidence', 'connected_components', 'component_containing',
    'largest_component', 'mask_to_box', 'check_keys', 'check_cls_attn',
    'check_grid_hw'
]
