# Copyright (c) mmuol contributors. All rights reserved.
"""DINOViT: equality with the official DINO ViT, checkpoint layouts, errors."""
import json

import numpy as np
import pytest
import torch

from mmuol.models.backbones import (CheckpointMismatchError, DINOViT, WeightsUnavailableError,
                                    interpolate_pos_embed_dino, unwrap_state_dict)
from mmuol.testing import golden_path
from mmuol.testing.models import TINY_VIT_ARCH

GOLDEN = 'dino_vit_tiny_backbone.npz'


@pytest.fixture(scope='module')
def golden():
    return np.load(golden_path('found_lost_tokencut', GOLDEN))


@pytest.fixture(scope='module')
def official_state_dict(golden):
    return {k[4:]: torch.from_numpy(golden[k]) for k in golden.files if k.startswith('sd::')}


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
        np.testing.assert_allclose(value.numpy(), golden[f'{case}::{name}'], atol=1e-5,
                                   err_msg=f'{case}::{name}')

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
        np.testing.assert_allclose(patches.numpy(), golden[f'{case}::intermediate_n2_{i}'][:, 1:],
                                   atol=1e-5)
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
    by_size = torch.nn.functional.interpolate(grid, size=(5, 7), mode='bicubic',
                                              align_corners=False)
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


def test_full_checkpoint_prefixes_are_unwrapped(official_state_dict, tmp_path):
    """DINO full checkpoints: teacher key, module./backbone. prefixes, heads."""
    teacher = {f'module.backbone.{k}': v for k, v in official_state_dict.items()}
    teacher['module.head.mlp.0.weight'] = torch.zeros(2, 2)
    full = {'teacher': teacher, 'student': {}, 'epoch': 3}
    path = tmp_path / 'full.pth'
    torch.save(full, path)
    model = DINOViT(arch=dict(TINY_VIT_ARCH, img_size=32),
                    init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    for k, v in official_state_dict.items():
        torch.testing.assert_close(model.state_dict()[k], v)
    assert all(not p.requires_grad for p in model.parameters())
    # detector-style checkpoint (mmengine): state_dict with backbone. keys
    det = {'state_dict': {f'backbone.{k}': v for k, v in official_state_dict.items()},
           'meta': {}}
    assert unwrap_state_dict(det).keys() == official_state_dict.keys()


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
        model.load_converted_state_dict(
            {k: torch.zeros(v.shape[:-1] + (v.shape[-1] + 1, )) if v.dim() else v
             for k, v in official_state_dict.items()})


def test_offline_download_error_names_url_and_cache(monkeypatch, tmp_path):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))

    def no_network(*args, **kwargs):
        raise OSError('network is unreachable')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    with pytest.raises(WeightsUnavailableError) as err:
        DINOViT(arch='dino_vits16', init_cfg=dict(type='Pretrained', checkpoint='default'))
    msg = str(err.value)
    assert 'https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/' in msg
    assert str(tmp_path) in msg and 'checkpoint=' in msg
    with pytest.raises(FileNotFoundError):
        DINOViT(arch=dict(TINY_VIT_ARCH), init_cfg=dict(type='Pretrained',
                                                        checkpoint=str(tmp_path / 'none.pth')))


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


def test_dinov2_official_layout_converts():
    """Official DINOv2 files (register_tokens, mask_token) load via timm's map."""
    model = DINOViT(arch='dinov2_vits14_reg', img_size=28)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    official = dict(sd)
    official['register_tokens'] = official.pop('reg_token')
    cls = official.pop('cls_token')
    pos = official.pop('pos_embed')
    official['cls_token'] = cls - 0.5
    official['pos_embed'] = torch.cat([torch.full_like(pos[:, :1], 0.5), pos], 1)
    official['mask_token'] = torch.zeros(1, 384)
    model.load_converted_state_dict(official)
    torch.testing.assert_close(model.cls_token, cls)
    torch.testing.assert_close(model.pos_embed, pos)


def test_cls_only_attention_equals_full_row(golden, golden_model):
    """with_attn='cls' returns the CLS row of the full attention, nothing more."""
    x = torch.from_numpy(golden['rect40x56::input'])
    with torch.no_grad():
        full = golden_model.forward_last_block(x, with_attn=True)
        cls = golden_model.forward_last_block(x, with_attn='cls')
    assert cls.attn.shape == (1, 3, 1, 36)
    torch.testing.assert_close(cls.attn[:, :, 0], full.attn[:, :, 0])
    torch.testing.assert_close(cls.cls_attn, full.cls_attn)
    np.testing.assert_allclose(cls.cls_attn.numpy(), golden['rect40x56::last_attn'][:, :, 0, 1:],
                               atol=1e-5)
    with pytest.raises(ValueError, match='with_attn'):
        golden_model.forward_last_block(x, with_attn='rows')


def test_offline_hub_id_error(monkeypatch, tmp_path):
    """A Hugging Face / timm hub id that cannot be fetched names its URL."""
    monkeypatch.setenv('HF_HOME', str(tmp_path))
    import socket

    def no_dns(*args, **kwargs):
        raise OSError('Name or service not known')

    monkeypatch.setattr(socket, 'getaddrinfo', no_dns)
    with pytest.raises(WeightsUnavailableError, match='huggingface.co/timm/vit_small_patch16_224.dino'):
        DINOViT(arch='dino_vits16',
                init_cfg=dict(type='Pretrained', checkpoint='timm/vit_small_patch16_224.dino'))
