# Copyright (c) mmuol contributors. All rights reserved.
"""FOUNDHead: parameters, golden forward / inference, weight loading."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmuol.seg  # noqa: F401  (registers into mmseg)
from mmuol.localization import (found_decoder_logits, found_foreground, load_found_decoder,
                                mask_to_box)
from mmuol.seg import FOUNDHead
from mmuol.testing.localization import load_golden
from mmuol.testing.seg_data import tiny_found_segmentor_cfg

REPO = Path(__file__).resolve().parents[2]
GOLDEN = 'found_lost_tokencut/'
HEAD_GOLDENS = [
    'found_head_official_14x14_ps8', 'found_head_official_20x28_ps8',
    'found_head_random_init_14x14_ps16'
]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _head_from_golden(arrays, patch_size):
    head = MODELS.build(dict(type='FOUNDHead', in_channels=384, patch_size=patch_size))
    with torch.no_grad():
        head.conv_seg.weight.copy_(torch.from_numpy(arrays['weight']))
        head.conv_seg.bias.copy_(torch.from_numpy(arrays['bias']))
    return head.eval()


def test_parameter_count_and_forward():
    head = MODELS.build(dict(type='FOUNDHead', in_channels=384))
    assert sum(p.numel() for p in head.parameters()) == 385
    assert FOUNDHead.num_parameters(head, trainable_only=True) == 385
    assert head.dropout is None and head.out_channels == 1
    assert head.threshold == 0.5
    x = torch.randn(2, 384, 7, 9)
    assert head(x).shape == (2, 1, 7, 9)
    assert head([torch.randn(1, 384, 3, 3), x]).shape == (2, 1, 7, 9)
    # ViT-B keys: 769 parameters.
    head_b = MODELS.build(dict(type='FOUNDHead', in_channels=768))
    assert sum(p.numel() for p in head_b.parameters()) == 769


def test_bad_arguments():
    with pytest.raises(ValueError, match='in_channels'):
        FOUNDHead(in_channels=0)
    with pytest.raises(TypeError, match='fixes'):
        FOUNDHead(in_channels=8, num_classes=3)
    with pytest.raises(ValueError, match='patch_size'):
        FOUNDHead(in_channels=8, patch_size=0)
    with pytest.raises(KeyError, match='loss_weights'):
        FOUNDHead(in_channels=8, loss_weights=dict(foo=1.0))
    head = FOUNDHead(in_channels=8)
    with pytest.raises(ValueError, match='expected'):
        head(torch.randn(1, 4, 3, 3))


@pytest.mark.parametrize('name', HEAD_GOLDENS)
def test_golden_logits_and_uod_box(name):
    arrays, meta = load_golden(f'found_lost_tokencut/{name}')
    head = _head_from_golden(arrays, meta['patch_size'])
    with torch.no_grad():
        logits = head(torch.from_numpy(arrays['feats_chw'])[None])[0, 0]
    np.testing.assert_allclose(logits.numpy(), arrays['logits'], atol=1e-4)
    fg = found_foreground(logits, threshold=0.5, component='largest')
    reliable = (fg.prob - 0.5).abs().numpy() > 1e-5
    np.testing.assert_array_equal(fg.binary.numpy()[reliable], arrays['mask_patch'][reliable])
    box = mask_to_box(fg.mask, meta['patch_size'], meta['image_hw'])
    np.testing.assert_array_equal(box.numpy(), arrays['uod_box'])


@pytest.mark.parametrize('name', HEAD_GOLDENS)
def test_golden_saliency_inference_path(name):
    """logits -> FOUNDHead.predict_by_feat -> FOUNDSegmentor.postprocess."""
    arrays, meta = load_golden(f'found_lost_tokencut/{name}')
    ps = meta['patch_size']
    rows, cols = meta['rows'], meta['cols']
    height, width = meta['image_hw']
    model = MODELS.build(
        tiny_found_segmentor_cfg(patch_size=ps, test_cfg=dict(saliency_mode='multi')))
    model.decode_head = _head_from_golden(arrays, ps)
    pad_hw = (rows * ps, cols * ps)
    sample = SegDataSample(
        metainfo=dict(
            ori_shape=(height, width),
            img_shape=(height, width),
            pad_shape=pad_hw,
            padding_size=[0, pad_hw[1] - width, 0, pad_hw[0] - height]))
    with torch.no_grad():
        logits = model.decode_head(torch.from_numpy(arrays['feats_chw'])[None])
        up = model.decode_head.predict_by_feat(logits, [sample.metainfo])
        out = model.postprocess_result(up, [sample])[0]
    soft = out.seg_logits.data[0].numpy()
    assert soft.shape == (height, width)
    np.testing.assert_allclose(soft, arrays['soft_up'], atol=1e-5)
    np.testing.assert_allclose(out.pred_saliency.data[0].numpy(), arrays['soft_up'], atol=1e-5)
    reliable = np.abs(arrays['soft_up'] - 0.5) > 1e-5
    pred = out.pred_sem_seg.data[0].numpy().astype(bool)
    np.testing.assert_array_equal(pred[reliable], arrays['binary_up'][reliable])


def _write_official(path, arrays):
    torch.save(
        {
            'decoder': {
                'weight': torch.from_numpy(arrays['weight']),
                'bias': torch.from_numpy(arrays['bias'])
            }
        }, path)


def test_init_cfg_loads_official_decoder(tmp_path):
    arrays, _ = load_golden(GOLDEN + 'found_head_official_14x14_ps8')
    ckpt = tmp_path / 'decoder_weights.pt'
    _write_official(ckpt, arrays)
    head = MODELS.build(
        dict(
            type='FOUNDHead',
            in_channels=384,
            init_cfg=dict(type='Pretrained', checkpoint=str(ckpt))))
    head.init_weights()
    np.testing.assert_array_equal(head.conv_seg.weight.detach().numpy(), arrays['weight'])
    np.testing.assert_array_equal(head.conv_seg.bias.detach().numpy(), arrays['bias'])
    # Wrong width: a clear error.
    bad = FOUNDHead(in_channels=768, init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    with pytest.raises(ValueError, match='in_channels'):
        bad.init_weights()
    missing = FOUNDHead(
        in_channels=384, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'nope.pt')))
    with pytest.raises(FileNotFoundError, match='decoder_weights.pt'):
        missing.init_weights()


def test_head_uses_the_core_decoder(tmp_path):
    """Head forward == the core's conv; the head loads every layout the core reads."""
    w, b = torch.randn(1, 8, 1, 1), torch.randn(1)
    head = FOUNDHead(in_channels=8, patch_size=8)
    with torch.no_grad():
        head.conv_seg.weight.copy_(w)
        head.conv_seg.bias.copy_(b)
    x = torch.randn(2, 8, 3, 5)
    torch.testing.assert_close(head(x), found_decoder_logits(x, w, b), rtol=0, atol=0)
    expected = (x * w.view(1, 8, 1, 1)).sum(1, keepdim=True) + b
    torch.testing.assert_close(head(x), expected, rtol=1e-5, atol=1e-5)
    for i, ckpt in enumerate(({
            'decoder': {
                'weight': w,
                'bias': b
            }
    }, {
            'state_dict': {
                'decode_head.conv_seg.weight': w,
                'decode_head.conv_seg.bias': b
            }
    }, {
            'conv_seg.weight': w,
            'conv_seg.bias': b
    })):
        path = tmp_path / f'layout{i}.pth'
        torch.save(ckpt, path)
        assert load_found_decoder(str(path))['weight'].equal(w)
        loaded = FOUNDHead(in_channels=8, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
        loaded.init_weights()
        assert loaded.conv_seg.weight.equal(w) and loaded.conv_seg.bias.equal(b)
    with pytest.raises(KeyError, match='checkpoint'):
        FOUNDHead(in_channels=8, init_cfg=dict(type='Pretrained', chekpoint='x.pth')).init_weights()


def test_converter_round_trip(tmp_path):
    from mmengine.runner import load_checkpoint

    arrays, _ = load_golden(GOLDEN + 'found_head_official_20x28_ps8')
    src, dst = tmp_path / 'decoder_weights.pt', tmp_path / 'found.pth'
    _write_official(src, arrays)
    proc = subprocess.run([
        sys.executable,
        str(REPO / 'tools/model_converters/'
            'found_decoder_to_mmuol.py'),
        str(src),
        str(dst)
    ],
                          capture_output=True,
                          text=True,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'saved 2 tensors (385 values)' in proc.stdout
    # A file without decoder weights: a one-line error naming it, no traceback.
    bad = tmp_path / 'not_a_decoder.pth'
    torch.save({'model': {'fc.weight': torch.zeros(2, 2)}}, bad)
    proc = subprocess.run([
        sys.executable,
        str(REPO / 'tools/model_converters/found_decoder_to_mmuol.py'),
        str(bad),
        str(tmp_path / 'x.pth')
    ],
                          capture_output=True,
                          text=True,
                          cwd=str(tmp_path))
    assert proc.returncode == 1
    assert 'not_a_decoder.pth' in proc.stderr and 'no FOUND decoder' in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'x.pth').exists()
    out = torch.load(str(dst), map_location='cpu', weights_only=True)
    assert set(out['state_dict']) == {'decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'}
    assert json.dumps(out['meta'])  # plain metadata
    # Loads into a FOUND segmentor (backbone keys come from its init_cfg).
    cfg = tiny_found_segmentor_cfg()
    cfg['decode_head']['in_channels'] = 384
    model = MODELS.build(cfg)
    load_checkpoint(model, str(dst), map_location='cpu', strict=False)
    np.testing.assert_array_equal(model.decode_head.conv_seg.weight.detach().numpy(),
                                  arrays['weight'])
    # ... and through a head's init_cfg.
    head = FOUNDHead(in_channels=384, init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    head.init_weights()
    np.testing.assert_array_equal(head.conv_seg.bias.detach().numpy(), arrays['bias'])


def test_drop_in_head_on_other_backbones():
    """FOUNDHead on a CNN feature map through mmseg's EncoderDecoder."""
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True,
                size_divisor=32),
            backbone=dict(type='ResNetV1c', depth=18, out_indices=(3, ), norm_cfg=dict(type='BN')),
            decode_head=dict(type='FOUNDHead', in_channels=512, patch_size=None),
            test_cfg=ConfigDict(mode='whole'))).eval()
    assert sum(p.numel() for p in model.decode_head.parameters()) == 513
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = model.predict(x)[0]
    assert out.pred_sem_seg.shape == (64, 96)
    assert set(out.pred_sem_seg.data.unique().tolist()) <= {0, 1}
    # Supervised mmseg loss path with 0/1 labels.
    model.train()
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, 64, 96)))
    sample.set_metainfo(dict(img_shape=(64, 96), pad_shape=(64, 96)))
    losses = model.loss(x, [sample])
    assert torch.isfinite(losses['decode.loss_ce'])
