# Copyright (c) mmuol contributors. All rights reserved.
"""The host-free core: its public names and that it imports no host."""
import subprocess
import sys

import mmuol.evaluation as evaluation
import mmuol.localization as localization

EVALUATION_API = {
    'bbox_iou', 'corloc_hit', 'corloc', 'SALIENCY_THRESHOLDS', 'SALIENCY_CONVENTIONS',
    'TOKENCUT_BETA_SQ', 'FOUND_BETA_SQ', 'binarize_saliency_gt', 'saliency_image_stats',
    'aggregate_saliency', 'found_saliency_metrics', 'tokencut_saliency_metrics',
    'SaliencyAccumulator'
}


def test_evaluation_names_importable_from_the_package():
    assert EVALUATION_API <= set(evaluation.__all__)
    for name in evaluation.__all__:
        assert getattr(evaluation, name) is not None


def test_localization_all_is_importable():
    for name in localization.__all__:
        assert getattr(localization, name) is not None, name


def test_core_imports_no_host():
    code = ('import sys, mmuol.localization, mmuol.evaluation; '
            "bad = [m for m in ('mmdet', 'mmseg', 'mmcv', 'mmengine') if m in sys.modules]; "
            'print(bad); assert not bad, bad')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
