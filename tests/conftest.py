import cv2
import numpy as np
import os
import pytest
import shutil
from os import path as osp
from tiny import REPO

SHARED_DATASETS = osp.join(REPO, os.pardir, 'shared', 'datasets')


def textured_image(rng, height, width):
    """A uint8 grayscale image with edges, gradients and texture, so that JPEG leaves visible artifacts."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = 128 + 60 * np.sin(xx / rng.uniform(2, 6)) * np.cos(yy / rng.uniform(3, 9))
    img += rng.normal(0, 12, (height, width))
    img[rng.integers(0, height // 2):, rng.integers(0, width // 2):] += 40
    return np.clip(img, 0, 255).astype(np.uint8)


def aperiodic_texture(rng, height, width):
    """A uint8 grayscale image of smoothed noise and an edge: texture without a period (``textured_image``'s sines
    have one, which a search for the period of resized blocking can take for it)."""
    img = cv2.GaussianBlur(rng.normal(128, 50, (height, width)), (0, 0), 1.2)
    img[height * 2 // 5:, width // 2:] += 40
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpeg_dataset(root, num_images=6, size=(40, 48), qfs=(10, 70), seed=0):
    """``root/gt/*.png`` ground truths and ``root/qf<Q>/*.jpg`` OpenCV JPEGs of them, as scripts/prepare_data.py lays
    them out."""
    rng = np.random.default_rng(seed)
    for folder in ['gt'] + [f'qf{q}' for q in qfs]:
        os.makedirs(osp.join(root, folder), exist_ok=True)
    for i in range(num_images):
        img = textured_image(rng, *size)
        cv2.imwrite(osp.join(root, 'gt', f'img{i:03d}.png'), img)
        for q in qfs:
            cv2.imwrite(osp.join(root, f'qf{q}', f'img{i:03d}.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, q])
    return root


@pytest.fixture(scope='session')
def jpeg_dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('jpeg_data'))
    return {
        'train': write_jpeg_dataset(osp.join(root, 'train'), 6, (40, 48), seed=0),
        'val': write_jpeg_dataset(osp.join(root, 'val'), 2, (32, 40), seed=1)
    }


@pytest.fixture(scope='session')
def experiment_name():
    """Unique BasicSR experiment names for this test session; their experiments/ and tb_logger/ folders are removed."""
    names = []

    def make(tag):
        names.append(f'pytest_{tag}_{os.getpid()}')
        return names[-1]

    yield make
    for name in names:
        for top in ('experiments', 'tb_logger'):
            shutil.rmtree(osp.join(REPO, top, name), ignore_errors=True)
