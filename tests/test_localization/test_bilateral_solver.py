# Copyright (c) mmuol contributors. All rights reserved.
import numpy as np
import pytest
import torch

from mmuol.localization import mask_iou
from mmuol.localization.bilateral_solver import (BilateralGrid, batch_bilateral_solver,
                                                 bilateral_solver, bilateral_solver_output,
                                                 bistochastize, refine_mask_with_bilateral_solver,
                                                 rgb_to_yuv)
from mmuol.testing.golden import load_golden

AREA = 'found_lost_tokencut'
FOUND_CASES = [
    f'bs_found_{size}_{tgt}_{cc}.npz' for size in ('72x96', '112x160') for tgt in ('binary', 'soft')
    for cc in ('allcc', 'largestcc')
]
TOKENCUT_CASES = ['bs_tokencut_72x96_binary.npz', 'bs_tokencut_112x160_binary.npz']


def _load(name):
    return load_golden(f'{AREA}/{name}')[0]


@pytest.mark.parametrize('name', FOUND_CASES + TOKENCUT_CASES)
def test_bilateral_solver_output_golden(name):
    z = _load(name)
    get_all_cc = name.endswith('_allcc.npz')
    out, binary = bilateral_solver_output(
        z['image'],
        z['target'],
        sigma_spatial=16,
        sigma_luma=16,
        sigma_chroma=8,
        get_all_cc=get_all_cc)
    assert out.dtype == np.float64 and out.shape == z['target'].shape
    np.testing.assert_allclose(out, z['output_solver'], rtol=0, atol=1e-6)
    assert binary.dtype == bool
    np.testing.assert_array_equal(binary, z['binary_solver'])
    if 'iou_target_vs_binary' in z:
        assert mask_iou(z['target'], binary) == pytest.approx(
            float(z['iou_target_vs_binary']), abs=1e-6)


def test_bilateral_solver_torch_inputs_and_prebuilt_grid():
    z = _load('bs_found_72x96_soft_allcc.npz')
    img_t = torch.from_numpy(z['image'])
    out = bilateral_solver(img_t, torch.from_numpy(z['target']))
    np.testing.assert_allclose(out, z['output_solver'], atol=1e-6)
    grid = BilateralGrid(z['image'], 16, 16, 8)
    out2 = bilateral_solver(z['image'], z['target'], grid=grid)
    np.testing.assert_allclose(out2, z['output_solver'], atol=1e-6)


def test_grid_structure():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    grid = BilateralGrid(img, 8, 16, 8)
    # Vertices are exactly the distinct 5-D cells of the pixels.
    yuv = rgb_to_yuv(img)
    yy, xx = np.mgrid[:40, :56]
    coords = np.stack([(xx / 8).astype(int), (yy / 8).astype(int), (yuv[..., 0] / 16).astype(int),
                       (yuv[..., 1] / 8).astype(int), (yuv[..., 2] / 8).astype(int)],
                      -1).reshape(-1, 5)
    cells = {tuple(c) for c in coords}
    assert grid.num_vertices == len(cells)
    # pixels share a vertex iff they share a cell
    by_vertex = {}
    for v, c in zip(grid.pixel_to_vertex, map(tuple, coords)):
        assert by_vertex.setdefault(v, c) == c
    # neighbours: symmetric, one axis differs by exactly one
    nb = grid.neighbours.tocoo()
    assert (grid.neighbours != grid.neighbours.T).nnz == 0
    vcoord = {v: np.array(c) for v, c in by_vertex.items()}
    for i, j in zip(nb.row, nb.col):
        assert np.abs(vcoord[i] - vcoord[j]).sum() == 1
    n_edges = sum(1 for c in cells for d in range(5)
                  if tuple(np.add(c,
                                  np.eye(5, dtype=int)[d])) in cells)
    assert grid.num_edges == n_edges
    # splat / slice are adjoint
    x = rng.random(grid.num_pixels)
    y = rng.random(grid.num_vertices)
    assert grid.splat(x) @ y == pytest.approx(x @ grid.slice(y))
    # bistochastization: n * blur(n) == splat(1) after convergence-ish
    n, m = bistochastize(grid)
    np.testing.assert_allclose(m, n * grid.blur(n))


def test_constant_target_is_preserved():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    out = bilateral_solver(img, np.full((32, 48), 0.7))
    np.testing.assert_allclose(out, 0.7, atol=1e-6)
    zero = bilateral_solver(img, np.zeros((32, 48)))
    assert not zero.any()


def test_postprocess_quirks():
    img = np.full((24, 24, 3), 128, np.uint8)  # flat image: a few vertices
    # Empty result: largest-cc mode returns the whole image (upstream quirk),
    # all-cc mode returns nothing.
    _, binary = bilateral_solver_output(img, np.zeros((24, 24)), get_all_cc=False)
    assert binary.all()
    _, binary = bilateral_solver_output(img, np.zeros((24, 24)), get_all_cc=True)
    assert not binary.any()


def test_refine_gate_and_batch():
    z = _load('bs_found_72x96_soft_allcc.npz')
    img, target = z['image'], z['target']
    refined, iou = refine_mask_with_bilateral_solver(img, target, get_all_cc=True)
    assert iou == pytest.approx(float(z['iou_target_vs_binary']), abs=1e-6)
    np.testing.assert_array_equal(refined, z['binary_solver'])
    kept, iou2 = refine_mask_with_bilateral_solver(img, target, iou_gate=0.99)
    assert iou2 == iou
    np.testing.assert_array_equal(kept, target)

    imgs = torch.from_numpy(np.stack([img, img])).permute(0, 3, 1, 2)  # (B,3,H,W)
    masks = torch.from_numpy(np.stack([target, np.zeros_like(target)]))
    out, used = batch_bilateral_solver(imgs, masks, get_all_cc=True, return_used=True)
    assert isinstance(out, torch.Tensor) and out.shape == masks.shape
    assert used.tolist() == [True, False]
    np.testing.assert_array_equal(out[0].numpy(), z['binary_solver'].astype(float))
    np.testing.assert_array_equal(out[1].numpy(), 0)
    # channel-last numpy input, low-resolution masks (FOUND training path)
    low = torch.nn.functional.interpolate(
        torch.from_numpy(target)[None, None].float(),
        size=(9, 12),
        mode='bilinear',
        align_corners=False)[0, 0].numpy() > 0.5
    out_low = batch_bilateral_solver(np.stack([img]), low[None])
    assert out_low.shape == (1, 9, 12) and out_low.dtype == bool


def test_bad_inputs():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match='target shape'):
        bilateral_solver(img, np.zeros((8, 9)))
    with pytest.raises(ValueError, match='image'):
        bilateral_solver(np.zeros((8, 8), np.uint8), np.zeros((8, 8)))
    with pytest.raises(TypeError):
        bilateral_solver(img.astype(np.float32), np.zeros((8, 8)))
    with pytest.raises(ValueError):
        batch_bilateral_solver(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 8, 8)))
