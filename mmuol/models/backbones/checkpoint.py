# Copyright (c) mmuol contributors. All rights reserved.
"""Find, read and convert ViT checkpoints to the key layout of ``DINOViT``.

``DINOViT`` keeps timm's ``VisionTransformer`` parameter names, which are also
the names of the official DINO v1 backbone files. Every other layout is
converted here, so the backbone itself only ever sees that one layout:

* DINO v1 backbone-only files (``dino_deitsmall16_pretrain.pth``): as is;
* DINO full training checkpoints (``{'teacher': ..., 'student': ..., 'args'}``)
  with ``module.backbone.`` prefixes and projection heads;
* mmengine / mmdet / mmseg checkpoints (``{'state_dict': {'backbone.…'}}``);
* DataParallel / DDP ``module.`` prefixes;
* timm files (``.pth``, ``.bin``, ``.safetensors``, ``timm/<name>`` hub ids);
* official DINOv2 files (``mask_token``, ``register_tokens``, SwiGLU
  ``w12``/``w3``, FSDP block chunks), see :func:`convert_dinov2_official`.
"""
import os
import os.path as osp
import re
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlparse

import torch
from torch import Tensor

from mmuol.utils.hub import hf_endpoint, hub_reachable
from mmuol.utils.torch_io import load_torch_file
from .dino_vit_archs import ARCH_ZOO, CheckpointMismatchError, WeightsUnavailableError

__all__ = [
    'convert_dinov2_official', 'is_dinov2_official', 'load_vit_state_dict', 'read_checkpoint_file',
    'to_timm_layout', 'unwrap_state_dict'
]

_WRAPPER_KEYS = ('state_dict', 'model', 'module')
# Keys of classification / projection heads that are not part of the backbone.
_NON_BACKBONE = ('head.', 'fc_norm.')
# ``blocks.<chunk>.<block>.`` of DINOv2 models trained with FSDP block chunks.
_CHUNKED_BLOCK = re.compile(r'^blocks\.\d+\.(\d+)\.')
# DINOv2 ViT-g's fused SwiGLU (``w12`` = both input projections, packed) is
# timm's ``SwiGLUPacked`` (``fc1``) followed by ``fc2``; the packing order
# (SiLU on the first half) is the same, so only the names change.
_SWIGLU_NAMES = (('.mlp.w12.', '.mlp.fc1.'), ('.mlp.w3.', '.mlp.fc2.'))


# --------------------------------------------------------------------------- #
# reading files
# --------------------------------------------------------------------------- #
def read_checkpoint_file(path: str, allow_pickle: bool = True) -> Any:
    """Read a local ``.pth`` / ``.pt`` / ``.bin`` / ``.safetensors`` file.

    Args:
        path (str): Local file path (``~`` is expanded).
        allow_pickle (bool): Let torch files hold pickled non-tensor objects
            (official DINO full checkpoints pickle their argparse ``args``);
            only for trusted files. Defaults to True.

    Returns:
        Any: The loaded object (a dict for any usable checkpoint).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is empty, truncated or not a torch / safetensors
            file; the message names the file.
    """
    path = osp.expanduser(str(path))
    if not path.endswith('.safetensors'):
        # Raises FileNotFoundError, or a ValueError naming the file for any
        # failure of torch.load (empty, truncated, not a torch file).
        return load_torch_file(path, allow_pickle=allow_pickle)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    from safetensors.torch import load_file
    try:
        return load_file(path)
    except Exception as err:  # SafetensorError, OSError, ...
        raise ValueError(f'cannot read {path} ({osp.getsize(path)} bytes) as a safetensors file: '
                         f'{type(err).__name__}: {err}. The file is truncated or damaged; '
                         'download it again.') from err


def _hub_cache_path(url: str) -> str:
    """Where ``torch.hub.load_state_dict_from_url`` caches ``url``."""
    return osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urlparse(url).path))


def _unavailable(url: str, cache: str, err: Exception) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f'Could not get pretrained weights from {url} ({type(err).__name__}: {err}).\n'
        f'No network? Download the file elsewhere and either put it at\n  {cache}\n'
        'or pass the local file: init_cfg=dict(type=\'Pretrained\', '
        'checkpoint=\'/path/to/file.pth\') in the config (`--cfg-options '
        'model.backbone.init_cfg.checkpoint=/path/to/file.pth`), or '
        '`--checkpoint /path/to/file.pth` for the demo.')


def _load_url(url: str) -> Any:
    cache = _hub_cache_path(url)
    if not osp.isfile(cache):
        try:
            os.makedirs(osp.dirname(cache), exist_ok=True)
            torch.hub.download_url_to_file(url, cache, progress=True)
        except Exception as err:  # URLError, HTTPError, socket errors, ...
            raise _unavailable(url, cache, err) from err
    return read_checkpoint_file(cache)


def _load_hf(repo_id: str) -> Any:
    endpoint = hf_endpoint()
    url = f'{endpoint}/{repo_id}'
    cache = osp.join(os.environ.get('HF_HOME', osp.expanduser('~/.cache/huggingface')), 'hub')
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import EntryNotFoundError
    except ImportError as err:
        raise _unavailable(url, cache, err) from err
    path = None
    for fname in ('model.safetensors', 'pytorch_model.bin'):
        try:  # already in the local cache?
            path = hf_hub_download(repo_id, fname, local_files_only=True)
            break
        except Exception:
            continue
    if path is None:
        if not hub_reachable(endpoint):
            raise _unavailable(url, cache, OSError(f'cannot resolve {endpoint}'))
        try:
            try:
                path = hf_hub_download(repo_id, 'model.safetensors')
            except EntryNotFoundError:  # older repos ship only a .bin
                path = hf_hub_download(repo_id, 'pytorch_model.bin')
        except Exception as err:
            raise _unavailable(url, cache, err) from err
    # Hub repos ship tensors only (safetensors or a plain state dict).
    return read_checkpoint_file(path, allow_pickle=False)


# --------------------------------------------------------------------------- #
# layouts
# --------------------------------------------------------------------------- #
def unwrap_state_dict(obj: Mapping, checkpoint_key: str = 'teacher') -> Dict[str, Tensor]:
    """Extract the backbone weights from any supported checkpoint wrapping.

    Handles backbone-only files (flat), DINO full checkpoints
    (``{'teacher', 'student', ...}``), mmengine / mmdet checkpoints
    (``state_dict`` with ``backbone.`` keys) and DataParallel ``module.``
    prefixes. Projection and classification heads are dropped. Key names are
    otherwise kept: see :func:`to_timm_layout` for the DINOv2 renaming.

    Args:
        obj (Mapping): What ``torch.load`` returned.
        checkpoint_key (str): Sub-dict of a full DINO checkpoint to use.
            Defaults to ``'teacher'``.

    Returns:
        dict[str, Tensor]: De-prefixed backbone state dict.

    Raises:
        ValueError: ``obj`` is not a dict or holds no backbone tensor.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f'checkpoint is a {type(obj).__name__}, expected a dict')
    if checkpoint_key in obj and isinstance(obj[checkpoint_key], Mapping):
        obj = obj[checkpoint_key]
    else:
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    has_backbone = any(k.startswith('backbone.') or k.startswith('module.backbone.') for k in obj)
    out = {}
    for key, value in obj.items():
        if not torch.is_tensor(value):
            continue
        if key.startswith('module.'):
            key = key[len('module.'):]
        if has_backbone:
            # Detector / full checkpoint: keep the backbone only.
            if not key.startswith('backbone.'):
                continue
            key = key[len('backbone.'):]
        if key.startswith(_NON_BACKBONE):
            continue
        out[key] = value
    if not out:
        raise ValueError('no backbone tensors found in the checkpoint '
                         f'(top-level keys: {sorted(obj)[:10]})')
    return out


def is_dinov2_official(state_dict: Mapping[str, Tensor]) -> bool:
    """Whether ``state_dict`` uses the facebookresearch/dinov2 key layout.

    Official DINOv2 files always hold ``mask_token`` (iBOT masking), and may
    hold ``register_tokens``, SwiGLU ``mlp.w12`` / ``mlp.w3`` or FSDP-chunked
    ``blocks.<chunk>.<block>.`` keys; timm's layout has none of them.

    Args:
        state_dict (Mapping[str, Tensor]): De-prefixed backbone state dict.

    Returns:
        bool: True for the official DINOv2 layout.
    """
    return any(
        key in ('mask_token', 'register_tokens') or _CHUNKED_BLOCK.match(key) or any(
            old in key for old, _ in _SWIGLU_NAMES) for key in state_dict)


def convert_dinov2_official(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Convert an official DINOv2 backbone state dict to timm's layout.

    The mapping (official -> timm ``vit_*_patch14_dinov2`` /
    ``vit_*_patch14_reg4_dinov2``):

    * ``mask_token`` ``(1, C)``: dropped (only used by masked training);
    * ``blocks.<chunk>.<i>.…`` (FSDP block chunks): ``blocks.<i>.…``;
    * ``blocks.<i>.mlp.w12.*`` / ``mlp.w3.*`` (ViT-g SwiGLU):
      ``blocks.<i>.mlp.fc1.*`` / ``mlp.fc2.*``;
    * with registers, ``register_tokens`` ``(1, R, C)`` becomes ``reg_token``,
      and since timm's register models add no position to prefix tokens while
      DINOv2 adds ``pos_embed[:, 0]`` to the CLS token before inserting the
      registers, that position is folded into ``cls_token`` and removed from
      ``pos_embed`` ``(1, 1 + N, C) -> (1, N, C)``;
    * everything else (``cls_token``, ``pos_embed`` without registers,
      ``patch_embed.proj``, ``blocks.<i>.{norm1,attn.qkv,attn.proj,ls1.gamma,
      norm2,mlp.fc1,mlp.fc2,ls2.gamma}``, ``norm``) already has timm's name.

    Args:
        state_dict (Mapping[str, Tensor]): De-prefixed official state dict.

    Returns:
        dict[str, Tensor]: A new state dict in timm's layout (the input is
        not modified).

    Raises:
        CheckpointMismatchError: ``register_tokens`` without ``cls_token`` /
            ``pos_embed``.
    """
    out: Dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key == 'mask_token':
            continue
        key = _CHUNKED_BLOCK.sub(r'blocks.\1.', key)
        for old, new in _SWIGLU_NAMES:
            key = key.replace(old, new)
        out[key] = value
    if 'register_tokens' in out:
        if 'cls_token' not in out or 'pos_embed' not in out:
            raise CheckpointMismatchError(
                'a DINOv2 state dict with register_tokens must also hold cls_token and pos_embed')
        pos_embed = out.pop('pos_embed')
        out['reg_token'] = out.pop('register_tokens')
        out['cls_token'] = out['cls_token'] + pos_embed[:, :1]
        out['pos_embed'] = pos_embed[:, 1:]
    return out


def to_timm_layout(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Convert a de-prefixed backbone state dict to ``DINOViT``'s layout.

    Official DINOv2 files are converted with :func:`convert_dinov2_official`;
    DINO v1 and timm files already have the layout. Converting twice is a
    no-op.

    Args:
        state_dict (Mapping[str, Tensor]): Output of :func:`unwrap_state_dict`.

    Returns:
        dict[str, Tensor]: A new state dict in timm's layout.
    """
    if is_dinov2_official(state_dict):
        return convert_dinov2_official(state_dict)
    return dict(state_dict)


def load_vit_state_dict(checkpoint: Optional[str],
                        default_checkpoint: Optional[str] = None,
                        checkpoint_key: str = 'teacher') -> Dict[str, Tensor]:
    """Resolve ``checkpoint`` and return a backbone state dict in timm's layout.

    Args:
        checkpoint (str, optional): ``'default'`` or None (the arch preset's
            official URL), a preset name from ``ARCH_ZOO``, an http(s) URL, a
            Hugging Face hub id (``'timm/<name>'`` or ``'hf-hub:<repo>'``) or a
            local path.
        default_checkpoint (str, optional): URL used for ``'default'``.
        checkpoint_key (str): See :func:`unwrap_state_dict`. Defaults to
            ``'teacher'``.

    Returns:
        dict[str, Tensor]: De-prefixed state dict, converted by
        :func:`to_timm_layout`.

    Raises:
        WeightsUnavailableError: The file cannot be downloaded.
        FileNotFoundError: A local path does not exist.
        ValueError: The file is empty, damaged, not a checkpoint, or holds no
            backbone tensors (the message names the file).
    """
    if checkpoint in (None, 'default', True):
        if default_checkpoint is None:
            raise ValueError('this arch has no default weights; set '
                             "init_cfg=dict(type='Pretrained', checkpoint=...)")
        checkpoint = default_checkpoint
    checkpoint = str(checkpoint)
    if checkpoint in ARCH_ZOO:
        checkpoint = ARCH_ZOO[checkpoint]['checkpoint']
    if checkpoint.startswith(('http://', 'https://')):
        obj = _load_url(checkpoint)
    elif checkpoint.startswith('hf-hub:'):
        obj = _load_hf(checkpoint[len('hf-hub:'):])
    elif checkpoint.startswith('timm/') and not osp.exists(checkpoint):
        obj = _load_hf(checkpoint)
    else:
        obj = read_checkpoint_file(checkpoint)
    try:
        state_dict = unwrap_state_dict(obj, checkpoint_key)
    except ValueError as err:
        raise ValueError(f'{checkpoint}: {err}') from err
    return to_timm_layout(state_dict)
