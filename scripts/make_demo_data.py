"""Build the small demo dataset from natural photos shipped with scikit-image (nothing is downloaded).

    ROOT/train_hr/<photo>_<i>.png    128x128 grayscale tiles of the training photos
    ROOT/test_hr/<photo>.png         256x256 grayscale centre crops of other photos
    ROOT/train/{gt,qf<Q>}/, ROOT/test/{gt,qf<Q>}/    made by prepare_data.prepare (folder format)

Re-runs keep existing files. Usage: python scripts/make_demo_data.py [--root datasets/demo] [--qf 10 70]
"""
import argparse
import cv2
import os
import skimage
import sys
from os import path as osp
from prepare_data import prepare

from carn_da.utils.jpeg import to_gray

TRAIN_PHOTOS = ('astronaut', 'chelsea', 'motorcycle_left', 'brick', 'grass', 'gravel', 'moon', 'coins', 'page', 'ihc')
TEST_PHOTOS = ('camera', 'coffee')
TILE = 128
TEST_CROP = 256
DEFAULT_ROOT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'datasets', 'demo')


def load_photo(name):
    """A scikit-image sample photo (PNG, lossless) as uint8 grayscale."""
    path = osp.join(osp.dirname(skimage.__file__), 'data', f'{name}.png')
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f'scikit-image sample photo {path} is missing.')
    return to_gray(img)


def write_new(path, img):
    """Write a PNG unless it already exists; return whether it was written."""
    if osp.isfile(path):
        return False
    cv2.imwrite(path, img)
    return True


def make_hr(root):
    """Write the train tiles and test crops; return the number of files written."""
    train_dir, test_dir = osp.join(root, 'train_hr'), osp.join(root, 'test_hr')
    os.makedirs(train_dir, exist_ok=True)
    os.makedirs(test_dir, exist_ok=True)
    written = 0
    for name in TRAIN_PHOTOS:
        img = load_photo(name)
        h, w = img.shape
        tiles = [
            img[y:y + TILE, x:x + TILE] for y in range(0, h - TILE + 1, TILE) for x in range(0, w - TILE + 1, TILE)
        ]
        for i, tile in enumerate(tiles):
            written += write_new(osp.join(train_dir, f'{name}_{i:02d}.png'), tile)
    for name in TEST_PHOTOS:
        img = load_photo(name)
        y, x = (img.shape[0] - TEST_CROP) // 2, (img.shape[1] - TEST_CROP) // 2
        written += write_new(osp.join(test_dir, f'{name}.png'), img[y:y + TEST_CROP, x:x + TEST_CROP])
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default=DEFAULT_ROOT, help='Output folder. Default: datasets/demo of the repo.')
    parser.add_argument('--qf', type=int, nargs='+', default=[10, 70], help='JPEG qualities. Default: 10 70.')
    args = parser.parse_args(argv)
    try:
        print(f'{make_hr(args.root)} ground-truth files written under {args.root}.')
        summaries = [
            prepare(osp.join(args.root, f'{split}_hr'), osp.join(args.root, split), args.qf)
            for split in ('train', 'test')
        ]
    except (FileNotFoundError, ValueError) as err:
        print(f'Error: {err}', file=sys.stderr)
        return 2
    return 1 if any(summary['failures'] for summary in summaries) else 0


if __name__ == '__main__':
    sys.exit(main())
