import carn_da.compat  # noqa: F401

import csv
import cv2
import io
import numpy as np
import pathlib
import pytest
import sys
import torch
import yaml
from conftest import textured_image
from PIL import Image, ImageOps

from carn_da import cli
from carn_da.archs.rdn_arch import RDN
from carn_da.utils import images
from carn_da.utils.checkpoint import load_model, load_state_dict
from carn_da.utils.inference import Restorer

TINY_RDN = {'type': 'RDN', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 4}
TINY_RADIUS = 8  # receptive field radius of TINY_RDN (see tests/test_evaluate.py)


def save_model(folder, channels=1, seed=0):
    """A tiny random RDN of ``channels`` channels: (checkpoint, option file) paths."""
    network = dict(TINY_RDN, num_in_ch=channels, num_out_ch=channels)
    torch.manual_seed(seed)
    net = RDN(**{k: v for k, v in network.items() if k != 'type'})
    checkpoint, options = folder / f'rdn{channels}.pth', folder / f'rdn{channels}.yml'
    torch.save({'params': net.state_dict()}, checkpoint)
    options.write_text(yaml.safe_dump({'name': 'tiny', 'network_g': network}))
    return str(checkpoint), str(options)


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp('model'))


def gray_jpeg(path, seed=0, size=(40, 48), quality=20):
    cv2.imwrite(str(path), textured_image(np.random.default_rng(seed), *size), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def color_jpeg(path, seed=0, size=(40, 48), quality=20):
    """A colour JPEG kept away from the gamut's edges (so that changing Y alone needs no clipping)."""
    gray = textured_image(np.random.default_rng(seed), *size).astype(np.float32)
    img = np.stack([gray * 0.4 + 70, gray[::-1] * 0.4 + 90, (255 - gray) * 0.4 + 60], axis=2).astype(np.uint8)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def run(capsys, *argv):
    """``carn-da restore *argv`` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(['restore', *map(str, argv)])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def ycrcb(img):
    return cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb).astype(np.float64)


def test_folder_restores_good_images_and_reports_bad_ones(tmp_path, model, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    (src / 'sub').mkdir(parents=True)
    gray = gray_jpeg(src / 'sub' / 'gray.jpg')
    color = color_jpeg(src / 'color.jpeg')
    data = gray.read_bytes()
    (src / 'truncated.jpg').write_bytes(data[:len(data) // 2])
    (src / 'text.png').write_text('a text file, not an image')
    (src / 'notes.txt').write_text('not listed: not an image extension')

    code, stdout, stderr = run(capsys, src, '-o', out, '--model', model[0], '--opt', model[1])
    assert code == 1
    assert '2 restored, 0 skipped, 2 failed' in stdout
    assert 'truncated.jpg' in stderr and 'text.png' in stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file()) == ['color.png', 'sub/gray.png']
    lq = cv2.imread(str(gray), cv2.IMREAD_UNCHANGED)
    restored = cv2.imread(str(out / 'sub' / 'gray.png'), cv2.IMREAD_UNCHANGED)
    assert restored.shape == lq.shape and (restored != lq).any()

    # colour through a 1-channel model: size and 3 channels kept; the Y plane the JPEG stores is restored (as a
    # gray image of it would be) and its Cb, Cr planes are kept (up to 8-bit rounding)
    stored = images.decode_ycbcr(color.read_bytes())[..., (0, 2, 1)].astype(np.float64)
    restored = cv2.imread(str(out / 'color.png'), cv2.IMREAD_UNCHANGED)
    assert restored.shape == stored.shape == (40, 48, 3)
    change = np.abs(ycrcb(restored) - stored)
    assert change[..., 0].mean() > 1 and change[..., 1:].max() <= 1 and change[..., 1:].mean() < 0.1
    net, _ = load_model(*model)
    luma_restored = Restorer(net, 1, torch.device('cpu'))(stored[..., 0].astype(np.uint8))
    assert np.abs(ycrcb(restored)[..., 0] - luma_restored).max() <= 1


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, model, capsys):
    image, out = gray_jpeg(tmp_path / 'a.jpg'), tmp_path / 'out'
    args = (image, '-o', out, '--model', model[0], '--opt', model[1])
    assert run(capsys, *args)[0] == 0
    restored = (out / 'a.png').read_bytes()
    (out / 'a.png').write_bytes(b'stale')
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and '0 restored, 1 skipped' in stdout and (out / 'a.png').read_bytes() == b'stale'
    code, stdout, _ = run(capsys, *args, '--overwrite')
    assert code == 0 and '1 restored, 0 skipped' in stdout and (out / 'a.png').read_bytes() == restored


def test_checkpoint_with_a_pickled_object_is_refused_unopened(tmp_path, model, capsys):
    marker = tmp_path / 'unpickled'

    class Payload:
        """Unpickling it would create ``marker``."""

        def __reduce__(self):
            return pathlib.Path.touch, (pathlib.Path(marker), )

    checkpoint = tmp_path / 'unsafe.pth'
    torch.save({'params': torch.load(model[0], weights_only=True)['params'], 'obj': Payload()}, checkpoint)
    image = gray_jpeg(tmp_path / 'a.jpg')
    code, stdout, stderr = run(capsys, image, '-o', tmp_path / 'out', '--model', checkpoint, '--opt', model[1])
    assert code == 2 and 'Traceback' not in stderr
    assert f'Refusing checkpoint {checkpoint}' in stderr and 'pickled' in stderr and 'weights_only=True' in stderr
    assert not marker.exists() and not (tmp_path / 'out').exists()


def test_usage_errors_exit_2_without_traceback(tmp_path, model, capsys):
    image = gray_jpeg(tmp_path / 'a.jpg')
    other, _ = save_model(tmp_path, channels=3)
    for argv, message in [((tmp_path / 'missing', '--model', model[0], '--opt', model[1]), 'does not exist'),
                          ((image, '--model', other, '--opt', model[1]), 'does not fit the network_g'),
                          ((image, '--model', model[0], '--opt', model[1], '--glob', '*.jpg'), 'needs a folder')]:
        code, _, stderr = run(capsys, argv[0], '-o', tmp_path / 'out', *argv[1:])
        assert code == 2 and message in stderr and 'Traceback' not in stderr


def test_tiled_equals_whole_image_and_half_is_close(tmp_path, model, capsys):
    image = gray_jpeg(tmp_path / 'a.jpg', size=(45, 61))
    args = ('--model', model[0], '--opt', model[1])
    outputs = {}
    for label, extra in [('whole', ()), ('tiled', ('--tile', 24, '--tile-overlap', 2 * TINY_RADIUS)),
                         ('half', ('--half', ))]:
        assert run(capsys, image, '-o', tmp_path / label, *args, *extra)[0] == 0
        outputs[label] = cv2.imread(str(tmp_path / label / 'a.png'), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(outputs['tiled'] - outputs['whole']).max() <= 1
    assert np.abs(outputs['half'] - outputs['whole']).mean() < 1.5  # bfloat16 on CPU


def test_self_ensemble_restores_a_mirrored_image_to_the_mirrored_output(tmp_path, model, capsys):
    img = textured_image(np.random.default_rng(3), 40, 56)
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), img)
    cv2.imwrite(str(tmp_path / 'in' / 'b.png'), np.ascontiguousarray(img[:, ::-1]))
    args = ('--model', model[0], '--opt', model[1])
    outputs = {}
    for label, extra in [('plain', ()), ('x8', ('--self-ensemble', ))]:
        code, _, err = run(capsys, tmp_path / 'in', '-o', tmp_path / label, *args, *extra)
        assert code == 0 and ('x8 self-ensemble' in err) == bool(extra)
        outputs[label] = [cv2.imread(str(tmp_path / label / f'{v}.png'), 0).astype(int) for v in 'ab']
    mirrored = {label: np.abs(a[:, ::-1] - b).max() for label, (a, b) in outputs.items()}
    assert mirrored['x8'] <= 1 and mirrored['plain'] > 1  # a random RDN alone is not symmetric
    assert np.abs(outputs['x8'][0] - outputs['plain'][0]).max() > 1


def test_stdin_is_one_image_named_stdin(tmp_path, model, capsys, monkeypatch):
    data = gray_jpeg(tmp_path / 'a.jpg').read_bytes()
    monkeypatch.setattr(sys, 'stdin', io.TextIOWrapper(io.BytesIO(data)))
    assert run(capsys, '-', '-o', tmp_path / 'out', '--model', model[0], '--opt', model[1])[0] == 0
    assert cv2.imread(str(tmp_path / 'out' / 'stdin.png'), cv2.IMREAD_UNCHANGED).shape == (40, 48)


def test_three_channel_model_and_exif_orientation(tmp_path):
    net, channels = load_model(*save_model(tmp_path, channels=3))
    restorer = Restorer(net, channels, torch.device('cpu'))
    color = cv2.imread(str(color_jpeg(tmp_path / 'c.jpg')), cv2.IMREAD_UNCHANGED)
    gray = cv2.imread(str(gray_jpeg(tmp_path / 'g.jpg')), cv2.IMREAD_UNCHANGED)
    assert restorer(color).shape == color.shape and restorer(gray).shape == gray.shape
    bgra = np.concatenate([color, np.full(color.shape[:2] + (1, ), 7, np.uint8)], axis=2)
    assert (restorer(bgra)[..., 3] == 7).all() and (restorer(bgra)[..., :3] == restorer(color)).all()

    # outputs are turned upright as viewers turn the input (EXIF orientation), like PIL's exif_transpose
    stored = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[images.EXIF_ORIENTATION] = orientation
        buf = io.BytesIO()
        Image.fromarray(stored).save(buf, 'PNG', exif=exif)
        img, read_orientation = images.decode(buf.getvalue())
        upright = images.ORIENT.get(read_orientation, np.asarray)(img)
        np.testing.assert_array_equal(upright, np.asarray(ImageOps.exif_transpose(Image.open(buf))))


def test_checkpoint_forms(tmp_path):
    checkpoint, options = save_model(tmp_path)
    weights = torch.load(checkpoint, weights_only=True)['params']
    forms = {
        'bare': {
            f'module.{k}': v
            for k, v in weights.items()
        },  # a DataParallel state dict, saved alone
        'ema': {
            'params': {
                'unrelated': torch.zeros(1)
            },
            'params_ema': weights
        }  # BasicSR's EMA weights win
    }
    for name, state in forms.items():
        torch.save(state, tmp_path / f'{name}.pth')
        key, loaded = load_state_dict(str(tmp_path / f'{name}.pth'))
        assert key == {'bare': None, 'ema': 'params_ema'}[name]
        assert loaded.keys() == weights.keys() and all((loaded[k] == weights[k]).all() for k in weights)
        assert load_model(str(tmp_path / f'{name}.pth'), options)[1] == 1


def test_report_names_each_input_its_reading_and_what_became_of_it(tmp_path, model, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    gray_jpeg(src / 'a.jpg', quality=30)
    (src / 'b.png').write_text('not an image')
    args = (src, '-o', tmp_path / 'out', '--model', model[0], '--opt', model[1], '--report', tmp_path / 'r' / 'x.csv')
    assert run(capsys, *args)[0] == 1
    assert run(capsys, *args)[0] == 1  # a.png exists now: skipped
    with open(tmp_path / 'r' / 'x.csv', encoding='utf-8') as f:
        rows = {pathlib.Path(row['input']).name: row for row in csv.DictReader(f)}
    assert rows['a.jpg']['status'] == 'skipped' and rows['b.png']['status'] == 'failed'
    assert 'not an image' in rows['b.png']['note']
    run(capsys, *args, '--overwrite')
    with open(tmp_path / 'r' / 'x.csv', encoding='utf-8') as f:
        row = next(csv.DictReader(f))
    assert (row['status'], row['quality'], row['source'], row['grid_offset'],
            row['restored_by']) == ('restored', '30', 'header', '0,0', 'RDN')
    code, _, stderr = run(capsys, src / 'a.jpg', '-o', tmp_path / 'out2', '--model', model[0], '--opt', model[1],
                          '--report', src / 'a.jpg')
    assert code == 2 and 'would replace the input' in stderr and (src / 'a.jpg').read_bytes()[:2] == b'\xff\xd8'
