import carn_da.compat  # noqa: F401

import cv2
import io
import numpy as np
import pytest
from conftest import textured_image
from PIL import Image

from carn_da.data.jpeg import ijg_luminance_table, quality_histogram, read_quality

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
