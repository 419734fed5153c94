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
