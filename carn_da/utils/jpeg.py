"""Grayscale conversion, real JPEG coding (OpenCV's libjpeg) and JPEG quality estimation, shared by data preparation,
datasets and the command-line tools."""
import cv2
import io
import numpy as np
from collections import Counter
from dataclasses import dataclass
from PIL import Image, UnidentifiedImageError


def check_quality(quality):
    """Raise ValueError unless ``quality`` is an int in 1..100 (a JPEG quality factor)."""
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f'JPEG quality must be an int in 1..100, got {quality!r}.')


def quality_range(value, key):
    """The option ``key``'s ``value``, [min, max] JPEG qualities, as a tuple; ValueError naming ``key`` otherwise."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f'{key} must be [min, max] JPEG qualities, got {value!r}.')
    for quality in value:
        check_quality(quality)
    if value[0] > value[1]:
        raise ValueError(f'{key}: min {value[0]} is above max {value[1]}.')
    return tuple(value)


def to_gray(img):
    """Convert a uint8 gray, BGR or BGRA image (as read with ``cv2.IMREAD_UNCHANGED``) to uint8 HxW luma.

    Colour goes through ``cv2.COLOR_BGR2GRAY`` (BT.601 full range); alpha is dropped.
    """
    if img.dtype != np.uint8:
        raise ValueError(f'Expected an 8-bit image, got dtype {img.dtype}.')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if img.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    raise ValueError(f'Unsupported image shape {img.shape}.')


def jpeg_encode(img, quality):
    """Encode a uint8 gray or BGR image as a JPEG bitstream (bytes) of the given quality."""
    check_quality(quality)
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f'OpenCV could not JPEG-encode an image of shape {img.shape}.')
    return buf.tobytes()


def jpeg_compress(img, quality):
    """JPEG-encode then decode a uint8 image; the result has the shape (and channel count) of the input."""
    data = jpeg_encode(img, quality)
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).reshape(img.shape)


# The luminance quantisation table of the JPEG standard (Annex K.1) that libjpeg scales by quality, in natural
# (row-major) order, which Pillow >= 8.3 also uses for ``Image.quantization`` (the file stores zigzag order).
STD_LUMINANCE_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
])  # yapf: disable


def ijg_luminance_table(quality):
    """The luminance table libjpeg writes for ``quality`` (``jpeg_set_quality`` with force_baseline, as OpenCV and
    Pillow call it): the standard table scaled by 5000 / q (q < 50) or 200 - 2 q percent, rounded, in 1..255."""
    check_quality(quality)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((STD_LUMINANCE_TABLE * scale + 50) // 100, 1, 255)


IJG_TABLES = np.stack([ijg_luminance_table(q) for q in range(1, 101)])
JPEG_FORMATS = ('JPEG', 'MPO')  # Pillow's formats of JPEG files (MPO: cameras' multi-picture JPEGs)


def read_quality(source):
    """Estimate the IJG quality factor (1..100) of a JPEG from the luminance quantisation table it declares.

    The quality whose libjpeg table (:func:`ijg_luminance_table`) is nearest to the file's table 0 (sum of absolute
    differences) is returned: exact for files written by libjpeg with its standard tables (OpenCV, Pillow, most
    software), the nearest IJG quality for other tables (cameras, other encoders). Only the header is read.

    Args:
        source (str | bytes): File path or the file's bytes.

    Returns:
        int | None: The quality, or None if ``source`` is not a JPEG (or declares no table 0).
    """
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            tables = img.quantization if img.format in JPEG_FORMATS else {}
    except UnidentifiedImageError:
        return None
    return _table_quality(tables)


def _table_quality(tables):
    """The IJG quality of the table nearest to table 0 of ``tables`` (Pillow's ``quantization``); None if none."""
    if 0 not in tables:
        return None
    errors = np.abs(IJG_TABLES - np.asarray(tables[0])).sum(axis=1)
    return int(np.argmin(errors)) + 1


def recompress(img, quality, shift):
    """JPEG round trip (:func:`jpeg_compress`) of a uint8 HxW or HxWxC image on an 8x8 block grid shifted by ``shift``.

    The image is padded by ``dy`` rows on top and ``dx`` columns on the left (mirrored, without repeating the edge, as
    ``cv2.BORDER_REFLECT_101``), compressed at ``quality`` and cropped back, so that the blocks of the result start at
    rows ``-dy + 8 i`` and columns ``-dx + 8 j`` of ``img``. A crop at (``top``, ``left``) of a decoded JPEG is on the
    grid it was coded on for ``shift == (top % 8, left % 8)``.

    Used for target self-supervision: recompressing a decoded JPEG at its own quality on its own grid is nearly
    idempotent (the coefficients already are multiples of the steps), while a shifted grid adds new blocking, which a
    network can learn to undo on target-domain images alone.

    Args:
        img (ndarray): uint8 HxW (gray) or HxWxC (BGR) image.
        quality (int): JPEG quality, 1..100.
        shift (tuple[int]): (dy, dx), each in 0..7.

    Returns:
        ndarray: The recompressed image, of the shape and dtype of ``img``.
    """
    if (not isinstance(shift, (tuple, list)) or len(shift) != 2
            or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s <= 7 for s in shift)):
        raise ValueError(f'shift must be (dy, dx) with ints in 0..7, got {shift!r}.')
    dy, dx = int(shift[0]), int(shift[1])
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f'Expected a uint8 HxW or HxWxC image, got dtype {img.dtype} and shape {img.shape}.')
    pad = [(dy, 0), (dx, 0)] + [(0, 0)] * (img.ndim - 2)
    padded = np.pad(img, pad, mode='reflect') if dy or dx else img
    return np.ascontiguousarray(jpeg_compress(padded, quality)[dy:, dx:])


def _dct_matrix():
    """The orthonormal 8x8 DCT-II matrix D (JPEG's FDCT of a block B is D B D^T) as the 64x64 matrix kron(D, D) that
    maps row-major flattened blocks to their coefficients in natural order (that of :data:`IJG_TABLES`)."""
    k = np.arange(8)
    dct = np.sqrt(2 / 8) * np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16)
    dct[0] /= np.sqrt(2)
    return np.kron(dct, dct).astype(np.float32)


_DCT64 = _dct_matrix()
_COEF_RANGE = 1024  # |JPEG DCT coefficient of pixel - 128| <= 1024
_ROUNDING_STD = 0.3  # std of a decoded JPEG's coefficients around the multiples of its steps (pixel rounding: 0.29)
_OUTLIER_PROB = 0.01  # share of coefficients off the lattice for other reasons (smooth blocks, integer IDCT)
_MAX_BLOCKS = 4096  # blocks used at most (512 x 512 pixels), evenly spread over the image


def _step_log_likelihoods():
    """Per step s in 0..255 (0 unused): log-likelihood ratios of an integer-rounded coefficient v that is a multiple
    of s, one off a multiple, or further off, under "quantised with step s" against a smooth density of v.

    With c = k s + e (e normal, std :data:`_ROUNDING_STD`) and k drawn from a density g smooth at the scale of s, P(v)
    = s g(v) P(round(e) = v mod s): multiples of s are s P(round(e) = 0) times likelier than under g, and so on; a
    share :data:`_OUTLIER_PROB` of coefficients follows g whatever s.
    """
    from math import erf, sqrt
    bounds = [0.5 * (1 + erf((m - 0.5) / (_ROUNDING_STD * sqrt(2)))) for m in range(-3, 5)]
    p = dict(zip(range(-3, 4), np.diff(bounds)))  # P(round(e) = m)
    steps = np.arange(256, dtype=np.float64)
    off = {0: p[0], 1: p[1], 2: p[2] + p[3]}
    out = {d: np.log((1 - _OUTLIER_PROB) * steps * prob + _OUTLIER_PROB) for d, prob in off.items()}
    # s = 2: odd values are one off; s = 1: every value is a multiple, the ratio is 1
    out[0][2] = np.log((1 - _OUTLIER_PROB) * 2 * (p[0] + p[2] + p[-2]) + _OUTLIER_PROB)
    out[1][2] = np.log((1 - _OUTLIER_PROB) * 2 * (p[1] + p[-1]) + _OUTLIER_PROB)
    return np.stack([out[0], out[1], out[2]])


_STEP_LLR = _step_log_likelihoods()


def _gray_image(img):
    """``img`` (uint8 HxW or HxWx1, at least 8x8) as an HxW array; ValueError otherwise."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.dtype != np.uint8 or img.ndim != 2 or min(img.shape) < 8:
        raise ValueError(f'Expected a uint8 HxW image of at least 8x8, got dtype {img.dtype} and shape {img.shape}.')
    return img


def _candidate_qualities(qualities):
    """The sorted distinct ``qualities`` as an int array; ValueError if empty or not all in 1..100."""
    qualities = sorted(set(qualities))
    if not qualities:
        raise ValueError('qualities is empty.')
    for quality in qualities:
        check_quality(quality)
    return np.asarray(qualities, dtype=np.int64)


def _lattice_scores(hist, steps):
    """Log-likelihood ratios (nats) of the integers counted by each row of ``hist`` (bin ``_COEF_RANGE + v`` counts v)
    under "multiples of step s up to rounding noise" against a smooth density (``_step_log_likelihoods``), for each s in
    ``steps``: an array (rows, 256), 0 for the other steps and for s = 1."""
    total = hist.sum(axis=1)
    scores = np.zeros((len(hist), 256))
    for step in np.unique(steps):
        if step == 1:
            continue
        multiple = hist[:, _COEF_RANGE % step::step].sum(axis=1)
        if step == 2:
            one_off = total - multiple
        else:
            one_off = hist[:, (_COEF_RANGE + 1) % step::step].sum(axis=1)
            one_off += hist[:, (_COEF_RANGE - 1) % step::step].sum(axis=1)
        further = total - multiple - one_off
        scores[:, step] = multiple * _STEP_LLR[0, step] + one_off * _STEP_LLR[1, step] + further * _STEP_LLR[2, step]
    return scores


def _quality_log_likelihoods(coefs, qualities, transposed=False):
    """Per quality of ``qualities`` (int array), the log-likelihood ratio (nats) of the block DCT coefficients
    ``coefs`` (:func:`_block_coefficients`) under its table against no quantisation, as :func:`estimate_quality`
    scores them (0 for quality 100), and the number of blocks used. ``transposed``: the better of the table and its
    transpose (that of a JPEG turned by 90 degrees; flips keep the table)."""
    # per-frequency histograms of the coefficients rounded to integers, without -1..1
    size = 2 * _COEF_RANGE + 1
    values = np.clip(np.rint(coefs).astype(np.int64), -_COEF_RANGE, _COEF_RANGE) + _COEF_RANGE
    hist = np.bincount((values + size * np.arange(64)).ravel(), minlength=64 * size).reshape(64, size)
    hist[:, _COEF_RANGE - 1:_COEF_RANGE + 2] = 0
    tables = IJG_TABLES[qualities - 1]
    scores = _lattice_scores(hist, tables)
    totals = scores[np.arange(64), tables].sum(axis=1)
    if transposed:
        turned = tables.reshape(-1, 8, 8).transpose(0, 2, 1).reshape(-1, 64)
        totals = np.maximum(totals, scores[np.arange(64), turned].sum(axis=1))
    return totals, len(coefs)


def _block_coefficients(img):
    """The 8x8 block DCT coefficients (blocks, 64; natural order) of ``img`` (uint8 HxW, grid at its top-left pixel)
    that the estimates use: blocks with a pixel at 0 or 255 left out when 16 others remain, at most
    :data:`_MAX_BLOCKS` spread evenly, the DC of flat blocks set to 0."""
    h, w = img.shape[0] // 8, img.shape[1] // 8
    blocks = img[:8 * h, :8 * w].reshape(h, 8, w, 8).transpose(0, 2, 1, 3).reshape(h * w, 64)
    unclipped = ~((blocks == 0) | (blocks == 255)).any(axis=1)
    if unclipped.sum() >= 16:
        blocks = blocks[unclipped]
    if len(blocks) > _MAX_BLOCKS:
        blocks = blocks[np.linspace(0, len(blocks) - 1, _MAX_BLOCKS).round().astype(np.int64)]
    coefs = (blocks.astype(np.float32) - 128) @ _DCT64.T
    coefs[(np.abs(coefs[:, 1:]) < 1.5).all(axis=1), 0] = 0  # DC of flat blocks: off by up to 4 (rounding of 64 alike)
    return coefs


# Double quantisation: nats per block by which "compressed at a coarser quality, then at the last one" must beat "at
# the last one only". On 5 BSD68 images, single compressions at QF 30 and 50 score at most 0.11 for their best coarser
# candidate, QF 10 then 30 and 40 then 60 at least 2.1; benchmarks/real_world.py measures every case (docs/RESULTS.md).
_EARLIER_MIN_FIT = 0.5
_EARLIER_OUTLIER = 0.02


def _earlier_quality(coefs, quality, qualities):
    """The quality of ``qualities``, coarser than ``quality``, at which an image whose block DCT coefficients are
    ``coefs`` (:func:`_block_coefficients`; last compressed at ``quality``) was compressed before, or None.

    Each AC coefficient of the last compression is m steps s_b of its table; had it been quantised before with a
    coarser step s_a, m s_b is within s_b / 2 of a multiple of s_a: only a share s_b / s_a of the integers m can occur.
    Against a density of m smooth at that scale, every m with |m| >= 2 scores log((1 - e) / p + e) if it can occur
    (p: the share of the integers that can, about s_b / s_a; more where m s_b falls halfway between), log(e) if not
    (e: :data:`_EARLIER_OUTLIER`), over the frequencies where s_a > s_b (m = 0 fits every step, and around |m| = 1
    the density of a single compression is too peaked to count as smooth); the best candidate is kept above
    :data:`_EARLIER_MIN_FIT` nats per block.
    """
    last = IJG_TABLES[quality - 1]
    steps = np.rint(coefs[:, 1:] / last[1:]).astype(np.int64)  # m per block and AC frequency
    reach = int(np.abs(steps).max(initial=0))
    if reach < 2:  # every m is 0 or +-1, which fit every step: no evidence (a flat or a heavily clipped image)
        return None
    values = np.arange(-reach, reach + 1)
    hist = np.bincount((steps + reach + (2 * reach + 1) * np.arange(63)).ravel(), minlength=63 * (2 * reach + 1))
    hist = hist.reshape(63, 2 * reach + 1)
    hist[:, reach - 1:reach + 2] = 0  # m = 0 fits every step; |m| = 1, most of the rest, is where g is least smooth
    best, best_score = None, max(_EARLIER_MIN_FIT * len(coefs), _MIN_NATS)
    for earlier in qualities[qualities < quality]:
        coarse, fine = IJG_TABLES[earlier - 1, 1:, None], last[1:, None]
        used = coarse[:, 0] > fine[:, 0]
        possible = np.abs(np.rint(values * fine / coarse) * coarse - values * fine) <= fine / 2
        share = possible[:, np.abs(values) >= 2].mean(axis=1, keepdims=True)  # about s_b / s_a, more on ties
        log_ratio = np.where(possible, np.log((1 - _EARLIER_OUTLIER) / share + _EARLIER_OUTLIER),
                             np.log(_EARLIER_OUTLIER))
        score = (hist[used] * log_ratio[used]).sum()
        if score > best_score:
            best, best_score = int(earlier), score
    return best


def _middle_of_best(qualities, totals):
    """The quality of the highest total, the middle one of ties."""
    best = np.flatnonzero(np.isclose(totals, totals.max(), rtol=0, atol=1e-6))
    return int(qualities[best[len(best) // 2]])


def estimate_quality(img, qualities=range(1, 101)):
    """Estimate the IJG quality a decoded grayscale JPEG was last compressed at, from its pixels only.

    A decoded JPEG's 8x8 block DCT coefficients (of pixel - 128, on the grid starting at the top-left pixel) lie within
    pixel-rounding noise of integer multiples of the quantisation steps that coded them. Each candidate quality's
    libjpeg table (:func:`ijg_luminance_table`) is scored by the log-likelihood of the coefficients rounded to
    integers (see ``_step_log_likelihoods``): a multiple of the step scores log(s P(round(noise) = 0)), one off scores
    much less, anything else the outlier floor. So the true table beats finer ones whose steps divide its steps (the
    coefficients fit them too, but each fit scores less: log 2 less for half the step), and coarser ones (the true
    coefficients are off their lattice). The traps are avoided as follows: coefficients rounding to -1..1 (mostly
    quantised to zero: they fit every step) are left out, and so are the DC coefficients of flat blocks (where the 64
    pixels round alike, off by up to 4) and blocks with a pixel at 0 or 255 (clipping moves them off the lattice) when
    at least 16 others remain. Large images use 4096 blocks spread evenly over them.

    Measured (``benchmarks/qf_estimation.py``, images compressed with :func:`jpeg_compress`): exact for QF 10, 20, ...,
    90, 95 on every BSD68 and Set12 image, in about 15 ms per 481x321 image on one CPU core; exact for every QF 2..97
    on 26 BSD68, Set12 and Train400 images (QF 1 may give 2, whose table is nearly the same).

    Limits: an image that was never JPEG-compressed gives 100 (the all-ones table of quality 100 is the only one that
    does not lose against non-quantised coefficients); an image that was, earlier in its history, at a coarser
    quality than its last one gives (about) that coarser quality (BSD68's ground truths, grayscale conversions of the
    BSDS JPEGs, give 95 themselves, and still do after QF 99 or 100); tables of other encoders give the nearest-fitting
    IJG quality, if any; when nothing tells the candidates apart (a flat image, a tiny one) the middle of the tied
    candidates is returned. A crop whose grid does not start at its top-left pixel, a resized or a color-converted
    JPEG is not estimated reliably: :func:`estimate_grid_and_quality` and :func:`read_jpeg_quality` handle them.

    Args:
        img (ndarray): uint8 HxW (or HxWx1) image, at least 8x8: a whole decoded JPEG.
        qualities (Iterable[int]): Candidate qualities (1..100). Default: all.

    Returns:
        int: The estimated quality, one of ``qualities``.
    """
    qualities = _candidate_qualities(qualities)
    return _middle_of_best(qualities, _quality_log_likelihoods(_block_coefficients(_gray_image(img)), qualities)[0])


_GRID_MAX_BLOCKS = 64  # block rows (and columns) per offset the grid search uses at most, evenly spaced
_FLAT_VARIANCE = 1.  # windows of a smaller pixel variance are left out of the grid search (their DC is off by up to 4)
# Thresholds, measured on BSD68, Set12, Classic5 and 8 skimage colour photos (JPEGs at QF 10..99, crops at every grid
# offset, JPEGs resized by 0.5..0.9 or rotated by 1, 5 or 30 degrees). The best table's fit on the chosen grid (nats per
# block against no quantisation) is >= 0.6 on JPEGs at QF <= 95 (>= 0.39 at QF 96..99) and <= 0.14 without a grid, but
# for 2x downscales of one photo (up to 0.39: an aligned 2x downscale keeps part of the lattice). The floor in nats
# keeps images of a few blocks from fitting by chance (one 8x8 block of a never-compressed photo often fits QF 99 by 1
# to 6 nats). The best window offset's DC-lattice fit exceeds the next offset's by z nats per block times sqrt(blocks):
# z <= 2.9 without a grid, >= 20 on JPEGs (>= 5.6 where an older grid competes, as in a re-compressed JPEG photo); under
# _GRID_MIN_Z the grid of an uncropped JPEG (QF > 95 has DC step 1: no DC lattice) is tried as well.
_MIN_FIT = 0.3
_MIN_NATS = 10.
_GRID_MIN_Z = 4.
# Usable windows (textured, unclipped) an image needs for a missing grid to mean "no JPEG grid": on the first 20 BSD68
# images at QF 90, 64 of 80 crops of 48x48 pixels (25 windows per offset, fewer usable) have their grid found, 76 of 80
# of 56x56 (36); a fully saturated colour crop (luma left out where a channel clipped) may keep none.
_GRID_MIN_WINDOWS = 32
_TIE_NATS = 10.  # a header table within this of the best fit (a likelihood ratio of e^10) agrees with the pixels


def _grid_log_likelihoods(img, steps):
    """Per window offset (dy, dx) in 0..7 (row-major, 64): the log-likelihood ratio (nats) of the sums of the 8x8
    windows at rows dy + 8 i and columns dx + 8 j (their DC coefficients) lying on a lattice, with the best of
    ``steps``, and the number of windows used (flat windows and windows with a pixel at 0 or 255 are left out)."""
    box = {'ksize': (8, 8), 'anchor': (0, 0), 'normalize': False, 'borderType': cv2.BORDER_CONSTANT}
    sums = cv2.boxFilter(img, cv2.CV_32S, **box)  # at (y, x): the sum of rows y..y+7, columns x..x+7
    squares = cv2.sqrBoxFilter(img, cv2.CV_64F, **box)
    clipped = cv2.boxFilter(((img == 0) | (img == 255)).astype(np.uint8), cv2.CV_32S, **box)
    rows, cols = (img.shape[0] - 7) // 8, (img.shape[1] - 7) // 8  # windows per offset along each axis

    def windows(per_pixel):  # (64 offsets, windows): every k-th window row and column, at most _GRID_MAX_BLOCKS
        picked = per_pixel[:8 * rows, :8 * cols].reshape(rows, 8, cols, 8)
        picked = picked[::-(-rows // _GRID_MAX_BLOCKS), :, ::-(-cols // _GRID_MAX_BLOCKS)]
        return picked.transpose(1, 3, 0, 2).reshape(64, -1)

    total = windows(sums).astype(np.float64)
    usable = (windows(clipped) == 0) & (windows(squares) / 64 - (total / 64)**2 >= _FLAT_VARIANCE)
    values = np.clip(np.rint(total / 8 - 128 * 8).astype(np.int64), -_COEF_RANGE, _COEF_RANGE) + _COEF_RANGE
    size = 2 * _COEF_RANGE + 1
    hist = np.bincount((values + size * np.arange(64)[:, None])[usable], minlength=64 * size).reshape(64, size)
    return _lattice_scores(hist, steps)[:, steps].max(axis=1), usable.sum(axis=1)


# A JPEG resized by a factor s keeps a trace of its 8x8 blocking: a period of 8 s pixels along both axes. Factors tried:
_RESIZE_FACTORS = np.arange(0.45, 0.9501, 0.0025)
_BACKGROUND_PERIODS = np.linspace(3., 8.5, 400)  # pixels: the power a profile has at periods where blocking may be
_RESIZE_MAX_LINES = 512  # rows (columns) per profile at most, evenly spaced
# the strength of resized blocking taken as a resized JPEG: exceeded by 1 % of never-compressed images resized by
# 0.5-0.9 (Train400 in 2x2 tiles, 360x360 pixels; benchmarks/resized_blocking.py)
_RESIZED_MIN_STRENGTH = 3.65


def _periodic_power(profile, periods):
    """Power of the mean-free ``profile`` at each of ``periods`` (in pixels, not necessarily whole)."""
    phases = np.outer(1. / periods, np.arange(len(profile)))
    return np.abs(np.exp(-2j * np.pi * phases) @ (profile - profile.mean()))**2


def resized_blocking(img):
    """(factor, strength) of the blocking a JPEG leaves once resized, in a uint8 gray image that shows no 8x8 grid.

    Along each axis, the profile of the median absolute second difference across it (robust to a few strong edges)
    is searched for a period ``8 * factor`` (``factor`` in 0.45..0.95): the strength is the log of its power there
    over the median power at periods of 3-8.5 pixels, averaged over the two axes at the factor where that average is
    highest. ``factor`` is None (no resized JPEG shown) when the strength is under ``_RESIZED_MIN_STRENGTH`` or the
    image is too small or flat to tell. Measured (``benchmarks/resized_blocking.py``, docs/RESULTS.md): in BSD68 images
    resized by 0.5-0.9, the blocking of QF 10, 20, 30, 40 is found in 96, 82, 62, 41 %, that of QF 80-95 in 4-12 %.
    A texture that repeats every 3.6-7.6 pixels (a fabric, a fence) can read as such blocking.
    """
    x = img.astype(np.float32)
    strength = 0.
    for lines in (x, x.T):
        if min(lines.shape) < 32:
            return None, 0.
        lines = lines[np.linspace(0, len(lines) - 1, min(len(lines), _RESIZE_MAX_LINES)).astype(int)]
        profile = np.median(np.abs(lines[:, 2:] - 2 * lines[:, 1:-1] + lines[:, :-2]), axis=0)
        background = np.median(_periodic_power(profile, _BACKGROUND_PERIODS))
        if background <= 0:
            return None, 0.
        strength = strength + np.log(np.maximum(_periodic_power(profile, 8 * _RESIZE_FACTORS), 1e-30) / background) / 2
    best = int(np.argmax(strength))
    found = strength[best] >= _RESIZED_MIN_STRENGTH
    return (round(float(_RESIZE_FACTORS[best]), 4) if found else None), float(strength[best])


@dataclass(frozen=True)
class QualityReading:
    """Which JPEG quality, on which 8x8 grid, an image's artifacts come from (:func:`estimate_grid_and_quality`,
    :func:`read_jpeg_quality`).

    Attributes:
        quality (int | None): The IJG quality (1..100) that shaped the artifacts; None when unknown.
        offset (tuple[int] | None): (dy, dx), each in 0..7, of the grid ``quality`` refers to: the image is like a crop
            at row dy, column dx of an image coded on the grid at its top-left pixel (its blocks start at rows
            ``(8 - dy) % 8 + 8 i``, columns ``(8 - dx) % 8 + 8 j``), the ``shift`` of :func:`recompress`; None when
            unknown.
        source (str | None): 'header' (the file's quantisation table), 'pixels' or None (unknown).
        header_quality (int | None): :func:`read_quality` of the file; None for a non-JPEG or an array.
        pixel_quality (int | None): The estimate from the pixels; None when they show no JPEG quantisation.
        last_quality (int | None): When the pixels show two compressions on one grid (a JPEG re-saved finer),
            the quality of the last one; ``pixel_quality`` is then the earlier, coarser one.
        reason (str | None): Why ``quality`` is unknown, or how header and pixels disagree; None otherwise.
        no_grid (bool): The quality is unknown because the pixels show no 8x8 JPEG grid, over enough textured blocks
            to tell, nor the blocking of a resized JPEG (never compressed, rotated, or resized from a quality high
            enough to leave no trace); False when it is unknown for want of such blocks (a small, flat or
            colour-clipped image), because a grid's blocks fit no IJG table, or because the blocking of a resized JPEG
            shows: those are, or may well be, JPEGs.
        resized_by (float | None): With no grid, the factor by which a JPEG seems to have been resized, from the
            blocking it left (:func:`resized_blocking`); None otherwise.
    """
    quality: int | None
    offset: tuple | None
    source: str | None
    header_quality: int | None = None
    pixel_quality: int | None = None
    last_quality: int | None = None
    reason: str | None = None
    no_grid: bool = False
    resized_by: float | None = None

    @property
    def known(self):
        return self.quality is not None

    def __str__(self):
        """One line for reports: 'QF 30 (header, grid offset 0,0)' and the reason if any, or 'quality unknown: ...'."""
        if not self.known:
            return f'quality unknown: {self.reason}'
        text = f'QF {self.quality} ({self.source}, grid offset {self.offset[0]},{self.offset[1]})'
        return text + (f'; {self.reason}' if self.reason else '')


def _pixel_reading(img, qualities):
    """(:class:`QualityReading` of the uint8 HxW ``img`` from its pixels, the log-likelihood ratio of each of
    ``qualities`` on the grid tried last), for :func:`estimate_grid_and_quality`."""
    if min(img.shape) < 8:
        return QualityReading(None, None, None, reason='smaller than one 8x8 block'), np.zeros(len(qualities))
    steps = np.unique(IJG_TABLES[qualities - 1, 0])
    steps = steps[steps > 1]
    candidates, z, windows = [(0, 0)], 0., 0
    if min(img.shape) >= 15 and len(steps):
        scores, counts = _grid_log_likelihoods(img, steps)
        means = scores / np.maximum(counts, 1)
        best, second = np.argsort(-means, kind='stable')[:2]
        z, windows = (means[best] - means[second]) * np.sqrt(counts[best]), int(counts[best])
        candidates = [divmod(int(best), 8)] + ([(0, 0)] if z < _GRID_MIN_Z and best != 0 else [])
    for top, left in candidates:
        coefs = _block_coefficients(img[top:, left:])  # the grid's coefficients, for both estimates
        totals, blocks = _quality_log_likelihoods(coefs, qualities, transposed=True)
        quality = _middle_of_best(qualities, totals)
        # off (0, 0), only a grid the DC lattice located: not that of a table whose DC step is 1 (QF > 95)
        located = (top, left) == (0, 0) or IJG_TABLES[quality - 1, 0] > 1
        if totals.max() >= max(_MIN_FIT * blocks, _MIN_NATS) and located:
            offset = ((8 - top) % 8, (8 - left) % 8)
            earlier = _earlier_quality(coefs, quality, qualities) if quality < 100 else None
            if earlier is None:
                return QualityReading(quality, offset, 'pixels', pixel_quality=quality), totals
            reason = f'compressed at QF {earlier} before its last compression at QF {quality}'
            return QualityReading(
                earlier, offset, 'pixels', pixel_quality=earlier, last_quality=quality, reason=reason), totals
    numbers = f'(grid z {z:.1f}, best table {totals.max() / blocks:.2f} nats per block)'
    no_grid, factor = False, None
    if z >= _GRID_MIN_Z:
        reason = f'an 8x8 grid at offset {((8 - top) % 8, (8 - left) % 8)} whose blocks fit no IJG table {numbers}'
    elif windows < _GRID_MIN_WINDOWS:
        reason = f'too few textured blocks to find a JPEG grid ({windows} usable) {numbers}'
    else:
        factor, strength = resized_blocking(img)
        if factor is None:
            reason, no_grid = f'no JPEG grid in the pixels (never compressed, resized, rotated?) {numbers}', True
        else:
            reason = f'no 8x8 grid, but the blocking of a JPEG resized by about {factor:.2f} (strength {strength:.1f})'
    return QualityReading(None, None, None, reason=reason, no_grid=no_grid, resized_by=factor), totals


def estimate_grid_and_quality(img, qualities=range(1, 101)):
    """Find the 8x8 grid and the IJG quality of the JPEG compression a uint8 gray image's pixels show, if any.

    Unlike :func:`estimate_quality`, the image may be a crop off its grid (any of the 64 offsets), turned by 90 degrees
    or flipped; an image whose pixels show no JPEG quantisation (never compressed, resized, rotated by another angle,
    coded with tables far from libjpeg's) comes back unknown rather than 100. The offset comes first, from the DC
    coefficients (box-filter sums) of the 8x8 windows at each of the 64 offsets: on the coding grid they lie on a
    lattice (multiples of the DC step), elsewhere not. :func:`estimate_quality`'s likelihood, with transposed tables
    too, is then computed once on the image cropped to that grid; the quality is known when the best table fits clearly
    better than no quantisation (see the comment on ``_MIN_FIT``). Without a clear DC lattice (QF > 95: DC step 1),
    the grid of an uncropped JPEG is tried as well.

    Measured on BSD68, Set12, Classic5 and 8 skimage colour photos (luma planes) at QF 10, 20, ..., 90, 95: quality and
    offset exact for all 930 whole JPEGs and 15720 crops (every offset 229 times or more); quality exact for the 930
    JPEGs turned by 90 degrees; unknown for 99.96 % of 6975 JPEGs resized by 0.5 to 0.9 (area, linear, cubic; three
    2x downscales of one photo give QF 99; a resized JPEG whose blocking still shows is told apart from an image
    without a grid, :func:`resized_blocking`) and all 837 rotated by 1, 5 or 30 degrees. Never-compressed images
    (Classic5; Set12 but one) are unknown; BSD68's ground truths show the QF 95 of the BSDS JPEGs they come from.
    Time (CPU, one thread): about twice :func:`estimate_quality`'s on a JPEG (17 against 8.4 ms for 481x321 pixels,
    half of it the grid search), three times on an image without a grid (two grids tried), where the search for the
    blocking of a resized JPEG adds about 13 ms (337x225 pixels, beside other jobs).

    An earlier, coarser compression on the same grid is the one found: where its lattice still fits best (30 for 90
    of 93 images saved at QF 30, then 90), and where the last lattice fits best but shows the gaps the earlier one
    left among its multiples (``_earlier_quality``: QF 10 then 30, 20 then 50, ...; ``last_quality`` then holds the
    last one).

    Limits: under about 40x40 pixels the grid of QF >= 90 is often not found (unknown, not wrong); QF > 95 is found
    uncropped only; an earlier compression is not found when the later one was on another grid (a crop re-saved),
    which erases the earlier lattice, nor always when the two are close (see ``_EARLIER_MIN_FIT``).

    Args:
        img (ndarray): uint8 HxW (or HxWx1) image, at least 8x8.
        qualities (Iterable[int]): Candidate qualities (1..100). Default: all.

    Returns:
        QualityReading: Source 'pixels' with quality and offset, or unknown (all None) with the reason and
        ``no_grid``.
    """
    qualities = _candidate_qualities(qualities)
    return _pixel_reading(_gray_image(img), qualities)[0]


def read_pixel_quality(img):
    """:func:`estimate_grid_and_quality` of any decoded uint8 image (gray, BGR or BGRA: its luma), which may be
    smaller than one 8x8 block (then unknown, with that reason)."""
    luma = to_gray(img)
    if min(luma.shape[:2]) < 8:
        return QualityReading(None, None, None, reason='smaller than one 8x8 block')
    return estimate_grid_and_quality(luma)


def _open_luma(source, mark_clipped=False):
    """(uint8 HxW luma, quantisation tables ({} for a non-JPEG)) of an image file (path or bytes); see
    :func:`decode_luma`. ``mark_clipped``: a colour pixel of a non-JPEG with a channel at 0 or 255 gets luma 0."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        tables = img.quantization if img.format in JPEG_FORMATS else {}
        if img.format in JPEG_FORMATS and img.mode == 'RGB':
            img.draft('L', img.size)  # libjpeg outputs the Y component as decoded: no colour conversion
        if img.mode in ('L', 'LA', 'La'):
            return np.asarray(img.convert('L')), tables
        if img.mode not in ('1', 'P', 'PA', 'RGB', 'RGBA', 'RGBa', 'RGBX', 'CMYK', 'YCbCr'):
            raise ValueError(f'Expected an 8-bit image, got mode {img.mode}.')
        rgb = np.asarray(img.convert('RGB'))
        luma = to_gray(rgb[..., ::-1])
        if mark_clipped:  # a clipped channel moves the luma off the JPEG's lattice: the estimates leave out such blocks
            luma[((rgb == 0) | (rgb == 255)).any(axis=2)] = 0
        return luma, tables


def decode_luma(source):
    """The luma plane (uint8 HxW) of an image file, on which a JPEG's own 8x8 grid starts at the top-left pixel.

    For a gray or YCbCr JPEG, the Y component as libjpeg decodes it, before any colour conversion (what OpenCV's
    ``IMREAD_GRAYSCALE`` gives; a BGR decoding converted back to gray is off by clipping and rounding, which hides the
    quantisation); the stored orientation (EXIF orientation is not applied). Other images (CMYK JPEGs too):
    :func:`to_gray` of their pixels.

    Args:
        source (str | bytes): File path or the file's bytes.

    Returns:
        ndarray: uint8 HxW.
    """
    return _open_luma(source)[0]


def read_jpeg_quality(source):
    """Which IJG quality, on which grid, shaped the artifacts of an image file: header and pixels of a JPEG, pixels of
    anything else (a PNG of a decoded JPEG, say).

    For a JPEG, the quality its luminance table declares (:func:`read_quality`) is checked against the pixels of its
    luma plane as stored (:func:`decode_luma`, :func:`estimate_grid_and_quality`). They agree when the header's table
    fits the pixels within e^10 of the best one; then the header's quality is used. Otherwise ``reason`` says so and
    the coarser of the two is used: the pixels' when the header is finer (a JPEG re-saved at a higher quality: the
    earlier, coarser quantisation shaped the artifacts), the header's when it is coarser (tables far from libjpeg's,
    say). Pixels showing no quantisation (QF 100, a flat image) leave the header's quality, with a reason. For a
    colour image of another format (a PNG of a decoded colour JPEG), the luma is recomputed from RGB, off the JPEG's
    own Y by rounding, and pixels with a channel clipped at 0 or 255 (far off it) are left out; ``benchmarks/
    real_world.py`` measures how often such crops read right.

    Args:
        source (str | bytes): File path or the file's bytes.

    Returns:
        QualityReading: ``offset`` is (0, 0), the file's own grid, when the header's quality is used without the
        pixels' grid.

    Raises:
        PIL.UnidentifiedImageError: ``source`` is not an image. ValueError: not an 8-bit image.
    """
    luma, tables = _open_luma(source, mark_clipped=True)
    qualities = _candidate_qualities(range(1, 101))
    pixels, totals = _pixel_reading(luma, qualities)
    header = _table_quality(tables)
    if header is None:
        return pixels
    both = {'header_quality': header, 'pixel_quality': pixels.pixel_quality, 'last_quality': pixels.last_quality}
    if not pixels.known:
        return QualityReading(header, (0, 0), 'header', reason=f'pixels: {pixels.reason}; header used', **both)
    # the header's table fits the pixels as well as the best, and they show no earlier compression: no disagreement
    if pixels.last_quality is None and totals[header - 1] >= totals.max() - _TIE_NATS:
        return QualityReading(header, pixels.offset, 'header', **both)
    if header > pixels.quality:
        reason = f'header {header}, pixels {pixels.quality}: an earlier, coarser compression shaped the artifacts'
        return QualityReading(pixels.quality, pixels.offset, 'pixels', reason=reason, **both)
    reason = f'header {header}, pixels {pixels.quality}: the header\'s coarser table is used'
    return QualityReading(header, (0, 0), 'header', reason=reason, **both)


def file_quality(path):
    """The quality of :func:`read_jpeg_quality` of the file ``path``; None if it is unknown or the file is not an image
    Pillow reads."""
    try:
        return read_jpeg_quality(path).quality
    except (UnidentifiedImageError, ValueError):
        return None


def quality_histogram(paths):
    """{quality: number of files} of :func:`file_quality` over ``paths``, by quality, None (unknown) last."""
    counts = Counter(file_quality(path) for path in paths)
    return {q: counts[q] for q in sorted(counts, key=lambda q: (q is None, q))}
