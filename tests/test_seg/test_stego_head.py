# Copyright (c) mmuol contributors. All rights reserved.
"""STEGOHead / STEGOSegmentor / STEGOCorrespondenceLoss and the checkpoint
converter: official-code goldens and behaviour on a tiny random ViT."""
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmuol.seg  # noqa: F401
from mmuol.localization.stego import cluster_log_probs, cluster_probe_inner, tokens_to_feature_map
from mmuol.seg.stego import (convert_stego_state_dict, load_lightning_checkpoint,
                             stego_hyper_parameters)
from mmuol.testing.golden import load_golden
from mmuol.testing.models import TINY_VIT_ARCH
from mmuol.testing.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
AREA = 'stego_dsm'


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _load(name):
    return load_golden(f'{AREA}/{name}')


def _t(z, key):
    return torch.from_numpy(z[key])


@pytest.mark.parametrize('name',
                         ['stego_head_feat_nonlinear_6x5.npz', 'stego_head_KK_linear_4x4.npz'])
def test_head_golden(name):
    z, meta = _load(name)
    head = MODELS.build(
        dict(
            type='STEGOHead',
            in_channels=meta['n_feats'],
            channels=meta['dim'],
            num_classes=27,
            projection=meta['projection_type']))
    sd = {'linear_proj.weight': _t(z, 'c1_w'), 'linear_proj.bias': _t(z, 'c1_b')}
    if meta['projection_type'] == 'nonlinear':
        sd.update({
            'nonlinear_proj.0.weight': _t(z, 'c2_w0'),
            'nonlinear_proj.0.bias': _t(z, 'c2_b0'),
            'nonlinear_proj.2.weight': _t(z, 'c2_w2'),
            'nonlinear_proj.2.bias': _t(z, 'c2_b2')
        })
    missing, unexpected = head.load_state_dict(sd, strict=False)
    assert not unexpected
    assert set(missing) <= {'conv_seg.weight', 'conv_seg.bias', 'clusters'}
    head.eval()
    with torch.no_grad():
        code = head.forward([_t(z, 'image_feat')])
    np.testing.assert_allclose(code.numpy(), z['code'], atol=1e-5, rtol=0)


def test_loss_module_golden_and_injection():
    z, meta = _load('stego_corrloss_b3_c24_d6_s5_train.npz')
    cfg = dict(meta['cfg'])
    cfg['stabilize'] = cfg.pop('stabalize')
    cfg.pop('use_salience')
    loss = MODELS.build(dict(type='STEGOCorrespondenceLoss', **cfg))
    code = _t(z, 'orig_code').clone().requires_grad_(True)
    out = loss(
        _t(z, 'orig_feats'),
        _t(z, 'orig_feats_pos'),
        code,
        _t(z, 'orig_code_pos'),
        coords1=_t(z, 'coords1'),
        coords2=_t(z, 'coords2'),
        perms=_t(z, 'perms'))
    total = out['loss_corr_intra'] + out['loss_corr_inter'] + out['loss_corr_neg']
    assert float(total) == pytest.approx(float(z['total_loss']), abs=1e-6)
    assert float(out['cd_inter']) == pytest.approx(float(z['pos_inter_cd_mean']), abs=1e-6)
    total.backward()
    np.testing.assert_allclose(code.grad.numpy(), z['grad_code'], atol=1e-6)
    # a seeded module draws the same points twice
    seeded = [
        MODELS.build(dict(type='STEGOCorrespondenceLoss', feature_samples=3, seed=4))
        for _ in range(2)
    ]
    args = (_t(z, 'orig_feats'), _t(z, 'orig_feats_pos'), _t(z,
                                                             'orig_code'), _t(z, 'orig_code_pos'))
    assert float(seeded[0](*args)['loss_corr_neg']) == float(seeded[1](*args)['loss_corr_neg'])


def test_loss_settings_are_the_core_defaults():
    """Unset settings are stego_correspondence_loss's defaults (the "IAROA vit
    small" block), stated once; a typo is an error."""
    from mmuol.seg.stego.loss import LOSS_DEFAULTS
    assert LOSS_DEFAULTS == dict(
        feature_samples=11,
        neg_samples=5,
        pos_intra_shift=0.18,
        pos_inter_shift=0.12,
        neg_inter_shift=0.46,
        pos_intra_weight=0.67,
        pos_inter_weight=0.25,
        neg_inter_weight=0.63,
        pointwise=True,
        zero_clamp=True,
        stabilize=False)
    loss = MODELS.build(dict(type='STEGOCorrespondenceLoss', neg_inter_shift=0.3, loss_weight=2.0))
    assert loss.settings == dict(LOSS_DEFAULTS, neg_inter_shift=0.3) and loss.loss_weight == 2.0
    with pytest.raises(TypeError, match="unknown settings \\['neg_shift'\\]"):
        MODELS.build(dict(type='STEGOCorrespondenceLoss', neg_shift=0.3))
    with pytest.raises(ValueError, match='feature_samples must be >= 1'):
        MODELS.build(dict(type='STEGOCorrespondenceLoss', feature_samples=0))


def _tiny_segmentor(**test_cfg):
    cfg = dict(
        type='STEGOSegmentor',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            size_divisor=8,
            test_cfg=dict(size_divisor=8)),
        backbone=dict(type='DINOViT', arch=dict(TINY_VIT_ARCH), init_cfg=None),
        decode_head=dict(
            type='STEGOHead',
            in_channels=48,
            channels=8,
            num_classes=3,
            extra_clusters=1,
            loss_corr=dict(
                type='STEGOCorrespondenceLoss', feature_samples=3, neg_samples=2, seed=0)),
        test_cfg=test_cfg)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _batch(n=2, size=32, partner=True, label=True):
    g = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(n):
        s = SegDataSample()
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size)))
        if label:
            s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, size, size), generator=g))
        if partner:
            s.img_pos = torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g)
        samples.append(s)
    imgs = [
        torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g) for _ in range(n)
    ]
    return dict(inputs=imgs, data_samples=samples)


def test_segmentor_features():
    model = _tiny_segmentor()
    x = torch.randn(2, 3, 32, 24)
    out = model.backbone.forward_last_block(x, with_qkv=True, with_attn=False)
    feat = model.extract_feat(x)[0]
    torch.testing.assert_close(feat, tokens_to_feature_map(out.tokens, (4, 3)))
    model.feature = 'k'
    torch.testing.assert_close(model.extract_feat(x)[0], tokens_to_feature_map(out.k, (4, 3)))
    with pytest.raises(ValueError, match='feature must be one of'):
        MODELS.build(
            dict(
                type='STEGOSegmentor',
                backbone=dict(type='DINOViT', arch=dict(TINY_VIT_ARCH)),
                decode_head=dict(type='STEGOHead', in_channels=48),
                feature='q'))


def test_segmentor_training_losses_and_gradients():
    model = _tiny_segmentor()
    model.train()
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert {
        'decode.loss_corr_intra', 'decode.loss_corr_inter', 'decode.loss_corr_neg',
        'decode.loss_cluster', 'decode.loss_linear', 'decode.acc_seg', 'decode.cd_intra'
    } <= set(losses)
    # the cluster probe trains on the detached code: no gradient to the projection
    losses['decode.loss_cluster'].backward(retain_graph=True)
    assert model.decode_head.clusters.grad is not None
    assert model.decode_head.linear_proj.weight.grad is None
    (losses['decode.loss_corr_intra'] + losses['decode.loss_corr_neg']).backward()
    assert model.decode_head.linear_proj.weight.grad.abs().sum() > 0
    assert model.decode_head.conv_seg.weight.grad is None
    assert all(p.grad is None for p in model.backbone.parameters())
    # without labels the linear probe is skipped
    data = model.data_preprocessor(_batch(label=False), True)
    assert 'decode.loss_linear' not in model(**data, mode='loss')
    data = model.data_preprocessor(_batch(partner=False), True)
    with pytest.raises(KeyError, match='KNN partner'):
        model(**data, mode='loss')
    with pytest.raises(NotImplementedError, match='STEGOSegmentor'):
        model.decode_head.loss([data['inputs']], data['data_samples'], None)


def test_segmentor_prediction_flip_and_crf():
    model = _tiny_segmentor(flip=True)
    model.eval()
    data = model.data_preprocessor(_batch(partner=False), False)
    inputs = data['inputs']
    with torch.no_grad():
        head = model.decode_head
        c1 = head.forward(model.extract_feat(inputs))
        c2 = head.forward(model.extract_feat(inputs.flip(-1))).flip(-1)
        torch.testing.assert_close(model.code(inputs), (c1 + c2) / 2)
        up = torch.nn.functional.interpolate(
            (c1 + c2) / 2, size=(32, 32), mode='bilinear', align_corners=False)
        expected = cluster_log_probs(cluster_probe_inner(up, head.clusters), 2.0)
        results = model(**data, mode='predict')
    assert len(results) == 2
    torch.testing.assert_close(results[0].seg_logits.data, expected[0])
    torch.testing.assert_close(results[0].pred_sem_seg.data[0], expected[0].argmax(0))
    assert results[0].seg_logits.data.shape[0] == 4  # 3 classes + 1 extra cluster
    from mmuol.localization.dense_crf import stego_crf
    model.test_cfg.crf = True
    with torch.no_grad():
        crf_results = model(**model.data_preprocessor(_batch(partner=False), False), mode='predict')
    q = stego_crf(inputs[1], expected[1])
    torch.testing.assert_close(crf_results[1].pred_sem_seg.data[0], q.argmax(0))
    model.decode_head.predict_with = 'linear'
    model.test_cfg.crf = False
    with torch.no_grad():
        linear = model(**model.data_preprocessor(_batch(partner=False), False), mode='predict')
    assert linear[0].seg_logits.data.shape[0] == 3
    assert torch.allclose(linear[0].seg_logits.data.exp().sum(0), torch.ones(32, 32))


def test_head_arguments_are_checked():
    with pytest.raises(ValueError, match='projection must be'):
        MODELS.build(dict(type='STEGOHead', in_channels=8, projection='mlp'))
    with pytest.raises(ValueError, match='channels .* must equal in_channels'):
        MODELS.build(dict(type='STEGOHead', in_channels=8, channels=4, projection=None))
    with pytest.raises(ValueError, match='extra_clusters'):
        MODELS.build(dict(type='STEGOHead', in_channels=8, extra_clusters=-1))
    head = MODELS.build(
        dict(type='STEGOHead', in_channels=8, channels=4, num_classes=3, extra_clusters=2))
    assert head.clusters.shape == (5, 4) and head.conv_seg.out_channels == 3
    with pytest.raises(ValueError, match='in_channels=8'):
        head.forward([torch.zeros(1, 5, 2, 2)])


def _tool(relpath: str):
    """Import a script of tools/ as a module (run in-process: no second
    interpreter start)."""
    return load_script(REPO / relpath)


def _fake_lightning_checkpoint(path: Path, model) -> dict:
    """A checkpoint laid out like STEGO's LitUnsupervisedSegmenter, whose
    hyper-parameters are objects of a package that is not installed."""
    head = model.decode_head
    sd = {'net.model.' + k: v for k, v in model.backbone.state_dict().items()}
    sd.update({
        'net.cluster1.0.weight': head.linear_proj.weight.detach() + 1,
        'net.cluster1.0.bias': head.linear_proj.bias.detach(),
        'net.cluster2.0.weight': head.nonlinear_proj[0].weight.detach(),
        'net.cluster2.0.bias': head.nonlinear_proj[0].bias.detach(),
        'net.cluster2.2.weight': head.nonlinear_proj[2].weight.detach(),
        'net.cluster2.2.bias': head.nonlinear_proj[2].bias.detach(),
        'cluster_probe.clusters': torch.arange(32.).view(4, 8),
        'linear_probe.weight': head.conv_seg.weight.detach(),
        'linear_probe.bias': head.conv_seg.bias.detach(),
        'train_cluster_probe.clusters': torch.zeros(3, 8),
        'decoder.weight': torch.zeros(48, 8, 1, 1),
        'decoder.bias': torch.zeros(48)
    })
    fake = types.ModuleType('fake_omegaconf_for_test')

    class DictConfig:

        def __init__(self, content):
            self.content = content

        def __getstate__(self):
            return {'_content': self.content, '_metadata': None}

    DictConfig.__module__ = fake.__name__
    DictConfig.__qualname__ = 'DictConfig'
    fake.DictConfig = DictConfig
    sys.modules[fake.__name__] = fake
    try:
        ckpt = {
            'state_dict': sd,
            'epoch': 3,
            'hyper_parameters': {
                'n_classes':
                3,
                'cfg':
                DictConfig({
                    'model_type': 'vit_small',
                    'dim': 8,
                    'extra_clusters': 1,
                    'dino_feat_type': 'feat'
                })
            }
        }
        torch.save(ckpt, str(path), pickle_protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        del sys.modules[fake.__name__]
    return sd


def test_converter_reads_lightning_checkpoints_without_their_packages(tmp_path, capsys):
    model = _tiny_segmentor()
    src = tmp_path / 'stego.ckpt'
    sd = _fake_lightning_checkpoint(src, model)
    ckpt = load_lightning_checkpoint(str(src))
    hp = stego_hyper_parameters(ckpt)
    assert hp == {
        'model_type': 'vit_small',
        'dim': 8,
        'extra_clusters': 1,
        'dino_feat_type': 'feat',
        'n_classes': 3
    }
    converted, dropped = convert_stego_state_dict(ckpt['state_dict'])
    assert sorted(dropped) == ['decoder.bias', 'decoder.weight', 'train_cluster_probe.clusters']
    assert set(converted) == set(model.state_dict())
    head_only, _ = convert_stego_state_dict(ckpt['state_dict'], with_backbone=False)
    assert not any(k.startswith('backbone.') for k in head_only)
    with pytest.raises(KeyError, match='not a STEGO checkpoint'):
        convert_stego_state_dict({'foo': torch.zeros(1)})

    dst = tmp_path / 'out' / 'stego_tiny.pth'
    tool = _tool('tools/model_converters/stego_ckpt_to_mmuol.py')
    tool.main([str(src), str(dst)])
    printed = capsys.readouterr().out
    assert 'dropped 3 unused tensors' in printed
    assert 'model_type=vit_small' in printed and 'n_classes=3' in printed
    out = torch.load(str(dst), map_location='cpu')
    fresh = _tiny_segmentor()
    fresh.load_state_dict(out['state_dict'], strict=True)
    torch.testing.assert_close(fresh.decode_head.linear_proj.weight, sd['net.cluster1.0.weight'])
    torch.testing.assert_close(fresh.decode_head.clusters, torch.arange(32.).view(4, 8))
    assert out['meta']['stego_hparams']['dim'] == 8
    with pytest.raises(FileNotFoundError, match='missing.ckpt not found'):
        tool.main([str(tmp_path / 'missing.ckpt'), str(dst)])


STEGO_NAMES = {
    'STEGOSegmentor': 'MODELS',
    'STEGOHead': 'MODELS',
    'STEGOCorrespondenceLoss': 'MODELS',
    'HungarianIoUMetric': 'METRICS',
    'COCOStuff27Dataset': 'DATASETS',
    'Cityscapes27Dataset': 'DATASETS',
    'Potsdam3Dataset': 'DATASETS',
    'FiveCropDataset': 'DATASETS',
    'STEGOKNNPairDataset': 'DATASETS',
    'STEGOResizeCenterCrop': 'TRANSFORMS',
    'STEGORemapLabels': 'TRANSFORMS',
    'LoadPotsdamMat': 'TRANSFORMS',
}


@pytest.mark.parametrize('name', sorted(STEGO_NAMES))
def test_registered_names_resolve_to_mmuol(name):
    import importlib

    from mmseg import registry

    import mmuol.seg.stego as stego
    for module in ('mmseg.models', 'mmseg.datasets', 'mmseg.evaluation'):
        importlib.import_module(module)  # a clash with an mmseg name would show here
    cls = getattr(registry, STEGO_NAMES[name]).get(name)
    assert cls is getattr(stego, name, None) or cls is getattr(mmuol.seg, name)
    assert cls.__module__.startswith('mmuol.seg.'), cls.__module__
