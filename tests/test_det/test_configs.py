# Copyright (c) mmuol contributors. All rights reserved.
"""Every config under configs/ loads and builds (init_cfg removed), so config
drift is caught; the CorLoc configs are checked for protocol details."""
import functools
import importlib
import os.path as osp
import re
from glob import glob

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope, init_default_scope

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
ALL_CONFIGS = sorted(
    osp.relpath(p, ROOT) for p in glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
MODEL_CONFIGS = [p for p in ALL_CONFIGS if '_base_' not in p.split(osp.sep)]

BACKBONES = {'vits16': 16, 'vits8': 8, 'vitb16': 16, 'vitb8': 8}
DATASETS = {
    'voc07': 'VOC2007/ImageSets/Main/trainval.txt',
    'voc12': 'VOC2012/ImageSets/Main/trainval.txt',
    'coco20k': 'annotations/instances_train2014.json',
}
METHODS = {
    # config prefix: (folder, adapter, backbones)
    'lost': ('lost', 'LOSTLocalizer', list(BACKBONES)),
    'tokencut': ('tokencut', 'TokenCutLocalizer', list(BACKBONES)),
    'dinoseg': ('dinoseg', 'DINOSegLocalizer', list(BACKBONES)),
    'maskcut': ('maskcut', 'MaskCutLocalizer', list(BACKBONES)),
    'found-bkg': ('found', 'FOUNDBkgLocalizer', list(BACKBONES)),
    'found': ('found', 'FOUNDHeadLocalizer', ['vits8']),
}
CORLOC_CONFIGS = [
    f'configs/{folder}/{method}_dino-{bb}_{ds}.py' for method, (folder, _, bbs) in METHODS.items()
    for bb in bbs for ds in DATASETS
]


@pytest.fixture(scope='module', autouse=True)
def _cache_external_metafiles():
    """``mmdet::`` / ``mmseg::`` bases make mmengine parse the host's ~100
    metafiles on every load (0.15 s); cache that lookup for this module."""
    import mmengine.config.utils as cfg_utils
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cfg_utils, '_get_cfg_metainfo',
                   functools.lru_cache(maxsize=None)(cfg_utils._get_cfg_metainfo))
        yield


@functools.lru_cache(maxsize=None)
def _load(path: str) -> Config:
    return Config.fromfile(osp.join(ROOT, path))


def _strip_init_cfg(obj):
    """Drop every ``init_cfg`` and open_clip ``pretrained`` tag (no weights
    are downloaded in tests)."""
    if isinstance(obj, dict):
        out = {k: _strip_init_cfg(v) for k, v in obj.items() if k != 'init_cfg'}
        if out.get('type') == 'MaskCLIPBackbone':
            out['pretrained'] = None
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_strip_init_cfg(v) for v in obj)
    return obj


def _build_model(cfg: Config):
    scope = cfg.get('default_scope')
    assert scope in ('mmdet', 'mmseg'), f'default_scope is {scope!r}'
    for mod in cfg.get('custom_imports', {}).get('imports', []):
        importlib.import_module(mod)
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    # ConfigDict: mmdet detectors read e.g. train_cfg.rpn as attributes.
    model_cfg = ConfigDict(_strip_init_cfg(cfg.model.to_dict()))
    with DefaultScope.overwrite_default_scope(scope):
        try:
            # Shape-only parameters: building ViT-B/8 for real is slow.
            with torch.device('meta'):
                return registry.build(model_cfg)
        except (NotImplementedError, RuntimeError):
            return registry.build(model_cfg)


def test_every_corloc_config_exists():
    missing = [p for p in CORLOC_CONFIGS if not osp.isfile(osp.join(ROOT, p))]
    assert not missing
    assert 'configs/lost/lost_dino-vits16_voc07.py' in CORLOC_CONFIGS
    assert len(CORLOC_CONFIGS) == 63


@pytest.mark.parametrize('path', [p for p in ALL_CONFIGS if p not in MODEL_CONFIGS])
def test_base_config_loads(path):
    assert _load(path).filename


@pytest.mark.parametrize('path', MODEL_CONFIGS)
def test_config_builds(path):
    cfg = _load(path)
    model = _build_model(cfg)
    if cfg.model.type == 'UnsupervisedLocalizer':
        pad = cfg.model.data_preprocessor.pad_size_divisor
        assert model.backbone.patch_size == pad
        if type(model.localizer).__name__ == 'FOUNDHeadLocalizer':
            # The released decoder takes ViT-S keys (the build checks the match).
            assert model.localizer.decoder.weight.shape == \
                (1, model.backbone.embed_dims, 1, 1) == (1, 384, 1, 1)


@pytest.mark.parametrize('path', CORLOC_CONFIGS)
def test_corloc_protocol(path):
    """Original resolution, batch 1, padding = patch size, CorLoc metric,
    --show-dir support, names that match the content."""
    cfg = _load(path)
    method, bb, ds = re.match(r'.*/([\w-]+)_dino-(\w+)_(\w+)\.py$', path).groups()
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['mmuol.det'], allow_failed_imports=False)
    assert cfg.default_hooks.visualization.type == 'CorLocVisualizationHook'
    # A frozen model cannot be wrapped in DistributedDataParallel.
    assert cfg.model_wrapper_cfg == dict(type='MMSeparateDistributedDataParallel')
    model = cfg.model
    assert model.type == 'UnsupervisedLocalizer'
    assert model.localizer.type == METHODS[method][1]
    if method == 'found':
        assert model.localizer.in_channels == 384  # stated, not taken from the backbone
    assert model.max_patches == 128 * 128
    assert model.backbone.arch == f'dino_{bb}'
    assert model.backbone.init_cfg == dict(type='Pretrained', checkpoint=f'dino_{bb}')
    pre = model.data_preprocessor
    assert pre.pad_size_divisor == BACKBONES[bb]
    assert pre.bgr_to_rgb and pre.mean == [123.675, 116.28, 103.53]
    loader = cfg.test_dataloader
    assert loader.batch_size == 1
    assert loader.dataset.ann_file == DATASETS[ds]
    assert loader.dataset.skip_invalid is False  # the mmdet default: stop on a bad file
    steps = [t['type'] for t in loader.dataset.pipeline]
    assert steps == ['LoadCorLocImageFromFile', 'LoadAnnotations', 'PackDetInputs']
    meta_keys = loader.dataset.pipeline[-1]['meta_keys']
    assert {'img_shape', 'ori_shape', 'scale_factor', 'img_path'} <= set(meta_keys)
    assert {'skip_invalid', 'invalid_reason'} <= set(meta_keys)
    assert cfg.test_evaluator == dict(type='CorLocMetric', iou_thr=0.5, hard=True)

    from mmdet.registry import DATASETS as DET_DATASETS
    from mmdet.registry import HOOKS, METRICS, TRANSFORMS

    import mmuol.det  # noqa: F401
    assert DET_DATASETS.get(loader.dataset.type) is not None
    assert TRANSFORMS.get(steps[0]) is not None
    assert HOOKS.get(cfg.default_hooks.visualization.type) is not None
    init_default_scope('mmdet')
    METRICS.build(cfg.test_evaluator)


def test_readme_paths_exist():
    """Config paths quoted in the method READMEs exist."""
    for readme in glob(osp.join(ROOT, 'configs', '*', 'README.md')):
        with open(readme) as f:
            text = f.read()
        for path in re.findall(r'configs/[\w./-]+\.py', text):
            assert osp.isfile(osp.join(ROOT, path)), f'{readme}: {path}'
        # Relative markdown links ([config](x.py), [LOST](../lost/README.md)).
        for link in re.findall(r'\]\(([\w./-]+\.(?:py|md))\)', text):
            assert osp.isfile(osp.join(osp.dirname(readme), link)), \
                f'{readme}: {link}'
