# Copyright (c) mmuol contributors. All rights reserved.
"""Checkpoint layouts, the official DINOv2 conversion and bad checkpoint files."""
import argparse
import re
import socket

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.layers import SwiGLUPacked

from mmuol.models.backbones import (DINOViT, WeightsUnavailableError, convert_dinov2_official,
                                    is_dinov2_official, load_vit_state_dict, to_timm_layout,
                                    unwrap_state_dict)
from mmuol.testing.models import TINY_VIT_ARCH, golden_tiny_vit_state_dict

DIM, HEADS, DEPTH, PATCH, GRID, REGS = 48, 3, 2, 8, 4, 4
# Official ViT-g SwiGLU width for mlp_ratio 4: (int(4 * C * 2 / 3) + 7) // 8 * 8.
SWIGLU_HIDDEN = (int(4 * DIM * 2 / 3) + 7) // 8 * 8


@pytest.fixture(scope='module')
def official_state_dict():
    return golden_tiny_vit_state_dict()


def _assert_state_dict_equal(model, expected):
    own = model.state_dict()
    assert own.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(own[key], value, rtol=0, atol=0, msg=key)


# --------------------------------------------------------------------------- #
# DINO v1 / mmengine / timm wrappings
# --------------------------------------------------------------------------- #
def _save_layout(layout, sd, path):
    """Write ``sd`` as a checkpoint file of ``layout``; return the file."""
    if layout == 'backbone_only':
        torch.save(sd, path)
    elif layout == 'dino_full':
        # DINO training checkpoints: teacher/student with DDP prefixes and a
        # projection head, plus the argparse args (needs the pickle fallback).
        teacher = {f'module.backbone.{k}': v for k, v in sd.items()}
        teacher['module.head.mlp.0.weight'] = torch.ones(2, 2)
        student = {f'module.backbone.{k}': v + 1 for k, v in sd.items()}
        torch.save(
            dict(teacher=teacher, student=student, epoch=3, args=argparse.Namespace(arch='vit')),
            path)
    elif layout == 'mmengine':
        state = {f'backbone.{k}': v for k, v in sd.items()}
        state['localizer.conv.weight'] = torch.ones(1)
        torch.save(dict(state_dict=state, meta=dict(epoch=1)), path)
    elif layout == 'dataparallel':
        torch.save({f'module.{k}': v for k, v in sd.items()}, path)
    elif layout == 'safetensors':
        path = path.with_suffix('.safetensors')
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


@pytest.mark.parametrize('layout',
                         ['backbone_only', 'dino_full', 'mmengine', 'dataparallel', 'safetensors'])
def test_checkpoint_layouts_load_the_same_weights(official_state_dict, tmp_path, layout):
    path = _save_layout(layout, official_state_dict, tmp_path / f'{layout}.pth')
    model = DINOViT(
        arch=dict(TINY_VIT_ARCH), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    _assert_state_dict_equal(model, official_state_dict)
    assert all(not p.requires_grad for p in model.parameters())


def test_full_checkpoint_student_key(official_state_dict, tmp_path):
    path = _save_layout('dino_full', official_state_dict, tmp_path / 'full.pth')
    student = load_vit_state_dict(str(path), checkpoint_key='student')
    assert student.keys() == official_state_dict.keys()
    for key, value in official_state_dict.items():
        torch.testing.assert_close(student[key], value + 1)


def test_unwrap_drops_heads_and_other_modules(official_state_dict):
    det = {'state_dict': {f'backbone.{k}': v for k, v in official_state_dict.items()}}
    det['state_dict']['roi_head.fc.weight'] = torch.zeros(1)
    assert unwrap_state_dict(det).keys() == official_state_dict.keys()
    timm_file = dict(official_state_dict)
    timm_file['head.weight'] = torch.zeros(10, DIM)
    timm_file['fc_norm.weight'] = torch.zeros(DIM)
    assert unwrap_state_dict(timm_file).keys() == official_state_dict.keys()


# --------------------------------------------------------------------------- #
# official DINOv2 layout
# --------------------------------------------------------------------------- #
def _official_dinov2_state_dict(registers: bool, swiglu: bool) -> dict:
    """A tiny state dict in facebookresearch/dinov2's key layout.

    Known random tensors (seeded); layer-scale gammas far from 1 and norm
    weights away from identity so that a wrong mapping changes the output.
    """
    gen = torch.Generator().manual_seed(7 + 2 * registers + swiglu)

    def rand(*shape, scale=0.1, offset=0.0):
        return torch.randn(*shape, generator=gen) * scale + offset

    sd = {
        'cls_token': rand(1, 1, DIM, scale=1.0),
        'pos_embed': rand(1, 1 + GRID * GRID, DIM, scale=0.5),
        'mask_token': rand(1, DIM),
        'patch_embed.proj.weight': rand(DIM, 3, PATCH, PATCH),
        'patch_embed.proj.bias': rand(DIM),
        'norm.weight': rand(DIM, offset=1.0),
        'norm.bias': rand(DIM),
    }
    if registers:
        sd['register_tokens'] = rand(1, REGS, DIM, scale=1.0)
    for i in range(DEPTH):
        p = f'blocks.{i}.'
        for norm in ('norm1', 'norm2'):
            sd[f'{p}{norm}.weight'] = rand(DIM, offset=1.0)
            sd[f'{p}{norm}.bias'] = rand(DIM)
        sd[f'{p}attn.qkv.weight'] = rand(3 * DIM, DIM, scale=0.3)
        sd[f'{p}attn.qkv.bias'] = rand(3 * DIM)
        sd[f'{p}attn.proj.weight'] = rand(DIM, DIM, scale=0.3)
        sd[f'{p}attn.proj.bias'] = rand(DIM)
        sd[f'{p}ls1.gamma'] = rand(DIM, scale=0.3, offset=0.5)
        sd[f'{p}ls2.gamma'] = rand(DIM, scale=0.3, offset=0.5)
        if swiglu:
            sd[f'{p}mlp.w12.weight'] = rand(2 * SWIGLU_HIDDEN, DIM, scale=0.3)
            sd[f'{p}mlp.w12.bias'] = rand(2 * SWIGLU_HIDDEN)
            sd[f'{p}mlp.w3.weight'] = rand(DIM, SWIGLU_HIDDEN, scale=0.3)
            sd[f'{p}mlp.w3.bias'] = rand(DIM)
        else:
            sd[f'{p}mlp.fc1.weight'] = rand(4 * DIM, DIM, scale=0.3)
            sd[f'{p}mlp.fc1.bias'] = rand(4 * DIM)
            sd[f'{p}mlp.fc2.weight'] = rand(DIM, 4 * DIM, scale=0.3)
            sd[f'{p}mlp.fc2.bias'] = rand(DIM)
    return sd


def _official_dinov2_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """DINOv2's ``forward_features`` (``x_norm`` of all tokens) written out
    from its definition in the official state dict's own key names, at the
    native grid (no pos-embed interpolation).

    Returns:
        Tensor: ``(B, 1 + R + N, C)``: CLS, registers, then patch tokens.
    """
    bsz = x.shape[0]

    def norm(t, name):
        return F.layer_norm(t, (DIM, ), sd[f'{name}.weight'], sd[f'{name}.bias'], eps=1e-6)

    def linear(t, name):
        return F.linear(t, sd[f'{name}.weight'], sd[f'{name}.bias'])

    patches = F.conv2d(x, sd['patch_embed.proj.weight'], sd['patch_embed.proj.bias'], stride=PATCH)
    tokens = torch.cat([sd['cls_token'].expand(bsz, -1, -1), patches.flatten(2).transpose(1, 2)], 1)
    tokens = tokens + sd['pos_embed']  # CLS gets pos_embed[:, 0]
    if 'register_tokens' in sd:  # inserted after the CLS token, without a position
        regs = sd['register_tokens'].expand(bsz, -1, -1)
        tokens = torch.cat([tokens[:, :1], regs, tokens[:, 1:]], 1)
    num_tok, head_dim = tokens.shape[1], DIM // HEADS
    for i in range(DEPTH):
        p = f'blocks.{i}.'
        qkv = linear(norm(tokens, p + 'norm1'), p + 'attn.qkv')
        q, k, v = qkv.reshape(bsz, num_tok, 3, HEADS, head_dim).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * head_dim**-0.5).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(bsz, num_tok, DIM)
        tokens = tokens + sd[p + 'ls1.gamma'] * linear(out, p + 'attn.proj')
        hidden = norm(tokens, p + 'norm2')
        if p + 'mlp.w12.weight' in sd:
            gate, value = linear(hidden, p + 'mlp.w12').chunk(2, dim=-1)
            hidden = linear(F.silu(gate) * value, p + 'mlp.w3')
        else:
            hidden = linear(F.gelu(linear(hidden, p + 'mlp.fc1')), p + 'mlp.fc2')
        tokens = tokens + sd[p + 'ls2.gamma'] * hidden
    return norm(tokens, 'norm')


def _tiny_dinov2_arch(registers: bool, swiglu: bool) -> dict:
    """timm ``VisionTransformer`` arguments of the tiny DINOv2 (as timm's
    ``vit_*_patch14[_reg4]_dinov2`` models are built)."""
    arch = dict(TINY_VIT_ARCH, init_values=1.0)
    if registers:
        arch.update(reg_tokens=REGS, no_embed_class=True)
    if swiglu:  # fc1 packs both SwiGLU inputs: 2 * SWIGLU_HIDDEN outputs
        arch.update(
            mlp_layer=SwiGLUPacked, act_layer=nn.SiLU, mlp_ratio=(2 * SWIGLU_HIDDEN + 0.5) / DIM)
    return arch


def _chunked(sd: dict, chunk_size: int = 1) -> dict:
    """The FSDP layout of DINOv2 training checkpoints: ``blocks.<chunk>.<i>.``."""
    out = {}
    for key, value in sd.items():
        if key.startswith('blocks.'):
            idx = int(key.split('.')[1])
            key = f'blocks.{idx // chunk_size}.{idx}.' + key.split('.', 2)[2]
        out[key] = value
    return out


@pytest.mark.parametrize('registers,swiglu', [(True, False), (False, True), (True, True)])
def test_dinov2_official_layout_matches_official_forward(tmp_path, registers, swiglu):
    """The converted model computes what the official DINOv2 model computes."""
    official = _official_dinov2_state_dict(registers, swiglu)
    x = torch.randn(2, 3, GRID * PATCH, GRID * PATCH, generator=torch.Generator().manual_seed(1))
    expected = _official_dinov2_forward(official, x)
    assert expected.shape == (2, 1 + REGS * registers + GRID * GRID, DIM)

    path = tmp_path / 'dinov2_official.pth'
    torch.save({k: v.clone() for k, v in official.items()}, path)
    model = DINOViT(
        arch=_tiny_dinov2_arch(registers, swiglu),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with torch.no_grad():
        out = model.forward_last_block(x)
    torch.testing.assert_close(out.tokens, expected, rtol=0, atol=1e-5)
    assert out.num_prefix_tokens == 1 + REGS * registers

    # The parameters themselves, against the mapping written out by hand.
    params = model.state_dict()
    assert 'mask_token' not in params and 'register_tokens' not in params
    if registers:
        torch.testing.assert_close(params['reg_token'], official['register_tokens'])
        torch.testing.assert_close(params['cls_token'],
                                   official['cls_token'] + official['pos_embed'][:, :1])
        torch.testing.assert_close(params['pos_embed'], official['pos_embed'][:, 1:])
    else:
        torch.testing.assert_close(params['cls_token'], official['cls_token'])
        torch.testing.assert_close(params['pos_embed'], official['pos_embed'])
    for i in range(DEPTH):
        torch.testing.assert_close(params[f'blocks.{i}.ls1.gamma'],
                                   official[f'blocks.{i}.ls1.gamma'])
        if swiglu:
            torch.testing.assert_close(params[f'blocks.{i}.mlp.fc1.weight'],
                                       official[f'blocks.{i}.mlp.w12.weight'])
            torch.testing.assert_close(params[f'blocks.{i}.mlp.fc2.bias'],
                                       official[f'blocks.{i}.mlp.w3.bias'])


def test_dinov2_training_checkpoint_with_block_chunks(tmp_path):
    """DINOv2 training checkpoints: teacher/backbone. prefixes, FSDP block
    chunks and the DINO/iBOT heads."""
    official = _official_dinov2_state_dict(registers=True, swiglu=False)
    teacher = {f'backbone.{k}': v for k, v in _chunked(official).items()}
    teacher['dino_head.mlp.0.weight'] = torch.ones(2, 2)
    teacher['ibot_head.mlp.0.weight'] = torch.ones(2, 2)
    assert 'backbone.blocks.1.1.attn.qkv.weight' in teacher
    path = tmp_path / 'teacher_checkpoint.pth'
    torch.save(dict(teacher=teacher, iteration=10), path)

    flat = DINOViT(arch=_tiny_dinov2_arch(True, False), init_cfg=None)
    flat.load_converted_state_dict(official)
    model = DINOViT(
        arch=_tiny_dinov2_arch(True, False), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    _assert_state_dict_equal(model, flat.state_dict())


def test_dinov2_conversion_is_pure_and_idempotent():
    official = _official_dinov2_state_dict(registers=True, swiglu=True)
    before = {k: v.clone() for k, v in official.items()}
    converted = to_timm_layout(official)
    assert official.keys() == before.keys()  # input untouched
    assert is_dinov2_official(official) and not is_dinov2_official(converted)
    again = to_timm_layout(converted)
    assert again.keys() == converted.keys()
    assert all(again[k] is converted[k] for k in converted)
    # DINO v1 / timm layouts pass through unchanged.
    v1 = golden_tiny_vit_state_dict()
    assert not is_dinov2_official(v1) and to_timm_layout(v1).keys() == v1.keys()


@pytest.mark.parametrize('registers,swiglu', [(True, False), (False, True)])
def test_dinov2_conversion_agrees_with_timm(registers, swiglu):
    """Cross-check with timm's own (private) converter where this timm has it;
    the tests above stand without it."""
    from timm.models import vision_transformer
    timm_convert = getattr(vision_transformer, '_convert_dinov2', None)
    if timm_convert is None:
        pytest.skip('this timm has no _convert_dinov2 to compare with')
    official = _official_dinov2_state_dict(registers, swiglu)
    model = DINOViT(arch=_tiny_dinov2_arch(registers, swiglu), init_cfg=None)
    ours = convert_dinov2_official(official)
    theirs = timm_convert(dict(official), model)
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)


# --------------------------------------------------------------------------- #
# bad files and unreachable weights
# --------------------------------------------------------------------------- #
def _write_bad(kind, official_state_dict, tmp_path):
    if kind == 'empty':
        path = tmp_path / 'empty.pth'
        path.write_bytes(b'')
    elif kind == 'truncated':
        path = tmp_path / 'truncated.pth'
        torch.save(official_state_dict, path)
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'not_torch':
        path = tmp_path / 'notes.pth'
        path.write_text('these are not weights\n')
    elif kind == 'bad_safetensors':
        path = tmp_path / 'model.safetensors'
        path.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": broken')
    return path


@pytest.mark.parametrize('kind', ['empty', 'truncated', 'not_torch', 'bad_safetensors'])
def test_bad_checkpoint_file_names_the_file(official_state_dict, tmp_path, kind):
    path = _write_bad(kind, official_state_dict, tmp_path)
    with pytest.raises(ValueError) as err:
        DINOViT(arch=dict(TINY_VIT_ARCH), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    msg = str(err.value)
    assert str(path) in msg
    assert ('empty' if kind == 'empty' else 'download it again') in msg


def test_checkpoint_without_backbone_tensors_names_the_file(tmp_path):
    path = tmp_path / 'optimizer_only.pth'
    torch.save(dict(optimizer=dict(lr=0.1)), path)
    with pytest.raises(ValueError, match=re.escape(f'{path}: no backbone tensors')):
        load_vit_state_dict(str(path))
    with pytest.raises(FileNotFoundError, match='none.pth'):
        DINOViT(
            arch=dict(TINY_VIT_ARCH),
            init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'none.pth')))


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


def test_damaged_cached_download_names_the_cache_file(monkeypatch, tmp_path):
    """A damaged file in the hub cache is reported with its path."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    cache = tmp_path / 'hub' / 'checkpoints' / 'dino_deitsmall16_pretrain.pth'
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b'PK\x03\x04 cut short')
    with pytest.raises(ValueError, match=re.escape(str(cache))):
        load_vit_state_dict('dino_vits16')


def test_offline_hub_id_error(monkeypatch, tmp_path):
    """A Hugging Face / timm hub id that cannot be fetched names its URL."""
    monkeypatch.setenv('HF_HOME', str(tmp_path))

    def no_dns(*args, **kwargs):
        raise OSError('Name or service not known')

    monkeypatch.setattr(socket, 'getaddrinfo', no_dns)
    with pytest.raises(
            WeightsUnavailableError, match='huggingface.co/timm/vit_small_patch16_224.dino'):
        DINOViT(
            arch='dino_vits16',
            init_cfg=dict(type='Pretrained', checkpoint='timm/vit_small_patch16_224.dino'))
