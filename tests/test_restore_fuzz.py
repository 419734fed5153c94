"""carn-da restore on a seeded batch of odd inputs: random bytes, a JPEG truncated at every KiB, images of 1 to 40
pixels a side, whole and in tiles. No traceback, no hang, no output for a failed input, every good one restored."""
import carn_da.compat  # noqa: F401

import cv2
import numpy as np
import os
import pytest
import subprocess
import sys
from conftest import textured_image
from test_restore import save_model
from tiny import REPO

from carn_da import restore

TILINGS = {'whole': [], 'tiled': ['--tile', '16', '--tile-overlap', '4']}


def colour(gray):
    return np.stack([gray, gray[::-1], 255 - gray], axis=2)


@pytest.fixture(scope='module')
def batch(tmp_path_factory):
    """A folder of inputs that fail ({name: None}) and that restore ({name: shape}), and a tiny model."""
    root = tmp_path_factory.mktemp('fuzz')
    src = root / 'in'
    src.mkdir()
    rng = np.random.default_rng(19)
    expected = {}
    for k in range(8):  # random bytes, some behind an image signature
        head = [b'', b'\xff\xd8\xff\xe0', b'\x89PNG\r\n\x1a\n', b'BM'][k % 4]
        name = f'random{k}.{["jpg", "jpg", "png", "bmp"][k % 4]}'
        (src / name).write_bytes(head + rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes())
        expected[name] = None
    ok, jpeg = cv2.imencode('.jpg', textured_image(rng, 128, 144), [cv2.IMWRITE_JPEG_QUALITY, 90])
    jpeg = jpeg.tobytes()
    assert ok and 8 * 1024 <= len(jpeg) <= 10 * 1024, len(jpeg)
    for kib in range(len(jpeg) // 1024 + 1):  # truncated at every KiB, from nothing to all but the last bytes
        (src / f'truncated{kib:02d}.jpg').write_bytes(jpeg[:kib * 1024])
        expected[f'truncated{kib:02d}.jpg'] = None
    (src / 'whole.jpg').write_bytes(jpeg)
    expected['whole.jpg'] = (128, 144)
    for k in range(12):  # random sizes, gray and colour, lossless and JPEG
        height, width = (int(v) for v in rng.integers(1, 41, 2))
        height, width = {0: (4, width), 1: (height, 4)}.get(k, (height, width))  # a side of the tile overlap
        img = textured_image(rng, 40, 40)[:height, :width]
        img = img if k % 2 == 0 else colour(img)
        name = f'size{k:02d}_{height}x{width}.{"png" if k % 3 else "jpg"}'
        cv2.imwrite(str(src / name), img, [cv2.IMWRITE_JPEG_QUALITY, 30])
        expected[name] = img.shape
    return {'src': src, 'model': save_model(root), 'expected': expected, 'root': root}


@pytest.mark.parametrize('tiling', list(TILINGS))
def test_restore_survives_odd_inputs(batch, tmp_path, tiling):
    out = tmp_path / 'out'
    argv = [str(batch['src']), '-o', str(out), '--model', batch['model'][0], '--opt', batch['model'][1]]
    result = subprocess.run([sys.executable, '-m', 'carn_da.restore', *argv, *TILINGS[tiling]],
                            cwd=REPO,
                            env=dict(os.environ, OMP_NUM_THREADS='1'),
                            capture_output=True,
                            text=True,
                            timeout=120)
    assert 'Traceback' not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    failed = sorted(name for name, shape in batch['expected'].items() if shape is None)
    good = sorted(name for name, shape in batch['expected'].items() if shape is not None)
    assert f'{len(good)} restored, 0 skipped, {len(failed)} failed' in result.stdout
    for name in failed:
        assert f'failed: {batch["src"] / name}: ' in result.stderr, name
    assert sorted(os.listdir(out)) == sorted(f'{os.path.splitext(name)[0]}.png' for name in good)
    for name in good:
        restored = cv2.imread(str(out / f'{os.path.splitext(name)[0]}.png'), cv2.IMREAD_UNCHANGED)
        assert restored.shape == batch['expected'][name], name


@pytest.mark.parametrize('tiling', list(TILINGS))
def test_restore_of_good_inputs_exits_0(batch, tmp_path, tiling, capsys):
    src = tmp_path / 'good'
    src.mkdir()
    for name, shape in batch['expected'].items():
        if shape is not None and min(shape[:2]) <= 16:
            os.link(batch['src'] / name, src / name)
    argv = [str(src), '-o', str(tmp_path / 'out'), '--model', batch['model'][0], '--opt', batch['model'][1]]
    code = restore.main(argv + TILINGS[tiling])
    assert code == 0 and len(os.listdir(tmp_path / 'out')) == len(os.listdir(src)) > 0
