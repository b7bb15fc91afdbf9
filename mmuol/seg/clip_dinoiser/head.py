# Copyright (c) mmuol contributors. All rights reserved.
"""DINOiser decode head: guided pooling of MaskCLIP features (CLIP-DINOiser)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor, nn

from mmuol.localization.clip_dinoiser import clip_dinoiser_losses
from mmuol.localization.guided_pooling import background_rule, guided_pool, patch_correlations
from mmuol.localization.maskclip import IMAGENET_TEMPLATES, classify_patches
from mmuol.utils.torch_io import load_torch_file
from ..utils import pretrained_checkpoint
from .class_names import get_class_names

__all__ = ['DINOiserHead', 'dinoiser_head_state_dict', 'CORRELATION_SOURCES']

#: Where the correlations of the guided pooling come from.
CORRELATION_SOURCES = ('learned', 'dino', 'none')
_HEAD_KEYS = ('obj_proj.weight', 'obj_proj.bias', 'bkg_decoder.weight', 'bkg_decoder.bias')


def dinoiser_head_state_dict(checkpoint: dict) -> Dict[str, Tensor]:
    """The two heads' weights from an official or an mmseg checkpoint.

    Layouts: the official ``last.pt`` (``{'epoch', 'model_state_dict':
    {'obj_proj.*', 'bkg_decoder.*', ...}}``), mmengine checkpoints
    (``{'state_dict': {'decode_head.obj_proj.*', ...}}``) and flat dicts.

    Args:
        checkpoint (dict): A loaded checkpoint.

    Returns:
        dict[str, Tensor]: The ``obj_proj.*`` / ``bkg_decoder.*`` tensors found.

    Raises:
        KeyError: If none is found.
    """
    sd = checkpoint
    for key in ('model_state_dict', 'state_dict'):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    out = {}
    for prefix in ('decode_head.', 'module.', ''):
        for key in _HEAD_KEYS:
            if prefix + key in sd and key not in out:
                out[key] = sd[prefix + key]
    if not out:
        raise KeyError('no CLIP-DINOiser head weights found: expected obj_proj.* / '
                       'bkg_decoder.* (official last.pt) or decode_head.obj_proj.* (mmseg); '
                       f'got keys {sorted(sd)[:8]}')
    return out


@MODELS.register_module()
class DINOiserHead(BaseDecodeHead):
    """CLIP-DINOiser head (Wysoczańska et al., ECCV 2024).

    Reads the :class:`MaskCLIPBackbone` outputs ``(features, intermediate[,
    guide])`` and returns per-patch class probabilities ``(B, K, h, w)``:

    1. correlations ``corrs`` between all patches, thresholded at ``gamma``:
       ``'learned'`` - cosine of ``obj_proj`` (``3x3`` conv, replicate
       padding, ``in_channels -> corr_channels``) on ``intermediate``
       (CLIP-DINOiser); ``'dino'`` - cosine of the guide's DINO value
       features (MaskCLIP + DINO refinement); ``'none'`` - plain MaskCLIP;
    2. guided pooling of ``features`` with ``corrs``;
    3. ``softmax(temperature * cos(pooled, text))`` over the class embeddings;
    4. with ``background_rule``: ``bkg_decoder`` (``1x1`` conv on the
       L2-normalised ``intermediate``) and the background rule (uncertain,
       ``max_k p < delta``, and not foreground -> background prob 1.0).

    The released head checkpoint (``checkpoints/last.pt`` of
    wysoczanska/clip_dinoiser: ``obj_proj.*`` and ``bkg_decoder.*``) loads via
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` or after
    ``tools/model_converters/clip_dinoiser_to_mmuol.py``.

    Args:
        in_channels (int): CLIP width of ``intermediate`` (768 for ViT-B).
        embed_dims (int): Text-space dims of ``features`` (512 for ViT-B/16).
        class_names (str | Sequence[str]): Benchmark key (``'voc'``, ...), a
            text file (one name per line) or the names; inserted verbatim in
            the templates. At least two classes.
        templates (Sequence[str], optional): Prompt templates. Defaults to the
            80 ImageNet templates.
        correlation (str): ``'learned'``, ``'dino'`` or ``'none'``.
        corr_channels (int): ``obj_proj`` output channels. Defaults to 256.
        corr_kernel (int): ``obj_proj`` kernel size. Defaults to 3.
        gamma (float): Correlation threshold. Defaults to 0.2.
        background_rule (bool | str): Apply the background rule; ``'auto'``
            does so iff ``'background'`` is a class (the official demo; the
            benchmarks set it: on for VOC and COCO-Object only).
        background_index (int, optional): Index of the background class;
            defaults to the position of ``'background'``.
        delta (float): Certainty threshold of the rule. Defaults to 0.99.
        fg_threshold (float): Foreground threshold on ``sigmoid(bkg)``.
        temperature (float): Softmax temperature. Defaults to 100.
        patch_size (int): Backbone stride; probabilities are upsampled by it
            and cropped to the input. Defaults to 16.
        with_bkg_decoder (bool, optional): Build ``bkg_decoder`` even without
            the rule (training). Defaults to ``correlation == 'learned'`` or
            the rule.
        loss_weights (dict, optional): ``corr`` / ``bkg`` weights of the
            training losses. Defaults to 1 / 1 (official).
        init_cfg (dict, optional): ``Pretrained`` head checkpoint.
        **kwargs: Other :class:`BaseDecodeHead` arguments (``align_corners``).
    """

    def __init__(self,
                 in_channels: int = 768,
                 embed_dims: int = 512,
                 class_names: Union[str, Sequence[str]] = 'voc',
                 templates: Optional[Sequence[str]] = None,
                 correlation: str = 'learned',
                 corr_channels: int = 256,
                 corr_kernel: int = 3,
                 gamma: Optional[float] = 0.2,
                 background_rule: Union[bool, str] = 'auto',
                 background_index: Optional[int] = None,
                 delta: float = 0.99,
                 fg_threshold: float = 0.5,
                 temperature: float = 100.0,
                 patch_size: int = 16,
                 with_bkg_decoder: Optional[bool] = None,
                 loss_weights: Optional[Dict[str, float]] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        for key in ('channels', 'num_classes', 'out_channels', 'dropout_ratio'):
            if key in kwargs:
                raise TypeError(f'DINOiserHead sets `{key}` itself (from embed_dims and '
                                f'class_names); got {key}={kwargs[key]!r}')
        if correlation not in CORRELATION_SOURCES:
            raise ValueError(f'correlation must be one of {CORRELATION_SOURCES}, got '
                             f'{correlation!r}')
        names = get_class_names(class_names)
        self._check_two(names)
        super().__init__(
            in_channels=in_channels,
            channels=embed_dims,
            num_classes=len(names),
            out_channels=len(names),  # probabilities, also for 2 classes
            dropout_ratio=0.0,
            init_cfg=init_cfg,
            **kwargs)
        del self.conv_seg  # classification is by text embeddings, not a conv
        self.embed_dims = embed_dims
        self.templates = tuple(IMAGENET_TEMPLATES if templates is None else templates)
        self.correlation = correlation
        self.gamma = gamma
        self.delta = delta
        self.fg_threshold = fg_threshold
        self.temperature = temperature
        self.patch_size = int(patch_size)
        self._background_rule_cfg = background_rule
        self._background_index_cfg = background_index
        self.loss_weights = dict(corr=1.0, bkg=1.0)
        if loss_weights:
            unknown = set(loss_weights) - set(self.loss_weights)
            if unknown:
                raise KeyError(f'unknown loss_weights {sorted(unknown)}; expected corr / bkg')
            self.loss_weights.update(loss_weights)
        if correlation == 'learned':
            self.obj_proj = nn.Conv2d(
                in_channels,
                corr_channels,
                corr_kernel,
                padding=corr_kernel // 2,
                padding_mode='replicate')
        if with_bkg_decoder is None:
            with_bkg_decoder = correlation == 'learned' or background_rule is True
        if with_bkg_decoder:
            self.bkg_decoder = nn.Conv2d(in_channels, 1, 1)
        self.register_buffer(
            'class_embeddings', torch.zeros(len(names), embed_dims), persistent=False)
        self.class_names: List[str] = []
        self._set_names(names)
        self._has_text = False

    # ------------------------------------------------------------------ #
    # vocabulary
    # ------------------------------------------------------------------ #
    @staticmethod
    def _check_two(names: Sequence[str]) -> None:
        if len(names) < 2:
            raise ValueError(f'CLIP-DINOiser needs at least 2 classes to choose from, got '
                             f'{list(names)!r}; add "background" (which also turns the '
                             'background rule on) or another prompt')

    def _set_names(self, names: List[str]) -> None:
        rule = self._background_rule_cfg
        if rule == 'auto':
            rule = 'background' in names
        elif not isinstance(rule, bool):
            raise ValueError(f"background_rule must be True, False or 'auto', got {rule!r}")
        index = self._background_index_cfg
        if rule and index is None:
            if 'background' not in names:
                raise ValueError('background_rule is on but no class is named "background"; '
                                 'set background_index')
            index = names.index('background')
        if rule and not hasattr(self, 'bkg_decoder'):
            raise ValueError('background_rule needs the background head (bkg_decoder): use '
                             "correlation='learned' or with_bkg_decoder=True and its weights")
        if rule and not -len(names) <= index < len(names):
            raise ValueError(f'background_index {index} out of range for {len(names)} classes')
        # Validated: now change the state.
        self.class_names = list(names)
        self.num_classes = self.out_channels = len(names)
        self.use_background_rule = bool(rule)
        self.background_index = index

    def set_class_embeddings(self, class_names: Sequence[str], embeddings: Tensor) -> None:
        """Set the vocabulary and its text embeddings.

        Args:
            class_names (Sequence[str]): Names (checked: non-empty, unique,
                at least two).
            embeddings (Tensor): ``(K, embed_dims)`` unit-norm embeddings.
        """
        names = get_class_names(list(class_names))
        self._check_two(names)
        if tuple(embeddings.shape) != (len(names), self.embed_dims):
            raise ValueError(f'embeddings of shape {tuple(embeddings.shape)} for {len(names)} '
                             f'classes and embed_dims={self.embed_dims}')
        self._set_names(names)
        self.class_embeddings = embeddings.detach().to(self.class_embeddings.device, torch.float32)
        self._has_text = True

    # ------------------------------------------------------------------ #
    # weights
    # ------------------------------------------------------------------ #
    def init_weights(self) -> None:
        """Load a ``Pretrained`` head checkpoint (official or mmseg layout)."""
        ckpt = pretrained_checkpoint(self.init_cfg, 'DINOiserHead',
                                     'checkpoints/clip_dinoiser/last.pt')
        if ckpt is None:
            super().init_weights()
            return
        if self.is_init:
            return
        self.load_head_checkpoint(ckpt)
        self.is_init = True

    def load_head_checkpoint(self, checkpoint: Union[str, dict]) -> None:
        """Load ``obj_proj`` / ``bkg_decoder`` weights.

        Args:
            checkpoint (str | dict): File (official ``last.pt`` or an mmseg
                checkpoint), URL, or a loaded dict.

        Raises:
            FileNotFoundError: A missing file.
            KeyError: A head this model has is missing from the file.
            ValueError: Shapes that do not fit (``in_channels``).
        """
        source = 'checkpoint'
        if isinstance(checkpoint, str):
            source = checkpoint
            if '://' in checkpoint:
                from mmengine.runner.checkpoint import CheckpointLoader
                checkpoint = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
            else:
                if not osp.isfile(osp.expanduser(checkpoint)):
                    raise FileNotFoundError(
                        f'CLIP-DINOiser head checkpoint {checkpoint!r} not found; the released '
                        'one is checkpoints/last.pt of https://github.com/wysoczanska/'
                        'clip_dinoiser (7 MB)')
                checkpoint = load_torch_file(checkpoint)
        found = dinoiser_head_state_dict(checkpoint)
        own = {k: v for k, v in self.state_dict().items() if k in _HEAD_KEYS}
        missing = sorted(set(own) - set(found))
        if missing:
            raise KeyError(f'{source} lacks {missing} needed by this head')
        bad = [
            f'{k}: {tuple(found[k].shape)} vs {tuple(own[k].shape)}' for k in own
            if found[k].shape != own[k].shape
        ]
        if bad:
            raise ValueError(f'{source} does not fit DINOiserHead(in_channels='
                             f'{self.in_channels}): {bad} (768 for ViT-B/16)')
        self.load_state_dict({k: found[k] for k in own}, strict=False)
        print_log(f'DINOiserHead: loaded {sorted(own)} from {source}', logger='current')

    # ------------------------------------------------------------------ #
    # forward
    # ------------------------------------------------------------------ #
    def _split_inputs(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        if isinstance(inputs, Tensor) or len(inputs) < 2:
            raise ValueError('DINOiserHead reads the MaskCLIPBackbone outputs (features, '
                             'intermediate[, guide])')
        feats, inter = inputs[0], inputs[1]
        guide = inputs[2] if len(inputs) > 2 else None
        if feats.shape[1] != self.embed_dims or inter.shape[1] != self.in_channels:
            raise ValueError(f'DINOiserHead(embed_dims={self.embed_dims}, in_channels='
                             f'{self.in_channels}) got features {tuple(feats.shape)} and '
                             f'intermediate {tuple(inter.shape)}')
        return feats, inter, guide

    def predict_correlations(self, inter: Tensor) -> Tensor:
        """``(B, N, N)`` raw cosine correlations of ``obj_proj`` (no threshold)."""
        return patch_correlations(self.obj_proj(inter))

    def predict_background(self, inter: Tensor) -> Tensor:
        """``(B, 1, h, w)`` background-head logits on L2-normalised features."""
        return self.bkg_decoder(F.normalize(inter, p=2, dim=1))

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Per-patch class probabilities.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs.

        Returns:
            Tensor: ``(B, K, h, w)`` probabilities (background-rule columns
            no longer sum to 1).
        """
        if not self._has_text:
            raise RuntimeError('DINOiserHead has no text embeddings: build it inside the '
                               'CLIPDINOiser segmentor or call set_class_embeddings()')
        feats, inter, guide = self._split_inputs(inputs)
        if self.correlation == 'learned':
            corrs = patch_correlations(self.obj_proj(inter), self.gamma)
            feats = guided_pool(feats, corrs, inter.shape[-2:])
        elif self.correlation == 'dino':
            if guide is None:
                raise ValueError("correlation='dino' needs MaskCLIPBackbone(guide=DINOViT cfg)")
            corrs = patch_correlations(guide, self.gamma)
            feats = guided_pool(feats, corrs, guide.shape[-2:])
        probs = classify_patches(feats, self.class_embeddings, self.temperature)
        if self.use_background_rule:
            probs = background_rule(probs, self.predict_background(inter), self.delta,
                                    self.background_index, self.fg_threshold)
        return probs

    def predict_by_feat(self, seg_logits: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Upsample patch probabilities by ``patch_size`` and crop to the input.

        The grid covers the input padded to a multiple of the patch size, so
        the map is upsampled to ``grid * patch_size`` (bilinear) and cropped,
        which equals mmseg's resize-to-input when the input is a multiple of
        the patch size (every 448x448 slide window).

        Args:
            seg_logits (Tensor): ``(B, K, h, w)`` probabilities.
            batch_img_metas (list[dict]): Metas (slide: ``img_shape`` of the
                window; whole: ``pad_shape`` or ``img_shape``).

        Returns:
            Tensor: ``(B, K, H, W)``.
        """
        meta = batch_img_metas[0]
        if isinstance(meta['img_shape'], torch.Size) or 'pad_shape' not in meta:
            size = meta['img_shape']
        else:
            size = meta['pad_shape']
        size = tuple(int(s) for s in size[:2])
        h, w = seg_logits.shape[-2:]
        up = resize(
            seg_logits,
            size=(h * self.patch_size, w * self.patch_size),
            mode='bilinear',
            align_corners=self.align_corners)
        return up[..., :size[0], :size[1]]

    # ------------------------------------------------------------------ #
    # training
    # ------------------------------------------------------------------ #
    def loss_by_targets(self, inputs: Sequence[Tensor], corr_target: Tensor,
                        bkg_target: Tensor) -> Dict[str, Tensor]:
        """CLIP-DINOiser's losses against teacher targets.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs.
            corr_target (Tensor): ``(B, N, N)`` 0/1 DINO correlation target.
            bkg_target (Tensor): ``(B, 1, h, w)`` 0/1 FOUND target.

        Returns:
            dict[str, Tensor]: ``loss_corr`` and ``loss_bkg`` (weighted).
        """
        if not hasattr(self, 'obj_proj') or not hasattr(self, 'bkg_decoder'):
            raise RuntimeError("training needs correlation='learned' (obj_proj and bkg_decoder)")
        _, inter, _ = self._split_inputs(inputs)
        losses = clip_dinoiser_losses(
            self.predict_correlations(inter), self.predict_background(inter), corr_target,
            bkg_target)
        return {k: v * self.loss_weights[k[len('loss_'):]] for k, v in losses.items()}

    def loss(self, inputs, batch_data_samples, train_cfg) -> dict:  # noqa: D102
        raise RuntimeError('DINOiserHead is trained with teacher targets: use the CLIPDINOiser '
                           'segmentor (train_cfg with dino_teacher / found_teacher)')
