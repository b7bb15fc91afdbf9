# Copyright (c) mmuol contributors. All rights reserved.
"""MaskCLIP / CLIP-DINOiser in mmseg against the official code (golden cases
1, 2, 5, 6, 7 on the tiny open_clip model), checkpoints, configs, datasets and
bad input."""
import copy
import glob
import os.path as osp
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from mmseg.registry import DATASETS, MODELS

import mmuol.seg  # noqa: F401
from mmuol.localization.maskclip import (IMAGENET_TEMPLATES, check_class_names, classify_patches,
                                         clip_normalize, maskclip_dense_features,
                                         resize_clip_pos_embed)
from mmuol.seg.clip_dinoiser import (BENCHMARK_CLASS_NAMES, CLIPDINOiser, DINOiserHead,
                                     MaskCLIPBackbone, get_class_names)
from mmuol.testing.golden import golden_path
from mmuol.testing.localization import load_golden
from mmuol.testing.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
CFG_DIR = REPO / 'configs' / 'clip_dinoiser'
NAMES = ['background', 'person', 'bicycle', 'road', 'tree']
FEAT_TOL = dict(atol=1e-5, rtol=1e-5)
PROB_TOL = dict(atol=1e-4, rtol=0)


def tiny_backbone(**kwargs) -> dict:
    """The golden tiny open_clip model (width 64, 4 blocks, embed 16), local files."""
    cfg = dict(
        type='MaskCLIPBackbone',
        model_name=None,
        model_config=str(golden_path('clip_dinoiser', 'mmuol-tiny-vit.json')),
        pretrained=str(golden_path('clip_dinoiser', 'tiny_openclip_state_dict_fp16.pt')))
    cfg.update(kwargs)
    return cfg


def tiny_model_cfg(names=NAMES, heads=True, **head) -> dict:
    head_cfg = dict(type='DINOiserHead', in_channels=None, embed_dims=None, class_names=list(names))
    if heads:
        head_cfg['init_cfg'] = dict(
            type='Pretrained', checkpoint=str(golden_path('clip_dinoiser', 'heads_state_dict.pt')))
    head_cfg.update(head)
    return dict(
        type='CLIPDINOiser',
        data_preprocessor=dict(
            type='SegDataPreProcessor', mean=[0.0] * 3, std=[255.0] * 3, bgr_to_rgb=True),
        backbone=tiny_backbone(),
        decode_head=head_cfg,
        test_cfg=ConfigDict(mode='slide', crop_size=(448, 448), stride=(224, 224)))


def build(cfg: dict):
    init_default_scope('mmseg')
    model = MODELS.build(cfg)
    model.decode_head.init_weights()
    model.embed_vocabulary()
    return model.eval()


def as_input(img: np.ndarray) -> torch.Tensor:
    """uint8 HWC RGB -> (1, 3, H, W) in [0, 1] (the official ImageToTensorV2)."""
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.


@pytest.fixture(scope='module')
def model():
    return build(tiny_model_cfg(background_rule=True))


# ---------------------------------------------------------------------------
# golden case 1: MaskCLIP dense features
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('tag', ['448', '224', '320x448'])
def test_maskclip_dense_features(model, tag):
    z, meta = load_golden('clip_dinoiser/maskclip_dense')
    assert meta['class_names'] == NAMES
    img = z['image_224_uint8'] if tag == '224' else z['image_448_uint8']
    if tag == '320x448':
        img = img[64:384]
    x = as_input(img)
    assert list(x.shape) == list(z[f'x_{tag}_shape'])
    with torch.no_grad():
        out = maskclip_dense_features(model.backbone.clip.visual, clip_normalize(x))
        feats, inter = model.backbone(x)
    np.testing.assert_allclose(out.values.numpy(), z[f'v_{tag}'], **FEAT_TOL)
    np.testing.assert_allclose(out.features.numpy(), z[f'feat_{tag}'], **FEAT_TOL)
    assert torch.equal(feats, out.features) and torch.equal(inter, out.intermediate)
    probs = classify_patches(feats, torch.from_numpy(z['class_embeddings']))
    np.testing.assert_allclose(probs.numpy(), z[f'probs_{tag}'], **PROB_TOL)
    assert np.array_equal(probs.argmax(1).numpy(), z[f'argmax_{tag}'])
    if tag == '448':
        np.testing.assert_allclose(out.last_block_input[0].numpy(), z['last_block_input_448'],
                                   **FEAT_TOL)
        proj = model.backbone.clip.visual.proj.t()[:, :, None, None]
        np.testing.assert_array_equal(proj.detach().numpy(), z['proj_weight'])


def test_positional_embedding_resize(model):
    z, _ = load_golden('clip_dinoiser/maskclip_dense')
    table = model.backbone.clip.visual.positional_embedding.detach()
    for hw, key in (((28, 28), 'pos_embed_resized_28x28'), ((20, 28), 'pos_embed_resized_20x28')):
        np.testing.assert_allclose(resize_clip_pos_embed(table, hw).numpy(), z[key], **FEAT_TOL)
    assert resize_clip_pos_embed(table, (14, 14)) is table


def test_old_open_clip_layout_gives_the_same_features(model):
    """open_clip < 2.26 runs the blocks on (L, B, C): same features either way."""
    visual = copy.deepcopy(model.backbone.clip.visual)
    x = clip_normalize(torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0)))
    ref = maskclip_dense_features(visual, x)
    visual.transformer.batch_first = False
    for blk in visual.transformer.resblocks:
        blk.attn.batch_first = False
    with torch.no_grad():
        old = maskclip_dense_features(visual, x)
        ref = maskclip_dense_features(model.backbone.clip.visual, x)
    assert torch.allclose(old.features, ref.features, atol=1e-6)
    assert torch.allclose(old.intermediate, ref.intermediate, atol=1e-6)
    # and batch entries are independent
    one = maskclip_dense_features(model.backbone.clip.visual, x[1:])
    assert torch.allclose(one.features, ref.features[1:], atol=1e-5)


# ---------------------------------------------------------------------------
# golden case 2: text embeddings
# ---------------------------------------------------------------------------
def test_text_embeddings(model):
    z, _ = load_golden('clip_dinoiser/text_embed')
    assert tuple(z['templates']) == IMAGENET_TEMPLATES
    assert list(z['class_names']) == NAMES
    backbone = model.backbone
    emb = backbone.text_embeddings(NAMES)
    np.testing.assert_allclose(emb.numpy(), z['class_embeddings'], **FEAT_TOL)
    np.testing.assert_allclose(model.decode_head.class_embeddings.numpy(), z['class_embeddings'],
                               **FEAT_TOL)
    with torch.no_grad():
        raw = backbone.clip.encode_text(
            backbone.tokenizer([t.format('bicycle') for t in IMAGENET_TEMPLATES]))
    np.testing.assert_allclose(raw.numpy(), z['per_template_raw_bicycle'], **FEAT_TOL)
    mean = torch.nn.functional.normalize(raw, dim=-1).mean(0)
    np.testing.assert_allclose(mean.numpy(), z['embed_label_bicycle'], **FEAT_TOL)
    # cached: same object-level values, no recomputation
    assert backbone.text_embeddings(NAMES) is not None
    assert torch.equal(backbone.text_embeddings(NAMES), emb)


def test_text_cache_on_disk(tmp_path):
    init_default_scope('mmseg')
    bb = MODELS.build(tiny_backbone(text_cache_dir=str(tmp_path)))
    names = ['a zebra', 'a kettle']
    emb = bb.text_embeddings(names, templates=['a photo of {}.'])
    files = list(tmp_path.glob('*.pt'))
    assert len(files) == 1
    assert torch.equal(torch.load(files[0], weights_only=True), emb)


# ---------------------------------------------------------------------------
# golden case 5: the full CLIP-DINOiser forward
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('tag', ['448', '224'])
def test_clip_dinoiser_forward(model, tag):
    z, meta = load_golden('clip_dinoiser/clip_dinoiser_forward')
    assert meta['class_names'] == NAMES
    x = as_input(z[f'image_{tag}_uint8'])
    head = model.decode_head
    with torch.no_grad():
        feats = model.extract_feat(x)
        np.testing.assert_allclose(feats[0].numpy(), z[f'proj_feats_{tag}'], **FEAT_TOL)
        inter = feats[1].flatten(2).transpose(1, 2)
        np.testing.assert_allclose(inter.numpy(), z[f'clip_inter_{tag}'][:, 1:], **FEAT_TOL)
        np.testing.assert_allclose(
            head.predict_background(feats[1]).numpy(), z[f'bkg_logits_{tag}'], **FEAT_TOL)
        if tag == '224':
            corrs = head.predict_correlations(feats[1]).reshape(1, -1, 14, 14)
            np.testing.assert_allclose(corrs.numpy(), z['corrs_raw_224'], **FEAT_TOL)
        assert head.use_background_rule and head.background_index == 0
        probs = head(feats)
        head.use_background_rule = False
        try:
            plain = head(feats)
        finally:
            head.use_background_rule = True
    np.testing.assert_allclose(plain.numpy(), z[f'probs_nofound_{tag}'], **PROB_TOL)
    np.testing.assert_allclose(probs.numpy(), z[f'probs_found_{tag}'], **PROB_TOL)
    assert np.array_equal(plain.argmax(1).numpy(), z[f'argmax_nofound_{tag}'])
    assert np.array_equal(probs.argmax(1).numpy(), z[f'argmax_found_{tag}'])


# ---------------------------------------------------------------------------
# golden case 6: training losses through the head
# ---------------------------------------------------------------------------
def test_training_losses_through_the_head(model):
    from mmuol.localization.clip_dinoiser import dino_correlation_target, found_background_target
    z, _ = load_golden('clip_dinoiser/train_losses')
    f5, _ = load_golden('clip_dinoiser/clip_dinoiser_forward')
    qkv = torch.from_numpy(z['qkv'])
    v = qkv.reshape(1, 197, 3, int(z['num_heads']), -1)[:, 1:, 2].reshape(1, 196, -1)
    corr_t = dino_correlation_target(v.transpose(1, 2), 0.2)
    bkg_t = found_background_target(torch.from_numpy(z['found_logits']), (14, 14))
    with torch.no_grad():
        feats = model.extract_feat(as_input(f5['image_224_uint8']))
    losses = model.decode_head.loss_by_targets(feats, corr_t, bkg_t)
    assert abs(float(losses['loss_corr']) - float(z['dino_loss'])) < 1e-5
    assert abs(float(losses['loss_bkg']) - float(z['found_loss'])) < 1e-5


# ---------------------------------------------------------------------------
# golden case 7: mmseg 1.x pipeline + slide inference = mmseg 0.27's
# ---------------------------------------------------------------------------
def test_slide_inference_matches_mmseg_027(model, tmp_path):
    z, meta = load_golden('clip_dinoiser/slide_inference')
    assert bool(z['apply_found']) and meta['class_names'] == NAMES
    path = str(tmp_path / 'src.png')
    cv2.imwrite(path, z['src_image_uint8'][..., ::-1])
    cfg = Config.fromfile(str(REPO / 'configs/_base_/datasets/voc12_ov.py'))
    pipeline = [t for t in cfg.test_pipeline if t['type'] != 'LoadAnnotations']
    data = Compose(pipeline)(dict(img_path=path))
    img = data['inputs'].permute(1, 2, 0).numpy()[..., ::-1]
    assert img.shape == z['pipeline_image_uint8'].shape
    assert np.abs(img.astype(int) - z['pipeline_image_uint8']).max() <= 1
    assert tuple(model.test_cfg.crop_size) == tuple(z['crop_size'])
    assert tuple(model.test_cfg.stride) == tuple(z['stride'])
    with torch.no_grad():
        out = model.test_step(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
    logits = out[0].seg_logits.data
    assert logits.shape == (5, 168, 200)
    # mmseg 1.x keeps the averaged probabilities; 0.27 softmaxed them once more.
    np.testing.assert_allclose(logits.softmax(0)[None].numpy(), z['probs'], **PROB_TOL)
    assert np.array_equal(out[0].pred_sem_seg.data[0].numpy(), z['seg'])


def test_window_larger_than_image_and_grayscale(model, tmp_path):
    """A 40x56 image (smaller than the 448 window) in slide mode = whole mode."""
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    meta = [dict(ori_shape=(40, 56), img_shape=(40, 56), pad_shape=(40, 56))]
    with torch.no_grad():
        slide = model.inference(x, copy.deepcopy(meta))
        model.test_cfg.mode = 'whole'
        try:
            whole = model.inference(x, copy.deepcopy(meta))
        finally:
            model.test_cfg.mode = 'slide'
        probs = model.decode_head(model.extract_feat(x))  # grid 3x4 of the padded 48x64
    assert slide.shape == (1, 5, 40, 56)
    assert torch.allclose(slide, whole)
    up = torch.nn.functional.interpolate(probs, size=(48, 64), mode='bilinear')
    assert torch.allclose(slide, up[..., :40, :56], atol=1e-6)
    # a grayscale file is read as 3 identical channels by the test pipeline
    path = str(tmp_path / 'gray.png')
    cv2.imwrite(path, (np.arange(60 * 70) % 251).astype(np.uint8).reshape(60, 70))
    cfg = Config.fromfile(str(REPO / 'configs/_base_/datasets/voc12_ov.py'))
    pipeline = [t for t in cfg.test_pipeline if t['type'] != 'LoadAnnotations']
    data = Compose(pipeline)(dict(img_path=path))
    assert data['inputs'].shape == (3, 448, 523)
    assert torch.equal(data['inputs'][0], data['inputs'][2])
    with pytest.raises(ValueError, match='grayscale'):
        model.backbone(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match='smaller than one'):
        model.backbone(torch.rand(1, 3, 8, 40))


# ---------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------
def _load_tool(rel: str):
    return load_script(REPO / rel)


def test_checkpoints_hold_only_the_heads(model, tmp_path):
    sd = model.state_dict()
    assert sorted(sd) == sorted(f'decode_head.{k}'
                                for k in ('obj_proj.weight', 'obj_proj.bias', 'bkg_decoder.weight',
                                          'bkg_decoder.bias'))
    # converter: official last.pt layout -> mmseg checkpoint
    conv = _load_tool('tools/model_converters/clip_dinoiser_to_mmuol.py')
    dst = tmp_path / 'heads.pth'
    out = conv.convert(str(golden_path('clip_dinoiser', 'heads_state_dict.pt')), str(dst))
    assert out['meta']['in_channels'] == 64
    fresh = build(tiny_model_cfg(heads=False, background_rule=True))
    clip_before = fresh.backbone.clip.visual.conv1.weight.clone()
    assert not torch.equal(fresh.decode_head.obj_proj.weight, model.decode_head.obj_proj.weight)
    load_checkpoint(fresh, str(dst), map_location='cpu', strict=True)  # no missing keys
    assert torch.equal(fresh.backbone.clip.visual.conv1.weight, clip_before)
    for key, value in sd.items():
        assert torch.equal(fresh.state_dict()[key], value), key
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(
            fresh.decode_head(fresh.extract_feat(x)), model.decode_head(model.extract_feat(x)))
    full = MODELS.build(tiny_backbone(save_frozen_weights=True)).state_dict()
    assert 'clip.visual.conv1.weight' in full


def test_head_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='last.pt'):
        build(tiny_model_cfg(init_cfg=dict(type='Pretrained', checkpoint='nope/last.pt')))
    bad = tmp_path / 'bad.pt'
    torch.save(
        {
            'model_state_dict': {
                'obj_proj.weight': torch.zeros(256, 768, 3, 3),
                'obj_proj.bias': torch.zeros(256),
                'bkg_decoder.weight': torch.zeros(1, 768, 1, 1),
                'bkg_decoder.bias': torch.zeros(1)
            }
        }, str(bad))
    with pytest.raises(ValueError, match='in_channels=64'):
        build(tiny_model_cfg(init_cfg=dict(type='Pretrained', checkpoint=str(bad))))
    torch.save({'foo': torch.zeros(1)}, str(bad))
    with pytest.raises(KeyError, match='obj_proj'):
        build(tiny_model_cfg(init_cfg=dict(type='Pretrained', checkpoint=str(bad))))
    init_default_scope('mmseg')
    with pytest.raises(FileNotFoundError, match='checkpoint'):
        MODELS.build(tiny_backbone(pretrained='missing/open_clip_model.bin'))
    with pytest.raises(ValueError, match='pretrained tag'):
        MODELS.build(tiny_backbone(model_config=None, model_name='ViT-B-16', pretrained='laion9'))


# ---------------------------------------------------------------------------
# vocabulary and bad input
# ---------------------------------------------------------------------------
def test_vocabulary_and_bad_prompts(model):
    probs_before = model.decode_head(model.extract_feat(torch.rand(1, 3, 32, 32)))
    assert probs_before.shape[1] == 5
    with pytest.raises(ValueError, match='empty'):
        model.set_vocabulary([])
    with pytest.raises(ValueError, match='duplicate'):
        model.set_vocabulary(['cat', 'dog', 'cat'])
    with pytest.raises(ValueError, match='at least 2'):
        model.set_vocabulary(['cat'])
    with pytest.raises(ValueError, match='empty or non-string'):
        model.set_vocabulary(['cat', ' '])
    with pytest.raises(ValueError, match='neither a benchmark key'):
        model.set_vocabulary('voc21')
    long_prompt = 'a ' + ' '.join(['very'] * 90) + ' long thing'
    try:
        with pytest.warns(UserWarning, match='truncated'):
            model.set_vocabulary(['background', 'cat', long_prompt])
        assert model.num_classes == model.decode_head.out_channels == 3
        assert model.decode_head.use_background_rule  # 'background' present, rule True
        x = torch.rand(1, 3, 32, 48)
        assert model.decode_head(model.extract_feat(x)).shape == (1, 3, 2, 3)
        # background_rule=True needs a 'background' class; the state is unchanged
        with pytest.raises(ValueError, match='no class is named "background"'):
            model.set_vocabulary(['cat', 'dog'])
        assert model.class_names == ['background', 'cat', long_prompt]
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            model.set_vocabulary(['background', 'dog'])
    finally:
        model.set_vocabulary(NAMES)
    assert torch.equal(
        model.decode_head(model.extract_feat(torch.rand(1, 3, 32, 32) * 0)),
        model.decode_head(model.extract_feat(torch.zeros(1, 3, 32, 32))))


def test_vocabulary_is_embedded_on_first_inference():
    init_default_scope('mmseg')
    m = MODELS.build(tiny_model_cfg(names=['cat', 'background', 'dog'])).eval()
    assert not m.decode_head._has_text  # building does not run the text tower
    with pytest.raises(RuntimeError, match='no text embeddings'):
        m.decode_head(m.extract_feat(torch.rand(1, 3, 32, 32)))
    x = torch.rand(1, 3, 32, 32)
    out = m.predict(x)
    assert m.decode_head._has_text and out[0].pred_sem_seg.data.shape == (1, 32, 32)
    emb = m.backbone.text_embeddings(['cat', 'background', 'dog'])
    assert torch.equal(m.decode_head.class_embeddings, emb)


def test_auto_background_rule_and_maskclip_head():
    m = build(tiny_model_cfg(names=['cat', 'background', 'dog']))  # 'auto'
    assert m.decode_head.use_background_rule and m.decode_head.background_index == 1
    plain = build(tiny_model_cfg(heads=False, correlation='none', background_rule=False))
    assert not hasattr(plain.decode_head, 'obj_proj')
    assert not hasattr(plain.decode_head, 'bkg_decoder')
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        feats = plain.extract_feat(x)
        expect = classify_patches(feats[0], plain.decode_head.class_embeddings)
        assert torch.equal(plain.decode_head(feats), expect)
    with pytest.raises(ValueError, match='correlation must be'):
        DINOiserHead(class_names=NAMES, correlation='dinov2')


def test_dino_guided_refinement_uses_value_correlations():
    from mmuol.localization.guided_pooling import guided_pool, patch_correlations
    guide = dict(
        type='DINOViT',
        arch=dict(patch_size=16, embed_dim=48, depth=2, num_heads=3, img_size=32),
        init_cfg=None)
    cfg = tiny_model_cfg(heads=False, correlation='dino', background_rule=False)
    cfg['backbone'] = tiny_backbone(guide=guide)
    m = build(cfg)
    x = torch.rand(1, 3, 40, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        feats, inter, values = m.extract_feat(x)
        padded = torch.nn.functional.pad(x, (0, 0, 0, 8))
        out = m.backbone.guide.vit.forward_last_block(
            (padded - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) /
            torch.tensor([0.229, 0.224, 0.225])[:, None, None],
            with_attn=False)
        expect_v = out.v[:, 1:].transpose(1, 2).reshape(1, 48, 3, 4)
        assert torch.allclose(values, expect_v, atol=1e-6)
        pooled = guided_pool(feats, patch_correlations(values, 0.2))
        expect = classify_patches(pooled, m.decode_head.class_embeddings)
        assert torch.allclose(m.decode_head((feats, inter, values)), expect, atol=1e-6)
    with pytest.raises(ValueError, match='patch size'):
        MODELS.build(tiny_backbone(guide=dict(guide, arch=dict(guide['arch'], patch_size=8))))


# ---------------------------------------------------------------------------
# configs, class names, datasets
# ---------------------------------------------------------------------------
EXPECTED = {  # dataset suffix -> (class key, dataset type, background rule)
    'voc12': ('voc', 'PascalVOCDataset', True),
    'voc12-20': ('voc20', 'PascalVOC20Dataset', False),
    'pascal-context60': ('context60', 'PascalContextDataset', False),
    'pascal-context59': ('context59', 'PascalContextDataset59', False),
    'coco-object': ('coco_object', 'COCOObjectDataset', True),
    'coco-stuff164k': ('coco_stuff', 'COCOStuffDataset', False),
    'cityscapes': ('cityscapes', 'CityscapesDataset', False),
    'ade20k': ('ade20k', 'ADE20KDataset', False),
}


@pytest.mark.parametrize('method', ['clip-dinoiser', 'maskclip', 'maskclip-dinorefine'])
def test_evaluation_configs(method):
    for suffix, (key, dtype, rule) in EXPECTED.items():
        cfg = Config.fromfile(str(CFG_DIR / f'{method}_vit-b16-laion2b_{suffix}.py'))
        assert cfg.default_scope == 'mmseg' and cfg.custom_imports.imports == ['mmuol.seg']
        m = cfg.model
        assert m.type == 'CLIPDINOiser'
        assert (m.backbone.model_name, m.backbone.pretrained) == ('ViT-B-16', 'laion2b_s34b_b88k')
        assert m.backbone.intermediate_index == -3
        assert m.decode_head.class_names == key
        assert m.decode_head.background_rule is (rule and method == 'clip-dinoiser')
        assert m.decode_head.correlation == {
            'clip-dinoiser': 'learned',
            'maskclip': 'none',
            'maskclip-dinorefine': 'dino'
        }[method]
        assert (m.decode_head.gamma, m.decode_head.delta, m.decode_head.temperature) == \
            (0.2, 0.99, 100.0)
        assert dict(m.test_cfg) == dict(mode='slide', crop_size=(448, 448), stride=(224, 224))
        assert (m.data_preprocessor.mean, m.data_preprocessor.std) == ([0.0] * 3, [255.0] * 3)
        assert m.data_preprocessor.bgr_to_rgb
        assert cfg.test_dataloader.dataset.type == dtype
        assert cfg.test_dataloader.batch_size == 1
        resize = [t for t in cfg.test_pipeline if t.type == 'Resize'][0]
        assert resize.scale == (2048, 448) and resize.keep_ratio
        assert cfg.test_evaluator == dict(type='IoUMetric', iou_metrics=['mIoU'])
    if method == 'maskclip-dinorefine':
        assert m.backbone.guide.arch == 'dino_vitb16'
    # the model of the last config builds (tiny backbone swapped in, no download)
    m.backbone = tiny_backbone(guide=None)
    # one template keeps the 150 ADE20K prompts quick on the tiny text tower
    m.decode_head.update(
        in_channels=None, embed_dims=None, init_cfg=None, templates=['a photo of a {}.'])
    init_default_scope('mmseg')
    built = MODELS.build(m)
    assert built.class_names == list(BENCHMARK_CLASS_NAMES['ade20k'])


def test_training_configs():
    cfg = Config.fromfile(
        str(CFG_DIR / 'clip-dinoiser_vit-b16-laion2b_1xb16-100e_imagenet1k-1k.py'))
    assert cfg.train_dataloader.batch_size == 16
    ds = cfg.train_dataloader.dataset
    assert (ds.type, ds.num_samples, ds.sample_seed) == ('ImageSubsetDataset', 1000, 0)
    steps = [t.type for t in ds.pipeline]
    assert steps == [
        'LoadImageFromFile', 'ResizeShortestEdge', 'RandomCrop', 'RandomFlip',
        'RandomBrightnessJitter', 'PackSegInputs'
    ]
    assert ds.pipeline[1].scale == 448 and ds.pipeline[2].crop_size == (448, 448)
    assert ds.pipeline[3].prob == 0.5 and ds.pipeline[4].brightness == 0.5
    opt = cfg.optim_wrapper
    assert (opt.optimizer.type, opt.optimizer.lr, opt.optimizer.weight_decay) == \
        ('AdamW', 5e-5, 0.01)
    assert abs(opt.optimizer.lr * opt.paramwise_cfg.custom_keys['decode_head.bkg_decoder'].lr_mult -
               1e-2) < 1e-12
    sched = cfg.param_scheduler[0]
    assert (sched.type, sched.milestones, sched.gamma, sched.by_epoch) == \
        ('MultiStepLR', [5000], 0.1, False)
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=100)
    tc = cfg.model.train_cfg
    assert tc.dino_teacher.arch == 'dino_vitb16' and tc.found_teacher.backbone.arch == 'dino_vits8'
    assert (tc.gamma, tc.found_threshold, tc.found_antialias) == (0.2, 0.5, False)
    assert cfg.model.decode_head.init_cfg is None and cfg.randomness.seed == 0
    voc = Config.fromfile(
        str(CFG_DIR / 'clip-dinoiser_vit-b16-laion2b_1xb16-100e_voc12-train-1k.py'))
    assert voc.train_dataloader.dataset.ann_file == 'ImageSets/Segmentation/train.txt'
    assert voc.train_dataloader.dataset.num_samples == 1000 and voc.param_scheduler == \
        cfg.param_scheduler
    # 1000 images / batch 16 -> 63 iterations per epoch, 6,300 in all
    assert -(-ds.num_samples // cfg.train_dataloader.batch_size) * 100 == 6300


def test_class_names():
    sizes = {k: len(v) for k, v in BENCHMARK_CLASS_NAMES.items()}
    assert sizes == dict(
        voc=21,
        voc20=20,
        context60=60,
        context59=59,
        coco_object=81,
        coco_stuff=171,
        cityscapes=19,
        ade20k=150)
    assert BENCHMARK_CLASS_NAMES['ade20k'][7] == 'bed '  # verbatim, trailing space
    assert 'aeroplane' in BENCHMARK_CLASS_NAMES['coco_object']
    assert 'airplane' in BENCHMARK_CLASS_NAMES['coco_stuff']
    assert BENCHMARK_CLASS_NAMES['voc'][11] == 'dining table'
    assert BENCHMARK_CLASS_NAMES['voc20'] == BENCHMARK_CLASS_NAMES['voc'][1:]
    assert BENCHMARK_CLASS_NAMES['context59'] == BENCHMARK_CLASS_NAMES['context60'][1:]
    for names in BENCHMARK_CLASS_NAMES.values():
        assert check_class_names(names) == list(names)


def test_class_name_file(tmp_path):
    path = tmp_path / 'names.txt'
    path.write_text('background\nbed \n\nred car\n')
    assert get_class_names(str(path)) == ['background', 'bed ', 'red car']
    path.write_text('cat\ncat\n')
    with pytest.raises(ValueError, match=f'{path}.*duplicate'):
        get_class_names(str(path))


def test_datasets_and_brightness(tmp_path):
    init_default_scope('mmseg')
    root = tmp_path / 'imagenet' / 'train'
    layout = {'n02': ['b.JPEG', 'a.jpeg'], 'n01': ['c.png', 'skip.txt']}
    for wnid, files in layout.items():
        (root / wnid).mkdir(parents=True)
        for f in files:
            (root / wnid / f).write_bytes(b'x')
    ds = DATASETS.build(
        dict(
            type='ImageSubsetDataset',
            data_root=str(tmp_path / 'imagenet'),
            data_prefix=dict(img_path='train'),
            pipeline=[]))
    order = [osp.relpath(ds[i]['img_path'], str(root)) for i in range(len(ds))]
    assert order == ['n01/c.png', 'n02/a.jpeg', 'n02/b.JPEG']  # ImageFolder order
    sub = DATASETS.build(
        dict(
            type='ImageSubsetDataset',
            data_root=str(tmp_path / 'imagenet'),
            data_prefix=dict(img_path='train'),
            num_samples=7,
            pipeline=[]))
    picks = np.random.RandomState(0).choice(3, 7)
    assert [osp.relpath(sub[i]['img_path'], str(root)) for i in range(7)] == \
        [order[i] for i in picks]
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DATASETS.build(
            dict(type='ImageSubsetDataset', data_root=str(tmp_path / 'none'), pipeline=[]))
    # a VOC-style split file (the VOC-train recipe): ids + suffix, all must exist
    (root / 'split.txt').write_text('n02/b\nn01/c\n')
    split_cfg = dict(
        type='ImageSubsetDataset',
        data_root=str(root),
        ann_file='split.txt',
        img_suffix='.JPEG',
        pipeline=[])
    with pytest.raises(FileNotFoundError, match='missing'):
        DATASETS.build(split_cfg)
    (root / 'n01' / 'c.JPEG').write_bytes(b'x')
    split = DATASETS.build(split_cfg)
    assert [osp.relpath(split[i]['img_path'], str(root)) for i in range(2)] == \
        ['n02/b.JPEG', 'n01/c.JPEG']
    from mmseg.registry import TRANSFORMS
    jitter = TRANSFORMS.build(dict(type='RandomBrightnessJitter', brightness=0.5))
    img = np.full((2, 3, 3), 200, np.uint8)
    np.random.seed(4)
    factor = np.random.uniform(0.5, 1.5)
    np.random.seed(4)
    out = jitter(dict(img=img.copy()))['img']
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.minimum(200 * np.float32(factor), 255), rtol=1e-6)
    from mmuol.seg.clip_dinoiser import COCOObjectDataset, PascalVOC20Dataset
    assert len(PascalVOC20Dataset.METAINFO['classes']) == 20
    assert len(PascalVOC20Dataset.METAINFO['palette']) == 20
    assert len(COCOObjectDataset.METAINFO['classes']) == 81


def test_registered_names():
    assert MODELS.get('MaskCLIPBackbone') is MaskCLIPBackbone
    assert MODELS.get('DINOiserHead') is DINOiserHead
    assert MODELS.get('CLIPDINOiser') is CLIPDINOiser
    cfgs = glob.glob(str(CFG_DIR / '*.py'))
    assert len(cfgs) == 26
