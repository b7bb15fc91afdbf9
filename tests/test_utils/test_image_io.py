# Copyright (c) mmuol contributors. All rights reserved.
"""read_image / read_mask: mmengine file backends + mmuol's decoders, errors
that name the file."""
import numpy as np
import pytest
from PIL import Image

from mmuol.utils.image_io import read_image, read_mask


def test_read_image_and_mask(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (7, 9, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'img.png')
    np.testing.assert_array_equal(read_image(str(tmp_path / 'img.png')), rgb[..., ::-1])
    np.testing.assert_array_equal(read_image(str(tmp_path / 'img.png'), 'rgb'), rgb)
    # a grayscale file: three equal channels
    Image.fromarray(rgb[..., 1]).save(tmp_path / 'gray.png')
    np.testing.assert_array_equal(
        read_image(str(tmp_path / 'gray.png'), 'rgb'), np.repeat(rgb[..., 1:2], 3, 2))
    mask = np.zeros((7, 9), np.uint8)
    mask[2:5, 3:8] = 255
    Image.fromarray(mask).save(tmp_path / 'mask.png')
    out = read_mask(str(tmp_path / 'mask.png'))
    assert out.dtype == np.uint8 and out.shape == (7, 9)
    np.testing.assert_array_equal(out, mask)


def test_errors_name_the_file(tmp_path):
    empty, junk = tmp_path / 'empty.jpg', tmp_path / 'junk.png'
    empty.write_bytes(b'')
    junk.write_bytes(b'not an image')
    with pytest.raises(ValueError, match=f'cannot read image {empty}: .*empty \\(0 bytes\\)'):
        read_image(str(empty))
    with pytest.raises(ValueError, match=f'cannot read image {junk}: cannot decode image'):
        read_image(str(junk))
    with pytest.raises(ValueError, match=f'cannot read mask {junk}: cannot decode mask'):
        read_mask(str(junk))
    with pytest.raises(FileNotFoundError, match='gone.png'):
        read_image(str(tmp_path / 'gone.png'))
    with pytest.raises(FileNotFoundError, match='gone.png'):
        read_mask(str(tmp_path / 'gone.png'))
