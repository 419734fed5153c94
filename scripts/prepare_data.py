"""Make grayscale ground truths and their real JPEG versions at several qualities, as folders and/or LMDBs.

Output layout under ``--out OUT`` (other code reads it):

    OUT/gt/<stem>.png         grayscale 8-bit PNG ground truth        (--format folder)
    OUT/qf<Q>/<stem>.jpg      OpenCV JPEG bitstream of quality Q      (--format folder)
    OUT/gt.lmdb               BasicSR LMDB, keys = stems, PNG values  (--format lmdb)
    OUT/qf<Q>.lmdb            BasicSR LMDB, keys = stems, JPEG bytes  (--format lmdb)

Example (DIV2K as in the paper, x4 bicubic downscale):
    python scripts/prepare_data.py --input datasets/DIV2K/DIV2K_train_HR --out datasets/DIV2K_train_gray_x4 \
        --scale 4 --qf 10 70 --format lmdb folder --workers 2
"""
import carn_da.compat  # noqa: F401

import argparse
import cv2
import numpy as np
import os
import shutil
import sys
import torch
from basicsr.utils import scandir
from basicsr.utils.lmdb_util import LmdbMaker
from basicsr.utils.matlab_functions import imresize
from multiprocessing import Pool
from os import path as osp
from tqdm import tqdm

from carn_da.utils.files import write_atomic
from carn_da.utils.jpeg import check_quality, jpeg_encode, to_gray

IMG_EXTENSIONS = ('.png', '.bmp', '.tif', '.tiff')
JPEG_EXTENSIONS = ('.jpg', '.jpeg', '.jpe', '.jfif')
FORMATS = ('folder', 'lmdb')
PNG_COMPRESSION = 1  # as basicsr's make_lmdb; the same PNG bytes go to OUT/gt and gt.lmdb


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def load_gt(path, scale=1):
    """Read a lossless image as 8-bit grayscale, downscaled by ``scale`` with MATLAB-like antialiased bicubic."""
    data = _read(path)
    if path.lower().endswith(JPEG_EXTENSIONS) or data[:3] == b'\xff\xd8\xff':
        raise ValueError('is a JPEG; it already carries compression artifacts, use a lossless PNG/BMP/TIFF')
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError('cannot be decoded (corrupt or not an image)')
    img = to_gray(img)
    if scale != 1:
        img = imresize(img.astype(np.float32) / 255., 1 / scale)
        img = np.clip(np.round(img * 255.), 0, 255).astype(np.uint8)
    return img


def _prepare_one(task):
    """Make the missing folder outputs of one image; return its encoded outputs too when LMDBs are built."""
    path, key, out_dir, qfs, scale, folder, lmdb = task
    names = ['gt'] + [f'qf{q}' for q in qfs]
    files = {name: osp.join(out_dir, name, f'{key}.png' if name == 'gt' else f'{key}.jpg') for name in names}
    existing = {name for name in names if folder and osp.isfile(files[name])}
    result = dict(key=key, written=0, skipped=len(existing), data=None, shape=None, error=None)
    if not lmdb and (not folder or len(existing) == len(names)):
        return result
    try:
        if 'gt' in existing:
            data = {'gt': _read(files['gt'])}
            gt = cv2.imdecode(np.frombuffer(data['gt'], np.uint8), cv2.IMREAD_GRAYSCALE)
            if gt is None:
                raise ValueError(f'its existing output {files["gt"]} is corrupt; delete it and re-run')
        else:
            gt = load_gt(path, scale)
            data = {'gt': cv2.imencode('.png', gt, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])[1].tobytes()}
        for q in qfs:
            name = f'qf{q}'
            data[name] = _read(files[name]) if name in existing else jpeg_encode(gt, q)
        if folder:
            for name in names:
                if name not in existing:
                    write_atomic(files[name], data[name])  # no truncated file if interrupted
                    result['written'] += 1
    except (OSError, ValueError, cv2.error) as err:
        result['error'] = f'{path}: {err}'
        return result
    if lmdb:
        result.update(data=data, shape=gt.shape)
    return result


def _worker_init():
    torch.set_num_threads(1)  # one thread per worker process (imresize runs on torch)


def _run(tasks, workers):
    """Yield the results of ``_prepare_one`` in task order, from a process pool if ``workers > 1``."""
    if workers > 1:
        with Pool(workers, initializer=_worker_init) as pool:
            yield from pool.imap(_prepare_one, tasks)
    else:
        yield from map(_prepare_one, tasks)


def _lmdb_keys(lmdb_path):
    """Keys listed in an LMDB's meta_info.txt (split at the first '.', as basicsr reads them), None if absent."""
    meta = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta):
        return None
    with open(meta) as f:
        return {line.split('.')[0] for line in f if line.strip()}


def scan_images(input_dir):
    """Sorted paths of the image files (JPEGs included, to be refused) under ``input_dir``, recursively."""
    if not osp.isdir(input_dir):
        raise FileNotFoundError(f'Input folder {input_dir} does not exist.')
    paths = sorted(
        osp.join(input_dir, p) for p in scandir(input_dir, recursive=True)
        if osp.splitext(p)[1].lower() in IMG_EXTENSIONS + JPEG_EXTENSIONS)
    if not paths:
        raise FileNotFoundError(f'No images ({", ".join(IMG_EXTENSIONS)}) found in {input_dir}.')
    return paths


def prepare(input_dir, out_dir, qfs, scale=1, formats=('folder', ), workers=1, limit=None):
    """Prepare grayscale GT and JPEG images of ``input_dir`` under ``out_dir`` (layout: see the module docstring).

    Existing outputs are kept: folder files, and an LMDB whose meta_info.txt lists the same keys (else it is
    rebuilt). An image that cannot be made is reported and left out; the others go on.

    Returns:
        dict: ``keys`` (stems prepared), ``written`` / ``skipped`` (folder files), ``lmdb_written`` /
        ``lmdb_skipped`` (LMDB paths) and ``failures`` (list of 'path: reason').
    """
    qfs = sorted(set(qfs))
    if not qfs:
        raise ValueError('Give at least one JPEG quality (--qf).')
    for q in qfs:
        check_quality(q)
    if not formats or set(formats) - set(FORMATS):
        raise ValueError(f'Formats must be among {FORMATS}, got {formats}.')
    if int(scale) != scale or scale < 1:
        raise ValueError(f'Scale must be a positive int, got {scale}.')
    folder, lmdb = 'folder' in formats, 'lmdb' in formats

    failures, images, seen = [], [], {}
    for path in scan_images(input_dir)[:limit]:
        key = osp.splitext(osp.basename(path))[0]
        if key in seen:
            raise ValueError(f'{seen[key]} and {path} have the same stem {key}; outputs are named by stem.')
        seen[key] = path
        if lmdb and ('.' in key or not key.isascii()):
            failures.append(f'{path}: its stem {key!r} cannot be an LMDB key (BasicSR cuts keys at the first '
                            "'.' and they must be ASCII); rename the file")
            print(f'Error: {failures[-1]}', file=sys.stderr)
        else:
            images.append((path, key))

    names = ['gt'] + [f'qf{q}' for q in qfs]
    keys = {key for _, key in images}
    lmdb_skipped = [name for name in names if lmdb and _lmdb_keys(osp.join(out_dir, f'{name}.lmdb')) == keys]
    makers = {}
    for name in names:
        if lmdb and name not in lmdb_skipped:
            partial = osp.join(out_dir, f'{name}.partial.lmdb')
            shutil.rmtree(partial, ignore_errors=True)
            os.makedirs(out_dir, exist_ok=True)
            makers[name] = LmdbMaker(partial, compress_level=PNG_COMPRESSION)
        if folder:
            os.makedirs(osp.join(out_dir, name), exist_ok=True)

    summary = dict(keys=[], written=0, skipped=0, lmdb_written=[], lmdb_skipped=[], failures=failures)
    tasks = [(path, key, out_dir, qfs, scale, folder, bool(makers)) for path, key in images]
    for res in tqdm(_run(tasks, workers), total=len(tasks), unit='image', desc=f'Prepare {out_dir}'):
        if res['error']:
            tqdm.write(f'Error: {res["error"]}', file=sys.stderr)
            failures.append(res['error'])
            continue
        summary['keys'].append(res['key'])
        summary['written'] += res['written']
        summary['skipped'] += res['skipped']
        for name, maker in makers.items():
            maker.put(res['data'][name], res['key'], res['shape'] + (1, ))
    for name, maker in makers.items():
        maker.close()
        final = osp.join(out_dir, f'{name}.lmdb')
        shutil.rmtree(final, ignore_errors=True)
        os.rename(maker.lmdb_path, final)
        summary['lmdb_written'].append(final)
        print(f'LMDB {final} written ({len(summary["keys"])} keys).')
    for name in lmdb_skipped:
        summary['lmdb_skipped'].append(osp.join(out_dir, f'{name}.lmdb'))
        print(f'LMDB {summary["lmdb_skipped"][-1]} skipped (up to date, {len(keys)} keys).')
    if folder:
        print(f'{out_dir}: {len(summary["keys"])} images; folder files: {summary["written"]} written, '
              f'{summary["skipped"]} skipped (already exist).')
    if failures:
        print(f'{len(failures)} image(s) failed, see the errors above.', file=sys.stderr)
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='Folder of ground-truth PNG/BMP/TIFF images (recursive).')
    parser.add_argument('--out', required=True, help='Output folder.')
    parser.add_argument('--qf', type=int, nargs='+', required=True, help='JPEG qualities, e.g. 10 70.')
    parser.add_argument('--scale', type=int, default=1, help='Bicubic downscale factor (4 for DIV2K). Default: 1.')
    parser.add_argument('--format', nargs='+', choices=FORMATS, default=['folder'], help='Default: folder.')
    parser.add_argument('--workers', type=int, default=1, help='Worker processes. Default: 1.')
    parser.add_argument('--limit', type=int, default=None, help='Only the first N images (sorted).')
    args = parser.parse_args(argv)
    try:
        summary = prepare(args.input, args.out, args.qf, args.scale, args.format, args.workers, args.limit)
    except (FileNotFoundError, ValueError) as err:
        print(f'Error: {err}', file=sys.stderr)
        return 2
    return 1 if summary['failures'] else 0


if __name__ == '__main__':
    sys.exit(main())
