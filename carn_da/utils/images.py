"""Decoding and encoding the images the commands restore, with their EXIF orientation."""
import cv2
import io
import numpy as np
import os
import stat
import sys
from os import path as osp
from PIL import Image, UnidentifiedImageError

from carn_da.utils.errors import BadInput
from carn_da.utils.files import is_regular_file, write_atomic
from carn_da.utils.jpeg import JPEG_FORMATS

STDIN = '-'
NOT_REGULAR = 'not a regular file (folders, FIFOs, sockets and devices are not read)'
EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transform that shows the stored pixels upright (as PIL's ImageOps.exif_transpose)
ORIENT = {
    2: lambda img: img[:, ::-1],
    3: lambda img: img[::-1, ::-1],
    4: lambda img: img[::-1],
    5: lambda img: img.swapaxes(0, 1),
    6: lambda img: np.rot90(img, -1),
    7: lambda img: img[::-1, ::-1].swapaxes(0, 1),
    8: lambda img: np.rot90(img, 1),
}


def decode(data):
    """(uint8 image as OpenCV reads it unchanged, EXIF orientation) of a file's bytes; BadInput if unusable.

    JPEGs are also decoded by Pillow, which raises on truncated or broken data where OpenCV only warns.
    """
    orientation = 1
    try:
        with Image.open(io.BytesIO(data)) as pil_img:
            orientation = pil_img.getexif().get(EXIF_ORIENTATION, 1)
            if pil_img.format in JPEG_FORMATS:
                pil_img.load()
    except UnidentifiedImageError:
        pass  # not an image Pillow knows: OpenCV decides
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadInput(f'corrupt or truncated image ({error})') from error
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if img is None:
        raise BadInput('not an image, or corrupt (cannot be decoded)')
    if img.dtype != np.uint8:
        raise BadInput(f'{img.dtype} pixels; only 8-bit images are restored')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        raise BadInput(f'{img.shape[2]} channels; gray, BGR and BGRA images are restored')
    return img, orientation


def decode_ycbcr(data):
    """The Y, Cb and Cr planes (uint8 HxWx3) of a colour JPEG's bytes as libjpeg decodes them, before any conversion
    to RGB (chroma upsampled as for display), in the stored orientation; None for any other image. Its Y is the plane
    the JPEG quantised, which a BGR decoding converted back to luma is not (rounding and clipping)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in JPEG_FORMATS or img.mode != 'RGB':
                return None
            img.draft('YCbCr', img.size)
            return np.asarray(img) if img.mode == 'YCbCr' else None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def encode(img, ext):
    """The bytes of ``img`` as an ``ext`` file (png, tif, bmp); BadInput if OpenCV cannot encode it."""
    ok, buf = cv2.imencode(f'.{ext}', img)
    if not ok:
        raise BadInput(f'OpenCV cannot encode a {img.shape} image as {ext}')
    return buf.tobytes()


def read_input(path):
    """The bytes of a regular file, or of stdin for ``-``; BadInput if it cannot be read.

    Anything else (a folder, FIFO, socket or device) is refused unopened: reading a FIFO would wait for a writer.
    """
    if path == STDIN:
        return sys.stdin.buffer.read()
    try:
        if osp.exists(path) and not is_regular_file(path):
            raise BadInput(NOT_REGULAR)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never waits, should it have become a FIFO since
        with os.fdopen(fd, 'rb') as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise BadInput(NOT_REGULAR)
            return f.read()
    except OSError as error:
        raise BadInput(f'cannot be read ({error.strerror})') from error


# scikit-image's photos (bundled with it, no download) that carn-da adapt trains on when no --source-gt is given
SAMPLE_PHOTOS = ('astronaut', 'camera', 'chelsea', 'coffee', 'motorcycle_left', 'motorcycle_right', 'brick', 'grass',
                 'gravel', 'moon', 'coins', 'page')


def write_sample_photos(folder):
    """Write ``SAMPLE_PHOTOS`` into ``folder`` as grayscale PNGs (those already there are kept); returns ``folder``."""
    import skimage  # only here: the commands do not need it otherwise
    os.makedirs(folder, exist_ok=True)
    for name in SAMPLE_PHOTOS:
        path = osp.join(folder, f'{name}.png')
        if not osp.isfile(path):
            img = cv2.imread(osp.join(osp.dirname(skimage.__file__), 'data', f'{name}.png'), cv2.IMREAD_GRAYSCALE)
            write_atomic(path, encode(img, 'png'))
    return folder
