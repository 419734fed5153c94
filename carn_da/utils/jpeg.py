"""Grayscale conversion, real JPEG coding (OpenCV's libjpeg) and JPEG quality estimation, shared by data preparation,
datasets and the command-line tools."""
import cv2
import io
import numpy as np
from collections import Counter
from PIL import Image, UnidentifiedImageError


def check_quality(quality):
    """Raise ValueError unless ``quality`` is an int in 1..100 (a JPEG quality factor)."""
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f'JPEG quality must be an int in 1..100, got {quality!r}.')


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
            tables = img.quantization if img.format == 'JPEG' else {}
    except UnidentifiedImageError:
        return None
    if 0 not in tables:
        return None
    errors = np.abs(IJG_TABLES - np.asarray(tables[0])).sum(axis=1)
    return int(np.argmin(errors)) + 1


def quality_histogram(paths):
    """{quality: number of files} of :func:`read_quality` over ``paths``, by quality, None (not a JPEG) last."""
    counts = Counter(read_quality(path) for path in paths)
    return {q: counts[q] for q in sorted(counts, key=lambda q: (q is None, q))}


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
    JPEG is not estimated reliably.

    Args:
        img (ndarray): uint8 HxW (or HxWx1) image, at least 8x8: a whole decoded JPEG.
        qualities (Iterable[int]): Candidate qualities (1..100). Default: all.

    Returns:
        int: The estimated quality, one of ``qualities``.
    """
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.dtype != np.uint8 or img.ndim != 2 or min(img.shape) < 8:
        raise ValueError(f'Expected a uint8 HxW image of at least 8x8, got dtype {img.dtype} and shape {img.shape}.')
    qualities = sorted(set(qualities))
    if not qualities:
        raise ValueError('qualities is empty.')
    for quality in qualities:
        check_quality(quality)
    h, w = img.shape[0] // 8, img.shape[1] // 8
    blocks = img[:8 * h, :8 * w].reshape(h, 8, w, 8).transpose(0, 2, 1, 3).reshape(h * w, 64)
    unclipped = ~((blocks == 0) | (blocks == 255)).any(axis=1)
    if unclipped.sum() >= 16:
        blocks = blocks[unclipped]
    if len(blocks) > _MAX_BLOCKS:
        blocks = blocks[np.linspace(0, len(blocks) - 1, _MAX_BLOCKS).round().astype(np.int64)]
    coefs = (blocks.astype(np.float32) - 128) @ _DCT64.T
    coefs[(np.abs(coefs[:, 1:]) < 1.5).all(axis=1), 0] = 0  # DC of flat blocks: off by up to 4 (rounding of 64 alike)
    # per-frequency histograms of the coefficients rounded to integers, without -1..1
    size = 2 * _COEF_RANGE + 1
    values = np.clip(np.rint(coefs).astype(np.int64), -_COEF_RANGE, _COEF_RANGE) + _COEF_RANGE
    hist = np.bincount((values + size * np.arange(64)).ravel(), minlength=64 * size).reshape(64, size)
    hist[:, _COEF_RANGE - 1:_COEF_RANGE + 2] = 0
    total = hist.sum(axis=1)
    tables = IJG_TABLES[np.asarray(qualities) - 1]
    scores = np.zeros((64, 256))  # log-likelihood ratio of each frequency's coefficients for each step
    for step in np.unique(tables):
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
    totals = scores[np.arange(64), tables].sum(axis=1)
    best = np.flatnonzero(np.isclose(totals, totals.max(), rtol=0, atol=1e-6))
    return int(qualities[best[len(best) // 2]])
