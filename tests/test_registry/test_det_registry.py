# Copyright (c) mmuol contributors. All rights reserved.
"""mmuol.det registers each class once, under its own name, in mmdet's registries.

Other method packages of mmuol.det (e.g. CutLER) add their own names; the
rule checked for every mmuol class is the same: one name, the class's own.
"""
import pytest
from mmdet import registry
from mmengine.registry import init_default_scope

import mmuol.det as det

#: registry -> mmuol.det classes of this package's core that it must hold.
EXPECTED = {
    'MODELS': [
        'DINOViT', 'UnsupervisedLocalizer', 'DropLoss', 'DropLossStandardRoIHead',
        'DropLossCascadeRoIHead'
    ],
    'TASK_UTILS': [
        'LOSTLocalizer', 'TokenCutLocalizer', 'DINOSegLocalizer', 'FOUNDBkgLocalizer',
        'FOUNDHeadLocalizer', 'MaskCutLocalizer'
    ],
    'METRICS': ['CorLocMetric', 'ClassAgnosticCocoMetric'],
    'DATASETS': [
        'VOCCorLocDataset', 'COCO20kDataset', 'MaskCutDataset', 'ClassAgnosticCocoDataset',
        'ClassAgnosticVOCDataset'
    ],
    'TRANSFORMS': ['LoadCorLocImageFromFile', 'CutLERCopyPaste'],
    'HOOKS': ['CorLocVisualizationHook', 'SelfTrainingHook'],
}


@pytest.mark.parametrize('name', list(EXPECTED))
def test_one_name_per_class(name):
    init_default_scope('mmdet')
    reg = getattr(registry, name)
    ours = {key: cls for key, cls in reg.module_dict.items() if cls.__module__.startswith('mmuol')}
    # Test modules may register helpers (e.g. an empty localizer): only ours count.
    ours = {key: cls for key, cls in ours.items() if not cls.__module__.startswith('mmuol.testing')}
    assert set(EXPECTED[name]) <= set(ours)
    for key in EXPECTED[name]:
        assert getattr(det, key) is ours[key]
    for key, cls in ours.items():
        assert cls.__name__ == key, f'{cls} registered as {key!r}'
    # No class under two names.
    assert len(set(ours.values())) == len(ours)


def test_no_short_localizer_aliases():
    """'FOUNDHead' is mmseg's decode head; mmdet knows no such name."""
    for alias in ('LOST', 'TokenCut', 'DINOSeg', 'FOUNDBkg', 'FOUNDBackground', 'FOUNDHead',
                  'FOUND', 'MaskCut'):
        assert registry.TASK_UTILS.get(alias) is None
        assert registry.MODELS.get(alias) is None
