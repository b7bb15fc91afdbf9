# Copyright (c) mmuol contributors. All rights reserved.
"""mmuol.pseudo_labels.maskcut_pipeline: the official glue around MaskCut, checked against
the annotations the official CutLER code wrote for the golden CRF cases."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from mmuol.models.backbones import DINOViT
from mmuol.pseudo_labels.maskcut_pipeline import (MaskCutImages, MaskCutPseudoLabeler,
                                                  MaskCutSettings, maskcut_annotations,
                                                  maskcut_pseudo_masks, normalize_images,
                                                  resize_for_maskcut, resize_mask_to_image,
                                                  upsample_patch_masks)
from mmuol.testing.localization import load_golden, maskcut_features, single_threaded
from mmuol.testing.models import TINY_VIT_ARCH


@pytest.fixture(autouse=True, scope='module')
def _single_threaded():
    with single_threaded():
        yield


def _golden(case: str):
    arrays, meta = load_golden(f'maskcut/maskcut_60x60_d768_{case}')
    keys = torch.from_numpy(np.ascontiguousarray(maskcut_features(arrays).T))
    return keys, arrays, meta


@pytest.mark.parametrize('case', ['three_objects', 'rect_ellipse'])
def test_annotations_equal_the_official_ones(case):
    """Keys -> MaskCut -> x8 -> CRF -> fill -> gate -> resize -> threshold -> COCO entry, on
    the golden features and image (480x480, so the resize back is the identity)."""
    keys, arrays, meta = _golden(case)
    masks = maskcut_pseudo_masks(keys, (60, 60), arrays['crf_image'], (480, 480))
    official = [a for a in meta['crf']['annotations'] if a is not None]
    # rect_ellipse: the third MaskCut mask is empty and writes no annotation.
    assert len(masks) == len(official) == int((arrays['crf_post_mask'].any((1, 2))).sum())
    for got, ref in zip(maskcut_annotations(masks, image_id=1), official):
        for key in ('id', 'image_id', 'category_id', 'iscrowd', 'area', 'bbox', 'segmentation'):
            assert got[key] == ref[key], key
    post = [m for m in arrays['crf_post_mask'].astype(bool) if m.any()]
    for got, ref in zip(masks, post):
        np.testing.assert_array_equal(got, ref)


def test_no_crf_keeps_the_raw_masks_and_resizes_them_back():
    arrays, _ = load_golden('maskcut/maskcut_30x30_d384_rect_ellipse')
    keys = torch.from_numpy(np.ascontiguousarray(maskcut_features(arrays).T))
    image = np.zeros((240, 240, 3), np.uint8)  # only its size matters without the CRF
    settings = MaskCutSettings(crf=False, solver='dense')
    same, small = (
        maskcut_pseudo_masks(keys, (30, 30), image, hw, settings)
        for hw in ((240, 240), (150, 100)))
    raw = [m.astype(bool) for m in arrays['masks'] if m.any()]
    assert len(same) == len(raw) == 2
    for got, ref in zip(same, raw):
        np.testing.assert_array_equal(got, ref)
    # A 150x100 (H x W) original: each mask is the PIL-bicubic resize, thresholded.
    for got, ref in zip(small, raw):
        assert got.shape == (150, 100)
        up = np.asarray(
            Image.fromarray(ref.astype(np.uint8) * 255).resize((100, 150), Image.BICUBIC))
        np.testing.assert_array_equal(got, up.astype(int) * 2 > int(up.max()))


def test_resize_for_maskcut_is_pil_lanczos_without_keeping_the_aspect():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    out = resize_for_maskcut(img, 48, 8)
    ref = np.asarray(Image.fromarray(img).resize((48, 48), Image.LANCZOS))
    np.testing.assert_array_equal(out, ref)
    # 100 is not a multiple of 8: TokenCut's resize_pil rounds to 96 with a second resize.
    out = resize_for_maskcut(img, 100, 8)
    step = Image.fromarray(img).resize((100, 100), Image.LANCZOS)
    np.testing.assert_array_equal(out, np.asarray(step.resize((96, 96), Image.LANCZOS)))
    with pytest.raises(ValueError, match='uint8 RGB'):
        resize_for_maskcut(img[..., 0], 48, 8)


def test_normalize_images_is_bitwise_torchvision():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)
    tf = transforms.Compose(
        [transforms.ToTensor(),
         transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    ref = torch.stack([tf(im) for im in imgs])
    assert torch.equal(normalize_images(torch.from_numpy(imgs)), ref)


def test_upsample_and_resize_back():
    m = torch.tensor([[1, 0], [0, 1]], dtype=torch.bool)[None]
    up = upsample_patch_masks(m, 3)
    assert up.shape == (1, 6, 6)
    assert up[0, :3, :3].all() and not up[0, :3, 3:].any() and up[0, 3:, 3:].all()

    block = np.zeros((8, 8), bool)
    block[2:6, 2:6] = True
    np.testing.assert_array_equal(resize_mask_to_image(block, (8, 8)), block)
    big = resize_mask_to_image(block, (16, 16))
    ref = np.zeros((16, 16), bool)
    ref[4:12, 4:12] = True
    np.testing.assert_array_equal(big, ref)
    assert not resize_mask_to_image(np.zeros((8, 8), bool), (5, 7)).any()
    # CutLER's quirk: after the resize the hole's pixels (>= 59) are above 0, and every
    # non-zero pixel is encoded, so the whole image is foreground.
    holed = np.ones((3, 3), bool)
    holed[2, 1] = False
    values = np.asarray(Image.fromarray(holed.astype(np.uint8) * 255).resize((4, 8), Image.BICUBIC))
    assert values.min() > 0 and (values.astype(int) * 2 <= 255).sum() == 4
    assert resize_mask_to_image(holed, (8, 4)).all()


def test_batched_labeler_equals_one_image_at_a_time(tmp_path):
    torch.manual_seed(0)
    vit = DINOViT(arch=dict(TINY_VIT_ARCH), init_cfg=None).eval()
    rng = np.random.default_rng(2)
    imgs = []
    for h, w in ((30, 50), (44, 36), (40, 40)):
        img = rng.integers(20, 90, (h, w, 3), dtype=np.uint8)
        img[h // 4:h // 2, w // 4:w // 2] = (240, 240, 240)
        imgs.append(img)
    small = [resize_for_maskcut(im, 48, 8) for im in imgs]
    hws = [im.shape[:2] for im in imgs]
    labeler = MaskCutPseudoLabeler(vit, MaskCutSettings(fixed_size=48))
    batched = labeler(small, hws)
    keys, grid = labeler.keys(small)
    assert keys.shape == (3, 36, 48) and grid == (6, 6)
    assert sum(len(m) for m in batched) >= 3
    for img, hw, got in zip(small, hws, batched):
        k, _ = labeler.keys([img])
        ref = maskcut_pseudo_masks(k[0], grid, img, hw, labeler.settings)
        assert len(got) == len(ref)
        for a, b in zip(got, ref):
            assert a.shape == tuple(hw)
            np.testing.assert_array_equal(a, b)
    assert labeler([], []) == []
    # The NCut as it runs on a GPU (torch backend, Lanczos), here on the CPU: same masks.
    on_torch = MaskCutPseudoLabeler(vit, labeler.settings, ncut_backend='torch')(small, hws)
    assert [len(m) for m in on_torch] == [len(m) for m in batched]
    for got, ref in zip(on_torch, batched):
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a, b)


def test_images_dataset_reports_unreadable_files(tmp_path):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(tmp_path / 'gray.png')
    (tmp_path / 'bad.jpg').write_bytes(b'')
    ds = MaskCutImages(str(tmp_path), ['gray.png', 'bad.jpg', 'missing.jpg'], 32, 8)
    ok, bad, missing = ds[0], ds[1], ds[2]
    assert ok['error'] is None and ok['hw'] == (20, 30) and ok['image'].shape == (32, 32, 3)
    assert bad['image'] is None and 'empty (0 bytes)' in bad['error']
    assert missing['error'] == 'FileNotFoundError: No such file or directory'
    assert str(tmp_path) not in bad['error'] + missing['error']


@pytest.mark.parametrize('kwargs, match', [
    (dict(tau=1.0), 'tau must be a cosine threshold'),
    (dict(num_masks=0), 'num_masks'),
    (dict(fixed_size=0), 'fixed_size'),
    (dict(solver='eigsh'), 'solver'),
    (dict(crf_iou_thresh=1.5), 'crf_iou_thresh'),
    (dict(crf_backend='simplecrf'), 'crf_backend'),
])
def test_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskCutSettings(**kwargs)
    assert MaskCutSettings().to_dict()['tau'] == 0.15


def test_image_must_cover_the_grid():
    with pytest.raises(ValueError, match='does not cover the 6x6 patch grid'):
        maskcut_pseudo_masks(torch.randn(36, 8), (6, 6), np.zeros((40, 48, 3), np.uint8), (9, 9))
