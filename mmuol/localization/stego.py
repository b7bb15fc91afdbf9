# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO's algorithm core (Hamilton et al., ICLR 2022), pure torch / numpy.

* :func:`stego_correspondence_loss` - the feature-correspondence distillation
  loss (intra-image, KNN-partner and negative terms) with random point
  sampling that can be injected (``coords1``, ``coords2``, ``perms``) to
  reproduce a run of the official code exactly.
* :func:`cluster_probe_inner`, :func:`cluster_probe_loss`,
  :func:`cluster_log_probs` - the cosine cluster probe (learned centroids).
* :func:`tokens_to_feature_map` - ViT tokens to a row-major ``(B, C, h, w)``
  map (STEGO's ``feat`` and ``KK`` features).
* Data preparation: :func:`five_crop_boxes` (torchvision's ``five_crop``),
  :func:`resize_center_crop_indices` (PIL ``NEAREST`` resize of the shorter
  side + centre crop, bit-exact), :func:`global_descriptors` and
  :func:`knn_table` (the KNN partner table), :func:`draw_knn_partner`.

No mmdet/mmseg import happens here. Recipe and workflow:
``configs/stego/README.md``.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'STEGOCorrespondence', 'super_perm', 'sample_points', 'feature_correlation',
    'correspondence_term', 'stego_correspondence_loss', 'cluster_probe_inner', 'cluster_probe_loss',
    'cluster_log_probs', 'tokens_to_feature_map', 'five_crop_boxes', 'nearest_indices',
    'resize_center_crop_indices', 'global_descriptors', 'knn_table', 'draw_knn_partner'
]

# ---------------------------------------------------------------------------
# Correspondence loss
# ---------------------------------------------------------------------------


class STEGOCorrespondence(NamedTuple):
    """What :func:`stego_correspondence_loss` returns.

    Attributes:
        total (Tensor): Scalar ``w_intra * pos_intra + w_inter * pos_inter +
            w_neg * neg_inter`` (STEGO's training total for the term).
        pos_intra (Tensor): Scalar mean intra-image loss.
        pos_inter (Tensor): Scalar mean loss against the KNN partner.
        neg_inter (Tensor): Scalar mean loss over all negative pairs.
        pos_intra_cd (Tensor): ``(B, S, S, S, S)`` clamped-before code
            correlation of the intra term (for logging).
        pos_inter_cd (Tensor): ``(B, S, S, S, S)`` same for the partner term.
        neg_inter_cd (Tensor): ``(K * B, S, S, S, S)`` same for the negatives
            (negative sample ``k`` of image ``b`` at row ``k * B + b``).
    """
    total: Tensor
    pos_intra: Tensor
    pos_inter: Tensor
    neg_inter: Tensor
    pos_intra_cd: Tensor
    pos_inter_cd: Tensor
    neg_inter_cd: Tensor


def super_perm(size: int,
               device: Optional[torch.device] = None,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """STEGO's negative-partner draw: ``randperm`` with fixed points moved.

    Entries equal to their index are incremented, then taken ``% size``, so
    ``perm[i] != i`` for ``size > 1`` but the result may repeat indices (it is
    not always a permutation), as upstream.

    Args:
        size (int): Batch size.
        device (torch.device, optional): Device of the result.
        generator (torch.Generator, optional): Random generator.

    Returns:
        Tensor: ``(size,)`` int64 partner indices.
    """
    perm = torch.randperm(size, generator=generator, device='cpu').to(device)
    fixed = perm == torch.arange(size, device=perm.device)
    return (perm + fixed.long()) % size


def _grouped_samples(maps: Tensor, index: Tensor, coords: Tensor) -> Tensor:
    """``grid_sample(maps[index], coords.permute(0, 2, 1, 3))`` flattened to
    ``(M, C, S2 * S1)``, without materialising ``maps[index]``: the point
    sets of all rows that read the same map are stacked into one grid, so a
    single ``grid_sample`` over ``maps`` serves every row (bilinear, border
    padding, ``align_corners=True``, as STEGO's ``sample``)."""
    num, chans = maps.shape[:2]
    s1, s2 = coords.shape[1], coords.shape[2]
    index = index.to(maps.device).long()
    onehot = F.one_hot(index, num)
    slot = (onehot.cumsum(0) * onehot).sum(1) - 1  # rank of each row among its map's rows
    slots = int(slot.max()) + 1 if index.numel() else 1
    grid = coords.new_zeros(num, slots, s2, s1, 2, dtype=maps.dtype)
    grid[index, slot] = coords.permute(0, 2, 1, 3).to(maps.dtype)
    out = F.grid_sample(
        maps,
        grid.view(num, slots * s2, s1, 2),
        mode='bilinear',
        padding_mode='border',
        align_corners=True)
    return out.view(num, chans, slots, s2 * s1)[index, :, slot]


def sample_points(maps: Tensor, index: Tensor, coords: Tensor) -> Tensor:
    """Bilinear samples of ``maps[index]`` at STEGO's random points.

    Equal to ``F.grid_sample(maps[index], coords.permute(0, 2, 1, 3),
    mode='bilinear', padding_mode='border', align_corners=True)`` (STEGO's
    ``sample``; note the permute: output ``[m, :, i, j]`` reads the point
    ``coords[m, j, i]``), computed with one ``grid_sample`` over ``maps``
    whose grid stacks the point sets of the rows reading each map, so ``K``
    negatives drawn from a batch never copy ``K`` batches of feature maps.

    Args:
        maps (Tensor): ``(N, C, H, W)`` feature or code maps.
        index (Tensor): ``(M,)`` int64 row of ``maps`` each sample reads.
        coords (Tensor): ``(M, S1, S2, 2)`` points in ``[-1, 1]``, last dim
            ``(x, y)`` (x along the width).

    Returns:
        Tensor: ``(M, C, S2, S1)`` samples (differentiable w.r.t. ``maps``).
    """
    rows = _grouped_samples(maps, index, coords)
    return rows.view(rows.shape[0], rows.shape[1], coords.shape[2], coords.shape[1])


def feature_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Cosine correlation of every point pair (STEGO's ``tensor_correlation``
    of L2-normalised inputs, ``eps=1e-10``).

    Args:
        a (Tensor): ``(B, C, h, w)``.
        b (Tensor): ``(B, C, i, j)``.

    Returns:
        Tensor: ``(B, h, w, i, j)``.
    """
    a = F.normalize(a, dim=1, eps=1e-10)
    b = F.normalize(b, dim=1, eps=1e-10)
    return torch.einsum('nchw,ncij->nhwij', a, b)


def _centre_pointwise(fd: Tensor, dims: Tuple[int, ...]) -> Tensor:
    """STEGO's ``pointwise`` centring: subtract the mean over the second
    image's points, then restore the global mean (over ``dims``)."""
    old_mean = fd.mean(dim=dims, keepdim=True)
    fd = fd - fd.mean(dim=-1, keepdim=True)
    return fd - fd.mean(dim=dims, keepdim=True) + old_mean


def _clamp_code_corr(cd: Tensor, zero_clamp: bool, stabilize: bool) -> Tensor:
    """STEGO's clamp of the code correlation: at 0 (``zero_clamp``) or
    -9999, and at 0.8 with ``stabilize``."""
    min_val = 0.0 if zero_clamp else -9999.0
    return cd.clamp(min_val, 0.8) if stabilize else cd.clamp(min_val)


def correspondence_term(f1: Tensor,
                        f2: Tensor,
                        c1: Tensor,
                        c2: Tensor,
                        shift: float,
                        pointwise: bool = True,
                        zero_clamp: bool = True,
                        stabilize: bool = False) -> Tuple[Tensor, Tensor]:
    """One term of the loss for a batch of image pairs (STEGO's ``helper``).

    ``fd = cos(f1, f2)`` (no gradient; with ``pointwise`` each row is centred
    over ``f2``'s points and the global mean restored), ``cd = cos(c1, c2)``,
    ``loss = -clamp(cd, 0 or -9999, [0.8 if stabilize]) * (fd - shift)``.

    Args:
        f1 (Tensor): ``(B, C, S, S)`` sampled features of the first images.
        f2 (Tensor): ``(B, C, S, S)`` of the second images.
        c1 (Tensor): ``(B, D, S, S)`` sampled codes of the first images.
        c2 (Tensor): ``(B, D, S, S)`` of the second images.
        shift (float): The term's shift ``b``.
        pointwise (bool): Centre the feature correlation per point.
        zero_clamp (bool): Clamp the code correlation at 0.
        stabilize (bool): Also clamp it at 0.8 (STEGO's ``stabalize``).

    Returns:
        tuple[Tensor, Tensor]: ``loss`` and ``cd``, both ``(B, S, S, S, S)``.
    """
    with torch.no_grad():
        fd = feature_correlation(f1, f2)
        if pointwise:
            b, h, w, i, j = fd.shape
            fd = _centre_pointwise(fd.reshape(b, h * w, i * j), (0, 1, 2)).view(b, h, w, i, j)
    cd = feature_correlation(c1, c2)
    shift_t = torch.as_tensor(shift, dtype=cd.dtype, device=cd.device)
    return -_clamp_code_corr(cd, zero_clamp, stabilize) * (fd - shift_t), cd


def stego_correspondence_loss(feats: Tensor,
                              feats_pos: Tensor,
                              code: Tensor,
                              code_pos: Tensor,
                              feature_samples: int = 11,
                              neg_samples: int = 5,
                              pos_intra_shift: float = 0.18,
                              pos_inter_shift: float = 0.12,
                              neg_inter_shift: float = 0.46,
                              pos_intra_weight: float = 0.67,
                              pos_inter_weight: float = 0.25,
                              neg_inter_weight: float = 0.63,
                              pointwise: bool = True,
                              zero_clamp: bool = True,
                              stabilize: bool = False,
                              coords1: Optional[Tensor] = None,
                              coords2: Optional[Tensor] = None,
                              perms: Optional[Tensor] = None,
                              generator: Optional[torch.Generator] = None) -> STEGOCorrespondence:
    """STEGO's contrastive correlation loss (``ContrastiveCorrelationLoss``).

    ``S x S`` points are drawn uniformly in every image (``coords1``) and in
    its KNN partner (``coords2``); the frozen features and the trainable code
    are sampled there (:func:`sample_points`) and three kinds of pairs are
    scored by :func:`correspondence_term`: the image with itself (shift
    ``pos_intra_shift``), with its partner (``pos_inter_shift``) and, for each
    of ``neg_samples`` draws of :func:`super_perm`, with another image of
    the batch sampled at ``coords2`` (``neg_inter_shift``). All pairs are
    scored in one batched product; every term keeps its own global mean for
    the pointwise centring, as upstream's separate calls do. Defaults are
    the "IAROA vit small" block of the official ``train_config.yml``.

    Args:
        feats (Tensor): ``(B, C, H, W)`` backbone features of the images
            (STEGO feeds them after the head's feature dropout).
        feats_pos (Tensor): ``(B, C, H, W)`` features of the KNN partners.
        code (Tensor): ``(B, D, H, W)`` head outputs of the images.
        code_pos (Tensor): ``(B, D, H, W)`` head outputs of the partners.
        feature_samples (int): ``S``.
        neg_samples (int): ``K``, negative draws per image.
        pos_intra_shift, pos_inter_shift, neg_inter_shift (float): Shifts.
        pos_intra_weight, pos_inter_weight, neg_inter_weight (float): Weights
            of the total.
        pointwise (bool): Pointwise centring of the feature correlation.
        zero_clamp (bool): Clamp the code correlation at 0.
        stabilize (bool): Also clamp it at 0.8.
        coords1 (Tensor, optional): ``(B, S, S, 2)`` points in ``[-1, 1]``
            for the images; drawn with ``torch.rand`` when omitted.
        coords2 (Tensor, optional): ``(B, S, S, 2)`` for the partners and
            the negatives.
        perms (Tensor, optional): ``(K, B)`` negative partner indices; drawn
            with :func:`super_perm` when omitted.
        generator (torch.Generator, optional): For the random draws (a CPU
            generator; points are moved to the input device).

    Returns:
        STEGOCorrespondence: the weighted total and its terms.

    Raises:
        ValueError: Mismatched shapes or injected draws of the wrong shape.
    """
    if feats.dim() != 4 or feats.shape != feats_pos.shape:
        raise ValueError(f'feats {tuple(feats.shape)} and feats_pos {tuple(feats_pos.shape)} '
                         'must be equal (B, C, H, W)')
    if code.dim() != 4 or code.shape != code_pos.shape or code.shape[0] != feats.shape[0] \
            or code.shape[2:] != feats.shape[2:]:
        raise ValueError(f'code {tuple(code.shape)} / code_pos {tuple(code_pos.shape)} must be '
                         f'(B, D, H, W) on the feature grid {tuple(feats.shape[2:])}')
    bsz = feats.shape[0]
    size = feature_samples
    device = code.device
    if coords1 is None:
        coords1 = torch.rand(bsz, size, size, 2, generator=generator) * 2 - 1
    if coords2 is None:
        coords2 = torch.rand(bsz, size, size, 2, generator=generator) * 2 - 1
    if perms is None:
        perms = torch.stack([super_perm(bsz, generator=generator) for _ in range(neg_samples)]) \
            if neg_samples > 0 else torch.zeros(0, bsz, dtype=torch.long)
    coords1, coords2 = coords1.to(device), coords2.to(device)
    perms = torch.as_tensor(perms, device=device).long().reshape(-1, bsz)
    for name, c in (('coords1', coords1), ('coords2', coords2)):
        if c.shape[0] != bsz or c.dim() != 4 or c.shape[-1] != 2 or c.shape[1] != c.shape[2]:
            raise ValueError(f'{name} must be (B={bsz}, S, S, 2), got {tuple(c.shape)}')
    num_neg = perms.shape[0]
    groups = 2 + num_neg
    own = torch.arange(bsz, device=device)
    # The images are read at coords1 (own points) and, as negatives, at the
    # coords2 of the image they are drawn for: one grouped grid_sample over
    # the batch serves both; the partners take one grid_sample at coords2.
    # Groups of the result: 0 intra, 1 partner, 2.. one per negative draw.
    index = torch.cat([own, perms.reshape(-1)])
    coords = torch.cat([coords1, coords2.repeat(num_neg, 1, 1, 1)])

    def corr(maps: Tensor, maps_pos: Tensor) -> Tensor:
        rows = F.normalize(_grouped_samples(maps, index, coords), dim=1, eps=1e-10)
        pos = F.normalize(_grouped_samples(maps_pos, own, coords2), dim=1, eps=1e-10)
        left = rows[:bsz].transpose(1, 2)  # (B, P, C)
        same = torch.matmul(left.unsqueeze(0), rows.view(1 + num_neg, bsz, *rows.shape[1:]))
        return torch.cat([same[:1], torch.matmul(left, pos).unsqueeze(0), same[1:]])

    with torch.no_grad():
        fd = corr(feats, feats_pos)  # (G, B, P, P), rows = the image's points
        if pointwise:
            fd = _centre_pointwise(fd, (1, 2, 3))
        shifts = torch.tensor(
            [pos_intra_shift, pos_inter_shift] + [neg_inter_shift] * num_neg,
            dtype=fd.dtype,
            device=device).view(groups, 1, 1, 1)
        # mean(-clamp(cd) * (fd - shift)) = sum(clamp(cd) * (shift - fd)) / n
        coef = (shifts - fd) / fd[0].numel()
    cd = corr(code, code_pos)
    means = (_clamp_code_corr(cd, zero_clamp, stabilize) * coef).sum(dim=(1, 2, 3))
    pos_intra, pos_inter = means[0], means[1]
    neg_inter = means[2:].mean() if num_neg else means.new_zeros(())
    total = pos_intra_weight * pos_intra + pos_inter_weight * pos_inter + \
        neg_inter_weight * neg_inter
    s_h, s_w = coords1.shape[2], coords1.shape[1]
    cd = cd.view(groups, bsz, s_h, s_w, s_h, s_w)
    return STEGOCorrespondence(total, pos_intra, pos_inter, neg_inter, cd[0], cd[1],
                               cd[2:].reshape(num_neg * bsz, s_h, s_w, s_h, s_w))


# ---------------------------------------------------------------------------
# Cluster probe
# ---------------------------------------------------------------------------


def cluster_probe_inner(code: Tensor, clusters: Tensor) -> Tensor:
    """Cosine similarity of every code vector to every centroid.

    Args:
        code (Tensor): ``(B, D, H, W)``.
        clusters (Tensor): ``(K, D)`` centroids.

    Returns:
        Tensor: ``(B, K, H, W)`` (STEGO's ``ClusterLookup`` inner products).
    """
    if code.dim() != 4 or clusters.dim() != 2 or code.shape[1] != clusters.shape[1]:
        raise ValueError(f'code {tuple(code.shape)} (B, D, H, W) and clusters '
                         f'{tuple(clusters.shape)} (K, D) do not fit')
    return torch.einsum('bchw,nc->bnhw', F.normalize(code, dim=1), F.normalize(clusters, dim=1))


def cluster_probe_loss(inner: Tensor, alpha: Optional[float] = None) -> Tuple[Tensor, Tensor]:
    """The probe's online k-means loss ``-(probs * inner).sum(1).mean()``.

    Args:
        inner (Tensor): ``(B, K, H, W)`` from :func:`cluster_probe_inner`.
        alpha (float, optional): ``None``: hard assignment (one-hot argmax,
            training); else ``softmax(alpha * inner)``.

    Returns:
        tuple[Tensor, Tensor]: scalar loss and ``(B, K, H, W)`` float32
        assignment probabilities.
    """
    if alpha is None:
        probs = F.one_hot(inner.argmax(1), inner.shape[1]).permute(0, 3, 1, 2).to(inner.dtype)
    else:
        probs = F.softmax(alpha * inner, dim=1)
    return -(probs * inner).sum(1).mean(), probs


def cluster_log_probs(inner: Tensor, alpha: float = 2.0) -> Tensor:
    """``log_softmax(alpha * inner)`` over clusters (STEGO's evaluation uses
    ``alpha = 2``).

    Args:
        inner (Tensor): ``(B, K, H, W)``.
        alpha (float): Inverse temperature.

    Returns:
        Tensor: ``(B, K, H, W)`` log-probabilities.
    """
    return F.log_softmax(alpha * inner, dim=1)


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------


def tokens_to_feature_map(tokens: Tensor,
                          grid_hw: Sequence[int],
                          num_prefix_tokens: int = 1) -> Tensor:
    """ViT tokens to a ``(B, C, h, w)`` map (prefix tokens dropped, patches
    row-major), as STEGO's ``DinoFeaturizer`` does for ``feat`` (last-block
    output) and ``KK`` (last-block keys with heads concatenated head-major,
    channel ``head * d_head + j``).

    Args:
        tokens (Tensor): ``(B, T, C)``, ``T = num_prefix_tokens + h * w``.
        grid_hw (Sequence[int]): Patch grid ``(h, w)``.
        num_prefix_tokens (int): CLS (+ register) tokens at the start.

    Returns:
        Tensor: ``(B, C, h, w)`` contiguous.
    """
    h, w = int(grid_hw[0]), int(grid_hw[1])
    bsz, num_tok, chans = tokens.shape
    if num_tok != num_prefix_tokens + h * w:
        raise ValueError(f'{num_tok} tokens do not hold {num_prefix_tokens} prefix tokens and a '
                         f'{h}x{w} patch grid')
    return tokens[:, num_prefix_tokens:].transpose(1, 2).reshape(bsz, chans, h, w).contiguous()


# ---------------------------------------------------------------------------
# Data preparation (five-crop, resize + centre crop, KNN table)
# ---------------------------------------------------------------------------


def five_crop_boxes(height: int,
                    width: int,
                    crop_ratio: float = 0.5) -> List[Tuple[int, int, int, int]]:
    """The five crops STEGO cuts from every training image.

    torchvision's ``five_crop`` with size ``(int(height * crop_ratio),
    int(width * crop_ratio))``, in its order: top-left, top-right,
    bottom-left, bottom-right, centre (centre offsets rounded with Python's
    ``round``, as torchvision). Crop ``k`` of image ``i`` is STEGO's image
    ``5 * i + k``.

    Args:
        height (int): Image height.
        width (int): Image width.
        crop_ratio (float): Crop side / image side (0.5 upstream).

    Returns:
        list[tuple[int, int, int, int]]: ``(top, left, crop_h, crop_w)``.

    Raises:
        ValueError: A ratio outside ``(0, 1]`` or an image too small for a
            1-pixel crop.
    """
    if not 0 < crop_ratio <= 1:
        raise ValueError(f'crop_ratio must be in (0, 1], got {crop_ratio}')
    ch, cw = int(height * crop_ratio), int(width * crop_ratio)
    if ch < 1 or cw < 1:
        raise ValueError(f'a {height}x{width} image is too small for crop_ratio {crop_ratio}')
    top_c = int(round((height - ch) / 2.0))
    left_c = int(round((width - cw) / 2.0))
    return [(0, 0, ch, cw), (0, width - cw, ch, cw), (height - ch, 0, ch, cw),
            (height - ch, width - cw, ch, cw), (top_c, left_c, ch, cw)]


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of every output pixel of PIL's ``NEAREST`` resize.

    PIL walks the output with a running sum ``x = scale / 2 + k * scale`` in
    double precision and truncates; reproducing the running sum (not the
    closed form) matters at exact half-way points.

    Args:
        in_size (int): Input length.
        out_size (int): Output length.

    Returns:
        np.ndarray: ``(out_size,)`` int64 indices into ``[0, in_size)``.
    """
    scale = in_size / out_size
    steps = np.full(out_size, scale, dtype=np.float64)
    steps[0] = 0.5 * scale
    return np.minimum(np.cumsum(steps).astype(np.int64), in_size - 1)


def resize_center_crop_indices(height: int, width: int, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Rows / columns that STEGO's ``Resize(size, NEAREST)`` +
    ``CenterCrop(size)`` keep, so that ``img[rows][:, cols]`` equals the
    torchvision result on a PIL image (images and labels alike).

    The shorter side becomes ``size``, the longer ``int(size * long /
    short)`` (torchvision), then the centre ``size x size`` is kept.

    Args:
        height (int): Image height.
        width (int): Image width.
        size (int): Output side (224 for training / KNN, 320 for testing).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(size,)`` row and column indices.
    """
    if height < 1 or width < 1 or size < 1:
        raise ValueError(f'bad sizes: image {height}x{width}, output {size}')
    if width <= height:
        out_w, out_h = size, int(size * height / width)
    else:
        out_h, out_w = size, int(size * width / height)
    top = int(round((out_h - size) / 2.0))
    left = int(round((out_w - size) / 2.0))
    rows = nearest_indices(height, out_h)[top:top + size]
    cols = nearest_indices(width, out_w)[left:left + size]
    return rows, cols


def global_descriptors(feature_maps: Tensor) -> Tensor:
    """Image descriptors for the KNN table: spatial mean, L2-normalised.

    Args:
        feature_maps (Tensor): ``(B, C, h, w)``.

    Returns:
        Tensor: ``(B, C)`` unit vectors.
    """
    return F.normalize(feature_maps.mean(dim=(2, 3)), dim=1)


def knn_table(descriptors: Tensor, k: int = 30, chunk_size: int = 4096) -> Tensor:
    """Indices of the ``k`` most cosine-similar images of every image.

    ``topk`` of ``descriptors @ descriptors.T`` computed ``chunk_size`` rows at
    a time (memory ``chunk_size x N``). Column 0 is (almost always) the image
    itself, as in STEGO's ``precompute_knns.py``.

    Args:
        descriptors (Tensor): ``(N, D)`` unit vectors.
        k (int): Neighbours kept (30 upstream); must be ``<= N``.
        chunk_size (int): Rows per block.

    Returns:
        Tensor: ``(N, k)`` int64 on the CPU.
    """
    num = descriptors.shape[0]
    if not 1 <= k <= num:
        raise ValueError(f'k={k} neighbours requested for {num} images')
    out = []
    for start in range(0, num, chunk_size):
        sims = descriptors[start:start + chunk_size] @ descriptors.T
        out.append(sims.topk(k, dim=1).indices.cpu())
    return torch.cat(out).long()


def draw_knn_partner(neighbours: Sequence[int],
                     num_neighbors: int,
                     rng: Union[np.random.Generator, np.random.RandomState, None] = None) -> int:
    """A positive partner: uniform over table positions ``1..num_neighbors``
    (position 0 is the image itself), as STEGO's training loader.

    Args:
        neighbours (Sequence[int]): One row of :func:`knn_table`.
        num_neighbors (int): 7 upstream.
        rng (np.random.Generator | np.random.RandomState, optional): Random
            generator; ``None`` or the ``np.random`` module use numpy's global
            RNG (seeded per dataloader worker by mmengine).

    Returns:
        int: Index of the partner image.
    """
    if not 1 <= num_neighbors < len(neighbours):
        raise ValueError(f'num_neighbors={num_neighbors} needs a KNN table with more than '
                         f'{num_neighbors} columns, got {len(neighbours)}')
    rng = np.random if rng is None else rng
    pos = rng.integers(1, num_neighbors + 1) if hasattr(rng, 'integers') \
        else rng.randint(1, num_neighbors + 1)
    return int(neighbours[int(pos)])
