# Copyright (c) mmuol contributors. All rights reserved.
"""STEGO's algorithm core (mmuol.localization.stego) against the official
code's golden vectors, torchvision's transforms and hand-made cases."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmuol.localization.stego import (cluster_log_probs, cluster_probe_inner, cluster_probe_loss,
                                      correspondence_term, draw_knn_partner, feature_correlation,
                                      five_crop_boxes, global_descriptors, knn_table,
                                      nearest_indices, resize_center_crop_indices, sample_points,
                                      stego_correspondence_loss, super_perm, tokens_to_feature_map)
from mmuol.testing.golden import load_golden

AREA = 'stego_dsm'
CORR_CASES = [
    'stego_corrloss_b3_c24_d6_s5_train.npz', 'stego_corrloss_b4_c16_d5_s4_nopw_noclamp_stab.npz',
    'stego_corrloss_b4_c64_d16_s11_coco.npz'
]


def _load(name):
    return load_golden(f'{AREA}/{name}')


def _t(z, key):
    return torch.from_numpy(z[key])


def _loss_kwargs(cfg):
    keys = ('feature_samples', 'neg_samples', 'pos_intra_shift', 'pos_inter_shift',
            'neg_inter_shift', 'pos_intra_weight', 'pos_inter_weight', 'neg_inter_weight',
            'pointwise', 'zero_clamp')
    kw = {k: cfg[k] for k in keys}
    kw['stabilize'] = cfg['stabalize']
    return kw


@pytest.mark.parametrize('name', CORR_CASES)
def test_correspondence_loss_golden(name):
    z, meta = _load(name)
    code = _t(z, 'orig_code').clone().requires_grad_(True)
    res = stego_correspondence_loss(
        _t(z, 'orig_feats'),
        _t(z, 'orig_feats_pos'),
        code,
        _t(z, 'orig_code_pos'),
        coords1=_t(z, 'coords1'),
        coords2=_t(z, 'coords2'),
        perms=_t(z, 'perms'),
        **_loss_kwargs(meta['cfg']))
    res.total.backward()
    for ours, key in ((res.total, 'total_loss'), (res.pos_intra, 'pos_intra_loss'),
                      (res.pos_inter, 'pos_inter_loss'), (res.neg_inter, 'neg_inter_loss_mean'),
                      (res.pos_intra_cd.mean(), 'pos_intra_cd_mean'),
                      (res.pos_inter_cd.mean(), 'pos_inter_cd_mean'), (res.neg_inter_cd.mean(),
                                                                       'neg_inter_cd_mean')):
        assert float(ours) == pytest.approx(float(z[key]), abs=1e-6), key
    assert tuple(res.neg_inter_cd.shape) == tuple(z['neg_inter_loss_shape'])
    np.testing.assert_allclose(code.grad.numpy(), z['grad_code'], atol=1e-6, rtol=0)
    if 'pos_intra_cd' in z:  # small cases store the full tensors
        for ours, key in ((res.pos_intra_cd, 'pos_intra_cd'), (res.pos_inter_cd, 'pos_inter_cd'),
                          (res.neg_inter_cd, 'neg_inter_cd')):
            np.testing.assert_allclose(ours.detach().numpy(), z[key], atol=1e-5, rtol=0)


@pytest.mark.parametrize('name', CORR_CASES)
def test_sampling_and_single_term_golden(name):
    z, meta = _load(name)
    cfg = meta['cfg']
    own = torch.arange(z['orig_feats'].shape[0])
    for key, src, coords in (('feats_s', 'orig_feats',
                              'coords1'), ('code_s', 'orig_code',
                                           'coords1'), ('feats_pos_s', 'orig_feats_pos', 'coords2'),
                             ('code_pos_s', 'orig_code_pos', 'coords2')):
        got = sample_points(_t(z, src), own, _t(z, coords))
        np.testing.assert_allclose(got.numpy(), z[key], atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        feature_correlation(_t(z, 'feats_s'), _t(z, 'feats_pos_s')).numpy(),
        z['fd_pos_inter_raw'],
        atol=1e-5,
        rtol=0)
    loss, cd = correspondence_term(
        _t(z, 'feats_s'), _t(z, 'feats_pos_s'), _t(z, 'code_s'), _t(z, 'code_pos_s'),
        cfg['pos_inter_shift'], cfg['pointwise'], cfg['zero_clamp'], cfg['stabalize'])
    np.testing.assert_allclose(loss.numpy(), z['helper_pos_inter_loss'], atol=1e-5, rtol=0)
    np.testing.assert_allclose(cd.numpy(), z['helper_pos_inter_cd'], atol=1e-5, rtol=0)
    if 'neg_inter_loss' in z:  # the batched negatives equal per-draw terms
        loss_parts = []
        for perm in _t(z, 'perms'):
            f2 = sample_points(_t(z, 'orig_feats'), perm, _t(z, 'coords2'))
            c2 = sample_points(_t(z, 'orig_code'), perm, _t(z, 'coords2'))
            loss_parts.append(
                correspondence_term(
                    _t(z, 'feats_s'), f2, _t(z, 'code_s'), c2, cfg['neg_inter_shift'],
                    cfg['pointwise'], cfg['zero_clamp'], cfg['stabalize'])[0])
        np.testing.assert_allclose(
            torch.cat(loss_parts).numpy(), z['neg_inter_loss'], atol=1e-5, rtol=0)


def test_sample_points_equals_grid_sample_border():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 5, 7, 9, generator=g)
    coords = torch.rand(4, 6, 6, 2, generator=g) * 2.4 - 1.2  # some points outside [-1, 1]
    index = torch.tensor([2, 0, 0, 1])
    ref = F.grid_sample(
        maps[index],
        coords.permute(0, 2, 1, 3),
        mode='bilinear',
        padding_mode='border',
        align_corners=True)
    np.testing.assert_allclose(sample_points(maps, index, coords).numpy(), ref.numpy(), atol=1e-6)


def test_super_perm_never_keeps_an_index():
    g = torch.Generator().manual_seed(1)
    for size in (2, 3, 7, 16):
        for _ in range(20):
            perm = super_perm(size, generator=g)
            assert perm.dtype == torch.int64 and perm.shape == (size, )
            assert not (perm == torch.arange(size)).any()
            assert perm.min() >= 0 and perm.max() < size


def test_random_draws_are_reproducible_with_a_generator():
    g = torch.Generator().manual_seed(0)
    feats, feats_pos = torch.randn(4, 8, 5, 5, generator=g), torch.randn(4, 8, 5, 5, generator=g)
    code, code_pos = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 3, 5, 5, generator=g)
    a = stego_correspondence_loss(
        feats,
        feats_pos,
        code,
        code_pos,
        feature_samples=4,
        neg_samples=2,
        generator=torch.Generator().manual_seed(5))
    b = stego_correspondence_loss(
        feats,
        feats_pos,
        code,
        code_pos,
        feature_samples=4,
        neg_samples=2,
        generator=torch.Generator().manual_seed(5))
    c = stego_correspondence_loss(
        feats,
        feats_pos,
        code,
        code_pos,
        feature_samples=4,
        neg_samples=2,
        generator=torch.Generator().manual_seed(6))
    assert float(a.total) == float(b.total) != float(c.total)
    with pytest.raises(ValueError, match='coords1 must be'):
        stego_correspondence_loss(
            feats, feats_pos, code, code_pos, feature_samples=4, coords1=torch.zeros(3, 4, 4, 2))
    with pytest.raises(ValueError, match='feature grid'):
        stego_correspondence_loss(feats, feats_pos, code[..., :4], code_pos[..., :4])


@pytest.mark.parametrize('name', ['stego_cluster_d6_k5.npz', 'stego_cluster_d70_k27.npz'])
def test_cluster_probe_golden(name):
    z, _ = _load(name)
    clusters = _t(z, 'clusters').clone().requires_grad_(True)
    loss, probs = cluster_probe_loss(cluster_probe_inner(_t(z, 'x'), clusters), None)
    loss.backward()
    assert float(loss) == pytest.approx(float(z['loss_alpha_none']), abs=1e-5)
    np.testing.assert_array_equal(probs.detach().numpy(), z['probs_alpha_none'])
    np.testing.assert_allclose(clusters.grad.numpy(), z['grad_clusters_alpha_none'], atol=1e-5)
    inner = cluster_probe_inner(_t(z, 'x'), _t(z, 'clusters'))
    loss3, probs3 = cluster_probe_loss(inner, 3)
    assert float(loss3) == pytest.approx(float(z['loss_alpha_3']), abs=1e-5)
    np.testing.assert_allclose(probs3.numpy(), z['probs_alpha_3'], atol=1e-5)
    log_probs = cluster_log_probs(inner, 2)
    np.testing.assert_allclose(log_probs.numpy(), z['log_probs_alpha_2'], atol=1e-5)
    np.testing.assert_array_equal(log_probs.argmax(1).numpy(), z['argmax_alpha_2'])


def test_feature_maps_golden():
    z, _ = _load('stego_head_feat_nonlinear_6x5.npz')
    np.testing.assert_array_equal(
        tokens_to_feature_map(_t(z, 'tokens'), (6, 5)).numpy(), z['image_feat'])
    z, _ = _load('stego_head_KK_linear_4x4.npz')
    qkv = _t(z, 'qkv')  # (3, B, heads, T, d): keys concatenated head-major, as DINOViT's k
    keys = qkv[1].permute(0, 2, 1, 3).reshape(1, 17, 6 * 64)
    np.testing.assert_array_equal(tokens_to_feature_map(keys, (4, 4)).numpy(), z['image_feat'])
    with pytest.raises(ValueError, match='prefix tokens'):
        tokens_to_feature_map(keys, (4, 5))


def test_five_crop_boxes_match_torchvision():
    from PIL import Image
    from torchvision.transforms.functional import five_crop
    rng = np.random.default_rng(0)
    for h, w, ratio in ((37, 53, 0.5), (480, 640, 0.5), (21, 20, 0.7), (9, 5, 0.5)):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        boxes = five_crop_boxes(h, w, ratio)
        ref = five_crop(Image.fromarray(img), [int(h * ratio), int(w * ratio)])
        for (top, left, ch, cw), crop in zip(boxes, ref):
            np.testing.assert_array_equal(img[top:top + ch, left:left + cw], np.array(crop))
    with pytest.raises(ValueError, match='too small'):
        five_crop_boxes(1, 5, 0.5)
    with pytest.raises(ValueError, match='crop_ratio'):
        five_crop_boxes(10, 10, 1.5)


def test_resize_center_crop_matches_torchvision_nearest():
    import torchvision.transforms as T
    from PIL import Image
    rng = np.random.default_rng(1)
    for h, w, size in ((100, 77, 32), (480, 640, 224), (640, 298, 224), (13, 9, 20), (40, 41, 40)):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        ref = T.CenterCrop(size)(T.Resize(size, T.InterpolationMode.NEAREST)(Image.fromarray(img)))
        rows, cols = resize_center_crop_indices(h, w, size)
        np.testing.assert_array_equal(img[rows][:, cols], np.array(ref))
    # PIL walks a running sum: index 223 of 640 -> 298 is 479, not 480
    assert nearest_indices(640, 298)[223] == 479


def test_knn_table_and_partner_draw():
    desc = global_descriptors(
        torch.tensor([[[[1.0]], [[0.0]]], [[[0.9]], [[0.1]]], [[[0.0]], [[1.0]]], [[[0.1]],
                                                                                   [[0.8]]]]))
    np.testing.assert_allclose(desc.norm(dim=1).numpy(), np.ones(4), atol=1e-6)
    nns = knn_table(desc, k=3, chunk_size=3)
    np.testing.assert_array_equal(nns[:, :2].numpy(), [[0, 1], [1, 0], [2, 3], [3, 2]])
    with pytest.raises(ValueError, match='k=5'):
        knn_table(desc, k=5)
    rng = np.random.default_rng(0)
    draws = {draw_knn_partner([9, 4, 6, 8], 2, rng) for _ in range(50)}
    assert draws == {4, 6}  # positions 1..2, never the image itself
    np.random.seed(0)
    assert draw_knn_partner([9, 4, 6, 8], 1, np.random) == 4
    with pytest.raises(ValueError, match='num_neighbors=4'):
        draw_knn_partner([9, 4, 6, 8], 4, rng)
