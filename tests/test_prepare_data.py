import carn_da.compat  # noqa: F401

import cv2
import numpy as np
import os
import pytest
import sys
from basicsr.utils import FileClient, imfrombytes
from os import path as osp

from carn_da.utils.jpeg import check_quality, jpeg_compress, jpeg_encode, to_gray

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'scripts'))
import make_demo_data  # noqa: E402
import prepare_data  # noqa: E402

QFS = (10, 70)
# IJG (libjpeg) standard luminance quantisation table, natural order; JPEG quality q scales it
IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
    87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99
])
ZIGZAG = sorted(range(64), key=lambda i: (i // 8 + i % 8, i // 8 if (i // 8 + i % 8) % 2 else -(i // 8)))


def textured(h, w, channels=1, seed=0):
    """Smoothed noise: a random texture with JPEG-visible detail."""
    img = np.random.default_rng(seed).uniform(0, 255, (h, w, channels)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 1.2) * 1.5 - 60, 0, 255).astype(np.uint8).reshape(h, w, channels)


def make_inputs(folder):
    """Five lossless images of sizes that are no multiple of 8; one colour, one BMP, one TIFF in a subfolder."""
    os.makedirs(osp.join(folder, 'sub'))
    images = {
        'gray_a.png': textured(45, 61, seed=1),
        'gray_b.png': textured(64, 40, seed=2),
        'colour.png': textured(50, 70, 3, seed=3),
        'gray_c.bmp': textured(33, 27, seed=4),
        'sub/gray_d.tif': textured(24, 36, seed=5),
    }
    for name, img in images.items():
        assert cv2.imwrite(osp.join(folder, name), img)
    return images


def luma_qtable(jpeg):
    """The first (luminance) quantisation table of a JPEG bitstream, in natural order."""
    i = jpeg.index(b'\xff\xdb')
    assert jpeg[i + 4] == 0  # 8-bit precision, table 0
    table = np.zeros(64, int)
    table[ZIGZAG] = list(jpeg[i + 5:i + 69])
    return table


def ijg_qtable(quality):
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((IJG_LUMA * scale + 50) // 100, 1, 255)


def mtimes(folder):
    return {osp.join(r, f): os.stat(osp.join(r, f)).st_mtime_ns for r, _, files in os.walk(folder) for f in files}


def test_jpeg_helpers():
    bgr = textured(20, 30, 3)
    assert np.array_equal(to_gray(bgr), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    bgra = np.dstack([bgr, np.full((20, 30), 7, np.uint8)])
    assert np.array_equal(to_gray(bgra), to_gray(bgr))
    gray = bgr[..., 0]
    assert to_gray(gray) is gray and np.array_equal(to_gray(gray[..., None]), gray)
    with pytest.raises(ValueError, match='uint16'):
        to_gray(gray.astype(np.uint16))
    for bad in (0, 101, 50.0, True, '50'):
        with pytest.raises(ValueError, match='quality'):
            check_quality(bad)
    check_quality(np.int64(1))
    data = jpeg_encode(gray, 30)
    assert data[:2] == b'\xff\xd8' and np.array_equal(luma_qtable(data), ijg_qtable(30))
    assert jpeg_compress(gray, 30).shape == gray.shape and jpeg_compress(bgr, 30).shape == bgr.shape
    assert np.array_equal(jpeg_compress(gray, 30), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))
    assert not np.array_equal(jpeg_compress(gray, 30), gray)


def test_folder_and_lmdb_outputs(tmp_path):
    images = make_inputs(tmp_path / 'in')
    out = str(tmp_path / 'out')
    summary = prepare_data.prepare(str(tmp_path / 'in'), out, QFS, formats=('folder', 'lmdb'))
    stems = sorted(osp.splitext(osp.basename(name))[0] for name in images)
    assert summary['keys'] == stems and not summary['failures']
    assert summary['written'] == 3 * len(stems) and summary['skipped'] == 0
    assert sorted(os.listdir(out)) == ['gt', 'gt.lmdb', 'qf10', 'qf10.lmdb', 'qf70', 'qf70.lmdb']
    assert sorted(os.listdir(osp.join(out, 'gt'))) == [f'{s}.png' for s in stems]

    for name, img in images.items():
        stem = osp.splitext(osp.basename(name))[0]
        gt = cv2.imread(osp.join(out, 'gt', f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        expected = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.shape[2] == 3 else img[..., 0]
        assert gt.dtype == np.uint8 and np.array_equal(gt, expected)  # colour becomes BT.601 luma
        for q in QFS:
            with open(osp.join(out, f'qf{q}', f'{stem}.jpg'), 'rb') as f:
                data = f.read()
            assert data == jpeg_encode(gt, q)  # the bitstream itself, not a re-encoding
            assert np.array_equal(luma_qtable(data), ijg_qtable(q))
            lq = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            assert lq.shape == gt.shape and not np.array_equal(lq, gt)

    lmdbs = {name: osp.join(out, f'{name}.lmdb') for name in ['gt'] + [f'qf{q}' for q in QFS]}
    for path in lmdbs.values():
        with open(osp.join(path, 'meta_info.txt')) as f:
            assert [line.split('.')[0] for line in f] == stems
    client = FileClient('lmdb', db_paths=list(lmdbs.values()), client_keys=list(lmdbs))
    for stem in stems:
        gt_file = osp.join(out, 'gt', f'{stem}.png')
        assert np.array_equal(imfrombytes(client.get(stem, 'gt'), 'unchanged'), cv2.imread(gt_file, -1))
        for q in QFS:
            lq_bytes, lq_file = client.get(stem, f'qf{q}'), osp.join(out, f'qf{q}', f'{stem}.jpg')
            with open(lq_file, 'rb') as f:
                assert lq_bytes == f.read()  # the quantisation tables survive
            assert np.array_equal(imfrombytes(lq_bytes, 'grayscale'), cv2.imread(lq_file, cv2.IMREAD_GRAYSCALE))


def test_scale_halves_the_size(tmp_path):
    make_inputs(tmp_path / 'in')
    out = str(tmp_path / 'out')
    prepare_data.prepare(str(tmp_path / 'in'), out, [10], scale=2)
    full = cv2.imread(str(tmp_path / 'in' / 'gray_b.png'), cv2.IMREAD_UNCHANGED)
    half = cv2.imread(osp.join(out, 'gt', 'gray_b.png'), cv2.IMREAD_UNCHANGED)
    assert half.shape == (32, 20)
    # antialiased bicubic: close to a 2x2 box average on smooth content
    box = cv2.resize(full, (20, 32), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(half.astype(int) - box).mean() < 8
    assert cv2.imread(osp.join(out, 'qf10', 'gray_b.jpg'), cv2.IMREAD_UNCHANGED).shape == (32, 20)


def test_rerun_rewrites_nothing(tmp_path, capsys):
    make_inputs(tmp_path / 'in')
    out = str(tmp_path / 'out')
    prepare_data.prepare(str(tmp_path / 'in'), out, QFS, formats=('folder', 'lmdb'))
    before = mtimes(out)
    capsys.readouterr()
    summary = prepare_data.prepare(str(tmp_path / 'in'), out, QFS, formats=('folder', 'lmdb'))
    assert mtimes(out) == before
    assert summary['written'] == 0 and summary['skipped'] == 15 and not summary['lmdb_written']
    assert len(summary['lmdb_skipped']) == 3
    stdout = capsys.readouterr().out
    assert '15 skipped' in stdout and f'{osp.join(out, "qf70.lmdb")} skipped' in stdout


def test_lmdb_rebuilt_when_keys_change(tmp_path):
    make_inputs(tmp_path / 'in')
    out = str(tmp_path / 'out')
    prepare_data.prepare(str(tmp_path / 'in'), out, [10], formats=('lmdb', ), limit=2)
    summary = prepare_data.prepare(str(tmp_path / 'in'), out, [10], formats=('lmdb', ), limit=3)
    assert len(summary['lmdb_written']) == 2 and summary['keys'] == ['colour', 'gray_a', 'gray_b']
    with open(osp.join(out, 'qf10.lmdb', 'meta_info.txt')) as f:
        assert [line.split('.')[0] for line in f] == summary['keys']
    assert sorted(os.listdir(out)) == ['gt.lmdb', 'qf10.lmdb']  # no partial LMDB left behind


def test_workers_give_the_same_outputs(tmp_path):
    make_inputs(tmp_path / 'in')
    for workers in (1, 2):
        prepare_data.prepare(str(tmp_path / 'in'), str(tmp_path / f'out{workers}'), [10], scale=2, workers=workers)
    for sub in ('gt', 'qf10'):
        names = sorted(os.listdir(tmp_path / 'out1' / sub))
        assert names == sorted(os.listdir(tmp_path / 'out2' / sub)) and len(names) == 5
        for name in names:
            assert (tmp_path / 'out1' / sub / name).read_bytes() == (tmp_path / 'out2' / sub / name).read_bytes()


def test_corrupt_image_is_reported_and_skipped(tmp_path, capsys):
    make_inputs(tmp_path / 'in')
    bad = tmp_path / 'in' / 'bad.png'
    bad.write_bytes(bytes(range(256)) * 4)
    out = tmp_path / 'out'
    code = prepare_data.main(
        ['--input', str(tmp_path / 'in'), '--out',
         str(out), '--qf', '10', '--format', 'lmdb', 'folder'])
    assert code == 1
    err = capsys.readouterr().err
    assert str(bad) in err and '1 image(s) failed' in err
    assert len(os.listdir(out / 'gt')) == 5 and len(os.listdir(out / 'qf10')) == 5
    assert not (out / 'gt' / 'bad.png').exists()
    assert (out / 'qf10.lmdb' / 'meta_info.txt').read_text().count('\n') == 5


def test_jpeg_input_is_refused(tmp_path, capsys):
    (tmp_path / 'in').mkdir()
    img = textured(32, 32)
    cv2.imwrite(str(tmp_path / 'in' / 'photo.jpg'), img)
    (tmp_path / 'in' / 'renamed.png').write_bytes(jpeg_encode(img, 90))
    cv2.imwrite(str(tmp_path / 'in' / 'good.png'), img)
    out = tmp_path / 'out'
    assert prepare_data.main(['--input', str(tmp_path / 'in'), '--out', str(out), '--qf', '10']) == 1
    err = capsys.readouterr().err
    for name in ('photo.jpg', 'renamed.png'):
        assert f'{tmp_path / "in" / name}: is a JPEG' in err
    assert os.listdir(out / 'gt') == ['good.png']


def test_missing_or_empty_input_folder(tmp_path, capsys):
    missing, empty = tmp_path / 'missing', tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no images here')
    for folder in (missing, empty):
        assert prepare_data.main(['--input', str(folder), '--out', str(tmp_path / 'out'), '--qf', '10']) == 2
        assert str(folder) in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_dotted_stem_rejected_for_lmdb(tmp_path, capsys):
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'img.v2.png'), textured(16, 16))
    cv2.imwrite(str(tmp_path / 'in' / 'ok.png'), textured(16, 16))
    summary = prepare_data.prepare(str(tmp_path / 'in'), str(tmp_path / 'out'), [10], formats=('lmdb', ))
    assert summary['keys'] == ['ok'] and len(summary['failures']) == 1
    assert f'{tmp_path / "in" / "img.v2.png"}: its stem' in capsys.readouterr().err
    summary = prepare_data.prepare(str(tmp_path / 'in'), str(tmp_path / 'out_folder'), [10])
    assert summary['keys'] == ['img.v2', 'ok'] and not summary['failures']


def test_make_demo_data(tmp_path):
    root = tmp_path / 'demo'
    assert make_demo_data.main(['--root', str(root)]) == 0
    assert not set(make_demo_data.TRAIN_PHOTOS) & set(make_demo_data.TEST_PHOTOS)
    hr = {split: sorted(os.listdir(root / f'{split}_hr')) for split in ('train', 'test')}
    assert len(hr['train']) >= 100 and len(hr['test']) >= 2
    assert {n.rsplit('_', 1)[0] for n in hr['train']} == set(make_demo_data.TRAIN_PHOTOS)
    assert {osp.splitext(n)[0] for n in hr['test']} == set(make_demo_data.TEST_PHOTOS)
    for split, names in hr.items():
        stems = [osp.splitext(n)[0] for n in names]
        assert sorted(os.listdir(root / split)) == ['gt', 'qf10', 'qf70']
        assert sorted(os.listdir(root / split / 'gt')) == names
        for q in (10, 70):
            assert sorted(os.listdir(root / split / f'qf{q}')) == [f'{s}.jpg' for s in stems]
    # no training tile is a tile of a test photo
    tile = make_demo_data.TILE
    train = {cv2.imread(str(root / 'train_hr' / n), cv2.IMREAD_UNCHANGED).tobytes() for n in hr['train']}
    for name in hr['test']:
        img = cv2.imread(str(root / 'test_hr' / name), cv2.IMREAD_UNCHANGED)
        assert img.shape == (make_demo_data.TEST_CROP, ) * 2
        for y in range(0, img.shape[0] - tile + 1, tile // 4):
            for x in range(0, img.shape[1] - tile + 1, tile // 4):
                assert np.ascontiguousarray(img[y:y + tile, x:x + tile]).tobytes() not in train
    before = mtimes(root)
    assert make_demo_data.main(['--root', str(root)]) == 0
    assert mtimes(root) == before
