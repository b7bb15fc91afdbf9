# Copyright (c) mmuol contributors. All rights reserved.
"""MaskCLIP backbone: dense CLIP features from any open_clip ViT (mmseg)."""
import hashlib
import json
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn

from mmuol.localization.maskclip import (IMAGENET_TEMPLATES, clip_normalize,
                                         maskclip_dense_features, prompt_ensemble_embeddings)
from mmuol.localization.utils import pad_to_patch_multiple
from mmuol.utils.hub import hf_hub_offline, hub_reachable
from mmuol.utils.torch_io import load_torch_file
from .teachers import DINOValueFeatures

__all__ = ['MaskCLIPBackbone', 'build_open_clip']

#: Prefixes of the frozen, externally loaded weights left out of checkpoints.
_FROZEN_PREFIXES = ('clip.', 'guide.')
#: Process-wide text-embedding cache (weights id, names, templates) -> (K, D).
_TEXT_CACHE: Dict[Tuple, Tensor] = {}


def _unwrap_state_dict(checkpoint: dict) -> Dict[str, Tensor]:
    sd = checkpoint
    for key in ('state_dict', 'model', 'model_state_dict'):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}


def build_open_clip(model_name: Optional[str] = 'ViT-B-16',
                    pretrained: Optional[str] = 'laion2b_s34b_b88k',
                    model_config: Optional[str] = None) -> Tuple[nn.Module, object, str]:
    """Create an open_clip model and its tokenizer, with clear errors.

    Args:
        model_name (str, optional): open_clip architecture (``'ViT-B-16'``) or
            ``'hf-hub:...'``. With ``model_config`` and no name, the config
            file's stem.
        pretrained (str, optional): An open_clip pretrained tag
            (``'laion2b_s34b_b88k'``, downloaded to the open_clip / Hugging
            Face cache), a local checkpoint file (a state dict in open_clip's
            key layout, e.g. ``open_clip_pytorch_model.bin``; fp16 files are
            cast), or None for random weights (benchmarks and tests only).
        model_config (str, optional): A JSON architecture file to register
            with ``open_clip.add_model_config`` (models open_clip does not
            ship, e.g. the tiny test model).

    Returns:
        tuple: ``(model, tokenizer, name)``, the model in eval mode.

    Raises:
        FileNotFoundError: Missing ``model_config`` or checkpoint file.
        ValueError: Unknown architecture or pretrained tag, or a checkpoint
            that does not fit the architecture.
        RuntimeError: The weights could not be downloaded.
    """
    import open_clip
    if model_config is not None:
        if not osp.isfile(model_config):
            raise FileNotFoundError(f'model_config {model_config!r} does not exist (an open_clip '
                                    'JSON architecture file)')
        stem = osp.splitext(osp.basename(model_config))[0]
        if model_name not in (None, stem):
            raise ValueError(f'model_config {model_config!r} registers the architecture '
                             f'{stem!r}, but model_name is {model_name!r}')
        open_clip.add_model_config(model_config)
        model_name = stem
    if model_name is None:
        raise ValueError('give model_name (e.g. "ViT-B-16") or model_config')
    hub = model_name.startswith('hf-hub:')
    if not hub and model_name not in open_clip.list_models():
        raise ValueError(f'unknown open_clip architecture {model_name!r}; see '
                         'open_clip.list_models() or pass model_config=<json>')
    if pretrained is None:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = open_clip.create_model(model_name, pretrained=None)
        print_log(f'MaskCLIP: {model_name} has RANDOM weights (pretrained=None)', logger='current')
    elif osp.isfile(osp.expanduser(pretrained)):
        model = open_clip.create_model(model_name, pretrained=None)
        sd = _unwrap_state_dict(load_torch_file(pretrained))
        own = model.state_dict()
        missing = sorted(k for k in own if k not in sd)
        unexpected = sorted(k for k in sd if k not in own)
        shapes = sorted(f'{k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)}' for k in own
                        if k in sd and sd[k].shape != own[k].shape)
        if missing or unexpected or shapes:
            raise ValueError(f'{pretrained} does not fit open_clip {model_name!r}: missing '
                             f'{missing[:5]}, unexpected {unexpected[:5]}, shapes {shapes[:5]}')
        model.load_state_dict({
            k: v.to(own[k].dtype) if v.is_floating_point() else v
            for k, v in sd.items()
        })
    else:
        if not hub:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            looks_like_path = os.sep in pretrained or pretrained.endswith(
                ('.pt', '.pth', '.bin', '.safetensors'))
            if looks_like_path:
                raise FileNotFoundError(f'open_clip checkpoint {pretrained!r} not found')
            if pretrained not in tags:
                raise ValueError(f'{pretrained!r} is not an open_clip pretrained tag of '
                                 f'{model_name} (tags: {tags}) nor an existing file')
        # Offline: read the local hub cache only (a missing file fails at
        # once instead of after ~25 s of retries per file).
        try:
            with hf_hub_offline(not hub_reachable()):
                model = open_clip.create_model(model_name, pretrained=pretrained)
        except Exception as err:  # network / hub errors come in many types
            raise RuntimeError(
                f'could not load open_clip weights {model_name}/{pretrained}: '
                f'{type(err).__name__}: {err}. Without network access, download them '
                '(e.g. open_clip_pytorch_model.bin of laion/CLIP-ViT-B-16-laion2B-s34B-b88K '
                'on the Hugging Face hub) and pass the file as `pretrained`.') from err
    tokenizer = open_clip.get_tokenizer(model_name)
    return model.eval(), tokenizer, model_name


@MODELS.register_module()
class MaskCLIPBackbone(BaseModule):
    """Frozen open_clip ViT giving MaskCLIP dense features (MaskCLIP, ECCV 2022).

    ``forward`` takes RGB images in ``[0, 1]`` (the CLIP-DINOiser pipeline has
    no ``Normalize``: use ``SegDataPreProcessor(mean=[0, 0, 0], std=[255,
    255, 255], bgr_to_rgb=True)``), zero-pads them at the bottom/right to a
    multiple of the patch size, applies the CLIP normalisation and returns::

        (features, intermediate[, guide])

    * ``features``: ``(B, D, h, w)`` MaskCLIP features in the text space
      (value path of the last block, ``ln_post``, visual projection);
    * ``intermediate``: ``(B, C, h, w)`` ``ln_2`` output of block
      ``intermediate_index`` (block 9 of ViT-B/16), read by the DINOiser heads;
    * ``guide`` (only with ``guide``): ``(B, C', h, w)`` DINO value features
      of the same padded image ("MaskCLIP + DINO refinement").

    The text tower stays in memory for :meth:`text_embeddings` (80-template
    prompt ensembling, cached per vocabulary). All weights are frozen and
    come from open_clip / DINO at construction, so they are left out of
    ``state_dict()`` (checkpoints hold only the trained heads, like the
    official 7 MB ``last.pt``) unless ``save_frozen_weights=True``; loading a
    checkpoint without them keeps the current weights.

    Works with every open_clip version (the blocks run in the transformer's
    own layout; the official code breaks on open_clip >= 2.26).

    Args:
        model_name (str, optional): open_clip architecture. Defaults to
            ``'ViT-B-16'`` (the paper's).
        pretrained (str, optional): open_clip tag, local checkpoint file or
            None (random). Defaults to ``'laion2b_s34b_b88k'`` (the paper's).
        model_config (str, optional): JSON architecture file to register.
        intermediate_index (int): Block whose ``ln_2`` output is returned.
            Defaults to -3.
        guide (dict, optional): ``DINOViT`` config of a DINO guide; its
            patch size must equal CLIP's.
        text_cache_dir (str, optional): Folder where text embeddings are also
            cached on disk (keyed by model, weights, names and templates).
        text_batch_size (int): Prompts per text-tower call. Defaults to 800.
        save_frozen_weights (bool): Keep the open_clip / guide weights in
            ``state_dict()``. Defaults to False.
        init_cfg (dict, optional): Unused (weights load at construction).
    """

    def __init__(self,
                 model_name: Optional[str] = 'ViT-B-16',
                 pretrained: Optional[str] = 'laion2b_s34b_b88k',
                 model_config: Optional[str] = None,
                 intermediate_index: int = -3,
                 guide: Optional[dict] = None,
                 text_cache_dir: Optional[str] = None,
                 text_batch_size: int = 800,
                 save_frozen_weights: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.clip, self.tokenizer, self.model_name = build_open_clip(model_name, pretrained,
                                                                     model_config)
        self.pretrained = pretrained
        visual = self.clip.visual
        self.patch_size = int(visual.conv1.kernel_size[0])
        self.embed_dims = int(visual.proj.shape[1])
        self.width = int(visual.conv1.out_channels)
        num_blocks = len(visual.transformer.resblocks)
        real = intermediate_index + num_blocks if intermediate_index < 0 else intermediate_index
        if not 0 <= real < num_blocks - 1:
            raise ValueError(f'intermediate_index {intermediate_index} is out of range for a '
                             f'{num_blocks}-block ViT (last block excluded)')
        self.intermediate_index = intermediate_index
        self.guide = None
        if guide is not None:
            self.guide = DINOValueFeatures(guide)
            if self.guide.patch_size != self.patch_size:
                raise ValueError(f'guide patch size {self.guide.patch_size} differs from '
                                 f'CLIP\'s {self.patch_size}: the correlations must be on '
                                 'the CLIP grid')
        self.text_cache_dir = text_cache_dir
        self.text_batch_size = int(text_batch_size)
        self.save_frozen_weights = save_frozen_weights
        self._text_cache: Dict[Tuple, Tensor] = {}
        # A hook, not a state_dict() override: mmengine's get_state_dict runs hooks too.
        self._register_state_dict_hook(MaskCLIPBackbone._drop_frozen)
        for p in self.parameters():
            p.requires_grad = False
        super().train(False)

    # ------------------------------------------------------------------ #
    # frozen weights: not trained, not saved
    # ------------------------------------------------------------------ #
    def init_weights(self) -> None:
        """Nothing to do: open_clip / DINO weights load at construction."""

    def train(self, mode: bool = True) -> 'MaskCLIPBackbone':
        """Always eval (frozen)."""
        return super().train(False)

    @staticmethod
    def _drop_frozen(module: 'MaskCLIPBackbone', state_dict: dict, prefix: str,
                     local_metadata: dict) -> None:
        """State-dict hook: leave the frozen weights out (see class doc)."""
        if module.save_frozen_weights:
            return
        for key in [
                k for k in state_dict
                if k.startswith(prefix) and k[len(prefix):].startswith(_FROZEN_PREFIXES)
        ]:
            del state_dict[key]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # Checkpoints without the frozen weights keep the current ones.
        saved, self.save_frozen_weights = self.save_frozen_weights, True
        try:
            own = self.state_dict(keep_vars=True)
        finally:
            self.save_frozen_weights = saved
        for name, tensor in own.items():
            if name.startswith(_FROZEN_PREFIXES) and prefix + name not in state_dict:
                state_dict[prefix + name] = tensor.detach()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    # ------------------------------------------------------------------ #
    # text
    # ------------------------------------------------------------------ #
    def _weights_id(self) -> Optional[str]:
        """Identity of the loaded weights (None for random ones)."""
        ident = self.pretrained
        if ident is not None and osp.isfile(osp.expanduser(ident)):
            path = osp.abspath(osp.expanduser(ident))
            st = os.stat(path)
            ident = f'{path}:{st.st_size}:{int(st.st_mtime)}'
        return ident

    def _cache_file(self, ident: str, names: Sequence[str],
                    templates: Sequence[str]) -> Optional[str]:
        if self.text_cache_dir is None:
            return None
        key = json.dumps([self.model_name, ident, list(names), list(templates)])
        digest = hashlib.sha1(key.encode('utf-8')).hexdigest()[:20]
        return osp.join(self.text_cache_dir, f'{self.model_name.replace("/", "_")}_{digest}.pt')

    @torch.no_grad()
    def text_embeddings(self,
                        class_names: Sequence[str],
                        templates: Optional[Sequence[str]] = None) -> Tensor:
        """Prompt-ensembled class embeddings (cached).

        Args:
            class_names (Sequence[str]): Names, inserted verbatim.
            templates (Sequence[str], optional): Defaults to the 80 ImageNet
                templates.

        Returns:
            Tensor: ``(K, D)`` unit-norm embeddings on the backbone's device.
        """
        templates = tuple(IMAGENET_TEMPLATES if templates is None else templates)
        names = tuple(class_names)
        device = self.clip.visual.conv1.weight.device
        ident = self._weights_id()
        # Same weights -> same embeddings: shared by all models of the process
        # (random weights: this instance only).
        cache = self._text_cache if ident is None else _TEXT_CACHE
        key = (self.model_name, ident, names, templates)
        if key in cache:
            return cache[key].to(device)
        cache_file = None if ident is None else self._cache_file(ident, names, templates)
        if cache_file is not None and osp.isfile(cache_file):
            emb = torch.load(cache_file, map_location='cpu', weights_only=True)
        else:
            tok = self.tokenizer
            encode = getattr(tok, 'encode', None)
            count = (lambda s: len(encode(s))) if callable(encode) else None
            emb = prompt_ensemble_embeddings(
                lambda t: self.clip.encode_text(t.to(device)),
                tok,
                list(names),
                templates,
                context_length=getattr(tok, 'context_length', None),
                count_tokens=count,
                classes_per_batch=max(1, self.text_batch_size // len(templates))).cpu()
            if cache_file is not None:
                os.makedirs(self.text_cache_dir, exist_ok=True)
                torch.save(emb, cache_file)
        cache[key] = emb
        return emb.to(device)

    # ------------------------------------------------------------------ #
    # image
    # ------------------------------------------------------------------ #
    @torch.no_grad()
    def forward(self, images: Tensor) -> Tuple[Tensor, ...]:
        """Dense features of RGB images in ``[0, 1]``.

        Args:
            images (Tensor): ``(B, 3, H, W)`` RGB in ``[0, 1]``.

        Returns:
            tuple[Tensor]: ``(features (B, D, h, w), intermediate (B, C, h,
            w))`` and, with a guide, ``guide values (B, C', h, w)``;
            ``h = ceil(H / patch)``.

        Raises:
            ValueError: Not a 3-channel image batch or smaller than a patch.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f'MaskCLIPBackbone expects (B, 3, H, W) RGB images, got shape '
                f'{tuple(images.shape)} (grayscale images must be converted to 3 channels: '
                "LoadImageFromFile(color_type='color') does it)")
        if min(images.shape[-2:]) < self.patch_size:
            raise ValueError(f'image of {tuple(images.shape[-2:])} pixels is smaller than one '
                             f'{self.patch_size}-pixel patch')
        # Zero (black) padding of the [0, 1] image, as the official code.
        images = pad_to_patch_multiple(images, self.patch_size)
        out = maskclip_dense_features(self.clip.visual, clip_normalize(images),
                                      self.intermediate_index)
        feats: List[Tensor] = [out.features, out.intermediate]
        if self.guide is not None:
            feats.append(self.guide(images))
        return tuple(feats)

    def extra_repr(self) -> str:
        return f'model_name={self.model_name!r}, pretrained={self.pretrained!r}'
