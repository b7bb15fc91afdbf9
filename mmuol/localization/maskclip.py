# Copyright (c) mmuol contributors. All rights reserved.
"""MaskCLIP dense features and text classification (pure torch).

MaskCLIP (Zhou, Loy & Dai, ECCV 2022) turns a CLIP ViT into a dense
classifier: the last block's attention is replaced by its *value* path, so
each patch token keeps its own content, and the patch tokens are projected
into the joint image-text space with the CLIP visual projection (a ``1x1``
convolution). Patches are classified by cosine similarity with text
embeddings averaged over prompt templates.

The functions take the modules of an ``open_clip`` ``VisionTransformer`` but
do not import open_clip. They work with both transformer layouts: open_clip
< 2.26 runs its blocks on ``(L, B, C)`` tokens, later versions are
batch-first (``transformer.batch_first``); the official CLIP-DINOiser code
assumes the former and breaks on the latter.

No mmdet/mmseg import happens here; the mmseg adapter is
``mmuol.seg.clip_dinoiser.MaskCLIPBackbone``. See
``configs/clip_dinoiser/README.md``.
"""
import math
import warnings
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    'CLIP_MEAN', 'CLIP_STD', 'IMAGENET_TEMPLATES', 'MaskCLIPFeatures', 'clip_normalize',
    'resize_clip_pos_embed', 'maskclip_dense_features', 'classify_patches',
    'prompt_ensemble_embeddings', 'check_class_names'
]

#: CLIP's RGB normalisation (applied to ``[0, 1]`` images).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: The 80 ImageNet prompt templates of CLIP, in CLIP's order (MaskCLIP and
#: CLIP-DINOiser average the text embeddings over them).
IMAGENET_TEMPLATES: Tuple[str, ...] = (
    'a bad photo of a {}.', 'a photo of many {}.', 'a sculpture of a {}.',
    'a photo of the hard to see {}.', 'a low resolution photo of the {}.', 'a rendering of a {}.',
    'graffiti of a {}.', 'a bad photo of the {}.', 'a cropped photo of the {}.',
    'a tattoo of a {}.', 'the embroidered {}.', 'a photo of a hard to see {}.',
    'a bright photo of a {}.', 'a photo of a clean {}.', 'a photo of a dirty {}.',
    'a dark photo of the {}.', 'a drawing of a {}.', 'a photo of my {}.', 'the plastic {}.',
    'a photo of the cool {}.', 'a close-up photo of a {}.', 'a black and white photo of the {}.',
    'a painting of the {}.', 'a painting of a {}.', 'a pixelated photo of the {}.',
    'a sculpture of the {}.', 'a bright photo of the {}.', 'a cropped photo of a {}.',
    'a plastic {}.', 'a photo of the dirty {}.', 'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.', 'a photo of the {}.', 'a good photo of the {}.',
    'a rendering of the {}.', 'a {} in a video game.', 'a photo of one {}.', 'a doodle of a {}.',
    'a close-up photo of the {}.', 'a photo of a {}.', 'the origami {}.', 'the {} in a video game.',
    'a sketch of a {}.', 'a doodle of the {}.', 'a origami {}.', 'a low resolution photo of a {}.',
    'the toy {}.', 'a rendition of the {}.', 'a photo of the clean {}.', 'a photo of a large {}.',
    'a rendition of a {}.', 'a photo of a nice {}.', 'a photo of a weird {}.',
    'a blurry photo of a {}.', 'a cartoon {}.', 'art of a {}.', 'a sketch of the {}.',
    'a embroidered {}.', 'a pixelated photo of a {}.', 'itap of the {}.',
    'a jpeg corrupted photo of the {}.', 'a good photo of a {}.', 'a plushie {}.',
    'a photo of the nice {}.', 'a photo of the small {}.', 'a photo of the weird {}.',
    'the cartoon {}.', 'art of the {}.', 'a drawing of the {}.', 'a photo of the large {}.',
    'a black and white photo of a {}.', 'the plushie {}.', 'a dark photo of a {}.', 'itap of a {}.',
    'graffiti of the {}.', 'a toy {}.', 'itap of my {}.', 'a photo of a cool {}.',
    'a photo of a small {}.', 'a tattoo of the {}.')


class MaskCLIPFeatures(NamedTuple):
    """What :func:`maskclip_dense_features` returns.

    Attributes:
        features (Tensor): ``(B, D, h, w)`` MaskCLIP features in the joint
            image-text space (``D`` = CLIP embedding dim, 512 for ViT-B/16),
            not normalised.
        values (Tensor): ``(B, C, h, w)`` value-path tokens after ``ln_post``,
            before the projection (``C`` = ViT width).
        intermediate (Tensor | None): ``(B, C, h, w)`` output of ``ln_2`` of
            block ``intermediate_index`` (the input of that block's MLP), the
            features CLIP-DINOiser's heads read; None if not asked.
        last_block_input (Tensor): ``(B, T, C)`` residual stream entering the
            last block, ``T = 1 + h * w`` (token 0 = CLS).
        grid_hw (tuple[int, int]): Patch grid ``(h, w)``.
    """
    features: Tensor
    values: Tensor
    intermediate: Optional[Tensor]
    last_block_input: Tensor
    grid_hw: Tuple[int, int]


def clip_normalize(images: Tensor) -> Tensor:
    """CLIP mean/std normalisation of ``(B, 3, H, W)`` RGB images in ``[0, 1]``."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f'expected (B, 3, H, W) RGB images, got shape {tuple(images.shape)}')
    mean = images.new_tensor(CLIP_MEAN)[None, :, None, None]
    std = images.new_tensor(CLIP_STD)[None, :, None, None]
    return (images - mean) / std


def resize_clip_pos_embed(pos_embed: Tensor, grid_hw: Sequence[int]) -> Tensor:
    """Resize a CLIP positional table to another patch grid.

    The CLS row is kept; the square grid part is resized with bicubic
    interpolation (``align_corners=False``) on a ``(1, C, g, g)`` map, as
    MaskCLIP / CLIP-DINOiser do.

    Args:
        pos_embed (Tensor): ``(1 + g * g, C)`` table (open_clip's
            ``visual.positional_embedding``).
        grid_hw (Sequence[int]): Target grid ``(h, w)``.

    Returns:
        Tensor: ``(1 + h * w, C)`` table (the input itself if the grid matches).
    """
    h, w = (int(s) for s in grid_hw)
    num, dim = pos_embed.shape
    side = int(round(math.sqrt(num - 1)))
    if side * side != num - 1:
        raise ValueError(f'positional table of {num} rows is not 1 + a square grid')
    if (h, w) == (side, side):
        return pos_embed
    grid = pos_embed[1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode='bicubic', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(h * w, dim)
    return torch.cat([pos_embed[:1], grid], dim=0)


def _value_path(block: nn.Module, x: Tensor) -> Tensor:
    """MaskCLIP's last block: attention replaced by its value path.

    ``v = out_proj(W_v ln_1(x) + b_v) + x``; ``v = v + mlp(ln_2(v))``
    (layer-scale factors are applied when the block has them; the released
    CLIP models have none).

    Args:
        block (nn.Module): An open_clip ``ResidualAttentionBlock``.
        x (Tensor): ``(..., C)`` tokens (any layout: every op is per token).

    Returns:
        Tensor: ``(..., C)`` tokens.
    """
    attn = getattr(block, 'attn', None)
    if not isinstance(attn, nn.MultiheadAttention):
        raise NotImplementedError(f'MaskCLIP needs blocks with nn.MultiheadAttention (open_clip '
                                  f'ResidualAttentionBlock); got {type(attn).__name__}')
    dim = x.shape[-1]
    if attn.in_proj_weight is not None:
        w_v = attn.in_proj_weight[2 * dim:]
    else:
        w_v = attn.v_proj_weight
    b_v = attn.in_proj_bias[2 * dim:] if attn.in_proj_bias is not None else None
    values = attn.out_proj(F.linear(block.ln_1(x), w_v, b_v))
    x = x + getattr(block, 'ls_1', nn.Identity())(values)
    return x + getattr(block, 'ls_2', nn.Identity())(block.mlp(block.ln_2(x)))


def maskclip_dense_features(visual: nn.Module,
                            images: Tensor,
                            intermediate_index: Optional[int] = -3) -> MaskCLIPFeatures:
    """MaskCLIP dense features of an open_clip ViT (one pass).

    1. Patch embedding, CLS token, positional table resized to the grid
       (:func:`resize_clip_pos_embed`), ``ln_pre``;
    2. all blocks but the last as usual (``ln_2`` of block
       ``intermediate_index`` is recorded);
    3. the last block's value path (:func:`_value_path`), ``ln_post``, CLS
       dropped, projection by ``visual.proj`` as a bias-free ``1x1``
       convolution.

    Unlike the official code, the real last block and the pooled image
    embedding are not computed.

    Args:
        visual (nn.Module): open_clip ``VisionTransformer`` (``conv1``,
            ``class_embedding``, ``positional_embedding``, ``ln_pre``,
            ``transformer.resblocks``, ``ln_post``, ``proj``).
        images (Tensor): ``(B, 3, H, W)`` CLIP-normalised images
            (:func:`clip_normalize`), ``H`` and ``W`` multiples of the patch
            size.
        intermediate_index (int, optional): Block whose ``ln_2`` output is
            returned as ``intermediate`` (negative counts from the end; -3 =
            block 9 of 12 for ViT-B, as CLIP-DINOiser). It cannot be the last
            block (its attention is never run). None skips it.

    Returns:
        MaskCLIPFeatures: ``features, values, intermediate, last_block_input,
        grid_hw``.

    Raises:
        ValueError: Bad image shape or ``intermediate_index``.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f'expected (B, 3, H, W) images, got shape {tuple(images.shape)}')
    conv = visual.conv1
    patch = int(conv.kernel_size[0])
    height, width = images.shape[-2:]
    if height < patch or width < patch or height % patch or width % patch:
        raise ValueError(f'image of {height}x{width} pixels is not a (non-zero) multiple of '
                         f'the {patch}-pixel patch; pad it first')
    blocks = visual.transformer.resblocks
    num_blocks = len(blocks)
    inter = None
    if intermediate_index is not None:
        inter = intermediate_index + num_blocks if intermediate_index < 0 else intermediate_index
        if not 0 <= inter < num_blocks - 1:
            raise ValueError(f'intermediate_index {intermediate_index} must name one of the '
                             f'first {num_blocks - 1} blocks (the last block only runs its '
                             'value path)')

    x = conv(images.to(conv.weight.dtype))  # (B, C, h, w)
    bsz, dim, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(bsz, 1, dim)
    pos = resize_clip_pos_embed(visual.positional_embedding, (h, w)).to(x.dtype)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + pos)

    # open_clip < 2.26 runs the blocks on (L, B, C); newer ones are batch-first.
    batch_first = getattr(visual.transformer, 'batch_first', False)
    recorded: List[Tensor] = []
    handle = None
    if inter is not None:
        handle = blocks[inter].ln_2.register_forward_hook(lambda _m, _i, out: recorded.append(out))
    try:
        tokens = x if batch_first else x.transpose(0, 1)
        for blk in blocks[:-1]:
            tokens = blk(tokens)
    finally:
        if handle is not None:
            handle.remove()
    if not batch_first:
        tokens = tokens.transpose(0, 1)
    last_input = tokens
    values = visual.ln_post(_value_path(blocks[-1], tokens))[:, 1:]
    values = values.transpose(1, 2).reshape(bsz, dim, h, w)
    proj = visual.proj  # (C, D): tokens @ proj
    features = F.conv2d(values, proj.t()[:, :, None, None].to(values.dtype))
    intermediate = None
    if inter is not None:
        out = recorded[-1] if batch_first else recorded[-1].transpose(0, 1)
        intermediate = out[:, 1:].transpose(1, 2).reshape(bsz, dim, h, w)
    return MaskCLIPFeatures(features, values, intermediate, last_input, (int(h), int(w)))


def classify_patches(features: Tensor,
                     text_embeddings: Tensor,
                     temperature: float = 100.0) -> Tensor:
    """``softmax(temperature * cos(feature, text))`` over classes.

    Args:
        features (Tensor): ``(B, D, h, w)`` features (normalised here).
        text_embeddings (Tensor): ``(K, D)`` unit class embeddings.
        temperature (float): Logit scale. Defaults to 100 (MaskCLIP).

    Returns:
        Tensor: ``(B, K, h, w)`` probabilities.
    """
    if features.dim() != 4 or text_embeddings.dim() != 2 or \
            features.shape[1] != text_embeddings.shape[1]:
        raise ValueError(f'features (B, D, h, w) and text_embeddings (K, D) do not match: '
                         f'{tuple(features.shape)} vs {tuple(text_embeddings.shape)}')
    normed = F.normalize(features, p=2, dim=1)
    logits = torch.einsum('bdhw,kd->bkhw', normed, text_embeddings.to(normed.dtype))
    return (temperature * logits).softmax(dim=1)


def check_class_names(class_names: Sequence[str], source: str = 'class_names') -> List[str]:
    """Validate a class / prompt list (non-empty strings, no duplicates).

    Args:
        class_names (Sequence[str]): Names, inserted verbatim in the
            templates (a trailing space, as ADE20K's ``'bed '``, is kept).
        source (str): Where they came from, for error messages.

    Returns:
        list[str]: The names.

    Raises:
        ValueError: Empty list, empty / non-string entries or duplicates.
    """
    if isinstance(class_names, str):
        raise ValueError(f'{source} must be a list of names, got the string {class_names!r}')
    names = list(class_names)
    if not names:
        raise ValueError(f'{source} is empty: give at least one class name / prompt')
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f'{source} has empty or non-string entries: {bad!r}')
    seen, dups = set(), []
    for n in names:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    if dups:
        raise ValueError(f'{source} has duplicate names {dups!r}: two classes with the same '
                         'prompt can never be told apart; remove the duplicates')
    return names


def prompt_ensemble_embeddings(encode_text: Callable[[Tensor], Tensor],
                               tokenize: Callable[[List[str]], Tensor],
                               class_names: Sequence[str],
                               templates: Sequence[str] = IMAGENET_TEMPLATES,
                               context_length: Optional[int] = None,
                               count_tokens: Optional[Callable[[str], int]] = None,
                               classes_per_batch: int = 1) -> Tensor:
    """Prompt-ensembled class embeddings (CLIP's zero-shot recipe).

    For every class: ``template.format(name)`` for each template, encode,
    L2-normalise each embedding, average over templates, L2-normalise.

    Args:
        encode_text (Callable): ``(P, L)`` token ids -> ``(P, D)`` embeddings
            (open_clip ``model.encode_text``).
        tokenize (Callable): list of P strings -> ``(P, L)`` token ids
            (open_clip tokenizer; it truncates to its context length).
        class_names (Sequence[str]): Names, inserted verbatim.
        templates (Sequence[str]): Templates with one ``{}``. Defaults to the
            80 ImageNet templates.
        context_length (int, optional): Tokenizer context length, to warn
            about truncated prompts (with ``count_tokens``).
        count_tokens (Callable, optional): str -> number of BPE tokens (no
            start/end tokens).
        classes_per_batch (int): Classes encoded per text-tower call.

    Returns:
        Tensor: ``(K, D)`` unit-norm embeddings.
    """
    names = check_class_names(class_names)
    templates = list(templates)
    if not templates or any('{}' not in t for t in templates):
        raise ValueError('templates must be a non-empty list of strings with one "{}"')
    if context_length is not None and count_tokens is not None:
        longest = max(templates, key=len)
        too_long = [n for n in names if count_tokens(longest.format(n)) + 2 > context_length]
        if too_long:
            warnings.warn(f'{len(too_long)} prompt(s) exceed the {context_length}-token text '
                          f'context and are truncated by the tokenizer (the end is cut): '
                          f'{[n[:40] for n in too_long[:3]]}')
    out = []
    per = max(1, int(classes_per_batch))
    for start in range(0, len(names), per):
        chunk = names[start:start + per]
        prompts = [t.format(n) for n in chunk for t in templates]
        emb = encode_text(tokenize(prompts)).float()
        emb = F.normalize(emb, p=2, dim=-1).reshape(len(chunk), len(templates), -1)
        out.append(emb.mean(dim=1))
    return F.normalize(torch.cat(out, dim=0), p=2, dim=-1)
