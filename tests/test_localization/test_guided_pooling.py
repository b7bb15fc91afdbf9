# Copyright (c) mmuol contributors. All rights reserved.
"""Guided pooling, background rule, classification and training targets of
CLIP-DINOiser against the official code (golden cases 3, 4, 5 and 6)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmuol.localization.clip_dinoiser import (clip_dinoiser_losses, dino_correlation_target,
                                              found_background_target)
from mmuol.localization.guided_pooling import (background_rule, guided_pool, patch_correlations,
                                               threshold_correlations)
from mmuol.localization.maskclip import classify_patches
from mmuol.testing.localization import load_golden

ATOL = 1e-5


def _t(a):
    return torch.from_numpy(np.asarray(a))


def _value_features(qkv: np.ndarray, num_heads: int, grid_hw) -> torch.Tensor:
    """DINO value features ``(B, C, h, w)`` from a qkv Linear output (B, 1+N, 3C)."""
    qkv = _t(qkv)
    b, t, _ = qkv.shape
    v = qkv.reshape(b, t, 3, num_heads, -1)[:, :, 2].reshape(b, t, -1)[:, 1:]
    return v.transpose(1, 2).reshape(b, -1, *grid_hw)


@pytest.fixture(scope='module')
def dino_case():
    return load_golden('clip_dinoiser/dino_corr_pool')[0]


def test_dino_value_correlations(dino_case):
    z = dino_case
    hw = tuple(int(s) for s in z['feat_hw'])
    feats = _value_features(z['qkv'], int(z['num_heads']), hw)
    np.testing.assert_allclose(
        F.normalize(feats.flatten(2), dim=1).numpy(), z['dino_feats_normalized'], atol=ATOL)
    corrs = patch_correlations(feats, gamma=float(z['gamma']))
    assert corrs.shape == (1, hw[0] * hw[1], hw[0] * hw[1])
    np.testing.assert_allclose(corrs.reshape(1, -1, *hw).numpy(), z['corrs_thresholded'], atol=ATOL)
    # gamma zeroes negatives and small positives; the rest is the raw cosine.
    raw = patch_correlations(feats.flatten(2))
    assert torch.equal(threshold_correlations(raw, 0.2), corrs)
    assert bool((raw < 0).any()) and not bool((corrs < 0).any())
    assert torch.allclose(torch.diagonal(corrs[0]), torch.ones(hw[0] * hw[1]), atol=1e-6)


def test_guided_pool_matches_official(dino_case):
    z = dino_case
    hw = tuple(int(s) for s in z['feat_hw'])
    corrs = _t(z['corrs_thresholded'])  # official (B, N, h, w) layout
    pooled = guided_pool(_t(z['maskclip_feats']), corrs)
    np.testing.assert_allclose(pooled.numpy(), z['pooled'], atol=ATOL)
    # (B, N, N) layout + explicit grid; low-res features resized bilinearly first.
    flat = corrs.reshape(1, corrs.shape[1], -1)
    np.testing.assert_allclose(
        guided_pool(_t(z['maskclip_feats']), flat, hw).numpy(), z['pooled'], atol=ATOL)
    low = guided_pool(_t(z['maskclip_feats_lowres']), flat, hw)
    assert low.shape == (1, 16, *hw)
    np.testing.assert_allclose(low.numpy(), z['pooled_lowres'], atol=ATOL)


def test_guided_pool_is_batched_and_exact():
    """One batched product equals the per-patch definition, image by image."""
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 5, 4, 6, generator=g)
    corrs = patch_correlations(torch.randn(3, 7, 4, 6, generator=g), gamma=0.2)
    pooled = guided_pool(feats, corrs)
    for b in range(3):
        f = feats[b].reshape(5, -1)
        for n in (0, 7, 23):
            w = corrs[b, n]
            expect = (f * w).sum(1) / (w.sum() + 1e-6)
            assert torch.allclose(pooled[b].reshape(5, -1)[:, n], expect, atol=1e-6)
        assert torch.allclose(pooled[b:b + 1], guided_pool(feats[b:b + 1], corrs[b:b + 1]))


def test_cls_seg_matches_official():
    z, _ = load_golden('clip_dinoiser/cls_seg')
    probs = classify_patches(_t(z['feats']), _t(z['text_embeddings']))
    np.testing.assert_allclose(probs.numpy(), z['probs'], atol=1e-4)
    assert np.array_equal(probs.argmax(1).numpy(), z['argmax'])


@pytest.mark.parametrize('tag', ['448', '224'])
def test_background_rule_matches_official(tag):
    z, meta = load_golden('clip_dinoiser/clip_dinoiser_forward')
    assert meta['class_names'][0] == 'background'
    probs = _t(z[f'probs_nofound_{tag}'])
    out = background_rule(probs, _t(z[f'bkg_logits_{tag}']), delta=0.99, background_index=0)
    np.testing.assert_allclose(out.numpy(), z[f'probs_found_{tag}'], atol=1e-6)
    assert np.array_equal(out.argmax(1).numpy(), z[f'argmax_found_{tag}'])
    changed = int((out.argmax(1) != probs.argmax(1)).sum())
    assert changed == {'448': 53, '224': 19}[tag]  # SPEC: patches whose argmax changes
    assert torch.equal(probs, _t(z[f'probs_nofound_{tag}']))  # input untouched


def test_background_rule_batches_and_index():
    g = torch.Generator().manual_seed(1)
    probs = torch.randn(2, 4, 3, 5, generator=g).softmax(1)
    bkg = torch.randn(2, 1, 3, 5, generator=g)
    out = background_rule(probs, bkg, delta=0.99, background_index=2)
    set_mask = (probs.max(1).values < 0.99) & (bkg[:, 0].sigmoid() <= 0.5)
    assert bool(set_mask.any()) and bool((~set_mask).any())
    assert torch.equal(out[:, 2][set_mask], torch.ones(int(set_mask.sum())))
    assert torch.equal(out[:, 2][~set_mask], probs[:, 2][~set_mask])
    assert torch.equal(out[:, [0, 1, 3]], probs[:, [0, 1, 3]])
    for b in range(2):  # per image = batched
        assert torch.equal(out[b:b + 1], background_rule(probs[b:b + 1], bkg[b:b + 1], 0.99, 2))
    # low-res objectness is resized to the probability grid
    up = background_rule(probs, bkg[..., :2, :3], 0.99, 0)
    assert up.shape == probs.shape


def test_training_targets_and_losses_match_official():
    z, _ = load_golden('clip_dinoiser/train_losses')
    feats = _value_features(z['qkv'], int(z['num_heads']), (14, 14))
    target = dino_correlation_target(feats, gamma=0.2)
    np.testing.assert_allclose(
        patch_correlations(feats, 0.2).reshape(1, -1, 14, 14).numpy(),
        z['dino_corrs_thresholded'],
        atol=ATOL)
    assert torch.equal(target.reshape(1, -1, 14, 14), _t(z['dino_corrs_thresholded'] > 0).float())
    found = _t(z['found_logits'])
    bkg_t = found_background_target(found, (14, 14), antialias=True)
    assert torch.equal(bkg_t, _t(z['found_target']))
    assert torch.equal(bkg_t, (_t(z['found_soft_resized']) > 0.5).float())
    bkg_t_old = found_background_target(found, (14, 14), antialias=False)
    assert torch.equal(bkg_t_old, (_t(z['found_soft_resized_noantialias']) > 0.5).float())
    assert not torch.equal(bkg_t, bkg_t_old)  # the torchvision 0.17 change matters
    # pred_corrs_clamped are the official logits (negatives already 0)
    pred = _t(z['pred_corrs_clamped']).reshape(1, 196, 196)
    preds_bkg = _t(z['preds_bkg'])
    losses = clip_dinoiser_losses(pred, preds_bkg, target, bkg_t)
    assert abs(float(losses['loss_corr']) - float(z['dino_loss'])) < 1e-6
    assert abs(float(losses['loss_bkg']) - float(z['found_loss'])) < 1e-6
    old = clip_dinoiser_losses(pred, preds_bkg, target, bkg_t_old)
    assert abs(float(old['loss_bkg']) - float(z['found_loss_noantialias'])) < 1e-6
    total = losses['loss_corr'] + losses['loss_bkg']
    assert abs(float(total) - float(z['loss'])) < 1e-6
    # negatives are clamped inside: shifting them further down changes nothing
    shifted = torch.where(pred == 0, torch.full_like(pred, -0.5), pred)
    again = clip_dinoiser_losses(shifted, preds_bkg, target, bkg_t)
    assert torch.equal(again['loss_corr'], losses['loss_corr'])


def test_bad_inputs_are_named():
    feats = torch.randn(1, 4, 3, 3)
    with pytest.raises(ValueError, match='features must be'):
        patch_correlations(torch.randn(4, 3))
    with pytest.raises(ValueError, match='grid'):
        guided_pool(feats, torch.rand(1, 10, 10))
    with pytest.raises(ValueError, match='batch'):
        guided_pool(feats, torch.rand(2, 9, 9))
    with pytest.raises(ValueError, match='background_index'):
        background_rule(torch.rand(1, 3, 2, 2), torch.rand(1, 1, 2, 2), background_index=3)
    with pytest.raises(ValueError, match='differ'):
        clip_dinoiser_losses(
            torch.rand(1, 4, 4), torch.rand(1, 1, 2, 2), torch.rand(1, 4, 3),
            torch.rand(1, 1, 2, 2))
    with pytest.raises(ValueError, match='do not match'):
        classify_patches(torch.randn(1, 5, 2, 2), torch.randn(3, 4))
