# Copyright (c) mmuol contributors. All rights reserved.
"""CutLER configs carry the paper's recipe (values from the official yaml
files), every config builds, the metafile lists every config, and the DINO
ResNet-50 checkpoint's torchvision key layout is mmdet's ResNet layout (so
no converter is needed)."""
import glob
import os.path as osp

import pytest
import torch
import yaml
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope

import mmuol.det  # noqa: F401

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
FOLDER = osp.join(ROOT, 'configs', 'cutler')
CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(FOLDER, 'cutler_*.py')))
TRAIN = 'cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-160k_imagenet.py'
SELF_TRAIN = 'cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-160k-2x80k-self-train_imagenet.py'
DINO_RN50 = ('https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/'
             'dino_resnet50_pretrain.pth')
EVAL = {  # config suffix: (dataset type, metrics, detections per image)
    'coco-val2017': ('ClassAgnosticCocoDataset', ['bbox', 'segm'], 100),
    'coco20k': ('COCO20kDataset', ['bbox', 'segm'], 100),
    'lvis-v1-val': ('ClassAgnosticCocoDataset', ['bbox', 'segm'], 300),
    'uvo-val': ('ClassAgnosticCocoDataset', ['bbox', 'segm'], 100),
    'objects365-v2-val': ('ClassAgnosticCocoDataset', 'bbox', 100),
    'voc07': ('ConcatDataset', 'bbox', 100),
    'clipart': ('ConcatDataset', 'bbox', 100),
    'watercolor': ('ConcatDataset', 'bbox', 100),
    'comic': ('ConcatDataset', 'bbox', 100),
}


def _load(name):
    return Config.fromfile(osp.join(FOLDER, name))


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != 'init_cfg'}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_strip(v) for v in obj)
    return obj


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds(name):
    from mmdet.registry import MODELS
    cfg = _load(name)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['mmuol.det'], allow_failed_imports=False)
    init_default_scope('mmdet')
    with torch.device('meta'):
        model = MODELS.build(ConfigDict(_strip(cfg.model.to_dict())))
    heads = model.roi_head.bbox_head
    heads = heads if isinstance(heads, torch.nn.ModuleList) else [heads]
    assert all(h.num_classes == 1 and h.reg_class_agnostic for h in heads)
    masks = model.roi_head.mask_head
    masks = masks if isinstance(masks, torch.nn.ModuleList) else [masks]
    assert all(h.num_classes == 1 for h in masks)


def test_first_round_recipe():
    cfg = _load(TRAIN)
    m = cfg.model
    assert m.roi_head.type == 'DropLossCascadeRoIHead'
    assert m.roi_head.drop_loss == dict(type='DropLoss', iou_thr=0.01)
    assert m.backbone.init_cfg == dict(type='Pretrained', checkpoint=DINO_RN50)
    assert (m.backbone.frozen_stages, m.backbone.norm_eval, m.backbone.style) == (-1, False,
                                                                                  'pytorch')
    assert m.backbone.norm_cfg.type == m.neck.norm_cfg.type == 'SyncBN'
    assert [h.bbox_coder.target_stds
            for h in m.roi_head.bbox_head] == [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                                               [0.033, 0.033, 0.067, 0.067]]
    assert all(h.loss_bbox.type == 'L1Loss' for h in m.roi_head.bbox_head)
    rpn = m.train_cfg.rpn_proposal
    assert (rpn.max_per_img, rpn.nms.iou_threshold) == (4000, 0.65)
    assert [s.sampler.num for s in m.train_cfg.rcnn] == [512] * 3
    assert [s.assigner.pos_iou_thr for s in m.train_cfg.rcnn] == [0.5, 0.6, 0.7]
    rcnn = m.test_cfg.rcnn
    assert (rcnn.score_thr, rcnn.nms.iou_threshold, rcnn.max_per_img) == (0.0, 0.5, 100)
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper' and opt.clip_grad == dict(max_norm=1.0, norm_type=2)
    assert (opt.optimizer.lr, opt.optimizer.momentum, opt.optimizer.weight_decay) == (0.01, 0.9,
                                                                                      5e-5)
    assert opt.paramwise_cfg.norm_decay_mult == 0.0
    warmup, step = cfg.param_scheduler
    assert (warmup.start_factor, warmup.end) == (0.001, 1000)
    assert (step.milestones, step.gamma, step.end) == ([80000], 0.02, 160000)
    data = cfg.train_dataloader.dataset
    assert data.type == 'MultiImageMixDataset' and data.dataset.type == 'MaskCutDataset'
    assert data.pipeline[0] == dict(type='CutLERCopyPaste', ratio_range=(0.3, 1.0), prob=1.0)
    resize = data.dataset.pipeline[2]
    assert [s for _, s in resize.scales] == [240, 320, 480, 640, 672, 704, 736, 768, 800, 1024]
    assert {w for w, _ in resize.scales} == {1333}


def test_self_training_recipes():
    cfg = _load(SELF_TRAIN)
    (hook, ) = cfg.custom_hooks
    assert hook.type == 'SelfTrainingHook'
    assert (hook.initial_iters, hook.round_iters, tuple(hook.score_thrs)) == (160000, 80000, (0.7,
                                                                                              0.65))
    assert (hook.mask_iou_thr, hook.max_per_img, hook.disable_drop_loss) == (0.5, 30, True)
    assert hook.round_optim == dict(lr=0.005, weight_decay=1e-4)
    assert hook.round_dataloader.dataset.pipeline[0].ratio_range == (0.5, 1.0)
    assert cfg.train_cfg.max_iters == 320000
    assert all(s.end <= 160000 for s in cfg.param_scheduler)
    for r in (1, 2):
        cfg = _load(f'cutler_cascade-mask-rcnn_r50-dino-fpn_8xb2-80k_imagenet-r{r}.py')
        assert cfg.model.roi_head.drop_loss is None
        assert cfg.train_cfg.max_iters == 80000
        assert (cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay) == (0.005,
                                                                                              1e-4)
        assert [s.type for s in cfg.param_scheduler] == ['LinearLR']  # then constant
        assert cfg.train_dataloader.dataset.dataset.ann_file == (
            f'annotations/cutler_imagenet1k_train_r{r}.json')
        assert cfg.train_dataloader.dataset.pipeline[0].ratio_range == (0.5, 1.0)
        assert cfg.load_from.endswith('iter_160000.pth' if r == 1 else 'iter_80000.pth')


@pytest.mark.parametrize('suffix', list(EVAL))
def test_zero_shot_configs(suffix):
    cfg = _load(f'cutler_cascade-mask-rcnn_r50-fpn_{suffix}.py')
    dataset_type, metrics, max_dets = EVAL[suffix]
    assert cfg.test_dataloader.dataset.type == dataset_type
    assert cfg.test_evaluator.type == 'ClassAgnosticCocoMetric'
    assert cfg.test_evaluator.metric == metrics
    assert cfg.model.test_cfg.rcnn.max_per_img == max_dets
    assert cfg.model.backbone.norm_cfg.type == 'BN'  # single-GPU / CPU evaluation works
    if 'segm' in metrics:
        assert cfg.test_evaluator.ann_file.startswith(cfg.test_dataloader.dataset.data_root)


def test_metafile_lists_every_config():
    with open(osp.join(FOLDER, 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    listed = sorted(osp.basename(m['Config']) for m in meta['Models'])
    assert listed == CONFIGS


def test_dino_resnet50_keys_are_mmdet_resnet_keys():
    """The DINO RN50 checkpoint is a torchvision ``resnet50`` state dict."""
    from mmdet.models.backbones import ResNet
    from torchvision.models import resnet50
    with torch.device('meta'):
        torchvision_keys = {k for k in resnet50().state_dict() if not k.startswith('fc.')}
        mmdet_keys = set(ResNet(depth=50, style='pytorch').state_dict())
    assert torchvision_keys == mmdet_keys
    assert len(mmdet_keys) == 318
