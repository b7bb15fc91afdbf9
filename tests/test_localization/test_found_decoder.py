# Copyright (c) mmuol contributors. All rights reserved.
"""FOUND's trained head in the core (found.py): decoder loading, logits and
post-processing against the official golden vectors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmuol.localization import (found_decoder_logits, found_decoder_state_dict, found_foreground,
                                found_single_component, load_found_decoder, mask_to_box)
from mmuol.testing.localization import golden_names, load_golden

CASES = golden_names('found_lost_tokencut', 'found_head_*.npz')


def test_cases_present():
    assert len(CASES) == 3


@pytest.mark.parametrize('name', CASES)
def test_found_head_golden(name):
    z, meta = load_golden(f'found_lost_tokencut/{name}')
    weight, bias = torch.from_numpy(z['weight']), torch.from_numpy(z['bias'])
    logits = found_decoder_logits(torch.from_numpy(z['feats_chw'])[None], weight, bias)
    assert logits.shape == (1, 1, meta['rows'], meta['cols'])
    np.testing.assert_allclose(logits[0, 0].numpy(), z['logits'], atol=1e-4)
    fg = found_foreground(logits[0, 0], threshold=0.5, component='largest')
    # One random-init pixel sits 3.6e-7 from the threshold (SPEC).
    reliable = np.abs(torch.sigmoid(torch.from_numpy(z['logits'])).numpy() - 0.5) > 1e-5
    np.testing.assert_array_equal(fg.binary.numpy()[reliable], z['mask_patch'][reliable])
    box = mask_to_box(fg.mask, meta['patch_size'], meta['image_hw'])
    np.testing.assert_array_equal(box.numpy(), z['uod_box'])
    assert fg.score == pytest.approx(float(fg.prob[fg.mask].mean()))
    # The saliency path: bilinear upsampling of the logits, then sigmoid.
    h, w = meta['image_hw']
    up = F.interpolate(
        logits, scale_factor=meta['patch_size'], mode='bilinear', align_corners=False)[0, 0, :h, :w]
    soft = found_foreground(up, component='all')
    np.testing.assert_allclose(soft.prob.numpy(), z['soft_up'], atol=1e-5)
    reliable = np.abs(z['soft_up'] - 0.5) > 1e-5
    np.testing.assert_array_equal(soft.mask.numpy()[reliable], z['binary_up'][reliable])


def _decoder(d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, d, 1, 1, generator=g), torch.randn(1, generator=g)


@pytest.mark.parametrize('layout', ['official', 'mmseg', 'mmdet', 'conv_seg', 'decoder', 'flat'])
def test_found_decoder_state_dict_layouts(layout):
    weight, bias = _decoder()
    ckpt = {
        'official': {
            'decoder': {
                'weight': weight,
                'bias': bias
            }
        },
        'mmseg': {
            'state_dict': {
                'decode_head.conv_seg.weight': weight,
                'decode_head.conv_seg.bias': bias,
                'backbone.x': bias
            }
        },
        'mmdet': {
            'state_dict': {
                'localizer.decoder.weight': weight,
                'localizer.decoder.bias': bias
            }
        },
        'conv_seg': {
            'conv_seg.weight': weight,
            'conv_seg.bias': bias
        },
        'decoder': {
            'decoder.weight': weight,
            'decoder.bias': bias
        },
        'flat': {
            'weight': weight,
            'bias': bias
        },
    }[layout]
    sd = found_decoder_state_dict(ckpt)
    assert set(sd) == {'weight', 'bias'}
    assert torch.equal(sd['weight'], weight) and torch.equal(sd['bias'], bias)


def test_found_decoder_state_dict_errors():
    weight, bias = _decoder()
    with pytest.raises(KeyError, match='no FOUND decoder weights.*backbone.w'):
        found_decoder_state_dict({'backbone.w': weight})
    with pytest.raises(KeyError, match=r'Conv2d\(D, 1, 1\)'):
        found_decoder_state_dict({'weight': weight.reshape(2, 4, 1, 1), 'bias': bias})
    with pytest.raises(KeyError, match='dict checkpoint'):
        found_decoder_state_dict([weight])


def test_load_found_decoder_from_files(tmp_path):
    weight, bias = _decoder(384)
    path = tmp_path / 'decoder_weights.pt'
    torch.save({'decoder': {'weight': weight, 'bias': bias}}, path)
    sd = load_found_decoder(str(path))
    assert torch.equal(sd['weight'], weight) and torch.equal(sd['bias'], bias)
    assert torch.equal(load_found_decoder({'weight': weight, 'bias': bias})['bias'], bias)
    with pytest.raises(FileNotFoundError, match='valeoai/FOUND'):
        load_found_decoder(str(tmp_path / 'missing.pt'))
    broken = tmp_path / 'broken.pt'
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match='broken.pt'):
        load_found_decoder(str(broken))
    other = tmp_path / 'other.pt'
    torch.save({'backbone.w': weight}, other)
    with pytest.raises(KeyError, match='other.pt'):
        load_found_decoder(str(other))


def test_found_decoder_logits_checks_channels():
    weight, bias = _decoder(8)
    with pytest.raises(ValueError, match='8 input channels'):
        found_decoder_logits(torch.randn(1, 4, 3, 3), weight, bias)
    out = found_decoder_logits(torch.randn(2, 8, 3, 5, dtype=torch.float64), weight, bias)
    assert out.shape == (2, 1, 3, 5) and out.dtype == torch.float32


def test_found_single_component():
    # Two components (5 and 3 pixels) on a background of 12: the background
    # label is dropped, the larger component kept.
    binary = np.zeros((4, 5), bool)
    binary[0, :5] = True
    binary[2:, 4] = True
    binary[3, 3] = True
    kept = found_single_component(binary)
    np.testing.assert_array_equal(kept, binary & (np.arange(4)[:, None] == 0))
    # An object larger than the background is still the object.
    big = np.ones((4, 4), bool)
    big[0, :2] = big[1, 0] = False  # background of 3 pixels, object of 13
    np.testing.assert_array_equal(found_single_component(big), big)
    # No background pixel: the smallest entry (label 0, empty) is dropped.
    assert found_single_component(np.ones((2, 3), bool)).all()
    # Nothing predicted: returned unchanged.
    assert not found_single_component(np.zeros((2, 3), bool)).any()


def test_found_foreground_modes_and_errors():
    logits = torch.full((4, 5), -5.0)
    logits[0, :5] = 3.0
    logits[2:, 4] = 4.0
    logits[3, 3] = 4.0
    largest = found_foreground(logits, component='largest')
    single = found_foreground(logits, component='single')
    everything = found_foreground(logits, component='all')
    assert torch.equal(everything.mask, logits > 0)
    assert torch.equal(largest.mask, single.mask) and int(largest.mask.sum()) == 5
    assert largest.score == pytest.approx(float(torch.sigmoid(torch.tensor(3.0))))
    empty = found_foreground(torch.full((2, 2), -1.0))
    assert not empty.mask.any() and empty.score == 0.0
    with pytest.raises(ValueError, match='component'):
        found_foreground(logits, component='biggest')
    with pytest.raises(ValueError, match='threshold'):
        found_foreground(logits, threshold=1.0)
    with pytest.raises(ValueError, match=r'\(h, w\)'):
        found_foreground(logits[None])
