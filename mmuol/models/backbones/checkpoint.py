# Copyright (c) mmuol contributors. All rights reserved.
"""Find, download and unwrap ViT checkpoints (DINO, DINOv2, timm, local)."""
import os
import os.path as osp
import socket
from typing import Dict, Optional
from urllib.parse import urlparse

import torch
from torch import Tensor

from .dino_vit import ARCH_ZOO, WeightsUnavailableError

_PREFIXES = ('module.', 'backbone.')
_WRAPPER_KEYS = ('state_dict', 'model', 'module')
_NON_BACKBONE = ('head.', 'fc_norm.')


def _torch_load(path: str) -> dict:
    """Load a torch file, tensors-only when possible.

    DINO's full checkpoints also pickle their argparse ``args``, which the
    safe loader rejects; those (trusted, official) files fall back to pickle.
    """
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception:
        return torch.load(path, map_location='cpu', weights_only=False)


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


def _load_url(url: str) -> dict:
    cache = _hub_cache_path(url)
    if not osp.isfile(cache):
        try:
            os.makedirs(osp.dirname(cache), exist_ok=True)
            torch.hub.download_url_to_file(url, cache, progress=True)
        except Exception as err:  # URLError, HTTPError, socket errors, ...
            raise _unavailable(url, cache, err) from err
    return _torch_load(cache)


def _hub_reachable(endpoint: str) -> bool:
    """Whether the hub's host resolves (huggingface_hub itself retries an
    unreachable host for ~25 s per file before giving up)."""
    host = urlparse(endpoint).hostname or endpoint
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _load_hf(repo_id: str) -> dict:
    endpoint = os.environ.get('HF_ENDPOINT', 'https://huggingface.co')
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
        if not _hub_reachable(endpoint):
            raise _unavailable(url, cache, OSError(f'cannot resolve {endpoint}'))
        try:
            try:
                path = hf_hub_download(repo_id, 'model.safetensors')
            except EntryNotFoundError:  # older repos ship only a .bin
                path = hf_hub_download(repo_id, 'pytorch_model.bin')
        except Exception as err:
            raise _unavailable(url, cache, err) from err
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    return _torch_load(path)


def unwrap_state_dict(obj: dict, checkpoint_key: str = 'teacher') -> Dict[str, Tensor]:
    """Extract the backbone weights from any supported checkpoint layout.

    Handles backbone-only files (flat), DINO full checkpoints
    (``{'teacher', 'student', ...}``), mmengine/mmdet checkpoints
    (``state_dict`` with ``backbone.`` keys) and DataParallel ``module.``
    prefixes. Projection heads of DINO training checkpoints are dropped.

    Args:
        obj (dict): What ``torch.load`` returned.
        checkpoint_key (str): Sub-dict of a full DINO checkpoint to use.

    Returns:
        dict[str, Tensor]: De-prefixed backbone state dict.
    """
    if not isinstance(obj, dict):
        raise ValueError(f'checkpoint is a {type(obj).__name__}, expected a dict')
    if checkpoint_key in obj and isinstance(obj[checkpoint_key], dict):
        obj = obj[checkpoint_key]
    else:
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    has_backbone = any(k.startswith('backbone.') or k.startswith('module.backbone.')
                       for k in obj)
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


def load_vit_state_dict(checkpoint: str, default_checkpoint: Optional[str] = None,
                        checkpoint_key: str = 'teacher') -> Dict[str, Tensor]:
    """Resolve ``checkpoint`` and return a de-prefixed backbone state dict.

    Args:
        checkpoint (str): ``'default'`` (the arch preset's official URL), a
            preset name from ``ARCH_ZOO``, an http(s) URL, a Hugging Face hub
            id (``'timm/<name>'`` or ``'hf-hub:<repo>'``) or a local path.
        default_checkpoint (str, optional): URL used for ``'default'``.
        checkpoint_key (str): See :func:`unwrap_state_dict`.

    Raises:
        WeightsUnavailableError: The file cannot be downloaded.
        FileNotFoundError: A local path does not exist.
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
        path = osp.expanduser(checkpoint)
        if not osp.isfile(path):
            raise FileNotFoundError(f'checkpoint file not found: {path}')
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            obj = load_file(path)
        else:
            obj = _torch_load(path)
    return unwrap_state_dict(obj, checkpoint_key)
