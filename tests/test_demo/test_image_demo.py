# Copyright (c) mmuol contributors. All rights reserved.
"""demo/image_demo.py: offline error, bad inputs, odd image formats, legible labels."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from PIL import Image

from mmuol.models.backbones import DINOViT
from mmuol.testing.data import synthetic_image
from mmuol.testing.models import TINY_VIT_ARCH
from mmuol.testing.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'demo' / 'image_demo.py'
METHODS = ('lost', 'tokencut', 'found', 'maskcut')

# Runs the demo with every network connection refused, whatever the machine: name resolution
# and connects raise, as they do without network, so no download can succeed.
OFFLINE_BOOTSTRAP = '''
import runpy, socket, sys


def _no_network(*args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, 'network disabled by the test')


socket.getaddrinfo = _no_network
socket.create_connection = _no_network
socket.socket.connect = _no_network
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _load_demo():
    return load_script(DEMO, 'mmuol_image_demo')


demo = _load_demo()


def run_demo(tmp_path, *args, offline=False):
    env = dict(
        os.environ,
        TORCH_HOME=str(tmp_path / 'torch_home'),
        PYTHONPATH=str(ROOT),
        HF_HOME=str(tmp_path / 'hf_home'))
    cmd = [sys.executable, '-c', OFFLINE_BOOTSTRAP] if offline else [sys.executable]
    return subprocess.run(
        cmd + [str(DEMO), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    """A random tiny DINOViT checkpoint (patch 8) and the ``--arch`` that fits it."""
    ckpt = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    torch.manual_seed(0)
    torch.save(DINOViT(arch=dict(TINY_VIT_ARCH), frozen=False).state_dict(), ckpt)
    return ['--checkpoint', str(ckpt), '--arch', json.dumps(TINY_VIT_ARCH)]


def _image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    return synthetic_image(
        height, width, [width // 4, height // 4, width // 2, height // 2], seed=seed)


def _save(path: Path, img, **kwargs) -> Path:
    """Write ``img`` (RGB array or PIL image) with PIL."""
    img = Image.fromarray(img) if isinstance(img, np.ndarray) else img
    img.save(path, **kwargs)
    return path


def _jpeg_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, 'JPEG')
    return buf.getvalue()


def _run_main(argv, capsys):
    init_default_scope('mmdet')
    code = demo.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert 'Traceback' not in out.err
    return code, out.out, out.err


def test_demo_without_weights_fails_clearly(tmp_path):
    proc = run_demo(
        tmp_path,
        str(ROOT / 'demo' / 'images' / 'chelsea.jpg'),
        '--out-dir',
        str(tmp_path / 'out'),
        offline=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    cache = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'dino_deitsmall16_pretrain.pth'
    assert 'https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/' in proc.stderr
    assert str(cache) in proc.stderr
    assert 'network disabled by the test' in proc.stderr  # the blocked download is the cause
    assert '--checkpoint' in proc.stderr and 'Traceback' not in proc.stderr
    assert not cache.exists()


def test_demo_runs_with_local_checkpoint(tmp_path, tiny_ckpt):
    out = tmp_path / 'out'
    proc = run_demo(tmp_path, str(ROOT / 'demo' / 'images'), *tiny_ckpt, '--max-size', '96',
                    '--out-dir', str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    images = sorted(p.stem for p in (ROOT / 'demo' / 'images').glob('*.jpg'))
    assert len(images) == 4
    for stem in images:
        size = max(Image.open(ROOT / 'demo' / 'images' / f'{stem}.jpg').size)
        height, width = cv2.imread(str(out / f'{stem}_lost.jpg')).shape[:2]
        assert max(height, width) == 96 and size > 96
        for method in METHODS:
            assert cv2.imread(str(out / f'{stem}_{method}.jpg')).shape == (height, width, 3)
        gaps = 3 * demo.PANEL_GAP
        assert cv2.imread(str(out / f'{stem}_all.jpg')).shape == (height, 4 * width + gaps, 3)
    assert f'4 image(s) -> {out}/, 0 skipped' in proc.stdout
    assert 'warning: skipped' not in proc.stderr


def test_empty_folder_is_an_error(tmp_path, capsys, monkeypatch):
    folder = tmp_path / 'empty'
    folder.mkdir()
    (folder / 'notes.txt').write_text('not an image')

    def no_weights(args):
        raise AssertionError('the weights must not be loaded before the inputs are checked')

    monkeypatch.setattr(demo, 'build_backbone', no_weights)
    code, out, err = _run_main([folder, '--out-dir', tmp_path / 'out'], capsys)
    assert code == 2
    assert f'error: no images (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) in folder {folder}' \
        in err
    code, out, err = _run_main([tmp_path / 'missing.jpg'], capsys)
    assert code == 2
    assert f'error: no such image or folder: {tmp_path / "missing.jpg"}' in err


def test_bad_files_are_skipped_and_counted(tmp_path, capsys, tiny_ckpt):
    folder = tmp_path / 'images'
    folder.mkdir()
    good = [_save(folder / 'good_a.png', _image(1)), _save(folder / 'good_b.jpg', _image(2))]
    (folder / 'empty.jpg').write_bytes(b'')
    jpeg = _jpeg_bytes(_image(3))
    (folder / 'truncated.jpg').write_bytes(jpeg[:len(jpeg) // 2])
    (folder / 'text.png').write_text('this is not a PNG')
    _save(folder / 'tiny.png', _image(4, height=6, width=20))  # 6 px < one 8 px patch
    bad = ['empty.jpg', 'truncated.jpg', 'text.png', 'tiny.png']
    # odd but valid formats are processed (decoded by mmuol.utils.decode_image)
    good.append(_save(folder / 'palette.png', Image.fromarray(_image(5)).quantize(16)))
    good.append(_save(folder / 'cmyk.jpg', Image.fromarray(_image(6)).convert('CMYK')))
    cv2.imwrite(str(folder / 'rgb16.png'), _image(7).astype(np.uint16) * 257)
    good.append(folder / 'rgb16.png')
    out = tmp_path / 'out'
    code, stdout, err = _run_main([folder, *tiny_ckpt, '--out-dir', out], capsys)
    assert code == 0, err
    for name in bad:
        assert f'warning: skipped {folder / name}: ' in err
    for name in ('truncated.jpg', 'text.png'):
        assert f'warning: skipped {folder / name}: cannot decode it as an image' in err
    assert 'image file is truncated' in err
    assert f'warning: skipped {folder / "tiny.png"}: 20x6 px is smaller than one 8x8 patch' in err
    assert f'warning: skipped {folder / "empty.jpg"}: cannot decode it as an image (the file is ' \
        'empty (0 bytes))' in err
    assert f'5 image(s) -> {out}/, 4 skipped' in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(f'{p.stem}_{m}.jpg' for p in good
                                                           for m in METHODS + ('all', ))


def test_too_small_or_too_large_after_max_size_is_skipped(tmp_path, capsys, tiny_ckpt, monkeypatch):
    import mmuol.det.unsupervised_localizer as localizer
    monkeypatch.setattr(localizer, 'DEFAULT_MAX_PATCHES', 100)  # the patch budget
    folder = tmp_path / 'images'
    folder.mkdir()
    _save(folder / 'ok.png', _image(1))  # 64x48: 8 x 6 patches
    _save(folder / 'big.png', _image(2, height=96, width=120))  # 15 x 12 = 180 patches
    _save(folder / 'thin.png', _image(3, height=10, width=400))  # 200x5 at --max-size 200
    code, stdout, err = _run_main(
        [folder, *tiny_ckpt, '--max-size', 200, '--out-dir', tmp_path / 'out'], capsys)
    assert code == 0, err
    assert (f'warning: skipped {folder / "big.png"}: 120x96 px gives 180 patches (more than '
            '100); lower --max-size') in err
    assert (f'warning: skipped {folder / "thin.png"}: 400x10 px (200x5 px after --max-size) is '
            'smaller than one 8x8 patch') in err
    assert f'1 image(s) -> {tmp_path / "out"}/, 2 skipped' in stdout


def test_only_unusable_inputs_is_an_error(tmp_path, capsys, tiny_ckpt):
    notes = tmp_path / 'notes.txt'
    notes.write_text('a file named directly that is not an image')
    code, stdout, err = _run_main([notes, *tiny_ckpt, '--out-dir', tmp_path / 'out'], capsys)
    assert code == 2
    assert f'warning: skipped {notes}: cannot decode it as an image' in err
    assert 'error: none of the 1 image(s) could be used' in err


def test_broken_checkpoint_is_an_error_naming_it(tmp_path, capsys):
    ckpt = tmp_path / 'broken.pth'
    buf = io.BytesIO()
    torch.save(DINOViT(arch=dict(TINY_VIT_ARCH), frozen=False).state_dict(), buf)
    ckpt.write_bytes(buf.getvalue()[:1000])  # an interrupted download
    image = _save(tmp_path / 'a.png', _image(5))
    code, stdout, err = _run_main(
        [image, '--checkpoint', ckpt, '--arch',
         json.dumps(TINY_VIT_ARCH)], capsys)
    assert code == 2
    assert str(ckpt) in err and 'error:' in err


def test_load_rgb_decodes_odd_formats(tmp_path):
    img = _image(6)
    rng = np.random.default_rng(0)
    # 16-bit RGB and grey PNGs: the high byte is the 8-bit value.
    rgb16 = img.astype(np.uint16) * 256 + rng.integers(0, 256, img.shape, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / 'rgb16.png'), rgb16[..., ::-1])
    np.testing.assert_array_equal(demo.load_rgb(tmp_path / 'rgb16.png', 0), img)
    cv2.imwrite(str(tmp_path / 'gray16.png'), rgb16[..., 0])
    np.testing.assert_array_equal(
        demo.load_rgb(tmp_path / 'gray16.png', 0), np.repeat(img[..., :1], 3, axis=2))
    # Palette PNG: indices into a known palette.
    palette = np.array([[0, 0, 0], [250, 10, 10], [10, 200, 30], [20, 40, 220]], np.uint8)
    index = rng.integers(0, len(palette), img.shape[:2]).astype(np.uint8)
    pal = Image.fromarray(index, mode='P')
    pal.putpalette(palette.ravel().tolist())
    pal.save(tmp_path / 'palette.png')
    np.testing.assert_array_equal(demo.load_rgb(tmp_path / 'palette.png', 0), palette[index])
    # CMYK JPEG (as print workflows write them): back to RGB within JPEG rounding.
    Image.fromarray(img).convert('CMYK').save(tmp_path / 'cmyk.jpg', quality=100)
    cmyk = demo.load_rgb(tmp_path / 'cmyk.jpg', 0)
    assert cmyk.shape == img.shape and cmyk.dtype == np.uint8
    assert np.abs(cmyk.astype(int) - img).max() <= 2
    # --max-size keeps the aspect ratio.
    assert demo.load_rgb(tmp_path / 'palette.png', 32).shape == (24, 32, 3)


@pytest.mark.parametrize(
    'colour,text',
    [
        ((0, 0, 0), (255, 255, 255)),
        ((255, 255, 255), (0, 0, 0)),
        ((0, 255, 255), (0, 0, 0)),  # yellow
        ((0, 0, 139), (255, 255, 255)),  # dark red
        ((255, 0, 0), (255, 255, 255)),  # blue
        ((0, 170, 255), (0, 0, 0)),  # orange (palette)
        ((60, 20, 220), (255, 255, 255)),  # crimson (palette)
    ])
def test_label_text_contrasts_with_its_box(colour, text):
    assert demo.contrast_text_colour(colour) == text


@pytest.mark.parametrize('colour', [(0, 170, 255), (60, 20, 220)])
def test_draw_label_is_a_filled_box_with_contrasting_text(colour):
    img = np.full((120, 200, 3), 128, np.uint8)
    x0, y0, x1, y1 = demo.draw_label(img, '0.87', (30, 60), colour, scale=0.8)
    assert (x0, y1) == (30, 60)  # above the anchor (a box's top-left corner)
    label = img[y0:y1, x0:x1].reshape(-1, 3).astype(int)
    fill = (label == colour).all(1)
    assert 0.5 < fill.mean() < 0.98  # mostly the box colour, with text on it
    text = label[~fill].sum(1)
    if demo.contrast_text_colour(colour) == (0, 0, 0):
        assert (text < sum(colour)).all()
    else:
        assert (text > sum(colour)).all()
    assert (img[:y0] == 128).all() and (img[y1:] == 128).all()  # nothing drawn elsewhere
    # No room above or to the right: the label moves inside the image.
    x0, y0, x1, y1 = demo.draw_label(img, '0.87', (195, 5), colour, scale=0.8)
    assert y0 == 5 and x1 == 200 and x0 < 195


def test_labels_grow_with_the_image():
    assert demo.font_scale_for((240, 320)) == 0.5
    assert demo.font_scale_for((480, 640)) == 1.0
    assert demo.font_scale_for((960, 1280)) == 2.0
    heights = []
    for size in (240, 960):
        img = np.zeros((size, size, 3), np.uint8)
        x0, y0, x1, y1 = demo.draw_label(img, '0.87', (0, size), (60, 20, 220),
                                         demo.font_scale_for((size, size)))
        heights.append(y1 - y0)
    assert heights[1] > 2.5 * heights[0]  # with the font scale (x3) and the padding


def test_draw_marks_masks_boxes_and_title():
    img = np.full((96, 128, 3), 100, np.uint8)
    masks = np.zeros((1, 96, 128), bool)
    masks[0, 40:80, 50:100] = True
    picture = demo.draw(img, masks, np.array([[50, 40, 100, 80]]), np.array([0.5]), 'lost')
    colour = np.array(demo.PALETTE[0])
    # mask pixels away from the outline and labels: blended 55 % image, 45 % box colour
    assert np.abs(picture[60, 75] - (0.55 * 100 + 0.45 * colour)).max() <= 1
    np.testing.assert_array_equal(picture[20, 10], [100, 100, 100])  # untouched
    assert (picture[40:80, 50] == colour).all()  # left edge of the box
    assert (picture[95, 0] == (40, 40, 40)).all()  # title box at the bottom-left


def test_all_methods_on_a_model_with_few_heads(tmp_path, tiny_ckpt, capsys):
    """DINO-seg reads head 4 of DINO ViT-S/B; a 3-head model uses its last head."""
    folder = tmp_path / 'imgs'
    folder.mkdir()
    _save(folder / 'a.png', _image(0))
    out = tmp_path / 'out'
    code, stdout, _ = _run_main([folder, *tiny_ckpt, '--methods', 'all', '--out-dir', out], capsys)
    assert code == 0
    assert f'DINO-seg uses head {TINY_VIT_ARCH["num_heads"] - 1}' in stdout
    for method in demo.METHODS:
        assert (out / f'a_{method}.jpg').is_file()
