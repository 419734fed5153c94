"""Accuracy and speed of ``carn_da.utils.jpeg.estimate_quality`` (JPEG quality from decoded pixels only).

Every image of each ``--gt`` folder (converted to grayscale) is compressed with ``jpeg_compress`` at each ``--qf``;
the quality is estimated from the decoded pixels and compared with the truth. Prints a Markdown table per QF: images,
exact %, within +-2 %, mean absolute error and mean time per image (of ``estimate_quality`` alone), then the misses.

    python benchmarks/qf_estimation.py                                  # BSD68 and Set12, QF 10, 20, ..., 90, 95
    python benchmarks/qf_estimation.py --gt datasets/Train400/gt --qf 10 50 90
"""
import carn_da.compat  # noqa: F401

import argparse
import cv2
import glob
import numpy as np
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from os import path as osp

from carn_da.utils.jpeg import estimate_quality, jpeg_compress, to_gray

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

DEFAULT_GT = [osp.join('datasets', 'BSD68', 'gt'), osp.join('datasets', 'Set12', 'gt')]
EXTENSIONS = ('.png', '.bmp', '.tif', '.tiff')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_gt = ' and '.join(DEFAULT_GT)
    parser.add_argument(
        '--gt', action='append', help=f'Folder of ground-truth images (repeatable). Default: {default_gt}')
    parser.add_argument(
        '--qf', type=int, nargs='+', default=[10, 20, 30, 40, 50, 60, 70, 80, 90, 95], help='Qualities to test.')
    return parser.parse_args()


def read_images(folders):
    """[(name, uint8 gray image)] of the images in ``folders`` (relative paths are taken from the project root)."""
    images = []
    for folder in folders:
        folder = folder if osp.isabs(folder) else osp.join(REPO, folder)
        paths = sorted(p for p in glob.glob(osp.join(folder, '*')) if p.lower().endswith(EXTENSIONS))
        if not paths:
            sys.exit(f'No images in {folder}.')
        images += [(osp.relpath(p, REPO), to_gray(cv2.imread(p, cv2.IMREAD_UNCHANGED))) for p in paths]
    return images


def main():
    args = parse_args()
    images = read_images(args.gt or DEFAULT_GT)
    rows, misses = [], []
    for quality in args.qf:
        errors, seconds = [], 0.
        for name, img in images:
            decoded = jpeg_compress(img, quality)
            start = time.perf_counter()
            estimate = estimate_quality(decoded)
            seconds += time.perf_counter() - start
            errors.append(estimate - quality)
            if estimate != quality:
                misses.append(f'{name} QF {quality}: {estimate}')
        errors = np.abs(errors)
        exact, close = 100 * np.mean(errors == 0), 100 * np.mean(errors <= 2)
        rows.append(f'| {quality} | {len(errors)} | {exact:.1f} | {close:.1f} | {errors.mean():.2f} '
                    f'| {1000 * seconds / len(errors):.1f} |')
    command = shlex.join(['python', 'benchmarks/qf_estimation.py', *sys.argv[1:]])
    date = datetime.now(timezone.utc).isoformat(timespec='seconds')
    print(f'Command: `{command}`  \nDate: {date}; machine: {platform.processor() or platform.machine()}, '
          f'numpy {np.__version__}, OpenCV {cv2.__version__}\n')
    print('| QF | images | exact % | within +-2 % | mean abs error | ms / image |')
    print('| --- | --- | --- | --- | --- | --- |')
    print('\n'.join(rows))
    print(f'\nMisses ({len(misses)}):' + ''.join(f'\n- {miss}' for miss in misses))


if __name__ == '__main__':
    main()
