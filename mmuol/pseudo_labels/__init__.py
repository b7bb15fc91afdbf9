# Copyright (c) mmuol contributors. All rights reserved.
"""CutLER's pseudo labels: the MaskCut pipeline, its files and the
self-training merge.

Host-free: imports neither mmdet nor mmseg. :mod:`.maskcut_pipeline` turns
images into MaskCut pseudo-masks (backbone keys -> ``maskcut`` -> dense CRF ->
masks at the image size); :mod:`.maskcut_shards` holds the resumable,
sharded on-disk progress of the generator (``tools/maskcut/generate.py``,
merged by ``tools/maskcut/merge.py``), which writes its files with
:mod:`.coco_json`;
``mmuol.det.cutler.MaskCutDataset`` reads them, and the self-training hook /
``tools/cutler/self_train_merge.py`` build the next round with
:func:`merge_self_training`.
"""
from .coco_json import (CATEGORY, PseudoLabelFileError, annotation_entry, annotations_from_masks,
                        build_dataset, check_rles, decode_mask, dump_json, encode_mask,
                        fix_swapped_sizes, image_entry, load_json, rle_area_bbox, rle_run_totals)
from .maskcut_pipeline import (MaskCutImages, MaskCutProcessPool, MaskCutPseudoLabeler,
                               MaskCutSettings, maskcut_annotations, maskcut_pseudo_masks,
                               resize_for_maskcut, resize_mask_to_image)
from .maskcut_shards import GenerationWorkDir, ShardError, merge_shard_files, shard_chunk_range
from .self_training import MergeStats, merge_self_training, select_predictions

__all__ = [
    'CATEGORY', 'PseudoLabelFileError', 'annotation_entry', 'annotations_from_masks',
    'build_dataset', 'check_rles', 'decode_mask', 'dump_json', 'encode_mask', 'fix_swapped_sizes',
    'image_entry', 'load_json', 'rle_area_bbox', 'rle_run_totals', 'MergeStats',
    'merge_self_training', 'select_predictions', 'MaskCutImages', 'MaskCutProcessPool',
    'MaskCutPseudoLabeler', 'MaskCutSettings', 'maskcut_annotations', 'maskcut_pseudo_masks',
    'resize_for_maskcut', 'resize_mask_to_image', 'GenerationWorkDir', 'ShardError',
    'merge_shard_files', 'shard_chunk_range'
]
