import carn_da.compat  # noqa: F401

import cv2
import io
import numpy as np
import pytest
import warnings
from conftest import SHARED_DATASETS, aperiodic_texture, textured_image
from os import path as osp
from PIL import Image, UnidentifiedImageError

from carn_da.utils.images import decode_ycbcr
from carn_da.utils.jpeg import (QualityReading, decode_luma, estimate_grid_and_quality, estimate_quality,
                                ijg_luminance_table, jpeg_compress, jpeg_encode, read_jpeg_quality, read_pixel_quality,
                                read_quality, resized_blocking, to_gray)

UNKNOWN = (None, None, None)


def saturated_color(seed, height=96, width=120):
    """A BGR image of saturated colours: its BGR decoding clips, so that converting it to gray loses the luma plane."""
    gray = textured_image(np.random.default_rng(seed), height, width)
    return np.stack([gray, 255 - gray, np.zeros_like(gray)], axis=2)


def decode(data, flags=cv2.IMREAD_UNCHANGED):
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def reading(result):
    return result.quality, result.offset, result.source


def png_bytes(img):
    return cv2.imencode('.png', img)[1].tobytes()


def test_decode_luma_is_libjpegs_y_plane(tmp_path):
    color = saturated_color(0)
    data = jpeg_encode(color, 10)
    luma = decode_luma(data)
    assert luma.dtype == np.uint8 and luma.shape == color.shape[:2]
    assert np.array_equal(luma, decode(data, cv2.IMREAD_GRAYSCALE))  # libjpeg's Y output, no colour conversion
    # the round trip through BGR clips: its gray is another image, whose quantisation no longer shows
    assert (to_gray(decode(data)) != luma).mean() > 0.1
    assert estimate_quality(luma) == 10 and estimate_quality(to_gray(decode(data))) > 90
    path = tmp_path / 'color.jpg'
    path.write_bytes(data)
    assert np.array_equal(decode_luma(str(path)), luma)
    gray = textured_image(np.random.default_rng(1), 40, 48)
    assert np.array_equal(decode_luma(jpeg_encode(gray, 50)), jpeg_compress(gray, 50))
    assert np.array_equal(decode_luma(png_bytes(color)), to_gray(color))  # other formats: their gray conversion
    assert np.array_equal(decode_luma(png_bytes(gray)), gray)


@pytest.mark.parametrize('quality', (10, 30, 70))
def test_color_jpegs_are_read_exactly_via_the_luma_plane(tmp_path, quality):
    path = tmp_path / 'color.jpg'
    assert cv2.imwrite(str(path), saturated_color(quality), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert read_jpeg_quality(str(path)) == QualityReading(quality, (0, 0), 'header', quality, quality, None)
    assert reading(estimate_grid_and_quality(decode_luma(str(path)))) == (quality, (0, 0), 'pixels')


def test_multi_picture_jpegs_of_cameras_are_jpegs():
    """Pillow opens a camera's multi-picture JPEG as format 'MPO': its header and Y plane are read all the same."""
    color = Image.fromarray(saturated_color(1)[..., ::-1])
    buf = io.BytesIO()
    color.save(buf, 'MPO', save_all=True, append_images=[color], quality=40)
    data = buf.getvalue()
    assert Image.open(io.BytesIO(data)).format == 'MPO'
    assert read_jpeg_quality(data) == QualityReading(40, (0, 0), 'header', 40, 40, None)
    assert np.array_equal(decode_luma(data), decode(data, cv2.IMREAD_GRAYSCALE))
    assert np.array_equal(decode_ycbcr(data)[..., 0], decode_luma(data))


def test_a_png_of_a_colour_jpeg_leaves_out_clipped_pixels():
    """A PNG of a decoded colour JPEG has no Y plane: its luma, recomputed from RGB, is off the lattice where a
    channel clipped. Those pixels are left out, which finds the quality of a crop, and a fully saturated image is
    unknown, not the QF 99 its recomputed luma fits."""
    gray = textured_image(np.random.default_rng(3), 96, 120).astype(np.float32)
    color = np.clip(np.stack([gray * 1.3 - 30, gray * 0.5 + 100, 255 - gray * 1.2], axis=2), 0, 255).astype(np.uint8)
    crop = jpeg_compress(color, 20)[3:, 5:]
    assert not estimate_grid_and_quality(to_gray(crop)).known  # its recomputed luma alone shows no JPEG
    assert reading(read_jpeg_quality(png_bytes(crop))) == (20, (3, 5), 'pixels')
    saturated = jpeg_compress(saturated_color(20), 20)[3:, 5:]
    assert estimate_grid_and_quality(to_gray(saturated)).quality == 99
    result = read_jpeg_quality(png_bytes(saturated))
    assert not result.known and not result.no_grid and 'too few textured blocks' in result.reason


def test_crops_at_all_64_offsets():
    img = textured_image(np.random.default_rng(2), 103, 127)
    decoded = jpeg_compress(img, 50)
    for dy in range(8):
        for dx in range(8):
            assert reading(estimate_grid_and_quality(decoded[dy:dy + 96, dx:dx + 120])) == (50, (dy, dx), 'pixels')
    for quality in (10, 30, 70, 90, 95):
        decoded = jpeg_compress(img, quality)
        for dy, dx in ((3, 5), (7, 1), (0, 4)):
            assert reading(estimate_grid_and_quality(decoded[dy:, dx:])) == (quality, (dy, dx), 'pixels')
    assert estimate_quality(decoded[3:, 5:]) == 100  # the estimator alone assumes the grid at the top-left pixel
    # QF 97's DC step is 1 (no grid evidence): the grid of an uncropped JPEG is tried
    assert reading(estimate_grid_and_quality(jpeg_compress(img, 97))) == (97, (0, 0), 'pixels')


def test_the_grid_of_a_mostly_smooth_image_comes_from_its_few_textured_blocks():
    img = (90 + 20 * np.arange(168) / 168).astype(np.uint8)[None].repeat(136, axis=0)  # flat blocks but for rounding
    img[40:64, 50:74] = textured_image(np.random.default_rng(8), 24, 24)
    assert reading(estimate_grid_and_quality(jpeg_compress(img, 30)[3:, 5:])) == (30, (3, 5), 'pixels')


def test_a_png_of_a_decoded_jpeg_is_read_from_its_pixels():
    decoded = jpeg_compress(textured_image(np.random.default_rng(3), 96, 120), 30)
    assert read_jpeg_quality(png_bytes(decoded)) == QualityReading(30, (0, 0), 'pixels', None, 30, None)
    assert reading(read_jpeg_quality(png_bytes(decoded[2:, 6:]))) == (30, (2, 6), 'pixels')
    turned = np.ascontiguousarray(np.rot90(decoded))  # EXIF orientation applied: the table is transposed
    assert estimate_grid_and_quality(turned).quality == 30
    assert estimate_grid_and_quality(decoded[:, :, None], qualities=[10, 30, 50]).quality == 30


def test_resized_and_never_compressed_images_are_unknown():
    img = textured_image(np.random.default_rng(4), 128, 160)
    for quality in (10, 50, 90):
        decoded = jpeg_compress(img, quality)
        for interpolation in (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC):
            resized = cv2.resize(decoded, None, fx=0.75, fy=0.75, interpolation=interpolation)
            result = estimate_grid_and_quality(resized)
            assert reading(result) == UNKNOWN
            if quality == 10:  # its blocking, 6 pixels apart once resized, shows: a JPEG, of unknown quality
                assert not result.no_grid and result.resized_by == 0.75, result.reason
                assert 'blocking of a JPEG resized by about 0.75' in result.reason
            else:  # too faint to tell from texture at this size
                assert result.no_grid and result.resized_by is None and 'no JPEG grid' in result.reason
    # a flat or small image is unknown too, but for want of textured blocks: it may be a JPEG (no_grid False)
    flat = np.full((64, 64), 128, np.uint8)
    for never, no_grid in ((img, True), (flat, False), (img[:16, :16], False), (img[:8, :9], False)):
        result = estimate_grid_and_quality(never)
        assert reading(result) == UNKNOWN and result.pixel_quality is None and result.reason
        assert result.no_grid == no_grid and result.resized_by is None, result.reason
    assert estimate_quality(img) == 100  # what the estimator alone says
    assert reading(read_jpeg_quality(png_bytes(img))) == UNKNOWN


def test_the_factor_of_a_resized_jpeg_is_found_from_its_blocking():
    """The period of the blocking along each axis gives the factor; never-compressed images resized alike show none,
    nor do images too small or flat to tell."""
    img = aperiodic_texture(np.random.default_rng(5), 256, 320)
    for factor in (0.5, 0.6, 0.8, 0.9):
        for interpolation in (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC):
            found, strength = resized_blocking(
                cv2.resize(jpeg_compress(img, 10), None, fx=factor, fy=factor, interpolation=interpolation))
            assert found == pytest.approx(factor, abs=0.005) and strength >= 3.65
            never, strength = resized_blocking(cv2.resize(img, None, fx=factor, fy=factor, interpolation=interpolation))
            assert never is None and strength < 3.65
    assert resized_blocking(np.full((64, 64), 90, np.uint8)) == (None, 0.)
    assert resized_blocking(img[:31]) == (None, 0.)


def test_a_grid_whose_blocks_fit_no_ijg_table_is_unknown_but_may_be_a_jpeg():
    """Another encoder's table (flat steps, DC 24 and AC 7): the DC lattice shows the grid, no IJG table fits."""
    buffer = io.BytesIO()
    Image.fromarray(textured_image(np.random.default_rng(4), 128, 160)).save(buffer, 'JPEG', qtables=[[24] + [7] * 63])
    result = estimate_grid_and_quality(decode(buffer.getvalue(), cv2.IMREAD_GRAYSCALE))
    assert reading(result) == UNKNOWN and 'fit no IJG table' in result.reason and not result.no_grid


def test_a_jpeg_resaved_finer_reports_the_disagreement_and_uses_the_coarser_pixels():
    img = textured_image(np.random.default_rng(5), 96, 120)
    data = jpeg_encode(jpeg_compress(img, 30), 90)
    assert read_quality(data) == 90
    result = read_jpeg_quality(data)
    assert (result.quality, result.source, result.header_quality, result.pixel_quality) == (30, 'pixels', 90, 30)
    assert '90' in result.reason and '30' in result.reason


@pytest.mark.parametrize('first, second', [(10, 30), (20, 50)])
def test_a_jpeg_resaved_at_a_nearby_finer_quality_shows_its_earlier_one(first, second):
    """Re-saved at a quality whose steps are not much finer, the last lattice alone fits the pixels; the gaps the
    earlier, coarser quantisation left among its multiples show the earlier quality."""
    img = textured_image(np.random.default_rng(4), 160, 200)
    resaved = read_jpeg_quality(jpeg_encode(jpeg_compress(img, first), second))
    assert (resaved.quality, resaved.source, resaved.header_quality, resaved.last_quality) == (first, 'pixels', second,
                                                                                               second)
    pixels = estimate_grid_and_quality(jpeg_compress(jpeg_compress(img, first), second))
    assert (pixels.quality, pixels.last_quality) == (first, second) and f'QF {first} before' in pixels.reason
    for quality in (first, second, 90):  # a single compression shows no earlier one
        single = read_jpeg_quality(jpeg_encode(img, quality))
        assert (single.quality, single.source, single.last_quality) == (quality, 'header', None)


def test_the_header_is_used_when_it_is_coarser_or_the_pixels_show_nothing():
    img = textured_image(np.random.default_rng(6), 96, 120)
    # another encoder's table: libjpeg's QF 70 steps at low frequencies, 255 at high ones; nearest IJG table: QF 11
    table = ijg_luminance_table(70).reshape(8, 8)
    table[np.add.outer(np.arange(8), np.arange(8)) >= 6] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, 'JPEG', qtables=[table.ravel().tolist()])
    result = read_jpeg_quality(buf.getvalue())
    assert result.header_quality < result.pixel_quality
    assert reading(result) == (result.header_quality, (0, 0), 'header') and result.reason
    # QF 100 quantises nothing (steps of 1): the pixels do not show it
    result = read_jpeg_quality(jpeg_encode(img, 100))
    assert reading(result) == (100, (0, 0), 'header') and result.pixel_quality is None and 'header' in result.reason


def test_bad_inputs():
    img = textured_image(np.random.default_rng(7), 32, 32)
    for bad in (img.astype(np.float32), img[:7], np.stack([img] * 3, axis=2)):
        with pytest.raises(ValueError):
            estimate_grid_and_quality(bad)
    for qualities in ([], [0, 50], [101]):
        with pytest.raises(ValueError):
            estimate_grid_and_quality(img, qualities)
    with pytest.raises(ValueError, match='8-bit'):
        read_jpeg_quality(png_bytes(img.astype(np.uint16) * 256))
    with pytest.raises(UnidentifiedImageError):
        read_jpeg_quality(b'not an image')


REAL_NAMES = ('BSD68/test003.png', 'BSD68/test042.png', 'Set12/01.png', 'Classic5/3.bmp')
REAL_IMAGES = [osp.join(SHARED_DATASETS, name) for name in REAL_NAMES]
HAVE_REAL_IMAGES = all(osp.isfile(path) for path in REAL_IMAGES)
needs_real_images = pytest.mark.skipif(
    not HAVE_REAL_IMAGES, reason=f'the BSD68, Set12 and Classic5 images are not in {SHARED_DATASETS}')


@needs_real_images
@pytest.mark.parametrize('path', REAL_IMAGES, ids=osp.basename)
def test_real_crops_and_resized_images(path):
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    for quality, (dy, dx) in ((10, (3, 5)), (50, (1, 0)), (90, (6, 7)), (95, (0, 0))):
        decoded = jpeg_compress(img, quality)
        assert reading(estimate_grid_and_quality(decoded[dy:, dx:])) == (quality, (dy, dx), 'pixels')
        resized = cv2.resize(decoded, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
        assert reading(estimate_grid_and_quality(resized)) == UNKNOWN


@needs_real_images
def test_real_never_compressed_images_are_unknown_but_bsd68_shows_its_jpeg_past():
    for name, (top, left) in (('Set12/01.png', (0, 123)), ('Classic5/3.bmp', (0, 164))):
        img = cv2.imread(osp.join(SHARED_DATASETS, name), cv2.IMREAD_GRAYSCALE)
        assert reading(estimate_grid_and_quality(img)) == UNKNOWN
        # one smooth block can fit a table by chance: these fit QF 99 by 4 to 5 nats, short of the 10 required
        assert estimate_quality(img[top:top + 8, left:left + 8]) == 99
        assert reading(estimate_grid_and_quality(img[top:top + 8, left:left + 8])) == UNKNOWN
    # BSD68's ground truths are gray conversions of the BSDS JPEGs: their luma still shows QF 95 on the original grid
    img = cv2.imread(osp.join(SHARED_DATASETS, 'BSD68/test003.png'), cv2.IMREAD_GRAYSCALE)
    assert reading(estimate_grid_and_quality(img)) == (95, (0, 0), 'pixels')


def skimage_photo(name):
    data = pytest.importorskip('skimage.data')
    try:
        return np.ascontiguousarray(getattr(data, name)()[..., ::-1])
    except Exception as error:  # pragma: no cover (a skimage without its bundled images)
        pytest.skip(f'skimage.data.{name} cannot be loaded: {error}')


def test_resized_photos_with_a_faint_lattice_are_unknown():
    retina = skimage_photo('retina')  # its dark, smooth background keeps a faint lattice through resizing
    # QF 99 fits by 0.16 nats per block (over 600 in all) on the grid at the top-left pixel: too little per block
    resized = cv2.resize(decode_luma(jpeg_encode(retina, 30)), None, fx=0.6, fy=0.6, interpolation=cv2.INTER_CUBIC)
    assert estimate_quality(resized) == 99 and reading(estimate_grid_and_quality(resized)) == UNKNOWN
    # and by 0.38 on another grid, which the DC lattice did not locate (QF 99's DC step is 1)
    resized = cv2.resize(decode_luma(jpeg_encode(retina, 70)), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    assert reading(estimate_grid_and_quality(resized)) == UNKNOWN


@pytest.mark.parametrize('name', ('astronaut', 'coffee'))
def test_real_color_photos_via_the_luma_plane(name):
    bgr = skimage_photo(name)
    for quality in (10, 30, 70):
        result = read_jpeg_quality(jpeg_encode(bgr, quality))
        assert result == QualityReading(quality, (0, 0), 'header', quality, quality, None)


def test_a_crop_of_saturated_colours_with_one_step_coefficients_reads_without_a_warning():
    """The colour wheel at QF 15, cropped: its few unclipped blocks hold coefficients of at most one quantisation step,
    which fit every earlier table; the search for an earlier compression found an empty histogram there and warned
    (a mean of an empty slice)."""
    crop = jpeg_compress(skimage_photo('colorwheel'), 15)[7:, 1:]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert reading(read_jpeg_quality(png_bytes(crop))) == (15, (7, 1), 'pixels')


def test_pixel_quality_of_any_decoded_image_small_ones_included():
    gray = jpeg_compress(textured_image(np.random.default_rng(2), 48, 64), 40)
    assert read_pixel_quality(gray).quality == 40
    assert read_pixel_quality(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)).quality == 40
    small = read_pixel_quality(np.zeros((5, 7, 3), np.uint8))
    assert small.quality is None and small.reason == 'smaller than one 8x8 block'
