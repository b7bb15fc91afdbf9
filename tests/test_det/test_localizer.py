# Copyright (c) mmuol contributors. All rights reserved.
"""UnsupervisedLocalizer and its adapters: core parity, batching, rescale."""
import inspect
import json

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope

from mmuol.det import (DEFAULT_MAX_PATCHES, BaseLocalizerAdapter, FOUNDHeadLocalizer,
                       LocalizerOutput, PatchFeatures, UnsupervisedLocalizer)
from mmuol.localization import (dino_seg, found_background, largest_component, lost, mask_to_box,
                                maskcut, tokencut)
from mmuol.testing import golden_path
from mmuol.testing.models import tiny_dino_vit_cfg

PS = 8
LOCALIZERS = {
    'LOSTLocalizer': dict(k_patches=100),
    'TokenCutLocalizer': dict(tau=0.2),
    'DINOSegLocalizer': dict(head=1),
    'FOUNDBkgLocalizer': dict(tau=0.3),
    'MaskCutLocalizer': dict(num_masks=3, tau=0.15),
    'FOUNDHeadLocalizer': dict(in_channels=48),
}


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def _write_decoder(path, channels=48, seed=0):
    """A FOUND decoder file in the official layout."""
    gen = torch.Generator().manual_seed(seed)
    torch.save(
        {
            'decoder': {
                'weight': torch.randn(1, channels, 1, 1, generator=gen),
                'bias': torch.tensor([0.1])
            }
        }, str(path))
    return str(path)


def _build(name, tmp_path=None, model_kwargs=None, **kwargs):
    """A tiny detector; ``kwargs`` go to the localizer, ``model_kwargs`` to the model."""
    loc = dict(type=name, **LOCALIZERS.get(name, {}))
    if name == 'FOUNDHeadLocalizer':
        loc['decoder_checkpoint'] = _write_decoder(tmp_path / 'dec.pt')
    loc.update(kwargs)
    model = MODELS.build(
        dict(
            type='UnsupervisedLocalizer',
            backbone=tiny_dino_vit_cfg(),
            localizer=loc,
            data_preprocessor=dict(
                type='DetDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True,
                pad_size_divisor=PS),
            **(model_kwargs or {})))
    model.init_weights()
    return model.eval()


def _image(hw, box, seed):
    """uint8 CHW image: dark noise with one bright rectangle."""
    gen = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 40, (3, *hw), generator=gen, dtype=torch.uint8)
    x0, y0, x1, y1 = box
    img[:, y0:y1, x0:x1] = torch.randint(
        200, 256, (3, y1 - y0, x1 - x0), generator=gen, dtype=torch.uint8)
    return img


def _batch(images, metas=None):
    samples = []
    for i, img in enumerate(images):
        meta = dict(img_shape=tuple(img.shape[-2:]), ori_shape=tuple(img.shape[-2:]), img_id=i)
        if metas:
            meta.update(metas[i])
        samples.append(DetDataSample(metainfo=meta))
    return dict(inputs=list(images), data_samples=samples)


IMAGES = [((44, 60), (16, 8, 48, 36)), ((48, 64), (8, 16, 40, 44)), ((37, 50), (4, 4, 30, 30))]


@pytest.mark.parametrize('name', list(LOCALIZERS))
def test_predict_contract(name, tmp_path):
    """Shapes/dtypes of pred_instances for every adapter."""
    model = _build(name, tmp_path)
    images = [_image(hw, box, i) for i, (hw, box) in enumerate(IMAGES)]
    with torch.no_grad():
        out = model.test_step(_batch(images))
    assert len(out) == len(images)
    for sample, img in zip(out, images):
        pred = sample.pred_instances
        h, w = img.shape[-2:]
        k = len(pred)
        assert pred.bboxes.shape == (k, 4) and pred.bboxes.dtype == torch.float32
        assert pred.scores.shape == (k, ) and pred.labels.shape == (k, )
        assert (pred.labels == 0).all()
        assert pred.masks.shape == (k, h, w) and pred.masks.dtype == torch.bool
        # Every image holds one bright rectangle: an empty result is a failure.
        assert 1 <= k <= (3 if name == 'MaskCutLocalizer' else 1)
        for box, mask in zip(pred.bboxes, pred.masks):
            assert mask.any()
            if name != 'DINOSegLocalizer':  # DINO-seg boxes are not clipped
                assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
                # The box is the tight box of its (patch) mask, clipped.
                ys, xs = torch.nonzero(mask, as_tuple=True)
                assert box[0] == xs.min() and box[1] == ys.min()
                assert box[2] == xs.max() + 1 and box[3] == ys.max() + 1


@pytest.mark.parametrize('name', list(LOCALIZERS))
def test_batch_equals_single_images(name, tmp_path):
    """Padding-aware batching: a batch gives each image's solo result."""
    model = _build(name, tmp_path)
    images = [_image(hw, box, i) for i, (hw, box) in enumerate(IMAGES)]
    with torch.no_grad():
        batched = model.test_step(_batch(images))
        single = [model.test_step(_batch([img]))[0] for img in images]
    for b, s in zip(batched, single):
        torch.testing.assert_close(b.pred_instances.bboxes, s.pred_instances.bboxes)
        torch.testing.assert_close(b.pred_instances.scores, s.pred_instances.scores)
        assert torch.equal(b.pred_instances.masks, s.pred_instances.masks)


def _features(model, img):
    """Keys / CLS attention of one image, computed directly."""
    data = model.data_preprocessor(_batch([img]), False)
    x = data['inputs']
    with torch.no_grad():
        out = model.backbone.forward_last_block(x)
    return out.patch_keys[0], out.cls_attn[0], out.grid_hw


def test_adapters_call_the_core(tmp_path):
    """Boxes equal the core function's mask -> mask_to_box."""
    img = _image((44, 60), (16, 8, 48, 36), 0)
    hw = (44, 60)
    for name, core in [
        ('LOSTLocalizer', lambda k, a, g: lost(k, g, k_patches=100).mask),
        ('TokenCutLocalizer', lambda k, a, g: tokencut(k, g, tau=0.2).mask),
        ('FOUNDBkgLocalizer',
         lambda k, a, g: largest_component(found_background(a, k, g, tau=0.3).object_mask)),
        ('MaskCutLocalizer', lambda k, a, g: maskcut(k, g, num_masks=3, tau=0.15)[0].mask),
    ]:
        model = _build(name, tmp_path)
        keys, attn, grid = _features(model, img)
        expected = mask_to_box(core(keys, attn, grid), PS, hw).float()
        with torch.no_grad():
            pred = model.test_step(_batch([img]))[0].pred_instances
        torch.testing.assert_close(pred.bboxes[0], expected, msg=name)
    model = _build('DINOSegLocalizer', tmp_path)
    keys, attn, grid = _features(model, img)
    mask = dino_seg(attn, grid, head=1).mask
    with torch.no_grad():
        pred = model.test_step(_batch([img]))[0].pred_instances
    # LOST does not clip the DINO-seg box.
    torch.testing.assert_close(pred.bboxes[0], mask_to_box(mask, PS, None).float())


def test_maskcut_scores_decrease_with_stage(tmp_path):
    model = _build('MaskCutLocalizer', tmp_path, min_area_ratio=0.0)
    img = _image((48, 64), (8, 16, 40, 44), 1)
    with torch.no_grad():
        pred = model.test_step(_batch([img]))[0].pred_instances
    assert 1 <= len(pred) <= 3
    assert pred.scores[0] == 1.0
    assert (pred.scores[1:] < pred.scores[:-1]).all()
    # Stage masks are pairwise disjoint.
    assert int(pred.masks.sum(0).max()) <= 1


def test_found_head_matches_official_uod(tmp_path):
    """FOUND decoder + largest component == the official uod.py box."""
    for case in ('found_head_official_14x14_ps8.npz', 'found_head_official_20x28_ps8.npz'):
        gold = np.load(golden_path('found_lost_tokencut', case))
        meta = json.loads(str(gold['meta_json']))
        path = tmp_path / 'decoder_weights.pt'
        torch.save(
            {
                'decoder': {
                    'weight': torch.from_numpy(gold['weight']),
                    'bias': torch.from_numpy(gold['bias'])
                }
            }, str(path))
        head = FOUNDHeadLocalizer(in_channels=384, decoder_checkpoint=str(path))
        head.init_weights()
        feats_chw = torch.from_numpy(gold['feats_chw'])
        c, h, w = feats_chw.shape
        keys = feats_chw.reshape(c, h * w).T.contiguous()
        res = head(PatchFeatures(keys, None, (h, w), meta['patch_size'], tuple(meta['image_hw'])))
        assert res.boxes.tolist() == [gold['uod_box'].tolist()]
        expected_mask = largest_component(torch.from_numpy(gold['mask_patch']))
        assert torch.equal(res.masks[0], expected_mask)


def test_found_head_weight_errors(tmp_path):
    feats = PatchFeatures(torch.randn(12, 48), None, (3, 4), 8, (24, 32))
    # A missing file names the config key to set.
    head = FOUNDHeadLocalizer(in_channels=48, decoder_checkpoint=str(tmp_path / 'missing.pt'))
    with pytest.raises(FileNotFoundError, match='model.localizer.decoder_checkpoint'):
        head.init_weights()
    head = FOUNDHeadLocalizer(in_channels=48)
    with pytest.raises(RuntimeError, match='decoder_checkpoint'):
        head(feats)
    head = FOUNDHeadLocalizer(
        in_channels=48, decoder_checkpoint=_write_decoder(tmp_path / 'd.pt', channels=384))
    with pytest.raises(ValueError, match='384-channel keys.*in_channels is 48'):
        head.init_weights()
    torch.save({'foo': torch.zeros(1)}, str(tmp_path / 'bad.pt'))
    head = FOUNDHeadLocalizer(in_channels=48, decoder_checkpoint=str(tmp_path / 'bad.pt'))
    with pytest.raises(KeyError, match='bad.pt'):
        head.init_weights()
    with pytest.raises(ValueError, match='in_channels'):
        FOUNDHeadLocalizer(in_channels=0)


def test_found_head_uses_the_core(tmp_path, monkeypatch):
    """The adapter's forward is found_decoder_logits + found_foreground."""
    import mmuol.det.localizers as localizers
    calls = []
    for name in ('found_decoder_logits', 'found_foreground'):
        fn = getattr(localizers, name)
        monkeypatch.setattr(
            localizers, name, lambda *a, _fn=fn, _n=name, **k: calls.append(_n) or _fn(*a, **k))
    head = FOUNDHeadLocalizer(in_channels=48, decoder_checkpoint=_write_decoder(tmp_path / 'd.pt'))
    head.init_weights()
    head(PatchFeatures(torch.randn(12, 48), None, (3, 4), 8, (24, 32)))
    assert calls == ['found_decoder_logits', 'found_foreground']


def test_found_head_weights_from_detector_checkpoint(tmp_path):
    """A detector state dict provides the decoder: no file needed."""
    model = _build('FOUNDHeadLocalizer', tmp_path)
    state = model.state_dict()
    fresh = MODELS.build(
        dict(
            type='UnsupervisedLocalizer',
            backbone=tiny_dino_vit_cfg(),
            localizer=dict(
                type='FOUNDHeadLocalizer',
                in_channels=48,
                decoder_checkpoint=str(tmp_path / 'none.pt'))))
    fresh.load_state_dict(state)
    img = _image((48, 64), (8, 16, 40, 44), 1)
    with torch.no_grad():
        a = model.test_step(_batch([img]))[0].pred_instances
        b = fresh.eval().test_step(_batch([img]))[0].pred_instances
    assert len(a) == 1
    torch.testing.assert_close(a.bboxes, b.bboxes)


def test_rescale_to_original_image(tmp_path):
    """Boxes / masks go back to ori_shape through scale_factor."""
    model = _build('LOSTLocalizer', tmp_path)
    img = _image((48, 64), (8, 16, 40, 44), 1)
    meta = dict(ori_shape=(24, 32), scale_factor=(2.0, 2.0))
    with torch.no_grad():
        plain = model.test_step(_batch([img]))[0].pred_instances
        scaled = model.test_step(_batch([img], [meta]))[0].pred_instances
        data = model.data_preprocessor(_batch([img], [meta]), False)
        unscaled = model.predict(
            data['inputs'], data['data_samples'], rescale=False)[0].pred_instances
    torch.testing.assert_close(scaled.bboxes, plain.bboxes / 2)
    torch.testing.assert_close(unscaled.bboxes, plain.bboxes)
    assert scaled.masks.shape[-2:] == (24, 32)
    assert torch.equal(scaled.masks, plain.masks[:, ::2, ::2])


@TASK_UTILS.register_module(force=True)
class _EmptyLocalizer(BaseLocalizerAdapter):
    """Finds nothing (the adapters' empty-mask path)."""

    def forward(self, feats):
        h, w = feats.grid_hw
        return self._outputs(feats, [torch.zeros(h, w, dtype=torch.bool)], [1.0])


def test_no_prediction_gives_zero_boxes():
    model = MODELS.build(
        dict(
            type='UnsupervisedLocalizer',
            backbone=tiny_dino_vit_cfg(),
            localizer=dict(type='_EmptyLocalizer')))
    img = _image((48, 64), (8, 16, 40, 44), 1)
    meta = dict(ori_shape=(24, 32), scale_factor=(2.0, 2.0))
    with torch.no_grad():
        pred = model.test_step(_batch([img], [meta]))[0].pred_instances
    assert pred.bboxes.shape == (0, 4) and pred.scores.shape == (0, )
    assert pred.masks.shape == (0, 24, 32)


def _detector(localizer, **kwargs):
    return MODELS.build(
        dict(
            type='UnsupervisedLocalizer',
            backbone=tiny_dino_vit_cfg(),
            localizer=localizer,
            **kwargs))


def test_one_registry_name_per_class():
    """Adapters are built by mmdet's TASK_UTILS under their class name only."""
    model = _detector(dict(type='LOSTLocalizer', k_patches=10))
    assert type(model.localizer).__name__ == 'LOSTLocalizer'
    assert model.localizer.k_patches == 10
    # No short aliases: 'FOUNDHead' is the mmseg decode head, not an adapter.
    for alias in ('LOST', 'TokenCut', 'FOUNDHead', 'FOUND', 'MaskCut', 'NoSuchLocalizer'):
        with pytest.raises(KeyError, match=alias):
            _detector(dict(type=alias))
    # Something of TASK_UTILS that is not an adapter.
    with pytest.raises(TypeError, match='not a localizer adapter'):
        _detector(dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4))


def test_found_head_width_comes_from_the_config():
    """in_channels is stated in the config; a mismatch is a clear error."""
    head = _detector(dict(type='FOUNDHeadLocalizer', in_channels=48)).localizer
    assert head.decoder.weight.shape == (1, 48, 1, 1)
    with pytest.raises(ValueError, match='in_channels is 384.*48-channel'):
        _detector(dict(type='FOUNDHeadLocalizer'))  # default 384 vs the tiny ViT's 48


def test_training_free_modes(tmp_path):
    model = _build('LOSTLocalizer', tmp_path)
    img = _image((48, 64), (8, 16, 40, 44), 1)
    data = model.data_preprocessor(_batch([img]), False)
    with pytest.raises(NotImplementedError, match='tools/test.py'):
        model(data['inputs'], data['data_samples'], mode='loss')
    feats = model(data['inputs'], data['data_samples'], mode='tensor')
    assert isinstance(feats, tuple) and feats[0].shape == (1, 48, 6, 8)
    assert not any(p.requires_grad for p in model.parameters())


def test_image_smaller_than_patch(tmp_path):
    model = _build('LOSTLocalizer', tmp_path)
    batch = _batch([_image((6, 20), (0, 0, 4, 4), 0)], [dict(img_path='tiny.jpg')])
    with pytest.raises(
            ValueError,
            match='tiny.jpg: image of 6x20 pixels is smaller than one.*'
            'skip_invalid=True'):
        model.test_step(batch)


class _NoBackbone(Exception):
    pass


def _forbid_backbone(model, monkeypatch):
    """Make any backbone run fail: the checks must come first."""

    def fail(*args, **kwargs):
        raise _NoBackbone

    monkeypatch.setattr(model.backbone, 'forward_last_block', fail)


def test_max_patches_is_checked_before_the_backbone(tmp_path, monkeypatch):
    """A too large image fails before any backbone work, saying what to do."""
    model = _build('LOSTLocalizer', tmp_path, dict(max_patches=47))
    _forbid_backbone(model, monkeypatch)
    # 48x64 at patch 8: a 6x8 grid of 48 patches > 47; the small image comes first.
    images = [_image((16, 16), (0, 0, 8, 8), 0), _image((48, 64), (8, 16, 40, 44), 1)]
    with pytest.raises(ValueError) as info:
        model.test_step(_batch(images, [dict(img_path='a.jpg'), dict(img_path='big.jpg')]))
    msg = str(info.value)
    assert 'big.jpg' in msg and '6x8 grid of 48 patches' in msg
    assert 'max_patches=47' in msg and "type='Resize'" in msg and 'keep_ratio=True' in msg
    # At the limit it runs (and the default is 128 x 128 patches).
    model = _build('LOSTLocalizer', tmp_path, dict(max_patches=48))
    with torch.no_grad():
        assert len(model.test_step(_batch(images[1:]))[0].pred_instances) == 1
    default = inspect.signature(UnsupervisedLocalizer).parameters['max_patches'].default
    assert default == DEFAULT_MAX_PATCHES == 128 * 128
    with pytest.raises(ValueError, match='max_patches'):
        _build('LOSTLocalizer', tmp_path, dict(max_patches=0))


def test_invalid_images_are_skipped_when_allowed(tmp_path, monkeypatch):
    """skip_invalid in the sample: unusable images get zero boxes and a reason,
    the others their normal result, the backbone never sees the bad ones."""
    model = _build('LOSTLocalizer', tmp_path, dict(max_patches=47))
    good = _image((32, 40), (8, 8, 24, 24), 2)
    with torch.no_grad():
        expected = model.test_step(_batch([good]))[0].pred_instances
    seen = []
    run = model.backbone.forward_last_block
    monkeypatch.setattr(model.backbone, 'forward_last_block',
                        lambda x, **k: seen.append(tuple(x.shape)) or run(x, **k))
    images = [
        _image((6, 20), (0, 0, 4, 4), 0),  # smaller than one patch
        good,
        _image((48, 64), (8, 16, 40, 44), 1),  # 48 patches > max_patches
        _image((16, 16), (0, 0, 8, 8), 3),  # failed to decode (set by the transform)
    ]
    metas = [dict(skip_invalid=True)] * 3 + [dict(invalid_reason='cannot read image x.jpg')]
    with torch.no_grad():
        out = model.test_step(_batch(images, metas))
    assert seen == [(1, 3, 32, 40)]
    torch.testing.assert_close(out[1].pred_instances.bboxes, expected.bboxes)
    assert 'invalid_reason' not in out[1]
    for i in (0, 2, 3):
        pred = out[i].pred_instances
        assert pred.bboxes.shape == (0, 4) and pred.masks.shape == (0, *images[i].shape[-2:])
    assert 'smaller than one' in out[0].invalid_reason
    assert 'max_patches' in out[2].invalid_reason
    assert out[3].invalid_reason == 'cannot read image x.jpg'


def test_adapter_output_type(tmp_path):
    """Adapters can be used on their own (no detector)."""
    adapter = TASK_UTILS.build(dict(type='LOSTLocalizer'))
    keys = torch.randn(12, 16, generator=torch.Generator().manual_seed(0))
    res = adapter(PatchFeatures(keys, None, (3, 4), 16, (40, 60)))
    assert isinstance(res, LocalizerOutput)
    assert res.boxes.dtype == torch.int64 and res.masks.shape == (1, 3, 4)
    expected = lost(keys, (3, 4), k_patches=100).mask
    assert torch.equal(res.masks[0], expected)
    assert res.boxes.tolist() == [mask_to_box(expected, 16, (40, 60)).tolist()]
    assert res.scores.tolist() == [1.0]


@pytest.mark.parametrize('case,adapter', [
    ('lost_28x20_d64_ps16_k100_clip.npz', dict(type='LOSTLocalizer')),
    ('lost_14x14_d384_ps16_k100.npz', dict(type='LOSTLocalizer')),
    ('tokencut_28x20_d64_ps16_tau0.2_clip.npz', dict(type='TokenCutLocalizer', tau=0.2)),
    ('tokencut_14x14_d384_ps16_tau0.2.npz', dict(type='TokenCutLocalizer', tau=0.2)),
    ('dinoseg_20x28_nh6_ps8_head0.npz', dict(type='DINOSegLocalizer', head=0)),
    ('dinoseg_14x14_nh6_ps16_head4.npz', dict(type='DINOSegLocalizer')),
])
def test_adapter_boxes_match_official(case, adapter):
    """Official boxes (incl. clipping to the unpadded image) via adapters."""
    gold = np.load(golden_path('found_lost_tokencut', case))
    meta = json.loads(str(gold['meta_json']))
    grid = (meta['rows'], meta['cols'])
    ps = meta['patch_size']
    image_hw = tuple(meta.get('image_hw', (grid[0] * ps, grid[1] * ps)))
    if 'feats' in gold:
        keys = torch.from_numpy(gold['feats'])
    elif 'tokens' in gold:
        keys = torch.from_numpy(gold['tokens'][1:])  # drop CLS
    else:
        keys = torch.zeros(grid[0] * grid[1], 8)
    cls_attn = torch.from_numpy(gold['cls_attention'][:, 1:]) \
        if 'cls_attention' in gold else None
    res = TASK_UTILS.build(adapter)(PatchFeatures(keys, cls_attn, grid, ps, image_hw))
    assert res.boxes.tolist() == [gold['pred_box'].tolist()]


def test_without_masks(tmp_path):
    model = _build('LOSTLocalizer', tmp_path)
    model.with_masks = False
    with torch.no_grad():
        pred = model.test_step(_batch([_image((48, 64), (8, 16, 40, 44), 1)]))[0].pred_instances
    assert 'masks' not in pred and len(pred) == 1
