"""Listing, pairing, reading, cropping and augmenting the images of the datasets (shared by all ``*_dataset.py``).

Images are numpy arrays (H, W, C), uint8, C = 1 (``color: gray``) or 3 (``color: rgb``, BGR until ``to_tensor``).
A JPEG input and its ground truth pair by stem (relative path without extension): ``gt/a.png`` <-> ``qf10/a.jpg``.
Image sizes are known before any image is decoded: from the file headers (PIL reads no pixels) or from an LMDB's
``meta_info.txt``, so that datasets check them when they are built.
"""
import cv2
import numpy as np
import os
import random
import re
from basicsr.data.transforms import paired_random_crop
from basicsr.utils import FileClient, imfrombytes, img2tensor
from os import path as osp
from PIL import Image

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
COLOR_FLAGS = {'gray': 'grayscale', 'rgb': 'color'}


class BadImageError(ValueError):
    """An image that is listed but cannot be read or decoded (the message names it)."""


def _names(items, limit=10):
    """Comma-separated ``items``, at most ``limit`` of them."""
    items = sorted(items)
    more = f' and {len(items) - limit} more' if len(items) > limit else ''
    return ', '.join(items[:limit]) + more


def check_root(opt, key):
    """``opt[key]`` (a data root, ``~`` expanded), or FileNotFoundError naming the option and path."""
    root = opt.get(key)
    if root is None:
        raise FileNotFoundError(f'Option {key} is missing.')
    root = osp.expanduser(root)
    if not osp.isdir(root):
        raise FileNotFoundError(f'{key}: folder {root} does not exist.')
    return root


def check_color(color):
    """``color`` if it is ``gray`` or ``rgb``, else ValueError."""
    if color not in COLOR_FLAGS:
        raise ValueError(f"color must be one of {sorted(COLOR_FLAGS)}, got {color!r}.")
    return color


def scan_images(folder):
    """Sorted relative paths of the images (``IMG_EXTENSIONS``, any case) under ``folder``, recursively.

    Hidden files and folders are skipped (``basicsr.utils.scandir`` would recurse into a hidden file and fail).
    """
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [v for v in dirs if not v.startswith('.')]
        paths += [
            osp.relpath(osp.join(root, v), folder) for v in files
            if not v.startswith('.') and osp.splitext(v)[1].lower() in IMG_EXTENSIONS
        ]
    return sorted(paths)


def list_images(folder):
    """Sorted full paths of the images under ``folder``, recursively; nothing is paired."""
    return [osp.join(folder, v) for v in scan_images(folder)]


def images_by_stem(folder):
    """{stem: full path} of the images under ``folder``; two images with one stem raise ValueError."""
    stems = {}
    for rel in scan_images(folder):
        stem = osp.splitext(rel)[0]
        if stem in stems:
            raise ValueError(f'Two images with stem {stem} in {folder}: {stems[stem]}, {osp.join(folder, rel)}.')
        stems[stem] = osp.join(folder, rel)
    return stems


def lmdb_sizes(root):
    """{key: (height, width)} of a BasicSR LMDB, read from its ``meta_info.txt`` (``<key>.<ext> (h,w,c) level``
    lines); the size is None where a line gives none."""
    meta_info = osp.join(root, 'meta_info.txt')
    if not osp.isfile(meta_info):
        raise FileNotFoundError(f'LMDB {root} has no meta_info.txt ({meta_info} not found).')
    sizes = {}
    with open(meta_info) as fin:
        for fields in map(str.split, fin):
            if fields:
                shape = re.fullmatch(r'\((\d+),(\d+)(,\d+)?\)', fields[1]) if len(fields) > 1 else None
                sizes[osp.splitext(fields[0])[0]] = (int(shape[1]), int(shape[2])) if shape else None
    return sizes


def lmdb_keys(root):
    """Sorted keys of a BasicSR LMDB, read from its ``meta_info.txt``."""
    return sorted(lmdb_sizes(root))


def header_size(path):
    """(height, width) of image file ``path`` from its header (no pixel is decoded); BadImageError if unreadable.

    The header size ignores an EXIF orientation, which decoding applies: compare ``sorted`` sizes.
    """
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for missing, unknown and broken files
        raise BadImageError(f'Cannot decode image {path}: {error}') from error
    return height, width


def size_reader(root, backend):
    """Function that gives the (height, width) of an image path (disk) or key (lmdb) of ``root`` without decoding
    it: ``header_size``, or the size in the LMDB's ``meta_info.txt`` (None if it gives none)."""
    return lmdb_sizes(root).get if backend == 'lmdb' else header_size


def pair_by_stem(lq_items, gt_items, lq_root, gt_root):
    """[{'lq_path', 'gt_path'}] sorted by stem, from {stem: path} of both sides; any unpaired item raises ValueError.

    Paths are file paths (disk) or LMDB keys.
    """
    no_gt = [lq_items[k] for k in lq_items.keys() - gt_items.keys()]
    no_lq = [gt_items[k] for k in gt_items.keys() - lq_items.keys()]
    errors = []
    if no_gt:
        errors.append(f'{len(no_gt)} LQ image(s) without a GT of the same stem in {gt_root}: {_names(no_gt)}.')
    if no_lq:
        errors.append(f'{len(no_lq)} GT image(s) without an LQ of the same stem in {lq_root}: {_names(no_lq)}.')
    if errors:
        raise ValueError(' '.join(errors))
    return [{'lq_path': lq_items[k], 'gt_path': gt_items[k]} for k in sorted(lq_items)]


def paired_paths(lq_root, gt_root, backend):
    """Pairs of LQ and GT paths (disk) or keys (lmdb) of two roots, matched by stem."""
    if backend == 'lmdb':
        lq_items, gt_items = ({k: k for k in lmdb_keys(root)} for root in (lq_root, gt_root))
    else:
        lq_items, gt_items = images_by_stem(lq_root), images_by_stem(gt_root)
    return pair_by_stem(lq_items, gt_items, lq_root, gt_root)


def image_paths(root, backend):
    """Paths (disk) or keys (lmdb) of the images of one root, without pairing."""
    return lmdb_keys(root) if backend == 'lmdb' else list_images(root)


def make_file_client(io_backend_opt, roots, client_keys):
    """A FileClient of ``io_backend_opt`` ({type: disk | lmdb, ...}); an lmdb one opens ``roots`` as ``client_keys``."""
    opt = dict(io_backend_opt)
    backend = opt.pop('type')
    if backend == 'lmdb':
        opt.update(db_paths=list(roots), client_keys=list(client_keys))
    return FileClient(backend, **opt)


def read_image(client, path, client_key, color='gray', as_stored=False):
    """Image ``path`` (a file or LMDB key) of ``client`` decoded as uint8 (H, W, 1) (gray) or (H, W, 3) BGR (rgb),
    turned upright by its EXIF orientation (as OpenCV does), or ``as_stored``: in the orientation its pixels are
    stored in, that of its JPEG blocks and of its quality reading (``carn_da.utils.jpeg.read_jpeg_quality``).

    A missing file or key, or content that does not decode, raises BadImageError naming it.
    """
    try:
        content = client.get(path, client_key)
    except OSError as error:
        raise BadImageError(f'Cannot read image {path}: {error}') from error
    if content is None:
        raise BadImageError(f'Key {path} is not in LMDB {client_key}.')
    if as_stored and len(content):
        flag = (cv2.IMREAD_GRAYSCALE if color == 'gray' else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
        img = cv2.imdecode(np.frombuffer(content, np.uint8), flag)
    else:
        img = imfrombytes(content, flag=COLOR_FLAGS[color]) if len(content) else None
    if img is None:
        raise BadImageError(f'Cannot decode image {path} ({len(content)} bytes).')
    return img[..., None] if img.ndim == 2 else img


def size_error(lq_size, gt_size, lq_path, gt_path):
    """ValueError naming both files of a pair whose (height, width) differ (CAR has scale 1)."""
    return ValueError(f'LQ {lq_path} is {lq_size[0]}x{lq_size[1]} but GT {gt_path} is {gt_size[0]}x{gt_size[1]} '
                      '(height x width); they must match.')


def check_same_size(img_lq, img_gt, lq_path, gt_path):
    """Raise ``size_error`` unless LQ and GT images have the same height and width."""
    if img_lq.shape[:2] != img_gt.shape[:2]:
        raise size_error(img_lq.shape, img_gt.shape, lq_path, gt_path)


def check_patch_fits(size, patch_size, path):
    """ValueError naming the file and both sizes if a ``patch_size`` square does not fit in an image of ``size``
    (height, width)."""
    h, w = size[:2]
    if h < patch_size or w < patch_size:
        raise ValueError(f'Patch {patch_size}x{patch_size} is larger than image {path} ({h}x{w}).')


def paired_crop(img_lq, img_gt, patch_size, gt_path, grid=1):
    """The same random ``patch_size`` square of an LQ and GT image of equal size (see ``check_same_size``), at a
    multiple of ``grid`` (8: on the JPEG block grid of a whole JPEG) from the top-left corner."""
    if grid == 1:
        check_patch_fits(img_gt.shape, patch_size, gt_path)
        img_gt, img_lq = paired_random_crop(img_gt, img_lq, patch_size, 1, gt_path)
        return img_lq, img_gt
    top, left = random_window(img_gt.shape, patch_size, gt_path, grid)
    return (img[top:top + patch_size, left:left + patch_size] for img in (img_lq, img_gt))


def random_window(shape, patch_size, path, grid=1, start=(0, 0)):
    """(top, left) of a random ``patch_size`` square in an image of ``shape`` (ValueError naming ``path`` if it does
    not fit): ``start`` plus multiples of ``grid`` along each axis (where the square fits from ``start``; from 0
    otherwise)."""
    check_patch_fits(shape, patch_size, path)
    window = []
    for side, first in zip(shape[:2], start):
        first = first if side - patch_size >= first else 0
        window.append(first + random.randint(0, (side - patch_size - first) // grid) * grid)
    return tuple(window)


def augment(imgs, hflip=True, rotation=True):
    """One random flip/rotation applied identically to all ``imgs`` (H, W, C); keeps the channel axis.

    As in BasicSR: horizontal flip (if ``hflip``), then vertical flip and H/W transpose (if ``rotation``; together
    the 8 rotations and mirrorings), each with probability 0.5.
    """
    hflip = hflip and random.random() < 0.5
    vflip = rotation and random.random() < 0.5
    rot90 = rotation and random.random() < 0.5
    if hflip:
        imgs = [v[:, ::-1] for v in imgs]
    if vflip:
        imgs = [v[::-1] for v in imgs]
    if rot90:
        imgs = [v.transpose(1, 0, 2) for v in imgs]
    return imgs


def choose_subset(items, num, option, root, seed):
    """``num`` of ``items`` (all if ``num`` is None), drawn with numpy's ``default_rng(seed)``, in their order."""
    if num is None:
        return items
    if not 1 <= num <= len(items):
        raise ValueError(f'{option}={num}, but it must be between 1 and the {len(items)} images found in {root}.')
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), num, replace=False))
    return [items[i] for i in chosen]


def to_tensor(imgs):
    """uint8 (H, W, C) BGR images -> float32 (C, H, W) RGB tensors in [0, 1]."""
    return img2tensor([np.ascontiguousarray(v, dtype=np.float32) / 255. for v in imgs], bgr2rgb=True, float32=True)
