# Copyright (c) mmuol contributors. All rights reserved.
"""mmuol.seg registers each of its classes once, under a name mmseg does not use."""
import importlib

import pytest
from mmengine.registry import init_default_scope
from mmseg import registry

import mmuol.seg

#: Registry of each FOUND / saliency name ``mmuol.seg`` exports (DINOViT is
#: shared with mmdet; other methods test their own names).
SEG_NAMES = {
    'DINOViT': 'MODELS',
    'FOUNDHead': 'MODELS',
    'FOUNDSegmentor': 'MODELS',
    'SaliencyMetric': 'METRICS',
    'SaliencyDataset': 'DATASETS',
    'ECSSDDataset': 'DATASETS',
    'DUTSDataset': 'DATASETS',
    'DUTOMRONDataset': 'DATASETS',
    'LoadSaliencyImageFromFile': 'TRANSFORMS',
    'LoadSaliencyAnnotations': 'TRANSFORMS',
    'FOUNDRandomScale': 'TRANSFORMS',
    'FOUNDGaussianBlur': 'TRANSFORMS',
    'SaliencyVisualizer': 'VISUALIZERS',
}


def test_names_are_exported():
    assert set(SEG_NAMES) <= set(mmuol.seg.__all__)


@pytest.mark.parametrize('name', sorted(SEG_NAMES))
def test_name_resolves_to_the_mmuol_class(name):
    # Load all of mmseg's own registrations first: a clash would either have
    # failed mmuol's registration or be shadowed here.
    for module in ('mmseg.models', 'mmseg.datasets', 'mmseg.evaluation', 'mmseg.visualization',
                   'mmseg.engine'):
        importlib.import_module(module)
    init_default_scope('mmseg')
    reg = getattr(registry, SEG_NAMES[name])
    cls = reg.get(name)
    assert cls is getattr(mmuol.seg, name)
    assert cls.__module__.startswith('mmuol.'), cls.__module__
