import carn_da.compat  # noqa: F401

import cv2
import io
import numpy as np
import pytest
from conftest import SHARED_DATASETS, textured_image
from os import path as osp
from PIL import Image

from carn_da.utils.jpeg import (estimate_quality, ijg_luminance_table, jpeg_compress, jpeg_encode, quality_histogram,
                                read_quality, recompress)

QUALITIES = (1, 5, 10, 25, 30, 49, 50, 51, 70, 75, 90, 95, 99, 100)


@pytest.mark.parametrize('quality', QUALITIES)
def test_quality_of_opencv_jpegs_is_read_back_exactly(tmp_path, quality):
    gray = textured_image(np.random.default_rng(quality), 40, 48)
    color = np.stack([gray, gray[::-1], 255 - gray], axis=2)
    for name, img in (('gray', gray), ('color', color)):
        path = tmp_path / f'{name}.jpg'
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert read_quality(str(path)) == quality
        assert read_quality(path.read_bytes()) == quality


def test_quality_of_pillow_jpegs_and_the_standard_table():
    img = Image.fromarray(textured_image(np.random.default_rng(0), 32, 32))
    for quality in (10, 50, 70, 90):
        buf = io.BytesIO()
        img.save(buf, 'JPEG', quality=quality)
        assert read_quality(buf.getvalue()) == quality
    # QF 50 is the table of the JPEG standard itself (Annex K.1, natural order: 16 11 10 16 ... first row)
    assert ijg_luminance_table(50)[:8].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]
    assert set(ijg_luminance_table(100).tolist()) == {1}


def test_non_jpegs_give_none_and_the_histogram_counts_them(tmp_path):
    img = textured_image(np.random.default_rng(1), 24, 24)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    (tmp_path / 'notes.txt').write_text('not an image')
    assert read_quality(str(tmp_path / 'a.png')) is None
    assert read_quality(str(tmp_path / 'notes.txt')) is None
    assert read_quality(b'') is None
    paths = [str(tmp_path / 'a.png')]
    for i, quality in enumerate((70, 30, 70, 90)):
        paths.append(str(tmp_path / f'{i}.jpg'))
        cv2.imwrite(paths[-1], img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert list(quality_histogram(paths).items()) == [(30, 1), (70, 2), (90, 1), (None, 1)]
    with pytest.raises(FileNotFoundError):
        read_quality(str(tmp_path / 'missing.jpg'))


def mean_abs_diff(a, b):
    return np.abs(a.astype(np.float64) - b).mean()


def test_recompress_is_nearly_idempotent_on_the_coding_grid_only():
    img = textured_image(np.random.default_rng(2), 96, 120)
    decoded = jpeg_compress(img, 50)
    same = recompress(decoded, 50, (0, 0))
    assert same.shape == decoded.shape and same.dtype == np.uint8
    assert mean_abs_diff(same, decoded) < 0.5
    for shift in ((0, 1), (1, 0), (3, 5), (7, 7)):
        shifted = recompress(decoded, 50, shift)
        assert shifted.shape == decoded.shape and shifted.dtype == np.uint8
        change = mean_abs_diff(shifted, decoded)
        assert change > 2 and change > 10 * mean_abs_diff(same, decoded)
    # a crop at (top, left) is on its own grid for shift (top % 8, left % 8)
    crop = decoded[11:, 13:]
    assert mean_abs_diff(recompress(crop, 50, (3, 5)), crop) < 0.5
    assert mean_abs_diff(recompress(crop, 50, (0, 0)), crop) > 2
    color = jpeg_compress(np.stack([img, img[::-1], 255 - img], axis=2), 70)
    out = recompress(color, 70, (2, 6))
    assert out.shape == color.shape and out.dtype == np.uint8 and mean_abs_diff(out, color) > 1


@pytest.mark.parametrize('shift', [(8, 0), (0, -1), (1, ), (1, 2, 3), (1.0, 2), (True, 0), 3, None])
def test_recompress_rejects_bad_shifts(shift):
    with pytest.raises(ValueError, match='shift'):
        recompress(np.zeros((16, 16), np.uint8), 50, shift)


def test_estimate_quality_of_a_synthetic_image():
    img = textured_image(np.random.default_rng(3), 96, 120)  # gradients, texture, noise and an edge
    for quality in (10, 30, 50, 70, 90, 95):
        assert abs(estimate_quality(jpeg_compress(img, quality)) - quality) <= 2
    assert estimate_quality(jpeg_compress(img, 50)[..., None]) == estimate_quality(jpeg_compress(img, 50))
    assert estimate_quality(jpeg_compress(img, 50), qualities=[10, 50, 90]) == 50
    assert estimate_quality(img) == 100  # never JPEG-compressed: only the all-ones table of QF 100 fits
    for bad in (img.astype(np.float32), img[:7], np.stack([img] * 3, axis=2)):
        with pytest.raises(ValueError):
            estimate_quality(bad)


REAL_NAMES = ('BSD68/test003.png', 'BSD68/test042.png', 'Set12/01.png', 'Set12/08.png')
REAL_IMAGES = [osp.join(SHARED_DATASETS, name) for name in REAL_NAMES]
HAVE_REAL_IMAGES = all(osp.isfile(path) for path in REAL_IMAGES)


@pytest.mark.skipif(not HAVE_REAL_IMAGES, reason=f'the BSD68 and Set12 images are not in {SHARED_DATASETS}')
@pytest.mark.parametrize('path', REAL_IMAGES, ids=osp.basename)
def test_estimate_quality_of_real_images_agrees_with_the_header(path):
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    for quality in (10, 30, 50, 70, 90):
        data = jpeg_encode(img, quality)
        assert read_quality(data) == quality
        estimate = estimate_quality(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE))
        assert abs(estimate - read_quality(data)) <= 2
