# Copyright (c) mmuol contributors. All rights reserved.
"""The two entry points register into their own host only, each importable alone."""
import subprocess
import sys

import pytest
import torch
from mmengine.registry import DefaultScope, init_default_scope

from mmuol.models.backbones import DINOViT
from mmuol.testing.models import tiny_dino_vit_cfg


@pytest.mark.parametrize('scope,entry', [('mmdet', 'mmuol.det'), ('mmseg', 'mmuol.seg')])
def test_build_backbone_through_host_registry(scope, entry):
    __import__(entry)
    init_default_scope(scope)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(tiny_dino_vit_cfg(out_indices=(0, 1)))
    assert type(model) is DINOViT
    feats = model(torch.randn(1, 3, 40, 24))
    assert [tuple(f.shape) for f in feats] == [(1, 48, 5, 3)] * 2


@pytest.mark.parametrize('entry,forbidden', [('mmuol.det', 'mmseg'), ('mmuol.seg', 'mmdet'),
                                             ('mmuol.localization', 'mmdet'),
                                             ('mmuol.localization', 'mmseg')])
def test_entry_point_imports_alone(entry, forbidden):
    """Each side imports in an interpreter where the other host is missing.

    (mmseg itself imports mmdet when it is installed, e.g. for Mask2Former,
    so "not in sys.modules" would test mmseg, not us: the other host is made
    unimportable instead, as on a machine that lacks it.)
    """
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {forbidden!r} or name.startswith({forbidden!r} + '.'):
            raise ModuleNotFoundError('blocked ' + name)
sys.meta_path.insert(0, Block())
import {entry}
assert not any(m == {forbidden!r} or m.startswith({forbidden!r} + '.') for m in sys.modules)
"""
    subprocess.run([sys.executable, '-c', code], check=True)


def test_top_level_import_is_light():
    code = ('import sys, mmuol; '
            'assert not any(m.split(".")[0] in ("mmdet", "mmseg", "timm") for m in sys.modules)')
    subprocess.run([sys.executable, '-c', code], check=True)
