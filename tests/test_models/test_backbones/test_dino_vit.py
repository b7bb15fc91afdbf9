# Copyright (c) mmuol contributors. All rights reserved.
"""DINOViT: equality with the official DINO ViT, checkpoint layouts, errors."""
import json

import numpy as np
import pytest
import torch

from mmuol.models.backbones import CheckpointMismatchError, DINOViT, interpolate_pos_embed_dino
from mmuol.testing import golden_path
from mmuol.testing.models import GOLDEN_TINY_VIT, TINY_VIT_ARCH, golden_tiny_vit_state_dict


@pytest.fixture(scope='module')
def golden():
    return np.load(golden_path(*GOLDEN_TINY_VIT))


@pytest.fixture(scope='module')
def official_state_dict():
    return golden_tiny_vit_state_dict()


@pytest.fixture(scope='module')
def golden_model(official_state_dict):
    model = DINOViT(arch=dict(TINY_VIT_ARCH, img_size=32), out_indices=(0, 1))
    model.load_converted_state_dict(official_state_dict)
    return model


@pytest.mark.parametrize('case', ['sq32x32', 'rect40x56'])
def test_matches_official_dino(golden, golden_model, case):
    """Every stored array of the official forward within 1e-5."""
    x = torch.from_numpy(golden[f'{case}::input'])
    with torch.no_grad():
        tokens, grid = golden_model.embed(x)
        out = golden_model.forward_last_block(x)
        # the DINO-compatible methods give the same arrays
        dino_tokens = golden_model.prepare_tokens(x)
        dino_attn = golden_model.get_last_selfattention(x)
        dino_inter = golden_model.get_intermediate_layers(x, n=2)

    def check(name, value):
        np.testing.assert_allclose(
            value.numpy(), golden[f'{case}::{name}'], atol=1e-5, err_msg=f'{case}::{name}')

    check('prepare_tokens', tokens)
    check('prepare_tokens', dino_tokens)
    check('last_attn', out.attn)
    check('last_attn', dino_attn)
    check('intermediate_n2_0', dino_inter[0])
    check('intermediate_n2_1', dino_inter[1])
    check('q', out.q)
    check('k', out.k)
    check('v', out.v)
    bsz, num_tok, _ = out.q.shape
    qkv = torch.stack([out.q, out.k, out.v], 2)  # (B, T, 3, C) head-major per part
    check('qkv_out', qkv.reshape(bsz, num_tok, -1))
    check('forward_cls', out.tokens[:, 0])
    # get_intermediate_layers(x, n=2): both after the final norm.
    for i, fmap in enumerate(out.feature_maps):
        patches = fmap.flatten(2).transpose(1, 2)
        np.testing.assert_allclose(
            patches.numpy(), golden[f'{case}::intermediate_n2_{i}'][:, 1:], atol=1e-5)
    np.testing.assert_allclose(out.tokens.numpy(), golden[f'{case}::intermediate_n2_1'], atol=1e-5)
    assert grid == (x.shape[2] // 8, x.shape[3] // 8)
    assert out.patch_keys.shape == (1, grid[0] * grid[1], 48)
    assert out.cls_attn.shape == (1, 3, grid[0] * grid[1])


def test_pos_embed_uses_dino_scale_factor_not_size():
    """DINO's scale-factor resampling differs from a size-based resize."""
    torch.manual_seed(0)
    table = torch.randn(1, 16, 8)
    ours = interpolate_pos_embed_dino(table, (5, 7), (4, 4))
    grid = table.reshape(1, 4, 4, 8).permute(0, 3, 1, 2)
    by_size = torch.nn.functional.interpolate(
        grid, size=(5, 7), mode='bicubic', align_corners=False)
    by_size = by_size.permute(0, 2, 3, 1).reshape(1, 35, 8)
    assert ours.shape == (1, 35, 8)
    assert not torch.allclose(ours, by_size, atol=1e-4)
    assert interpolate_pos_embed_dino(table, (4, 4), (4, 4)) is table


@pytest.mark.parametrize('arch,key', [('dino_vits16', 'vit_small16'), ('dino_vits8', 'vit_small8'),
                                      ('dino_vitb16', 'vit_base16'), ('dino_vitb8', 'vit_base8')])
def test_official_key_layout_loads(arch, key):
    """The released checkpoints' keys and shapes fit each DINO v1 preset."""
    with open(golden_path('found_lost_tokencut', 'dino_vit_state_dict_keys.json')) as f:
        layout = json.load(f)['state_dict_keys'][key]
    model = DINOViT(arch=arch, frozen=False)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == {k: tuple(shape) for k, shape in layout}
    fake = {k: torch.zeros(shape) for k, shape in layout}
    model.load_converted_state_dict(fake)  # strict: raises on any mismatch


def test_wrong_keys_raise_clear_error(official_state_dict):
    model = DINOViT(arch=dict(TINY_VIT_ARCH, img_size=32))
    bad = dict(official_state_dict)
    bad.pop('norm.weight')
    bad['blocks.9.attn.qkv.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as err:
        model.load_converted_state_dict(bad, source='bad.pth')
    msg = str(err.value)
    assert 'missing keys' in msg and 'norm.weight' in msg
    assert 'unexpected keys' in msg and 'blocks.9.attn.qkv.weight' in msg
    # wrong width (a ViT-S checkpoint into a tiny model)
    with pytest.raises(CheckpointMismatchError, match='shape'):
        model.load_converted_state_dict({
            k:
            torch.zeros(v.shape[:-1] + (v.shape[-1] + 1, )) if v.dim() else v
            for k, v in official_state_dict.items()
        })


def test_dino_vits8_default_is_300_epoch_file():
    from mmuol.models.backbones import ARCH_ZOO
    assert ARCH_ZOO['dino_vits8']['checkpoint'].endswith('dino_deitsmall8_300ep_pretrain.pth')


def test_input_validation_and_padding():
    model = DINOViT(arch=dict(TINY_VIT_ARCH))
    with pytest.raises(ValueError, match='smaller than one'):
        model(torch.zeros(1, 3, 7, 40))
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        model(torch.zeros(3, 32, 32))
    # 37x50 is padded with zeros to 40x56 (5x7 patches), like the official code
    x = torch.randn(1, 3, 37, 50)
    out = model.forward_last_block(x)
    assert out.grid_hw == (5, 7)
    padded = torch.nn.functional.pad(x, (0, 6, 0, 3))
    torch.testing.assert_close(model(x)[0], model(padded)[0])


def test_frozen_and_trainable():
    frozen = DINOViT(arch=dict(TINY_VIT_ARCH))
    frozen.train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    trainable = DINOViT(arch=dict(TINY_VIT_ARCH), frozen=False, out_indices=(0, -1))
    trainable.train()
    assert trainable.training and all(p.requires_grad for p in trainable.parameters())
    feats = trainable(torch.randn(2, 3, 32, 48))
    assert [f.shape for f in feats] == [torch.Size([2, 48, 4, 6])] * 2
    feats[-1].sum().backward()
    assert trainable.patch_embed.proj.weight.grad is not None
    with pytest.raises(ValueError, match='out_indices'):
        DINOViT(arch=dict(TINY_VIT_ARCH), out_indices=(5, ))


@pytest.mark.parametrize('arch', ['dinov2_vits14', 'dinov2_vits14_reg'])
def test_dinov2_registers(arch):
    """DINOv2 presets (with/without registers) run at any size; prefix tokens
    are excluded from patch keys and CLS attention."""
    model = DINOViT(arch=arch, img_size=56)
    out = model.forward_last_block(torch.randn(1, 3, 42, 70))
    assert out.grid_hw == (3, 5)
    assert out.num_prefix_tokens == (5 if arch.endswith('reg') else 1)
    assert out.patch_keys.shape == (1, 15, 384)
    assert out.cls_attn.shape == (1, 6, 15)
    torch.testing.assert_close(out.attn.sum(-1), torch.ones(1, 6, 15 + out.num_prefix_tokens))


def test_cls_only_attention_equals_full_row(golden, golden_model):
    """with_attn='cls' returns the CLS row of the full attention, nothing more."""
    x = torch.from_numpy(golden['rect40x56::input'])
    with torch.no_grad():
        full = golden_model.forward_last_block(x, with_attn=True)
        cls = golden_model.forward_last_block(x, with_attn='cls')
    assert cls.attn.shape == (1, 3, 1, 36)
    torch.testing.assert_close(cls.attn[:, :, 0], full.attn[:, :, 0])
    torch.testing.assert_close(cls.cls_attn, full.cls_attn)
    np.testing.assert_allclose(
        cls.cls_attn.numpy(), golden['rect40x56::last_attn'][:, :, 0, 1:], atol=1e-5)
    with pytest.raises(ValueError, match='with_attn'):
        golden_model.forward_last_block(x, with_attn='rows')


@pytest.mark.parametrize('init_cfg,bad_key', [
    (dict(type='Pretrained', chekpoint='dino.pth'), 'chekpoint'),
    ([dict(type='Pretrained', checkpoint='dino.pth', prefix='backbone.')], 'prefix'),
])
@pytest.mark.parametrize('frozen', [True, False])
def test_unknown_pretrained_key_is_an_error(init_cfg, bad_key, frozen):
    """A misspelt init_cfg key used to be ignored (loading the default weights)."""
    with pytest.raises(ValueError, match=f"unknown key.*'{bad_key}'") as err:
        DINOViT(arch=dict(TINY_VIT_ARCH), frozen=frozen, init_cfg=init_cfg)
    assert "'checkpoint'" in str(err.value)
    if bad_key == 'chekpoint':
        assert "did you mean 'checkpoint'?" in str(err.value)


@pytest.mark.parametrize('arch', [dict(TINY_VIT_ARCH), dict(TINY_VIT_ARCH, reg_tokens=2)])
def test_last_block_maps_equal_forward_last_block(arch):
    """Maps are the patch tokens of forward_last_block on the padded input,
    patch i * w + j at [:, :, i, j]; the CLS row is the full attention's."""
    torch.manual_seed(0)
    model = DINOViT(arch=arch).eval()
    x = torch.randn(2, 3, 37, 50)  # padded to 40x56: 5x7 patches
    with torch.no_grad():
        out = model.forward_last_block(x, with_qkv=True, with_attn=True)
        res = model.last_block_maps(x, ('q', 'k', 'v', 'tokens'), with_cls_attn=True)
    npre = out.num_prefix_tokens
    assert npre == 1 + arch.get('reg_tokens', 0)
    assert res.grid_hw == out.grid_hw == (5, 7)
    assert list(res.maps) == ['q', 'k', 'v', 'tokens']
    for name, tokens in (('q', out.q), ('k', out.k), ('v', out.v), ('tokens', out.tokens)):
        fmap = res.maps[name]
        assert fmap.shape == (2, 48, 5, 7) and fmap.is_contiguous()
        for i, j in ((0, 0), (0, 6), (4, 0), (3, 5)):
            torch.testing.assert_close(fmap[:, :, i, j], tokens[:, npre + i * 7 + j])
    torch.testing.assert_close(res.cls_attn, out.attn[:, :, 0, npre:])
    assert res.cls_attn.shape == (2, 3, 35)
    # One feature by name, no attention unless asked.
    only_v = model.last_block_maps(x, 'v')
    assert list(only_v.maps) == ['v'] and only_v.cls_attn is None
    torch.testing.assert_close(only_v.maps['v'], res.maps['v'])
    with pytest.raises(ValueError, match='features must be'):
        model.last_block_maps(x, ('keys', ))
    with pytest.raises(ValueError, match='features must be'):
        model.last_block_maps(x, ())


def test_last_block_maps_pad_images_smaller_than_a_patch():
    """As FOUND's make_input_divisible: a 7x40 image is zero-padded to one row
    of patches (forward_last_block itself refuses it)."""
    model = DINOViT(arch=dict(TINY_VIT_ARCH)).eval()
    x = torch.randn(1, 3, 7, 40)
    with pytest.raises(ValueError, match='smaller than one'):
        model.forward_last_block(x)
    res = model.last_block_maps(x, 'k')
    assert res.grid_hw == (1, 5)
    padded = model.forward_last_block(torch.nn.functional.pad(x, (0, 0, 0, 1)))
    torch.testing.assert_close(res.maps['k'][:, :, 0].transpose(1, 2), padded.patch_keys)
