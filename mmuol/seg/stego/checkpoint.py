# Copyright (c) mmuol contributors. All rights reserved.
"""Released STEGO checkpoints (PyTorch Lightning ``.ckpt``) -> mmuol keys.

The official checkpoints (``src/download_models.py`` of mhamilton723/STEGO)
are ``cocostuff27_vit_base_5.ckpt``, ``cityscapes_vit_base_1.ckpt`` and
``potsdam_test.ckpt`` under
https://marhamilresearch4.blob.core.windows.net/stego-public/saved_models/
(:data:`STEGO_CHECKPOINT_URLS`).

They are ``LitUnsupervisedSegmenter`` checkpoints: ``state_dict`` holds the
frozen DINO ViT (``net.model.*``), the projection (``net.cluster1.0.*``,
``net.cluster2.{0,2}.*``), the probes (``cluster_probe.clusters``,
``linear_probe.*``) and unused modules (``train_cluster_probe``,
``decoder``); ``hyper_parameters`` pickles the Hydra/OmegaConf config. This
module reads them without omegaconf / pytorch-lightning installed (unknown
classes are loaded as inert stubs) and renames the keys for
``STEGOSegmentor`` + ``STEGOHead``.
"""
import io
import pickle
from typing import Any, Dict, List, Tuple

import torch
from torch import Tensor

__all__ = [
    'STEGO_CHECKPOINT_URLS', 'load_lightning_checkpoint', 'stego_hyper_parameters',
    'convert_stego_state_dict'
]

_URL = 'https://marhamilresearch4.blob.core.windows.net/stego-public/saved_models/'
STEGO_CHECKPOINT_URLS: Dict[str, str] = {
    'cocostuff27_vit_base_5': _URL + 'cocostuff27_vit_base_5.ckpt',
    'cityscapes_vit_base_1': _URL + 'cityscapes_vit_base_1.ckpt',
    'potsdam_test': _URL + 'potsdam_test.ckpt',
}

# official prefix -> mmuol prefix (order matters: longest first)
_RENAMES: Tuple[Tuple[str, str], ...] = (
    ('net.cluster1.0.', 'decode_head.linear_proj.'),
    ('net.cluster2.0.', 'decode_head.nonlinear_proj.0.'),
    ('net.cluster2.2.', 'decode_head.nonlinear_proj.2.'),
    ('cluster_probe.clusters', 'decode_head.clusters'),
    ('linear_probe.', 'decode_head.conv_seg.'),
)


class _Stub:
    """Stand-in for a class whose module is not installed (e.g. OmegaConf's
    ``DictConfig``): keeps constructor arguments and pickled state."""

    def __init__(self, *args, **kwargs) -> None:
        self._args = args
        self._kwargs = kwargs
        self._state: Any = None

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def __call__(self, *args, **kwargs) -> '_Stub':
        return type(self)(*args, **kwargs)


class _StubUnpickler(pickle.Unpickler):

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Stub, ), {'__module__': f'missing.{module}'})


class _StubPickle:
    """A ``pickle_module`` for :func:`torch.load` that stubs missing classes."""
    Unpickler = _StubUnpickler
    load = staticmethod(lambda f, **kw: _StubUnpickler(f, **kw).load())
    __name__ = 'mmuol_stub_pickle'


def load_lightning_checkpoint(path: str) -> Dict[str, Any]:
    """Load a Lightning ``.ckpt`` on the CPU, with or without its packages.

    Args:
        path (str): Local file (download the URLs of
            :data:`STEGO_CHECKPOINT_URLS` first).

    Returns:
        dict: The checkpoint (``state_dict``, ``hyper_parameters``, ...).

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a checkpoint with a ``state_dict``.
    """
    with open(path, 'rb') as f:
        data = f.read()
    try:
        ckpt = torch.load(io.BytesIO(data), map_location='cpu', weights_only=False)
    except (ModuleNotFoundError, AttributeError):
        ckpt = torch.load(
            io.BytesIO(data), map_location='cpu', weights_only=False, pickle_module=_StubPickle)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('state_dict'), dict):
        raise ValueError(f'{path} is not a Lightning checkpoint (no "state_dict" dict)')
    return ckpt


def _plain(obj: Any, depth: int = 0) -> Any:
    """Best-effort plain Python view of (stubbed) OmegaConf containers."""
    if depth > 20:
        return None
    if isinstance(obj, dict):
        return {str(k): _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, depth + 1) for v in obj]
    if isinstance(obj, _Stub):
        state = obj._state
        if isinstance(state, dict):
            inner = state.get('__dict__', state)
            if isinstance(inner, dict) and '_content' in inner:
                return _plain(inner['_content'], depth + 1)
            if isinstance(inner, dict) and '_val' in inner:
                return _plain(inner['_val'], depth + 1)
            return _plain(inner, depth + 1)
        return None
    if hasattr(obj, 'items') and callable(obj.items):  # a real DictConfig
        try:
            return {str(k): _plain(v, depth + 1) for k, v in obj.items()}
        except Exception:  # noqa: BLE001 - best effort only
            return None
    return obj


def stego_hyper_parameters(ckpt: Dict[str, Any]) -> Dict[str, Any]:
    """The training config of a STEGO checkpoint as a plain dict (best
    effort; ``{}`` when it cannot be read), plus ``n_classes``.

    Args:
        ckpt (dict): From :func:`load_lightning_checkpoint`.

    Returns:
        dict: e.g. ``model_type``, ``dino_patch_size``, ``dino_feat_type``,
        ``projection_type``, ``dim``, ``extra_clusters``, ``n_classes``.
    """
    hp = _plain(ckpt.get('hyper_parameters')) or {}
    if not isinstance(hp, dict):
        return {}
    cfg = hp.get('cfg') if isinstance(hp.get('cfg'), dict) else {}
    out = dict(cfg)
    if 'n_classes' in hp:
        out['n_classes'] = hp['n_classes']
    return out


def convert_stego_state_dict(state_dict: Dict[str, Tensor],
                             with_backbone: bool = True) -> Tuple[Dict[str, Tensor], List[str]]:
    """Rename a STEGO ``state_dict`` for ``STEGOSegmentor``.

    Args:
        state_dict (dict[str, Tensor]): The Lightning module's state dict.
        with_backbone (bool): Keep the (frozen, unchanged) DINO weights as
            ``backbone.*``; False leaves them to the backbone's ``init_cfg``.

    Returns:
        tuple[dict, list[str]]: mmuol state dict and the dropped keys.

    Raises:
        KeyError: No STEGO head key in the state dict.
    """
    out: Dict[str, Tensor] = {}
    dropped: List[str] = []
    for key, value in state_dict.items():
        for old, new in _RENAMES:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            if key.startswith('net.model.') and with_backbone:
                out['backbone.' + key[len('net.model.'):]] = value
            else:
                dropped.append(key)
    if 'decode_head.linear_proj.weight' not in out or 'decode_head.clusters' not in out:
        raise KeyError('not a STEGO checkpoint: expected net.cluster1.0.weight and '
                       f'cluster_probe.clusters, got keys {sorted(state_dict)[:12]}')
    return out, dropped
