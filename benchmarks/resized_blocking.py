"""Calibrate and measure ``carn_da.utils.jpeg.resized_blocking``: is a gray image without an 8x8 grid a resized JPEG?

Calibration (training images only): the 400 Train400 images joined in 2x2 tiles (100 images of 360x360 pixels), each
resized twice, never compressed, by a factor drawn from 0.5-0.9 with area, linear or cubic interpolation. The
strength the detector gives them is the null: ``_RESIZED_MIN_STRENGTH`` is set to its ``--percentile``. The same
tiles and the gray test sets (BSD68, Set12, Classic5) are then compressed at each ``--qf`` before the same resizing,
and the share of each in which the blocking is found is printed, in a Markdown table written to ``--out``.

    python benchmarks/resized_blocking.py                   # the calibration and the table of docs/RESULTS.md
    python benchmarks/resized_blocking.py --sets Set12 --qf 10 90 --limit 4  # a smoke run
"""
import carn_da.compat  # noqa: F401

import argparse
import cv2
import numpy as np
import os
import platform
import random
import shlex
import sys
from datetime import datetime, timezone
from os import path as osp

from carn_da.data.image_pairs import list_images
from carn_da.utils import jpeg
from carn_da.utils.evaluation import read_gray
from carn_da.utils.jpeg import jpeg_compress, resized_blocking

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
INTERPOLATIONS = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default=osp.join(REPO, os.pardir, 'shared', 'datasets'))
    parser.add_argument('--sets', nargs='+', default=['BSD68', 'Set12', 'Classic5'], help='Gray test sets.')
    parser.add_argument('--qf', type=int, nargs='+', default=list(range(10, 100, 10)) + [95])
    parser.add_argument('--percentile', type=float, default=99., help='Of the null strengths. Default: 99.')
    parser.add_argument('--limit', type=int, help='Only the first N images of each set (smoke runs).')
    parser.add_argument('--out', default=osp.join(REPO, 'results', 'resized_blocking'))
    return parser.parse_args()


def gray_images(folder, limit):
    paths = list_images(folder)[:limit]
    if not paths:
        sys.exit(f'No images in {folder}.')
    return [read_gray(path) for path in paths]


def tiles(images):
    """Four images of one size joined 2x2, for each run of four."""
    return [np.block([[a, b], [c, d]]) for a, b, c, d in zip(*[iter(images)] * 4)]


def resized(img, rng):
    """``img`` resized by a factor drawn from 0.5-0.9 with an interpolation drawn from ``INTERPOLATIONS``."""
    factor = rng.uniform(0.5, 0.9)
    size = (round(img.shape[1] * factor), round(img.shape[0] * factor))
    return cv2.resize(img, size, interpolation=rng.choice(INTERPOLATIONS))


def strengths(images, quality, copies, seed):
    """The detector's strength on each of ``images`` compressed at ``quality`` (None: never), then resized
    ``copies`` times."""
    rng = random.Random(seed)
    found = []
    for img in images:
        source = img if quality is None else jpeg_compress(img, quality)
        found += [resized_blocking(resized(source, rng))[1] for _ in range(copies)]
    return np.array(found)


def main():
    args = parse_args()
    train = tiles(gray_images(osp.join(args.data, 'Train400'), None if args.limit is None else 4 * args.limit))
    null = strengths(train, None, 2, 0)
    threshold = float(np.percentile(null, args.percentile))
    sets = {'Train400 (2x2 tiles)': (train, 2)}
    sets.update({name: (gray_images(osp.join(args.data, name), args.limit), 1) for name in args.sets})
    head = '| set | images | never compressed | ' + ' | '.join(f'QF {q}' for q in args.qf) + ' |'
    lines = [head, '|---|---:|' + '---:|' * (len(args.qf) + 1)]
    for name, (images, copies) in sets.items():
        shares = [np.mean(strengths(images, q, copies, 1 + k) >= threshold) for k, q in enumerate([None] + args.qf)]
        lines.append(f'| {name} | {len(images) * copies} | ' + ' | '.join(f'{100 * v:.0f} %' for v in shares) + ' |')
    report = '\n'.join([
        f'# Resized JPEG blocking found (`resized_blocking`, strength >= {threshold:.2f})', '',
        f'Command: `python {" ".join(shlex.quote(a) for a in sys.argv)}`',
        f'Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()} ({platform.machine()})',
        f'Null (never-compressed Train400 tiles, resized): {len(null)} images, strength percentiles 50 / 90 / 95 / '
        f'99: ' + ' / '.join(f'{v:.2f}' for v in np.percentile(null, [50, 90, 95, 99])) +
        f'; the {args.percentile:g}th: {threshold:.2f} (the threshold in carn_da: {jpeg._RESIZED_MIN_STRENGTH}).', '',
        'Share of images resized by 0.5-0.9 (area, linear or cubic) in which the blocking is found:', ''
    ] + lines)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'resized_blocking.md'), 'w') as f:
        f.write(report + '\n')
    print(report)


if __name__ == '__main__':
    main()
