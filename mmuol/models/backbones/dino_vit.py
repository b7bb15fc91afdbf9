# Copyright (c) mmuol contributors. All rights reserved.
"""DINO / DINOv2 Vision Transformer backbone shared by the mmdet and mmseg sides.

The module is host-neutral (it imports neither mmdet nor mmseg); ``mmuol.det``
and ``mmuol.seg`` register it into their host ``MODELS`` registry as
``DINOViT``.

Layers come from timm's ``VisionTransformer`` and are attached with the same
attribute names the official checkpoints use (``cls_token``, ``pos_embed``,
``patch_embed.proj``, ``blocks.{i}``, ``norm``), so an official DINO
backbone-only ``.pth`` loads with ``strict=True`` and no key renaming. Other
checkpoint layouts are converted by :mod:`.checkpoint`; the presets live in
:mod:`.dino_vit_archs` (imports flow ``dino_vit -> checkpoint -> archs``).

Two details follow the official DINO code rather than timm:

* positional embeddings are interpolated with DINO's own formula (bicubic with
  ``scale_factor=((rows + 0.1) / sqrt(N0), (cols + 0.1) / sqrt(N0))``), which
  samples differently from timm's size-based resize;
* the last block's q/k/v are taken from a forward hook on
  ``blocks[-1].attn.qkv`` (head-major, including the qkv bias) and the last
  attention map is recomputed from them, because timm's fused attention never
  materialises it.
"""
import difflib
import math
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmuol.localization.utils import pad_to_patch_multiple
from .checkpoint import load_vit_state_dict, to_timm_layout
from .dino_vit_archs import ARCH_ZOO, CheckpointMismatchError

__all__ = ['DINOViT', 'LastBlockOutput', 'LastBlockMaps', 'interpolate_pos_embed_dino']

#: Keys ``init_cfg=dict(type='Pretrained', ...)`` may hold.
_PRETRAINED_KEYS = ('type', 'checkpoint')


class LastBlockOutput(NamedTuple):
    """What :meth:`DINOViT.forward_last_block` returns.

    Attributes:
        feature_maps (tuple[Tensor]): One ``(B, C, h, w)`` map per
            ``out_indices`` entry (the same as :meth:`DINOViT.forward`).
        tokens (Tensor): ``(B, T, C)`` normed output tokens of the last block,
            ``T = num_prefix_tokens + h * w``.
        q (Tensor | None): ``(B, T, C)`` last-block queries, heads
            concatenated head-major (column ``h * dh + j``), with the qkv bias.
        k (Tensor | None): ``(B, T, C)`` last-block keys, same layout.
        v (Tensor | None): ``(B, T, C)`` last-block values, same layout.
        attn (Tensor | None): ``(B, num_heads, T, T)`` last-block attention
            ``softmax(q k^T * dh^-0.5)``, CLS row/column included, or only its
            CLS row ``(B, num_heads, 1, T)`` when asked with ``'cls'``.
        grid_hw (tuple[int, int]): Patch grid ``(h, w)`` of the padded input.
        num_prefix_tokens (int): CLS + register tokens at the start of ``T``.
    """
    feature_maps: Tuple[Tensor, ...]
    tokens: Tensor
    q: Optional[Tensor]
    k: Optional[Tensor]
    v: Optional[Tensor]
    attn: Optional[Tensor]
    grid_hw: Tuple[int, int]
    num_prefix_tokens: int

    @property
    def patch_keys(self) -> Tensor:
        """``(B, h*w, C)`` keys of the patch tokens (prefix tokens removed)."""
        return self.k[:, self.num_prefix_tokens:]

    @property
    def cls_attn(self) -> Tensor:
        """``(B, num_heads, h*w)`` attention of the CLS query to the patches."""
        return self.attn[:, :, 0, self.num_prefix_tokens:]


class LastBlockMaps(NamedTuple):
    """What :meth:`DINOViT.last_block_maps` returns.

    Attributes:
        maps (dict[str, Tensor]): One ``(B, C, h, w)`` map per requested
            feature (``'q'``, ``'k'``, ``'v'``, ``'tokens'``): the patch
            tokens (prefix tokens dropped) laid out row-major on the grid,
            ``maps[f][b, :, i, j]`` being patch ``i * w + j``.
        cls_attn (Tensor | None): ``(B, num_heads, h * w)`` attention of the
            CLS query to the patches, when asked.
        grid_hw (tuple[int, int]): Patch grid ``(h, w)`` of the padded input.
    """
    maps: Dict[str, Tensor]
    cls_attn: Optional[Tensor]
    grid_hw: Tuple[int, int]


#: Features :meth:`DINOViT.last_block_maps` returns: the last block's queries,
#: keys and values (heads concatenated head-major, with the qkv bias) and its
#: final-normed output tokens.
LAST_BLOCK_FEATURES = ('q', 'k', 'v', 'tokens')


def interpolate_pos_embed_dino(patch_pos: Tensor, grid_hw: Tuple[int, int],
                               src_grid: Tuple[int, int]) -> Tensor:
    """Resample patch positional embeddings exactly as DINO does.

    DINO calls ``F.interpolate`` with a *scale factor* of
    ``((rows + 0.1) / g_h, (cols + 0.1) / g_w)`` (the ``+0.1`` avoids a floor
    error) instead of a target size; the two sample different positions, so
    the scale-factor form is needed to reproduce official features.

    Args:
        patch_pos (Tensor): ``(1, g_h * g_w, C)`` stored patch embeddings.
        grid_hw (tuple[int, int]): Target grid ``(rows, cols)``.
        src_grid (tuple[int, int]): Stored grid ``(g_h, g_w)``.

    Returns:
        Tensor: ``(1, rows * cols, C)`` embeddings.
    """
    rows, cols = grid_hw
    if (rows, cols) == tuple(src_grid):
        return patch_pos
    dim = patch_pos.shape[-1]
    grid = patch_pos.reshape(1, src_grid[0], src_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid,
        scale_factor=((rows + 0.1) / src_grid[0], (cols + 0.1) / src_grid[1]),
        mode='bicubic',
        align_corners=False)
    if grid.shape[-2:] != (rows, cols):  # pragma: no cover - guarded by +0.1
        raise RuntimeError(f'pos-embed interpolation produced {tuple(grid.shape[-2:])}, '
                           f'expected {(rows, cols)}')
    return grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)


def _pretrained_init_cfg(init_cfg: Union[None, dict, List[dict]]) -> Optional[dict]:
    """Return the ``type='Pretrained'`` entry of ``init_cfg``, if any.

    ``BaseModule`` ignores keys it does not know, so a misspelt
    ``chekpoint=`` would silently load the preset's default weights: unknown
    keys are rejected here instead.

    Args:
        init_cfg (dict | list[dict] | None): The backbone's ``init_cfg``.

    Returns:
        dict | None: The ``Pretrained`` entry, or None.

    Raises:
        ValueError: The ``Pretrained`` entry holds a key other than ``type``
            and ``checkpoint``; the message names it.
    """
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    found = None
    for cfg in cfgs:
        if not isinstance(cfg, dict) or cfg.get('type') != 'Pretrained':
            continue
        unknown = [key for key in cfg if key not in _PRETRAINED_KEYS]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, _PRETRAINED_KEYS, n=1)
                hints.append(f'{key!r} (did you mean {close[0]!r}?)' if close else repr(key))
            raise ValueError(
                f"DINOViT init_cfg=dict(type='Pretrained', ...) has unknown key(s) "
                f"{', '.join(hints)}; it accepts only 'checkpoint' (a path, URL, hub id or "
                "arch preset name). Backbone keys inside full/detector checkpoints "
                "(module./backbone. prefixes) are found automatically; pick the DINO "
                "teacher/student weights with DINOViT(checkpoint_key=...).")
        found = cfg
    return found


def _build_timm_vit(arch: Union[str, dict], img_size: Optional[int], drop_path_rate: float,
                    timm_kwargs: Dict[str, Any]) -> Tuple[nn.Module, Optional[str]]:
    """Create the timm ``VisionTransformer`` behind an arch name or dict.

    Args:
        arch (str | dict): ``ARCH_ZOO`` preset, timm model name or
            ``VisionTransformer`` keyword arguments.
        img_size (int, optional): Overrides the preset's resolution.
        drop_path_rate (float): Stochastic depth.
        timm_kwargs (dict): Extra ``VisionTransformer`` arguments.

    Returns:
        tuple[nn.Module, str | None]: The model and the preset's default
        checkpoint URL (None for names and dicts).

    Raises:
        ValueError: Unknown arch, or a timm model that is not a ViT.
    """
    import timm
    from timm.models.vision_transformer import VisionTransformer

    default_ckpt = None
    kwargs = dict(num_classes=0, drop_path_rate=drop_path_rate)
    kwargs.update(timm_kwargs)
    if isinstance(arch, dict):
        cfg = dict(qkv_bias=True, mlp_ratio=4.0)
        cfg.update(arch)
        cfg.update(kwargs)
        if img_size is not None:
            cfg['img_size'] = img_size
        model = VisionTransformer(**cfg)
    else:
        if arch in ARCH_ZOO:
            preset = ARCH_ZOO[arch]
            name, default_ckpt = preset['timm_name'], preset['checkpoint']
            kwargs.setdefault('img_size', preset['img_size'])
        else:
            name = arch
        if img_size is not None:
            kwargs['img_size'] = img_size
        if not timm.is_model(name.split('.')[0]):
            raise ValueError(f'Unknown DINOViT arch {arch!r}: use one of {sorted(ARCH_ZOO)}, '
                             'a timm ViT model name, or a dict of VisionTransformer args.')
        model = timm.create_model(name, pretrained=False, **kwargs)
        if not isinstance(model, VisionTransformer):
            raise ValueError(f'timm model {name!r} is not a VisionTransformer')
    return model, default_ckpt


class DINOViT(BaseModule):
    """DINO / DINOv2 ViT backbone for detection and segmentation.

    Presets (``arch``):

    ==================  ==========  =====  =====  ======  ====================
    arch                timm model  patch  dims   heads   default weights
    ==================  ==========  =====  =====  ======  ====================
    dino_vits8          ViT-S       8      384    6       DINO 300 ep
    dino_vits16         ViT-S       16     384    6       DINO
    dino_vitb8          ViT-B       8      768    12      DINO
    dino_vitb16         ViT-B       16     768    12      DINO
    dinov2_vit{s,b,l,g}14[_reg]     14     ...    ...     DINOv2 (+4 registers)
    ==================  ==========  =====  =====  ======  ====================

    Any timm ``VisionTransformer`` name (``'vit_small_patch8_224'``) or a dict
    of ``VisionTransformer`` keyword arguments (tiny test models) also works.

    Weights come from ``init_cfg=dict(type='Pretrained', checkpoint=...)``
    where ``checkpoint`` is a preset name (its official URL), ``'default'``
    (the preset's own URL), an http(s) URL, a Hugging Face hub id
    (``'timm/vit_small_patch8_224.dino'``) or a local path. Official
    backbone-only files, full DINO checkpoints (``teacher``/``student`` keys,
    ``module.``/``backbone.`` prefixes), DINOv2 files and timm files load.
    A frozen backbone loads its weights at construction so training-free
    models are usable without a detector checkpoint. When a file cannot be
    downloaded a :class:`WeightsUnavailableError` names the URL, the cache
    path and how to pass a local file; random weights are never used silently.

    Args:
        arch (str | dict): Preset, timm model name or VisionTransformer args.
            Defaults to ``'dino_vits8'``.
        img_size (int, optional): Resolution the stored ``pos_embed`` covers;
            defaults to the preset's. Inputs of any size are accepted.
        out_indices (Sequence[int]): Blocks whose outputs become feature
            maps; negative values count from the end. Defaults to ``(-1,)``.
        final_norm (bool): Apply the final LayerNorm to every output (DINO's
            ``get_intermediate_layers``). Defaults to True.
        frozen (bool): Freeze all parameters and keep eval mode (training-free
            methods). Defaults to True.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        checkpoint_key (str): Which sub-dict of a full checkpoint to load
            (``'teacher'`` like DINO's evaluation scripts). Defaults to
            ``'teacher'``.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            (without ``checkpoint``: the preset's default weights). Other
            keys in a ``Pretrained`` entry raise a ``ValueError``.
        **timm_kwargs: Extra ``VisionTransformer`` arguments.

    Raises:
        ValueError: Unknown ``arch``, out-of-range ``out_indices`` or an
            unknown key in the ``Pretrained`` ``init_cfg``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'dino_vits8',
                 img_size: Optional[int] = None,
                 out_indices: Sequence[int] = (-1, ),
                 final_norm: bool = True,
                 frozen: bool = True,
                 drop_path_rate: float = 0.0,
                 checkpoint_key: str = 'teacher',
                 init_cfg: Optional[dict] = None,
                 **timm_kwargs: Any) -> None:
        _pretrained_init_cfg(init_cfg)  # fail on a misspelt key before building anything
        super().__init__(init_cfg=init_cfg)
        vit, self.default_checkpoint = _build_timm_vit(arch, img_size, drop_path_rate, timm_kwargs)
        self.arch = arch
        # Reuse timm's layers under the official key names.
        self.patch_embed = vit.patch_embed
        self.cls_token = vit.cls_token
        self.reg_token = vit.reg_token
        self.pos_embed = vit.pos_embed
        self.pos_drop = vit.pos_drop
        self.patch_drop = vit.patch_drop
        self.norm_pre = vit.norm_pre
        self.blocks = vit.blocks
        self.norm = vit.norm
        self.no_embed_class = vit.no_embed_class
        self.num_prefix_tokens = vit.num_prefix_tokens
        self.embed_dims = vit.embed_dim
        self.num_heads = vit.blocks[-1].attn.num_heads
        patch = self.patch_embed.patch_size
        if patch[0] != patch[1]:
            raise ValueError(f'non-square patches {patch} are not supported')
        self.patch_size = int(patch[0])
        self.pos_grid = tuple(int(g) for g in self.patch_embed.grid_size)

        num_layers = len(self.blocks)
        self.out_indices = []
        for idx in out_indices:
            real = idx + num_layers if idx < 0 else idx
            if not 0 <= real < num_layers:
                raise ValueError(f'out_indices entry {idx} is out of range for '
                                 f'{num_layers} blocks')
            self.out_indices.append(real)
        self.final_norm = final_norm
        self.frozen = frozen
        self.checkpoint_key = checkpoint_key

        # One hook for the lifetime of the module (the official scripts add a
        # new hook per image, which piles up); it records only when asked.
        self._record_qkv = False
        self._qkv: Optional[Tensor] = None
        self.blocks[-1].attn.qkv.register_forward_hook(self._qkv_hook)

        if frozen:
            self._freeze()
            if self._pretrained_checkpoint() is not None:
                self.init_weights()

    # ------------------------------------------------------------------ #
    # weights
    # ------------------------------------------------------------------ #
    def _pretrained_checkpoint(self) -> Optional[str]:
        """``init_cfg``'s checkpoint (``'default'`` when it names none), or None."""
        cfg = _pretrained_init_cfg(self.init_cfg)
        return None if cfg is None else cfg.get('checkpoint', 'default')

    def init_weights(self) -> None:
        """Load pretrained weights if ``init_cfg`` asks for them."""
        if getattr(self, '_is_init', False):
            return
        checkpoint = self._pretrained_checkpoint()
        if checkpoint is None:
            super().init_weights()
            return
        state_dict = load_vit_state_dict(checkpoint, self.default_checkpoint, self.checkpoint_key)
        self.load_converted_state_dict(state_dict, source=str(checkpoint))
        self._is_init = True

    def load_converted_state_dict(self,
                                  state_dict: Dict[str, Tensor],
                                  source: str = 'state dict') -> None:
        """Load a backbone state dict strictly, with a readable error.

        A ``pos_embed`` stored for another resolution replaces the model's
        table (it is interpolated per input anyway).

        Args:
            state_dict (dict[str, Tensor]): Unwrapped, de-prefixed keys in the
                timm / DINO v1 layout, or the official DINOv2 layout (converted
                with :func:`~mmuol.models.backbones.checkpoint.to_timm_layout`).
            source (str): Where it came from, for error messages.

        Raises:
            CheckpointMismatchError: Missing/unexpected keys or wrong shapes.
        """
        state_dict = to_timm_layout(state_dict)
        pos = state_dict.get('pos_embed')
        if pos is not None and pos.shape != self.pos_embed.shape:
            # A different training resolution: adopt the stored table, it is
            # interpolated per input anyway.
            num_extra = 0 if self.no_embed_class else self.num_prefix_tokens
            n_patch = pos.shape[1] - num_extra
            side = int(round(math.sqrt(n_patch)))
            if side * side != n_patch or pos.shape[-1] != self.embed_dims:
                raise CheckpointMismatchError(
                    f'pos_embed of shape {tuple(pos.shape)} in {source} does not fit '
                    f'this backbone (expects (1, {num_extra} + g*g, {self.embed_dims}))')
            self.pos_embed = nn.Parameter(
                torch.zeros_like(pos), requires_grad=self.pos_embed.requires_grad)
            self.pos_grid = (side, side)
        own = self.state_dict()
        missing = sorted(k for k in own if k not in state_dict)
        unexpected = sorted(k for k in state_dict if k not in own)
        wrong_shape = sorted(
            f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}'
            for k in own if k in state_dict and state_dict[k].shape != own[k].shape)
        if missing or unexpected or wrong_shape:
            lines = [f'Checkpoint {source} does not match DINOViT(arch={self.arch!r}).']
            if missing:
                lines.append(f'missing keys ({len(missing)}): {missing}')
            if unexpected:
                lines.append(f'unexpected keys ({len(unexpected)}): {unexpected}')
            if wrong_shape:
                lines.append(f'shape mismatches: {wrong_shape}')
            lines.append('Check that `arch` matches the checkpoint (patch size, '
                         'width) and, for full training checkpoints, '
                         '`checkpoint_key` (teacher/student).')
            raise CheckpointMismatchError('\n'.join(lines))
        self.load_state_dict(state_dict, strict=True)
        if self.frozen:
            self._freeze()

    # ------------------------------------------------------------------ #
    # train / freeze
    # ------------------------------------------------------------------ #
    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad = False
        super().train(False)

    def train(self, mode: bool = True) -> 'DINOViT':
        """Keep a frozen backbone in eval mode (no dropout / drop-path)."""
        return super().train(False if self.frozen else mode)

    # ------------------------------------------------------------------ #
    # forward
    # ------------------------------------------------------------------ #
    def _qkv_hook(self, module: nn.Module, inputs: Tuple[Tensor, ...], output: Tensor) -> None:
        """Keep the last block's ``(B, T, 3 * C)`` qkv output when asked."""
        if self._record_qkv:
            self._qkv = output

    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patchify, add prefix tokens and (interpolated) positions.

        Inputs whose sides are not multiples of the patch size are zero-padded
        at the bottom/right (the official pipelines pad the normalised image
        with zeros, i.e. the mean colour).

        Args:
            x (Tensor): ``(B, 3, H, W)`` normalised images.

        Returns:
            tuple[Tensor, tuple[int, int]]: Tokens ``(B, T, C)``,
            ``T = num_prefix_tokens + h * w``, and the patch grid ``(h, w)``.

        Raises:
            ValueError: ``x`` is not 4-D or is smaller than one patch.
        """
        if x.dim() != 4:
            raise ValueError(f'DINOViT expects (B, C, H, W) input, got shape {tuple(x.shape)}')
        height, width = x.shape[-2:]
        p = self.patch_size
        if height < p or width < p:
            raise ValueError(f'input of {height}x{width} pixels is smaller than one '
                             f'{p}x{p} patch')
        x = pad_to_patch_multiple(x, p)
        feat = self.patch_embed.proj(x)  # (B, C, h, w)
        grid_hw = (int(feat.shape[-2]), int(feat.shape[-1]))
        tokens = self.patch_embed.norm(feat.flatten(2).transpose(1, 2))

        num_extra = 0 if self.no_embed_class else self.num_prefix_tokens
        pos = self.pos_embed
        patch_pos = interpolate_pos_embed_dino(pos[:, num_extra:], grid_hw, self.pos_grid)
        prefix = []
        if self.cls_token is not None:
            prefix.append(self.cls_token.expand(x.shape[0], -1, -1))
        if self.reg_token is not None:
            prefix.append(self.reg_token.expand(x.shape[0], -1, -1))
        if self.no_embed_class:
            tokens = torch.cat(prefix + [tokens + patch_pos], dim=1)
        else:
            tokens = torch.cat(prefix + [tokens], dim=1)
            tokens = tokens + torch.cat([pos[:, :num_extra], patch_pos], dim=1)
        tokens = self.norm_pre(self.patch_drop(self.pos_drop(tokens)))
        return tokens, grid_hw

    def _to_map(self, tokens: Tensor, grid_hw: Tuple[int, int]) -> Tensor:
        """``(B, T, C)`` tokens -> ``(B, C, h, w)`` map of the patch tokens."""
        patches = tokens[:, self.num_prefix_tokens:]
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, *grid_hw).contiguous()

    def forward_last_block(self,
                           x: Tensor,
                           with_qkv: bool = True,
                           with_attn: Union[bool, str] = True) -> LastBlockOutput:
        """Run the ViT and expose the last block's internals.

        Args:
            x (Tensor): ``(B, 3, H, W)`` normalised images.
            with_qkv (bool): Return last-block q/k/v. Defaults to True.
            with_attn (bool | str): Return the last-block attention (implies
                q/k): ``True`` gives the full ``(B, heads, T, T)`` matrix
                (``O(B * heads * T^2)`` memory: 311 MB for one 480x480 image
                with ViT-S/8), ``'cls'`` only the CLS query's row
                ``(B, heads, 1, T)`` — all that LOST/FOUND/DINO-seg read, and
                what ``LastBlockOutput.cls_attn`` needs. Defaults to True.

        Returns:
            LastBlockOutput: feature maps, tokens, q/k/v, attention, grid.
        """
        tokens, grid_hw = self.embed(x)
        want_qkv = with_qkv or with_attn
        outs: List[Tensor] = []
        last = len(self.blocks) - 1
        self._qkv = None
        self._record_qkv = want_qkv
        try:
            for i, blk in enumerate(self.blocks):
                tokens = blk(tokens)
                if i in self.out_indices:
                    out = self.norm(tokens) if self.final_norm else tokens
                    outs.append(self._to_map(out, grid_hw))
        finally:
            self._record_qkv = False
        qkv, self._qkv = self._qkv, None
        final = self.norm(tokens) if (self.final_norm or last not in self.out_indices) \
            else tokens
        q = k = v = attn = None
        if want_qkv:
            bsz, num_tok, _ = qkv.shape
            # (B, T, 3, heads, dh) -> 3 x (B, heads, T, dh), as the official hook glue.
            heads = qkv.reshape(bsz, num_tok, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
            if with_attn:
                if with_attn not in (True, 'cls'):
                    raise ValueError(f"with_attn must be a bool or 'cls', got {with_attn!r}")
                scale = heads.shape[-1]**-0.5
                query = heads[0][:, :, :1] if with_attn == 'cls' else heads[0]
                attn = (query @ heads[1].transpose(-2, -1) * scale).softmax(dim=-1)
            if with_qkv:
                q, k, v = (t.transpose(1, 2).reshape(bsz, num_tok, -1) for t in heads)
        return LastBlockOutput(tuple(outs), final, q, k, v, attn, grid_hw, self.num_prefix_tokens)

    def last_block_maps(self,
                        x: Tensor,
                        features: Union[str, Sequence[str]] = ('k', ),
                        with_cls_attn: bool = False) -> LastBlockMaps:
        """Last-block patch features as ``(B, C, h, w)`` maps.

        The way segmentors and teachers read the ViT: the input is zero-padded
        at the bottom/right to a multiple of the patch size
        (:func:`~mmuol.localization.utils.pad_to_patch_multiple`, the
        official padding; an image smaller than one patch becomes one patch,
        as FOUND's ``make_input_divisible``), the prefix tokens are dropped and
        the patch tokens laid out on the grid. Only the CLS query's attention
        row is computed (``forward_last_block(with_attn='cls')``).

        Args:
            x (Tensor): ``(B, 3, H, W)`` normalised images.
            features (str | Sequence[str]): Any of :data:`LAST_BLOCK_FEATURES`.
                Defaults to ``('k',)``.
            with_cls_attn (bool): Also return the CLS attention to the
                patches. Defaults to False.

        Returns:
            LastBlockMaps: ``maps[f]`` of shape ``(B, C, h, w)`` for each
            requested feature, the ``(B, heads, h * w)`` CLS attention (or
            None) and the grid ``(h, w)``.

        Raises:
            ValueError: No feature or an unknown one.
        """
        names = (features, ) if isinstance(features, str) else tuple(features)
        unknown = [name for name in names if name not in LAST_BLOCK_FEATURES]
        if not names or unknown:
            raise ValueError(f'features must be some of {LAST_BLOCK_FEATURES}, got {features!r}')
        out = self.forward_last_block(
            pad_to_patch_multiple(x, self.patch_size),
            with_qkv=any(name != 'tokens' for name in names),
            with_attn='cls' if with_cls_attn else False)
        parts = dict(q=out.q, k=out.k, v=out.v, tokens=out.tokens)
        maps = {name: self._to_map(parts[name], out.grid_hw) for name in names}
        return LastBlockMaps(maps, out.cls_attn if with_cls_attn else None, out.grid_hw)

    # DINO-compatible API (facebookresearch/dino ``VisionTransformer``), so
    # code written for the official model runs unchanged.
    def prepare_tokens(self, x: Tensor) -> Tensor:
        """``(B, T, C)`` tokens entering block 0 (DINO's ``prepare_tokens``)."""
        return self.embed(x)[0]

    def get_last_selfattention(self, x: Tensor) -> Tensor:
        """``(B, heads, T, T)`` attention of the last block (DINO's method)."""
        return self.forward_last_block(x, with_qkv=False, with_attn=True).attn

    def get_intermediate_layers(self, x: Tensor, n: int = 1) -> List[Tensor]:
        """Final-normed ``(B, T, C)`` outputs of the last ``n`` blocks (DINO)."""
        tokens, _ = self.embed(x)
        outs = []
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens)
            if i >= len(self.blocks) - n:
                outs.append(self.norm(tokens))
        return outs

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Multi-level feature maps for mmdet necks / mmseg heads.

        Args:
            x (Tensor): ``(B, 3, H, W)`` normalised images.

        Returns:
            tuple[Tensor]: ``(B, C, h, w)`` per ``out_indices`` entry.
        """
        return self.forward_last_block(x, with_qkv=False, with_attn=False).feature_maps
