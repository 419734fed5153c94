"""Grayscale conversion and real JPEG coding (OpenCV's libjpeg), shared by data preparation and datasets."""
import cv2
import numpy as np


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
