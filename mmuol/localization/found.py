# Copyright (c) mmuol contributors. All rights reserved.
"""FOUND (Siméoni et al., CVPR 2023): stage-1 background discovery and the
trained head's weights and post-processing.

Re-implemented from the paper ("Unsupervised Object Localization: Observing
the Background to Discover Objects") and the behaviour of the official
``bkg_seg.compute_img_bkg_seg`` and decoder (valeoai/FOUND); checked against
golden vectors produced with the official code. Method notes and results:
``configs/found/README.md``.
"""
import os.path as osp
from typing import Dict, NamedTuple, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from mmuol.utils.torch_io import load_torch_file
from .utils import check_cls_attn, check_grid_hw, check_keys, check_real, largest_component

__all__ = [
    'FoundBackgroundResult', 'found_background', 'FoundForeground', 'found_foreground',
    'found_decoder_logits', 'found_decoder_state_dict', 'load_found_decoder',
    'found_single_component'
]


class FoundBackgroundResult(NamedTuple):
    """Result of :func:`found_background` (tensors on the input device).

    Attributes:
        mask (Tensor): ``(h, w)`` bool **background** mask (True =
            background), ``cos(seed, ·) > tau``.
        seed (int): Flat index of the background seed (the least attended
            patch, first on ties).
        object_mask (Tensor): ``(h, w)`` bool, ``~mask``: FOUND's object
            pseudo-mask.
        threshold (Tensor): ``()`` mean CLS attention over heads and patches.
        Q (Tensor): ``(nh,)`` fraction of patches above ``threshold`` per
            head.
        beta (Tensor): ``(nh,)`` head weights
            ``log(Σ_h (Q_h + 1e-10) / (Q_h + 1e-10))`` (sparse heads weigh
            more).
        weighted_att_sum (Tensor): ``(N,)`` ``Σ_h beta_h att_h`` (plain
            ``Σ_h att_h`` without head weights).
        cos_row (Tensor): ``(N,)`` cosine similarity of every patch to the
            seed in the (head-weighted) key space.
    """
    mask: Tensor
    seed: int
    object_mask: Tensor
    threshold: Tensor
    Q: Tensor
    beta: Tensor
    weighted_att_sum: Tensor
    cos_row: Tensor


def found_background(cls_attn: Tensor,
                     keys: Tensor,
                     grid_hw: Sequence[int],
                     tau: float = 0.3,
                     head_weights: bool = True) -> FoundBackgroundResult:
    """FOUND's coarse background mask for one image.

    1. ``threshold = mean(cls_attn)``; ``Q_h`` = fraction of patches of head
       ``h`` above it; ``beta_h = log(Σ_h' (Q_h' + 1e-10) / (Q_h + 1e-10))``.
    2. Keys split per head (head-major, ``dh = D // num_heads``), multiplied
       by ``beta_h`` (if ``head_weights``), concatenated, L2-normalised.
    3. Background seed ``= argmin_i Σ_h beta_h att_h(i)`` (``Σ_h att_h(i)``
       when ``head_weights`` is False, as in the official code).
    4. ``mask = cos(seed, ·) > tau`` (True = background).

    Only the seed's row of the cosine matrix is needed, so the cost is
    O(N·D) instead of the official O(N²·D).

    Args:
        cls_attn (Tensor): ``(num_heads, N)`` last-block attention of the CLS
            query to the patch tokens (no CLS column).
        keys (Tensor): ``(N, D)`` last-block keys of the patch tokens (no
            CLS), head-major, ``D`` divisible by ``num_heads``.
        grid_hw (Sequence[int]): ``(h, w)`` patch grid, ``N = h * w``.
        tau (float): Background similarity threshold (``found.bkg_th`` 0.3),
            in ``[-1, 1)``.
        head_weights (bool): Weight the heads by ``beta`` (the official
            ``apply_weights``). Needs at least two heads: with one head
            ``beta = log(1) = 0`` zeroes every key, so nothing would be
            background; use ``head_weights=False`` for single-head attention.

    Returns:
        FoundBackgroundResult: fields ``mask, seed, object_mask, threshold,
        Q, beta, weighted_att_sum, cos_row``.

    Raises:
        ValueError: For invalid shapes, a NaN/inf/out-of-range ``tau``, or
            ``head_weights=True`` with a single head.
    """
    h, w = grid_hw = check_grid_hw(grid_hw)
    att = check_cls_attn(cls_attn, grid_hw)
    keys = check_keys(keys, grid_hw)
    if att.device != keys.device:
        raise ValueError(f'cls_attn is on {att.device} but keys on '
                         f'{keys.device}')
    nh = att.shape[0]
    n, d = keys.shape
    tau = check_real(
        tau,
        'tau',
        -1.0,
        1.0,
        high_open=True,
        hint='it is a cosine-similarity threshold (FOUND: 0.3)')
    if head_weights and nh == 1:
        raise ValueError('found_background: head_weights=True needs the attention of several '
                         'heads (with one head its weight beta = log(1) = 0 zeroes the keys and '
                         'nothing is background); pass all heads of cls_attn, or '
                         'head_weights=False')
    if d % nh != 0:
        raise ValueError(f'keys dim D={d} is not divisible by the number of '
                         f'heads {nh} (cls_attn.shape[0])')
    threshold = att.mean()
    q_frac = (att > threshold).to(att.dtype).mean(dim=1)
    q_eps = q_frac + 1e-10
    beta = torch.log(q_eps.sum() / q_eps)
    # Official: the head weights enter the seed choice only when they are
    # applied to the keys too (apply_weights); otherwise a plain head sum.
    if head_weights:
        weighted_att_sum = (beta[:, None] * att).sum(dim=0)
    else:
        weighted_att_sum = att.sum(dim=0)
    # torch.argmin returns the first minimal index on ties.
    seed = int(torch.argmin(weighted_att_sum))
    feats = keys
    if head_weights:
        feats = (keys.reshape(n, nh, d // nh) * beta.to(keys.dtype)[None, :, None]).reshape(n, d)
    feats = F.normalize(feats, p=2, dim=1)
    cos_row = feats @ feats[seed]
    mask = (cos_row > tau).reshape(h, w)
    return FoundBackgroundResult(
        mask=mask,
        seed=seed,
        object_mask=~mask,
        threshold=threshold,
        Q=q_frac,
        beta=beta,
        weighted_att_sum=weighted_att_sum,
        cos_row=cos_row)


# ---------------------------------------------------------------------------
# FOUND's trained head: weights and post-processing (shared by the mmdet
# adapter ``FOUNDHeadLocalizer`` and the mmseg ``FOUNDHead`` / segmentor)
# ---------------------------------------------------------------------------
#: Where the released decoder lives (a 2.7 kB ``Conv2d(384, 1, 1)``).
FOUND_DECODER_RELEASE = ('data/weights/decoder_weights.pt of https://github.com/valeoai/FOUND '
                         '(2.7 kB)')

# Key prefixes of the decoder in the layouts we read, most specific first:
# mmseg (FOUNDHead), mmdet (FOUNDHeadLocalizer), converted / flat files.
_DECODER_PREFIXES = ('decode_head.conv_seg.', 'localizer.decoder.', 'conv_seg.', 'decoder.', '')


def found_decoder_state_dict(checkpoint: dict) -> Dict[str, Tensor]:
    """FOUND decoder weights from any checkpoint layout we know.

    Layouts: the official ``{"decoder": {"weight", "bias"}}``; mmengine
    checkpoints (``{"state_dict": ...}``) of an mmseg FOUND model
    (``decode_head.conv_seg.*``) or an mmdet ``UnsupervisedLocalizer``
    (``localizer.decoder.*``); flat ``conv_seg.*`` / ``decoder.*`` /
    ``weight`` + ``bias`` dicts.

    Args:
        checkpoint (dict): A loaded checkpoint.

    Returns:
        dict[str, Tensor]: ``{'weight': (1, D, 1, 1), 'bias': (1,)}``.

    Raises:
        KeyError: If no decoder weights are found.
    """
    if not isinstance(checkpoint, dict):
        raise KeyError(f'expected a dict checkpoint, got {type(checkpoint).__name__}')
    sd = checkpoint
    if isinstance(sd.get('decoder'), dict):
        sd = sd['decoder']
    elif isinstance(sd.get('state_dict'), dict):
        sd = sd['state_dict']
    for prefix in _DECODER_PREFIXES:
        weight, bias = sd.get(prefix + 'weight'), sd.get(prefix + 'bias')
        if isinstance(weight, Tensor) and isinstance(bias, Tensor):
            if weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[2:] != (1, 1) \
                    or bias.shape != (1, ):
                raise KeyError(f'{prefix}weight/bias have shapes {tuple(weight.shape)} / '
                               f'{tuple(bias.shape)}; a FOUND decoder is a Conv2d(D, 1, 1): '
                               '(1, D, 1, 1) / (1,)')
            return {'weight': weight, 'bias': bias}
    raise KeyError('no FOUND decoder weights found: expected {"decoder": {"weight", "bias"}} '
                   '(the released decoder_weights.pt), a checkpoint with '
                   '"decode_head.conv_seg.*" (mmseg) or "localizer.decoder.*" (mmdet), or '
                   f'flat "weight"/"bias"; got keys {sorted(sd)[:10]}')


def load_found_decoder(checkpoint: Union[str, dict]) -> Dict[str, Tensor]:
    """Read FOUND decoder weights from a file, a URL or a loaded checkpoint.

    Args:
        checkpoint (str | dict): Local path, http(s) URL (cached by
            ``torch.hub``) or an already loaded checkpoint dict (any layout of
            :func:`found_decoder_state_dict`).

    Returns:
        dict[str, Tensor]: ``{'weight': (1, D, 1, 1), 'bias': (1,)}`` on the
        CPU.

    Raises:
        FileNotFoundError: A local file that does not exist (the message says
            where the released weights are).
        ValueError: A file that is not a readable torch file.
        KeyError: A checkpoint without decoder weights (names the file).
    """
    source = 'the checkpoint'
    if isinstance(checkpoint, str):
        source = checkpoint
        if checkpoint.startswith(('http://', 'https://')):
            checkpoint = torch.hub.load_state_dict_from_url(
                checkpoint, map_location='cpu', weights_only=True)
        else:
            if not osp.isfile(osp.expanduser(checkpoint)):
                raise FileNotFoundError(
                    f'FOUND decoder weights not found at {checkpoint!r}; the released '
                    f'decoder is {FOUND_DECODER_RELEASE}.')
            checkpoint = load_torch_file(checkpoint)
    try:
        return found_decoder_state_dict(checkpoint)
    except KeyError as err:
        raise KeyError(f'{source}: {err.args[0]}') from None


def found_decoder_logits(features: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """FOUND's head: a ``1x1`` convolution to one foreground logit per patch.

    Args:
        features (Tensor): ``(B, D, h, w)`` last-block patch keys (no CLS,
            not normalised).
        weight (Tensor): ``(1, D, 1, 1)`` decoder weight.
        bias (Tensor): ``(1,)`` decoder bias.

    Returns:
        Tensor: ``(B, 1, h, w)`` logits, in the weight's dtype.
    """
    if features.ndim != 4 or features.shape[1] != weight.shape[1]:
        raise ValueError(f'FOUND decoder of {weight.shape[1]} input channels got features of '
                         f'shape {tuple(features.shape)}; expected (B, {weight.shape[1]}, h, w) '
                         '(the released head reads ViT-S keys, 384 channels)')
    return F.conv2d(features.to(weight.dtype), weight, bias)


class FoundForeground(NamedTuple):
    """FOUND's thresholded prediction (see :func:`found_foreground`).

    Attributes:
        prob (Tensor): ``(h, w)`` sigmoid foreground probability.
        binary (Tensor): ``(h, w)`` bool, ``prob > threshold``.
        mask (Tensor): ``(h, w)`` bool, the kept component(s) of ``binary``.
        score (float): Mean ``prob`` over ``mask`` (0 for an empty mask).
    """
    prob: Tensor
    binary: Tensor
    mask: Tensor
    score: float


#: How :func:`found_foreground` keeps components of the binarised map.
FOUND_COMPONENT_MODES = ('largest', 'single', 'all')


def found_foreground(logits: Tensor,
                     threshold: float = 0.5,
                     component: str = 'largest') -> FoundForeground:
    """Sigmoid, threshold and component selection of FOUND's head output.

    * ``'largest'``: the largest 4-connected component (FOUND's object
      discovery, ``evaluation/uod.py``: the box of the largest component);
    * ``'single'``: FOUND's saliency ``single`` mode
      (:func:`found_single_component`, same tie-breaking as the official
      ``np.argsort``);
    * ``'all'``: the whole binarised map (saliency ``multi`` keeps the soft
      map; this is its binarisation).

    Args:
        logits (Tensor): ``(h, w)`` logits (patch or pixel resolution).
        threshold (float): Threshold on the probability. Defaults to 0.5.
        component (str): One of :data:`FOUND_COMPONENT_MODES`.

    Returns:
        FoundForeground: ``prob, binary, mask, score``.
    """
    if component not in FOUND_COMPONENT_MODES:
        raise ValueError(f'component must be one of {FOUND_COMPONENT_MODES}, got {component!r}')
    if logits.ndim != 2:
        raise ValueError(f'logits must be (h, w), got shape {tuple(logits.shape)}')
    if not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f'threshold must be in [0, 1), got {threshold}')
    prob = logits.float().sigmoid()
    binary = prob > threshold
    if component == 'largest':
        mask = largest_component(binary)
    elif component == 'single':
        mask = torch.from_numpy(found_single_component(binary.cpu().numpy())).to(binary.device)
    else:
        mask = binary
    score = float(prob[mask].mean()) if bool(mask.any()) else 0.0
    return FoundForeground(prob, binary, mask, score)


def found_single_component(binary: np.ndarray) -> np.ndarray:
    """FOUND's ``single`` saliency mode on a binary prediction.

    As ``evaluation/saliency.py`` of the official code: label the 4-connected
    components of the prediction (label 0 = predicted background included),
    order them by pixel count with ``np.argsort`` (same tie-breaking), drop
    the component overlapping the predicted background most (label 0, or
    the smallest entry when there is no background pixel), and keep the
    largest remaining one. An empty prediction is returned unchanged.

    Args:
        binary (np.ndarray): ``(H, W)`` bool / 0-1 prediction.

    Returns:
        np.ndarray: ``(H, W)`` bool mask of the kept component.
    """
    binary = np.asarray(binary) != 0
    labeled, num = ndimage.label(binary)
    if num == 0:
        return binary
    nb_pixel = np.bincount(labeled.ravel(), minlength=num + 1)
    order = np.argsort(nb_pixel)
    # Overlap with the predicted background: only label 0 has any, and
    # argmax of all zeros (no background pixel) picks position 0.
    overlap = np.where(order == 0, nb_pixel[0], 0)
    order = np.delete(order, int(np.argmax(overlap)))
    return labeled == order[-1]
