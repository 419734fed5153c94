"""A folder of JPEGs of mixed quality, like a user's pile: each ground truth compressed (OpenCV) at a QF drawn
uniformly from ``--qf-min``..``--qf-max`` with a fixed seed. Prints the QF histogram read back from the files.

    python scripts/make_mixed_qf_pile.py --input ../shared/datasets/BSD68 --out datasets/BSD68_mixed
"""
import carn_da.compat  # noqa: F401

import argparse
import cv2
import numpy as np
import os
from os import path as osp

from carn_da.data.image_pairs import list_images
from carn_da.utils.jpeg import quality_histogram, to_gray


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='Folder of ground-truth images.')
    parser.add_argument('--out', required=True, help='Output folder of <stem>.jpg files.')
    parser.add_argument('--qf-min', type=int, default=30)
    parser.add_argument('--qf-max', type=int, default=90)
    parser.add_argument('--seed', type=int, default=2021)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for path in list_images(args.input):
        qf = int(rng.integers(args.qf_min, args.qf_max + 1))
        img = to_gray(cv2.imread(path, cv2.IMREAD_UNCHANGED))
        out = osp.join(args.out, osp.splitext(osp.basename(path))[0] + '.jpg')
        cv2.imwrite(out, img, [cv2.IMWRITE_JPEG_QUALITY, qf])
    print(quality_histogram(list_images(args.out)))


if __name__ == '__main__':
    main()
