# Copyright (c) mmuol contributors. All rights reserved.
"""Permutohedral lattice (Adams, Baek & Davis, Eurographics 2010) in torch.

High-dimensional Gaussian filtering ``out_i = sum_j exp(-|f_i - f_j|^2 / 2)
in_j`` approximated by splatting the values onto the vertices of the
permutohedral lattice that enclose each feature point, blurring along the
``d + 1`` lattice axes with a ``[1/2, 1, 1/2]`` kernel, and slicing back with
the same barycentric weights. This is the filter behind the mean-field
inference of the fully-connected CRF of Krähenbühl & Koltun (NeurIPS 2011);
the construction below follows the arithmetic of their released lattice code
(float32 elevation, rounding to the nearest remainder-0 point, rank sort,
barycentric weights, ``alpha = 1 / (1 + 2^-d)`` slice scale) so that the
lattice, and hence the CRF output, matches that implementation.

The lattice is built with torch ops on the device of the features and can
then filter any number of value channels: on CPU with scipy sparse matrices
(splat, one blur per axis, slice), elsewhere (CUDA) with torch index_add /
gather.
"""
import math
from typing import Tuple

import numpy as np
import torch
from scipy.sparse import csr_matrix
from torch import Tensor

from mmuol.utils.arrays import ArrayLike

__all__ = ['PermutohedralLattice']

# Packed integer vertex keys (and their neighbours' keys) must fit in int64.
_MAX_PACKED_BITS = 62


def _scale_factors(d: int) -> Tuple[float, ...]:
    """Diagonal of the elevation matrix ``E`` times the expected std (Adams
    et al. 2010, p. 5-6), rounded to float32 as in the reference code."""
    inv_std = float(np.float32(math.sqrt(2.0 / 3.0) * (d + 1)))
    return tuple(float(np.float32(1.0 / math.sqrt((i + 2) * (i + 1)) * inv_std)) for i in range(d))


def _unique_inverse_numpy(codes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)`` (int32 inverse), about twice
    as fast: when the position fits beside the code in 63 bits, one plain
    (SIMD) sort of ``code << b | position`` replaces the argsort."""
    k = codes.size
    lo = int(codes.min())
    pos_bits = max(k - 1, 1).bit_length()
    if (int(codes.max()) - lo).bit_length() + pos_bits > 63:
        uniq, inverse = np.unique(codes, return_inverse=True)
        return uniq, inverse.astype(np.int32)
    keyed = np.sort(((codes - lo) << pos_bits) | np.arange(k, dtype=np.int64))
    sorted_codes = keyed >> pos_bits
    order = keyed & ((1 << pos_bits) - 1)
    first = np.empty(k, bool)
    first[0] = True
    np.not_equal(sorted_codes[1:], sorted_codes[:-1], out=first[1:])
    inverse = np.empty(k, np.int32)
    inverse[order] = np.cumsum(first, dtype=np.int32) - 1
    return sorted_codes[first] + lo, inverse


def _find(sorted_codes: ArrayLike, queries: ArrayLike) -> ArrayLike:
    """Index of each query in ``sorted_codes``, or ``len(sorted_codes)``
    where absent (numpy arrays on CPU, tensors elsewhere)."""
    m = len(sorted_codes)
    if isinstance(sorted_codes, np.ndarray):
        pos = np.searchsorted(sorted_codes, queries).clip(max=m - 1)
        return np.where(sorted_codes[pos] == queries, pos, m)
    pos = torch.searchsorted(sorted_codes, queries).clamp_(max=m - 1)
    return torch.where(sorted_codes[pos] == queries, pos, torch.full_like(pos, m))


def _blur_matrix(n1: np.ndarray, n2: np.ndarray, m: int) -> csr_matrix:
    """``(M, M)`` sparse blur along one lattice axis: ``0.5 * v[n1] + 0.5 *
    v[n2] + v`` (missing neighbours, index ``m``, dropped). The entries of a
    row are summed in this order, which gives the float32 roundings of the
    reference's ``v + 0.5 * (v[n1] + v[n2])``."""
    cols = np.stack([n1, n2, np.arange(m)], 1).astype(np.int32)
    vals = np.broadcast_to(np.array([0.5, 0.5, 1.0], np.float32), cols.shape)
    keep = cols < m
    indptr = np.zeros(m + 1, np.int32)
    np.cumsum(keep.sum(1, dtype=np.int32), out=indptr[1:])
    return csr_matrix((vals[keep], cols[keep], indptr), shape=(m, m))


class PermutohedralLattice:
    """A permutohedral lattice built on ``N`` feature points of dimension d.

    Args:
        features (Tensor): ``(N, d)`` position of every point in the scaled
            feature space (each coordinate already divided by its Gaussian
            standard deviation). Cast to float32; the lattice lives on
            ``features.device``.
        impl (str): How :meth:`filter` runs: ``'auto'`` (``'scipy'`` for CPU
            features, ``'torch'`` otherwise), ``'scipy'`` (sparse matrices,
            CPU only) or ``'torch'`` (index_add / gather on any device;
            float sums in a non-deterministic order on CUDA).

    Attributes:
        num_points (int): ``N``.
        dim (int): ``d``.
        num_vertices (int): ``M``, occupied lattice vertices.
        weights (Tensor): ``(N, d + 1)`` float32 barycentric weights of each
            point's simplex vertices (non-negative, summing to 1).
        impl (str): ``'scipy'`` or ``'torch'``.
    """

    def __init__(self, features: Tensor, impl: str = 'auto') -> None:
        if not isinstance(features, Tensor):
            raise TypeError(f'features must be a torch.Tensor, got {type(features).__name__}')
        if features.ndim != 2 or features.shape[1] < 1 or features.shape[0] < 1:
            raise ValueError('features must have shape (N, d) with N, d >= 1, got '
                             f'{tuple(features.shape)}')
        if impl == 'auto':
            impl = 'scipy' if features.device.type == 'cpu' else 'torch'
        if impl not in ('scipy', 'torch'):
            raise ValueError(f"impl must be 'auto', 'scipy' or 'torch', got {impl!r}")
        if impl == 'scipy' and features.device.type != 'cpu':
            raise ValueError("impl='scipy' needs CPU features; use 'torch' on "
                             f'{features.device}')
        self.impl = impl
        f = features.detach().to(torch.float32)
        if not bool(torch.isfinite(f).all()):
            raise ValueError('lattice features contain NaN or inf values')
        n, d = f.shape
        self.num_points, self.dim = n, d
        dev = f.device
        d1 = d + 1

        # Coordinate-major (d + 1, N) layout: every step below is a
        # contiguous per-coordinate vector operation.
        ft = f.t().contiguous()

        # Elevate onto the hyperplane sum(x) = 0 of R^(d+1): y = E f.
        scale = _scale_factors(d)
        elevated = torch.empty(d1, n, dtype=torch.float32, device=dev)
        acc = torch.zeros(n, dtype=torch.float32, device=dev)
        for j in range(d, 0, -1):
            cf = ft[j - 1] * scale[j - 1]
            elevated[j] = acc - cf * float(j)
            acc = acc + cf
        elevated[0] = acc

        # Closest remainder-0 lattice point, coordinate by coordinate
        # (ties go down, as in the reference).
        down_factor = float(np.float32(1.0 / d1))
        v = elevated * down_factor
        up = torch.ceil(v).mul_(float(d1))
        down = torch.floor(v).mul_(float(d1))
        rem0 = torch.where(up - elevated < elevated - down, up, down)
        del v, up, down
        # Sum of the rounded coordinates / (d + 1), accumulated as the
        # reference does (float add, truncated to int at each step).
        coord_sum = torch.zeros(n, dtype=torch.float32, device=dev)
        for i in range(d1):
            coord_sum = (coord_sum + rem0[i] * down_factor).trunc_()
        coord_sum = coord_sum.to(torch.int32)

        # Rank of each coordinate of the residual in descending order (ties:
        # the lower index ranks first). int32: several times faster than
        # int64 element-wise on CPU.
        resid = elevated - rem0
        rank = torch.zeros(d1, n, dtype=torch.int32, device=dev)
        for i in range(d):
            for j in range(i + 1, d1):
                less = resid[i] < resid[j]
                rank[i] += less
                rank[j] += ~less
        del resid
        # Bring the point back onto the plane if the rounding left it off.
        rank += coord_sum
        shift = (rank < 0).to(torch.int32) - (rank > d).to(torch.int32)
        shift *= d1
        rank += shift
        rem0 += shift.to(torch.float32)
        del shift
        # by_rank[k] = the coordinate whose rank is k.
        by_rank = torch.empty(d1, n, dtype=torch.int64, device=dev)
        by_rank.scatter_(0, rank.to(torch.int64),
                         torch.arange(d1, device=dev)[:, None].expand(d1, n))
        del rank

        # Barycentric coordinates of the point in its simplex: with sv[k]
        # the residual of rank k, weight r is sv[d - r] - sv[d - r + 1] and
        # the wrap-around weight 0 is 1 + sv[d] - sv[0] (summed in double
        # precision by the reference).
        vals = (elevated - rem0) * down_factor
        rev = vals.gather(0, by_rank).flip(0)  # rev[r] = sv[d - r]
        weights = torch.empty(n, d1, dtype=torch.float32, device=dev)
        weights[:, 1:] = (rev[1:] - rev[:-1]).t()
        weights[:, 0] = (rev[0].double() + (1.0 - rev[d].double())).float()
        del elevated, vals, rev

        # Vertex r of the simplex has key rem0 + canonical[r][rank] with
        # canonical[r][k] = r - (d + 1) * [k > d - r] (first d coordinates;
        # the last follows from the zero sum). Keys are packed into int64
        # codes directly, without materialising the (N, d + 1, d) keys.
        rem0_i = rem0[:d].to(torch.int64)
        lo = rem0_i.amin(1) - 2 * d1  # margin for vertices + neighbours
        span = rem0_i.amax(1) + 2 * d1 - lo + 1
        bits = sum(max(int(s) - 1, 1).bit_length() for s in span.tolist())
        if bits > _MAX_PACKED_BITS:
            raise ValueError(
                f'lattice too wide to hash: {bits} bits for the {d}-D vertex keys (features '
                f'span {[int(s) for s in span.tolist()]} lattice units); use larger standard '
                'deviations or a smaller image')
        radix = [1] * d
        for i in range(d - 2, -1, -1):
            radix[i] = radix[i + 1] * int(span[i + 1])
        radix_sum = sum(radix)
        base = torch.zeros(n, dtype=torch.int64, device=dev)
        for i in range(d):
            base += (rem0_i[i] - lo[i]) * radix[i]
        # Going from vertex r - 1 to r lowers by d + 1 the coordinate whose
        # rank is d - r + 1; coordinate d is not stored (radix 0).
        radix_ext = torch.tensor(radix + [0], dtype=torch.int64, device=dev)
        drop = radix_ext[by_rank.flip(0)[:d]].cumsum_(0)  # ranks d, d-1, ..., 1
        codes = torch.empty(d1, n, dtype=torch.int64, device=dev)
        codes[0] = base
        codes[1:] = base + torch.arange(1, d1, device=dev)[:, None] * radix_sum - d1 * drop
        codes = codes.t().reshape(-1)  # point-major: (N * (d + 1), )

        # Hash: sorted unique codes; every point's d + 1 vertex indices.
        if impl == 'scipy':
            vertex_codes, inverse = _unique_inverse_numpy(codes.numpy())
            vertex_codes, inverse = torch.from_numpy(vertex_codes), torch.from_numpy(inverse)
        else:
            vertex_codes, inverse = torch.unique(codes, sorted=True, return_inverse=True)
        m = vertex_codes.numel()
        offsets = inverse.reshape(n, d1)

        # Neighbours along each lattice axis j: key -1 everywhere, +d at j
        # (and the reverse); the last axis is -1 / +1 on the d stored keys.
        steps = [radix_sum - (d1 * radix[j] if j < d else 0) for j in range(d1)]
        self.num_vertices = m
        self.weights = weights
        self.alpha = 1.0 / (1.0 + 2.0**(-d))
        self.device = dev
        if impl == 'scipy':
            # Sparse splat / blur / slice with scipy (single-threaded C
            # loops, several times faster than torch gathers on CPU). The
            # splat runs as the transposed (CSC) product, which accumulates
            # each vertex over the points in order, like the reference.
            self._slice = csr_matrix(
                (weights.reshape(-1).numpy(), offsets.reshape(-1).numpy().astype(
                    np.int32, copy=False), np.arange(0, n * d1 + 1, d1, dtype=np.int32)),
                shape=(n, m))
            self._splat = self._slice.T
            vc = vertex_codes.numpy()
            self._blur = [_blur_matrix(_find(vc, vc - st), _find(vc, vc + st), m) for st in steps]
        else:
            self._offsets = offsets
            self._neighbours = [(_find(vertex_codes,
                                       vertex_codes - st), _find(vertex_codes, vertex_codes + st))
                                for st in steps]

    def filter(self, values: Tensor) -> Tensor:
        """Gaussian-filter per-point values through the lattice.

        Args:
            values (Tensor): ``(N, C)`` float32 values on the lattice's
                device (``C`` independent channels).

        Returns:
            Tensor: ``(N, C)`` float32 filtered values, including each
            point's own contribution (no self-exclusion), scaled by
            ``alpha = 1 / (1 + 2^-d)`` as in the reference.
        """
        if values.ndim != 2 or values.shape[0] != self.num_points:
            raise ValueError(f'values must have shape ({self.num_points}, C), got '
                             f'{tuple(values.shape)}')
        values = values.to(device=self.device, dtype=torch.float32)
        m = self.num_vertices
        if self.impl == 'scipy':
            lat = self._splat @ values.contiguous().numpy()
            for blur in self._blur:
                lat = blur @ lat
            out = self._slice @ lat
            out *= np.float32(self.alpha)
            return torch.from_numpy(out)
        n, d1 = self._offsets.shape
        c = values.shape[1]
        splat = (self.weights[:, :, None] * values[:, None, :]).reshape(n * d1, c)
        lat = values.new_zeros(m + 1, c)
        lat.index_add_(0, self._offsets.reshape(-1), splat)
        for n1, n2 in self._neighbours:
            lat = torch.cat([lat[:m] + 0.5 * (lat[n1] + lat[n2]), lat[m:]])
        out = (lat[self._offsets] * self.weights[:, :, None]).sum(1)
        return out * self.alpha
