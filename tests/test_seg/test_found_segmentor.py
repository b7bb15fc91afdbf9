# Copyright (c) mmuol contributors. All rights reserved.
"""FOUNDSegmentor: key extraction, inference modes, on-the-fly training."""
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from scipy import ndimage

import mmuol.seg  # noqa: F401
from mmuol.localization import found_background, found_single_component
from mmuol.testing.seg_data import tiny_found_segmentor_cfg

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')
    torch.manual_seed(0)


def _official_single(binary: np.ndarray) -> np.ndarray:
    """Transcription of FOUND's evaluation/saliency.py 'single' branch."""
    preds_up = torch.from_numpy(binary.astype(np.float32))[None]
    labeled, nr_objects = ndimage.label(preds_up.squeeze().numpy())
    if nr_objects == 0:
        return preds_up.squeeze().numpy().astype(bool)
    nb_pixel = [np.sum(labeled == i) for i in range(nr_objects + 1)]
    pixel_order = np.argsort(nb_pixel)
    cc = torch.stack([torch.Tensor(labeled == i) for i in pixel_order])
    cc_background = ((((~(preds_up[None, :, :, :].bool())).float() + cc[:, None, :, :])
                      > 1).sum(-1).sum(-1).argmax())
    pixel_order = np.delete(pixel_order, int(cc_background.numpy()))
    return labeled == pixel_order[-1]


def test_single_component_matches_official():
    rng = np.random.default_rng(0)
    cases = [np.zeros((6, 7), bool), np.ones((5, 4), bool)]
    two = np.zeros((8, 8), bool)
    two[1:3, 1:3] = two[5:7, 5:7] = True  # equal sizes: tie-breaking
    cases.append(two)
    cases += [rng.random((20, 30)) > p for p in (0.3, 0.5, 0.7, 0.9)]
    for binary in cases:
        np.testing.assert_array_equal(found_single_component(binary), _official_single(binary))
    # Drops the background, keeps the largest foreground component.
    m = np.zeros((10, 10), bool)
    m[0:2, 0:2] = True
    m[5:10, 5:10] = True
    kept = found_single_component(m)
    assert kept.sum() == 25 and kept[9, 9] and not kept[0, 0]


def test_extract_feat_returns_last_block_keys():
    model = MODELS.build(tiny_found_segmentor_cfg()).eval()
    x = torch.randn(2, 3, 40, 56)
    feats = model.extract_feat(x)
    out = model.backbone.forward_last_block(x, with_qkv=True, with_attn=True)
    keys = out.patch_keys.transpose(1, 2).reshape(2, 48, 5, 7)
    assert len(feats) == 1
    torch.testing.assert_close(feats[0], keys)
    # CLS attention recomputed from q/k equals the full attention's row.
    fmap, cls_attn, grid = model._last_block(x, with_cls_attn=True)
    assert grid == (5, 7)
    torch.testing.assert_close(cls_attn, out.cls_attn, atol=1e-6, rtol=1e-5)
    # q / v variants.
    model_q = MODELS.build(tiny_found_segmentor_cfg(feature='v')).eval()
    model_q.load_state_dict(model.state_dict())
    v = out.v[:, 1:].transpose(1, 2).reshape(2, 48, 5, 7)
    torch.testing.assert_close(model_q.extract_feat(x)[0], v)


def test_bad_configs():
    with pytest.raises(ValueError, match='feature'):
        MODELS.build(tiny_found_segmentor_cfg(feature='x'))
    with pytest.raises(ValueError, match='saliency_mode'):
        MODELS.build(tiny_found_segmentor_cfg(test_cfg=dict(saliency_mode='foo')))
    cfg = tiny_found_segmentor_cfg()
    cfg['decode_head']['patch_size'] = 16
    with pytest.raises(ValueError, match='patch size'):
        MODELS.build(cfg)
    cfg = tiny_found_segmentor_cfg()
    cfg['backbone'] = dict(type='ResNetV1c', depth=18, out_indices=(3, ))
    cfg['decode_head']['in_channels'] = 512
    with pytest.raises(TypeError, match='last_block_maps'):
        MODELS.build(cfg)


def _samples(shapes):
    return [
        SegDataSample(
            metainfo=dict(ori_shape=s, img_shape=s, pad_shape=s, padding_size=[0, 0, 0, 0]))
        for s in shapes
    ]


@pytest.mark.parametrize('mode', ['single', 'multi'])
@pytest.mark.parametrize('bs', [False, True])
def test_predict_modes(mode, bs):
    model = MODELS.build(
        tiny_found_segmentor_cfg(test_cfg=dict(saliency_mode=mode, bilateral_solver=bs))).eval()
    x = torch.randn(1, 3, 37, 45) * 0.5
    with torch.no_grad():
        out = model.predict(x, _samples([(37, 45)]))[0]
        soft = model.predict_saliency(x)[0]
    assert out.seg_logits.shape == (37, 45)
    torch.testing.assert_close(out.seg_logits.data, soft)
    sal = out.pred_saliency.data
    assert sal.shape == (1, 37, 45) and sal.dtype == torch.float32
    assert out.pred_sem_seg.data.dtype == torch.int64
    torch.testing.assert_close(out.pred_sem_seg.data, (sal > 0.5).long())
    if mode == 'multi' and not bs:
        torch.testing.assert_close(sal, soft)
    elif mode == 'single' and not bs:
        expected = found_single_component((soft[0] > 0.5).numpy())
        np.testing.assert_array_equal(sal[0].numpy().astype(bool), expected)
    else:
        assert set(sal.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize('mode', ['single', 'multi'])
def test_head_threshold_binarises_predictions(mode):
    """FOUNDHead.threshold (one place) decides the binary prediction."""
    cfg = tiny_found_segmentor_cfg(test_cfg=dict(saliency_mode=mode))
    cfg['decode_head']['threshold'] = 0.55
    model = MODELS.build(cfg).eval()
    x = torch.randn(1, 3, 40, 48) * 0.5
    with torch.no_grad():
        soft = model.predict_saliency(x)[0, 0]
        out = model.predict(x, _samples([(40, 48)]))[0]
    binary = (soft > 0.55).numpy()
    expected = found_single_component(binary) if mode == 'single' else binary
    assert 0 < expected.sum() < (soft > 0.5).sum()  # the threshold matters here
    np.testing.assert_array_equal(out.pred_sem_seg.data[0].numpy().astype(bool), expected)


def test_predict_crops_padding_and_restores_resize():
    """Batch padding (SegDataPreProcessor) is removed like FOUND's crop; a
    resizing pipeline is undone to ``ori_shape``."""
    model = MODELS.build(tiny_found_segmentor_cfg(test_cfg=dict(saliency_mode='multi'))).eval()
    x = torch.randn(1, 3, 35, 45)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 5))
    meta = dict(img_shape=(35, 45), pad_shape=(40, 48), img_padding_size=[0, 3, 0, 5])
    with torch.no_grad():
        ref = model.predict_saliency(x)[0]
        out = model.predict(padded, [SegDataSample(metainfo=dict(meta, ori_shape=(35, 45)))])[0]
        resized = model.predict(padded, [SegDataSample(metainfo=dict(meta, ori_shape=(70, 90)))])[0]
    torch.testing.assert_close(out.seg_logits.data, ref)
    assert resized.pred_saliency.shape == (70, 90)
    # A flipping test pipeline is undone.
    with torch.no_grad():
        flipped = model.predict(x, [
            SegDataSample(
                metainfo=dict(
                    ori_shape=(35, 45), img_shape=(35, 45), flip=True, flip_direction='horizontal'))
        ])[0]
    torch.testing.assert_close(flipped.seg_logits.data, ref.flip(-1))
    # Without metas: the input size.
    with torch.no_grad():
        out = model.predict(torch.randn(2, 3, 16, 24))
    assert len(out) == 2 and out[0].pred_sem_seg.shape == (16, 24)


def test_image_smaller_than_a_patch():
    model = MODELS.build(tiny_found_segmentor_cfg()).eval()
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 5, 3), _samples([(5, 3)]))[0]
    assert out.pred_saliency.shape == (5, 3)


def test_solver_images_round_trip():
    model = MODELS.build(tiny_found_segmentor_cfg())
    pre = model.data_preprocessor
    img = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    norm = (img.float() - pre.mean) / pre.std
    torch.testing.assert_close(model.solver_images(norm, rounding=True), img)
    trunc = model.solver_images(norm, rounding=False)
    assert ((img.int() - trunc.int()) >= 0).all()
    assert ((img.int() - trunc.int()) <= 1).all()


def test_solver_images_without_normalisation():
    """No mean/std in the preprocessor: inputs are raw pixels, BGR as loaded."""
    cfg = tiny_found_segmentor_cfg()
    cfg['data_preprocessor'] = dict(type='SegDataPreProcessor', bgr_to_rgb=False, size_divisor=8)
    model = MODELS.build(cfg)
    assert getattr(model.data_preprocessor, 'mean', None) is None
    rgb = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
    bgr = rgb.flip(1).float()
    torch.testing.assert_close(model.solver_images(bgr, rounding=True), rgb)


def test_solver_images_replay_found_training_crops():
    """rounding=False == FOUND's training image for the bilateral solver:
    ToTensor + NORMALIZE (datasets), unnormalize (datasets/utils.py), then
    ToPILImage's truncating mul(255).byte() (misc.apply_bilateral_solver)."""
    from torchvision import transforms as T
    model = MODELS.build(tiny_found_segmentor_cfg())
    pre = model.data_preprocessor
    # Every 8-bit value in every channel (RGB, as FOUND's PIL crops).
    rgb = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16).repeat(3, 1, 1)
    rgb[1] = rgb[1].flip(-1)
    normalize = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    img_t = T.Compose([T.ToTensor(), normalize])(rgb.permute(1, 2, 0).numpy())
    unnorm = torch.clone(img_t)
    for t, m, s in zip(unnorm, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)):
        t.mul_(s).add_(m)
    official = torch.from_numpy(np.array(T.ToPILImage()(unnorm))).permute(2, 0, 1)
    assert (official != rgb).any()  # the truncation does bite
    # mmuol: the crop normalised by the segmentor's preprocessor (bgr_to_rgb).
    norm = (rgb.float()[None] - pre.mean) / pre.std
    torch.testing.assert_close(
        model.solver_images(norm, rounding=False)[0], official, rtol=0, atol=0)
    torch.testing.assert_close(model.solver_images(norm, rounding=True)[0], rgb)


def _fresh_hub(**info):
    hub = MessageHub.get_instance(f'found-test-{uuid.uuid4().hex}')
    for k, v in info.items():
        hub.update_info(k, v)
    return hub


def test_training_losses_and_schedule_switch():
    model = MODELS.build(tiny_found_segmentor_cfg(train_cfg=dict(stop_bkg_loss=2))).train()
    x = torch.randn(2, 3, 32, 32)
    _fresh_hub()  # no training loop: the module counts its own calls
    assert model.current_iter() == 0
    params = list(model.decode_head.parameters())
    seen = []
    for step in range(3):
        losses = model.loss(x, None)
        seen.append({k: float(v) for k, v in losses.items()})
        total = sum(v for k, v in losses.items() if 'loss' in k)
        total.backward()
        assert all(p.grad is not None for p in params)
        assert not any(p.requires_grad for p in model.backbone.parameters())
        for p in params:
            p.grad = None
    assert model.current_iter() == 3
    assert set(seen[0]) == {
        'decode.loss_bs', 'decode.loss_bkg', 'decode.loss_self', 'decode.bs_used_self',
        'decode.bs_used_bkg'
    }
    assert seen[0]['decode.loss_bkg'] > 0 and seen[0]['decode.loss_self'] == 0
    assert seen[1]['decode.loss_bkg'] > 0
    assert seen[2]['decode.loss_bkg'] == 0 and seen[2]['decode.loss_self'] > 0
    # Inside a runner's training loop the MessageHub iteration wins.
    _fresh_hub(loop_stage='train', iter=150)
    model2 = MODELS.build(tiny_found_segmentor_cfg()).train()
    assert model2.current_iter() == 150
    losses = model2.loss(x, None)
    assert float(losses['decode.loss_bkg']) == 0
    assert float(losses['decode.loss_self']) > 0
    _fresh_hub(loop_stage='train', iter=99)
    losses = model2.loss(x, None)
    assert float(losses['decode.loss_bkg']) > 0
    _fresh_hub()


def _train_recipe():
    cfg = Config.fromfile(str(REPO / 'configs/found/found_dino-vits8_1xb50-500it_duts-tr.py'))
    return cfg.model.train_cfg.to_dict()


#: FOUND's settings (configs/found_DUTS-TR.yaml upstream) and a changed recipe.
FOUND_SOLVER = dict(sigma_spatial=16, sigma_luma=16, sigma_chroma=8, iou_gate=0.5)
CHANGED = dict(
    background=dict(tau=0.1, head_weights=False),
    bilateral_solver=dict(sigma_spatial=4, iou_gate=0.7))


@pytest.mark.parametrize('recipe', ['defaults', 'config', 'changed'])
def test_pseudo_labels_follow_found_recipe(monkeypatch, recipe):
    """bkg target = BS(~found_background) and bs target = BS(own mask), with
    FOUND's settings whether they come from the code's defaults or the config,
    and the config's values when it changes them."""
    import inspect

    import mmuol.seg.found_segmentor as fs
    train_cfg = dict(defaults=None, config=_train_recipe(), changed=CHANGED)[recipe]
    model = MODELS.build(tiny_found_segmentor_cfg(train_cfg=train_cfg)).train()
    x = torch.randn(2, 3, 32, 48)
    calls = []
    real_bs = fs.batch_bilateral_solver

    def fake_bs(images, masks, **kwargs):
        # The settings the real solver would use: its defaults, then ours.
        params = inspect.signature(real_bs).parameters.values()
        used = {p.name: p.default for p in params if p.default is not p.empty}
        used.update(kwargs)
        calls.append((images.clone(), masks.clone(), used))
        return masks, np.ones(len(masks), bool)

    monkeypatch.setattr(fs, 'batch_bilateral_solver', fake_bs)
    keys, cls_attn, grid = model._last_block(x, with_cls_attn=True)
    logits = model.decode_head(keys)
    targets, logs = model.pseudo_labels(x, logits, cls_attn, keys, 0)
    assert set(targets) == {'bs', 'bkg'} and logs['bs_used_bkg'] == 1.0
    own = (logits[:, 0].sigmoid() > 0.5).float()
    torch.testing.assert_close(calls[0][1], own)
    flat = keys.reshape(2, 48, -1).transpose(1, 2)
    bkg = dict(tau=0.3, head_weights=True) if recipe != 'changed' else CHANGED['background']
    obj = torch.stack([
        found_background(cls_attn[i], flat[i], grid, **bkg).object_mask for i in range(2)
    ]).float()
    torch.testing.assert_close(calls[1][1], obj)
    solver = FOUND_SOLVER if recipe != 'changed' else dict(FOUND_SOLVER, **
                                                           CHANGED['bilateral_solver'])
    for images, _, used in calls:
        assert images.dtype == torch.uint8 and images.shape == (2, 3, 32, 48)
        assert used['get_all_cc'] is True
        assert {k: used[k] for k in solver} == solver
    targets, _ = model.pseudo_labels(x, logits, None, keys, 100)
    assert set(targets) == {'bs', 'self'}
    torch.testing.assert_close(targets['self'], own)


def test_train_and_test_cfg_reject_unknown_keys():
    """A misspelt setting is an error, not silently FOUND's default."""
    with pytest.raises(KeyError, match=r'renamed to train_cfg\.background\.tau'):
        MODELS.build(tiny_found_segmentor_cfg(train_cfg=dict(bkg_tau=0.2)))
    with pytest.raises(KeyError, match='sigma_spatail'):
        MODELS.build(
            tiny_found_segmentor_cfg(train_cfg=dict(bilateral_solver=dict(sigma_spatail=8))))
    with pytest.raises(KeyError, match='tua'):
        MODELS.build(tiny_found_segmentor_cfg(train_cfg=dict(background=dict(tua=0.2))))
    with pytest.raises(KeyError, match='saliency_mod'):
        MODELS.build(tiny_found_segmentor_cfg(test_cfg=dict(saliency_mod='multi')))
    # Partial settings keep the other defaults.
    model = MODELS.build(
        tiny_found_segmentor_cfg(
            train_cfg=dict(bilateral_solver=dict(iou_gate=0.6)),
            test_cfg=dict(saliency_mode='multi')))
    assert model.train_cfg.stop_bkg_loss == 100
    assert dict(model.train_cfg.bilateral_solver) == dict(iou_gate=0.6)
    assert model.test_cfg.bilateral_solver is False and model.test_cfg.mode == 'whole'


def test_bilateral_solver_training_target_is_binary():
    """The real solver path: targets are 0/1 at patch resolution."""
    model = MODELS.build(tiny_found_segmentor_cfg()).train()
    # A bright square on a dark background, normalised.
    img = torch.full((1, 3, 64, 64), 40.0)
    img[..., 16:48, 16:48] = 220.0
    pre = model.data_preprocessor
    x = (img - pre.mean) / pre.std
    keys, cls_attn, _ = model._last_block(x, with_cls_attn=True)
    logits = torch.full((1, 1, 8, 8), -3.0)
    logits[..., 2:6, 2:6] = 3.0
    targets, logs = model.pseudo_labels(x, logits, cls_attn, keys, 0)
    for t in targets.values():
        assert t.shape == (1, 8, 8)
        assert set(t.unique().tolist()) <= {0.0, 1.0}
    assert logs['bs_used_self'] == 1.0
    # Solver refinement of a clean square is the square (grown by the
    # bilinear downsampling's "any non-zero" rule at most one patch).
    assert targets['bs'][0, 2:6, 2:6].all()
