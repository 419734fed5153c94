"""A user's mistake ends in one line and exit code 2, inputs are never written to, odd input files fail by name.

carn-da restore, eval and route on tiny models and images; each test reproduces one defect of issue 19.
"""
import carn_da.compat  # noqa: F401

import cv2
import io
import json
import numpy as np
import os
import pytest
import subprocess
import sys
import threading
import torch
from conftest import textured_image
from test_restore import gray_jpeg, save_model
from tiny import REPO

from carn_da import cli
from carn_da.utils import inference
from carn_da.utils.checkpoint import load_model
from carn_da.utils.files import write_atomic

BINARY = bytes(range(128, 256)) * 4  # not UTF-8


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp('model'))


def command(capsys, *argv):
    """``carn-da *argv`` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(list(map(str, argv)))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def restore(capsys, *argv):
    return command(capsys, 'restore', *argv)


def usage_error(capsys, prog, *argv):
    """The one error line of a usage error of ``carn-da prog *argv`` (exit code 2, no traceback; argparse's errors
    follow its usage)."""
    code, _, err = command(capsys, prog, *argv)
    assert code == 2 and 'Traceback' not in err, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith(f'carn-da {prog}: error: ')]
    assert len(errors) == 1 and (lines[-1] == errors[0]) and (len(lines) == 1 or lines[0].startswith('usage:')), err
    return errors[0]


def png(path, size=(40, 48), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), textured_image(np.random.default_rng(seed), *size))
    return path


def files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob('*') if p.is_file())


# 1. tiling


@pytest.mark.parametrize('length, tile, overlap', [(16, 32, 16), (16, 64, 16), (4, 16, 4), (1, 16, 4), (32, 32, 16)])
def test_a_side_of_at_most_the_tile_is_one_tile(length, tile, overlap):
    assert inference.tile_spans(length, tile, overlap) == [(0, length, 0, length)]


def test_restore_tiles_images_with_a_side_equal_to_the_overlap(tmp_path, model, capsys):
    src = tmp_path / 'in'
    png(src / 'flat.png', (16, 40))
    png(src / 'long.png', (300, 16), seed=1)
    code, out, err = restore(capsys, src, '-o', tmp_path / 'whole', '--model', model[0], '--opt', model[1])
    assert code == 0, err
    for tile in (32, 64):
        code, out, err = restore(capsys, src, '-o', tmp_path / f'tiled{tile}', '--model', model[0], '--opt', model[1],
                                 '--tile', tile)
        assert code == 0 and 'Traceback' not in err, err
        for name in ('flat.png', 'long.png'):
            whole = cv2.imread(str(tmp_path / 'whole' / name), cv2.IMREAD_UNCHANGED).astype(int)
            tiled = cv2.imread(str(tmp_path / f'tiled{tile}' / name), cv2.IMREAD_UNCHANGED).astype(int)
            assert np.abs(tiled - whole).max() <= 1


def test_eval_tiles_images_with_a_side_equal_to_the_overlap(tmp_path, model, capsys):
    png(tmp_path / 'gt' / 'flat.png', (16, 40))
    code, _, err = command(capsys, 'eval', '--model', f'tiny={model[0]}:{model[1]}', '--test', f'set={tmp_path / "gt"}',
                           '--qf', '20', '--tile', '32', '--device', 'cpu', '--out', tmp_path / 'out')
    assert code in (0, None) and 'Traceback' not in err, err
    assert (tmp_path / 'out' / 'scores.json').is_file()


# 2. an output never replaces an input


def test_overwrite_never_replaces_the_input(tmp_path, model, capsys):
    same = tmp_path / 'same'
    alpha = png(same / 'alpha.png')
    before = alpha.read_bytes()
    for extra in ((), ('--overwrite', )):
        code, out, err = restore(capsys, alpha, '-o', same, '--model', model[0], '--opt', model[1], *extra)
        assert code == 1 and 'Traceback' not in err
        assert f'failed: {alpha}: its output {same / "alpha.png"} would replace the input' in err
        assert 'choose another -o' in err and '0 restored' in out
        assert alpha.read_bytes() == before and files(same) == ['alpha.png']


def test_an_output_linked_to_an_input_fails_it(tmp_path, model, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    inputs = {name: png(src / f'{name}.png', seed=k) for k, name in enumerate(('hard', 'soft', 'plain'))}
    before = {name: path.read_bytes() for name, path in inputs.items()}
    out.mkdir()
    os.link(inputs['hard'], out / 'hard.png')
    (out / 'soft.png').symlink_to(inputs['soft'])
    code, stdout, err = restore(capsys, src, '-o', out, '--model', model[0], '--opt', model[1], '--overwrite')
    assert code == 1 and 'Traceback' not in err
    assert '1 restored, 0 skipped, 2 failed' in stdout
    for name in ('hard', 'soft'):
        assert f'failed: {inputs[name]}: its output {out / name}.png would replace the input' in err
    assert {name: path.read_bytes() for name, path in inputs.items()} == before
    assert os.path.samefile(out / 'hard.png', inputs['hard']) and (out / 'soft.png').is_symlink()


# 3. two runs into one output folder


def test_two_concurrent_runs_into_one_folder(tmp_path, model, capsys):
    src = tmp_path / 'many'
    for i in range(20):
        png(src / f'img{i:02d}.png', (24, 32), seed=i)
    args = ['--model', model[0], '--opt', model[1]]
    assert restore(capsys, src, '-o', tmp_path / 'single', *args)[0] == 0
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'img00.png.tmp').write_bytes(b'mine')
    (out / '.img01.png.tmp').write_bytes(b'mine too')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    runs = [
        subprocess.Popen(
            [sys.executable, '-m', 'carn_da.restore',
             str(src), '-o', str(out), *args, *extra],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True) for extra in ([], ['--overwrite'])
    ]
    results = [run.communicate(timeout=240) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    assert files(out) == sorted(files(tmp_path / 'single') + ['img00.png.tmp', '.img01.png.tmp'])
    for name in files(tmp_path / 'single'):
        assert (out / name).read_bytes() == (tmp_path / 'single' / name).read_bytes(), name
    assert (out / 'img00.png.tmp').read_bytes() == b'mine' and (out / '.img01.png.tmp').read_bytes() == b'mine too'


# 4. a user's mistake is one line, not a traceback


def test_an_unusable_output_folder_is_one_line(tmp_path, model, capsys):
    image = gray_jpeg(tmp_path / 'a.jpg')
    taken = tmp_path / 'taken'
    taken.write_text('a file')
    args = ('--model', model[0], '--opt', model[1])
    line = usage_error(capsys, 'restore', image, '-o', taken, *args)
    assert f'-o {taken} is a file' in line
    line = usage_error(capsys, 'restore', image, '-o', taken / 'sub', *args)
    assert f'-o {taken / "sub"}: cannot create' in line
    # tests run as root, which writes into read-only folders: /sys refuses new files (EACCES) and folders (EPERM)
    line = usage_error(capsys, 'restore', image, '-o', '/sys', *args)
    assert '-o /sys: cannot write' in line
    line = usage_error(capsys, 'restore', image, '-o', '/sys/carn_da_out', *args)
    assert '-o /sys/carn_da_out: cannot create' in line
    assert taken.read_text() == 'a file'


def test_an_output_under_a_file_fails_that_input(tmp_path, model, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    png(src / 'sub' / 'a.png')
    png(src / 'b.png')
    out.mkdir()
    (out / 'sub').write_text('a file where restore would make a folder')
    code, stdout, err = restore(capsys, src, '-o', out, '--model', model[0], '--opt', model[1])
    assert code == 1 and 'Traceback' not in err
    assert f'failed: {src / "sub" / "a.png"}: cannot write {out / "sub" / "a.png"}' in err
    assert '1 restored, 0 skipped, 1 failed' in stdout and (out / 'b.png').is_file()


def test_a_binary_option_file_is_named(tmp_path, model, capsys):
    options = tmp_path / 'binary.yml'
    options.write_bytes(BINARY)
    image = gray_jpeg(tmp_path / 'a.jpg')
    png(tmp_path / 'gt' / 'a.png')
    for prog, argv in (('restore', (image, '-o', tmp_path / 'out', '--model', model[0], '--opt', options)),
                       ('eval', ('--model', f'm={model[0]}:{options}', '--test', f's={tmp_path / "gt"}', '--qf', '20',
                                 '--out', tmp_path / 'out')), ('route', ('--expert', '10', options, model[0], '--out',
                                                                         tmp_path / 'out'))):
        line = usage_error(capsys, prog, *argv)
        assert f'Option file {options} is not a UTF-8 text file' in line, prog
    assert not (tmp_path / 'out').exists()


# 5. messages that say what is wrong


def test_output_folder_equal_to_the_input_folder(tmp_path, model, capsys):
    same = tmp_path / 'same'
    png(same / 'alpha.png')
    line = usage_error(capsys, 'restore', same, '-o', same, '--model', model[0], '--opt', model[1])
    assert f'-o {same} is the input folder' in line and '-o must differ from INPUT' in line
    # an output folder inside the input is left out of it; one that holds the input is not
    png(same / 'out' / 'restored.png')
    code, stdout, _ = restore(capsys, same, '-o', same / 'out', '--model', model[0], '--opt', model[1])
    assert code == 0 and '1 restored' in stdout
    code, stdout, _ = restore(capsys, same, '-o', tmp_path, '--model', model[0], '--opt', model[1])
    assert code == 0 and '3 restored' in stdout and (tmp_path / 'alpha.png').is_file()  # same/out/ is read too


@pytest.mark.parametrize('tile, overlap, message', [
    (0, 16, '--tile must be at least 1, got 0'),
    (-5, 16, '--tile must be at least 1, got -5'),
    (7, 16, '--tile 7 must be greater than --tile-overlap 16'),
    (16, 16, '--tile 16 must be greater than --tile-overlap 16'),
    (32, -1, '--tile-overlap must be at least 0, got -1'),
    (None, -1, '--tile-overlap must be at least 0, got -1'),
])
def test_tile_options_say_which_is_wrong(tmp_path, model, capsys, tile, overlap, message):
    tiling = ([] if tile is None else ['--tile', tile]) + ['--tile-overlap', overlap]
    image = gray_jpeg(tmp_path / 'a.jpg')
    line = usage_error(capsys, 'restore', image, '-o', tmp_path / 'out', '--model', model[0], '--opt', model[1],
                       *tiling)
    assert line.endswith(message)
    png(tmp_path / 'gt' / 'a.png')
    line = usage_error(capsys, 'eval', '--model', f'm={model[0]}:{model[1]}', '--test', f's={tmp_path / "gt"}', '--qf',
                       '20', '--out', tmp_path / 'out', *tiling)
    assert line.endswith(message)


def test_a_file_not_written_by_torch_save_is_no_checkpoint(tmp_path, model, capsys):
    image = gray_jpeg(tmp_path / 'a.jpg')
    not_checkpoints = {'text.pth': b'hello, not a checkpoint\n', 'empty.pth': b'', 'image.pth': image.read_bytes()}
    for name, data in not_checkpoints.items():
        (tmp_path / name).write_bytes(data)
        line = usage_error(capsys, 'restore', image, '-o', tmp_path / 'out', '--model', tmp_path / name, '--opt',
                           model[1])
        assert f'{tmp_path / name} is not a PyTorch checkpoint (expected a file written by torch.save)' in line
        assert 'pickle' not in line
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(model[0], 'rb').read()[:2000])
    line = usage_error(capsys, 'restore', image, '-o', tmp_path / 'out', '--model', truncated, '--opt', model[1])
    assert f'Cannot read checkpoint {truncated}' in line and 'truncated' in line


def test_stdin_into_an_existing_output_needs_overwrite(tmp_path, model, capsys, monkeypatch):
    data = gray_jpeg(tmp_path / 'a.jpg').read_bytes()
    stdin = io_stdin(monkeypatch, data)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'stdin.png').write_bytes(b'earlier')
    line = usage_error(capsys, 'restore', '-', '-o', out, '--model', model[0], '--opt', model[1])
    assert f'{out / "stdin.png"} exists' in line and '--overwrite' in line
    assert stdin.tell() == 0 and (out / 'stdin.png').read_bytes() == b'earlier'  # stdin is left unread
    code, stdout, _ = restore(capsys, '-', '-o', out, '--model', model[0], '--opt', model[1], '--overwrite')
    assert code == 0 and '1 restored' in stdout
    assert cv2.imread(str(out / 'stdin.png'), cv2.IMREAD_UNCHANGED).shape == (40, 48)


def io_stdin(monkeypatch, data):
    """Replace sys.stdin by one reading ``data``; the byte stream under it."""
    raw = io.BytesIO(data)
    monkeypatch.setattr(sys, 'stdin', io.TextIOWrapper(raw))
    return raw


# 6. FIFOs and sockets; route's experts


class ReaderWatch:
    """Notes whether anything opens the FIFO ``path`` for reading (and then lets that reader go on at once)."""

    def __init__(self, path):
        self.path, self.opened, self.done = path, False, threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self):
        while not self.done.wait(0.05):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only while a reader has it open
            except OSError:
                continue
            self.opened = True
            os.close(fd)  # the reader reads an empty file instead of hanging

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.opened


def test_a_fifo_is_never_opened(tmp_path, model, capsys):
    src = tmp_path / 'in'
    png(src / 'good.png')
    fifo = src / 'x.jpg'
    os.mkfifo(fifo)
    watch = ReaderWatch(fifo)
    try:
        code, stdout, err = restore(capsys, src, '-o', tmp_path / 'out', '--model', model[0], '--opt', model[1])
        code_direct, stdout_direct, err_direct = restore(capsys, fifo, '-o', tmp_path / 'direct', '--model', model[0],
                                                         '--opt', model[1])
    finally:
        opened = watch.stop()
    assert not opened
    assert code == 1 and f'failed: {fifo}: not a regular file' in err and '1 restored, 0 skipped, 1 failed' in stdout
    assert files(tmp_path / 'out') == ['good.png']
    assert code_direct == 1 and f'failed: {fifo}: not a regular file' in err_direct and 'Traceback' not in err_direct
    assert not (tmp_path / 'direct' / 'x.png').exists()


def test_eval_names_a_fifo_among_the_ground_truths(tmp_path, model, capsys):
    png(tmp_path / 'gt' / 'a.png')
    fifo = tmp_path / 'gt' / 'b.png'
    os.mkfifo(fifo)
    watch = ReaderWatch(fifo)
    try:
        line = usage_error(capsys, 'eval', '--model', f'm={model[0]}:{model[1]}', '--test', f's={tmp_path / "gt"}',
                           '--qf', '20', '--out', tmp_path / 'out')
    finally:
        opened = watch.stop()
    assert not opened and f'{fifo} is not a regular file' in line


def test_route_refuses_two_experts_for_one_quality(tmp_path, capsys):
    for name in ('low', 'high'):
        (tmp_path / name).mkdir()
    low, high = save_model(tmp_path / 'low'), save_model(tmp_path / 'high', seed=1)
    line = usage_error(capsys, 'route', '--expert', '10,30', low[1], low[0], '--expert', '30,70', high[1], high[0],
                       '--out', tmp_path / 'routed')
    assert 'QF 30' in line and low[0] in line and high[0] in line
    assert not (tmp_path / 'routed').exists()


# 7. the same defects elsewhere


def test_route_never_writes_over_an_expert(tmp_path, capsys):
    (tmp_path / 'expert').mkdir()
    checkpoint, options = save_model(tmp_path / 'expert')
    os.replace(checkpoint, tmp_path / 'expert' / 'net_g.pth')
    checkpoint = str(tmp_path / 'expert' / 'net_g.pth')
    before = open(checkpoint, 'rb').read()
    line = usage_error(capsys, 'route', '--expert', '10', options, checkpoint, '--out', tmp_path / 'expert')
    assert f'{checkpoint} would replace' in line and '--out' in line
    assert open(checkpoint, 'rb').read() == before
    (tmp_path / 'file').write_text('x')
    line = usage_error(capsys, 'route', '--expert', '10', options, checkpoint, '--out', tmp_path / 'file')
    assert f'--out {tmp_path / "file"} is a file' in line


def test_eval_output_folder_checks(tmp_path, model, capsys):
    gt = tmp_path / 'gt'
    png(gt / 'a.png')
    argv = ['--model', f'm={model[0]}:{model[1]}', '--test', f's={gt}', '--qf', '20', '--device', 'cpu']
    (tmp_path / 'file').write_text('x')
    assert f'--out {tmp_path / "file"} is a file' in usage_error(capsys, 'eval', *argv, '--out', tmp_path / 'file')
    for out in (gt, gt / 'results'):  # its figures would become ground truths
        line = usage_error(capsys, 'eval', *argv, '--out', out)
        assert f'--out {out} lies in the --test folder {gt}' in line
    assert files(gt) == ['a.png']


def test_eval_lq_dir_with_other_braces(tmp_path, model, capsys):
    gt = png(tmp_path / 'gt' / 'a.png').parent
    lq = tmp_path / 'jpeg{x}' / 'qf20'
    lq.mkdir(parents=True)
    cv2.imwrite(str(lq / 'a.jpg'), cv2.imread(str(gt / 'a.png')), [cv2.IMWRITE_JPEG_QUALITY, 20])
    code, _, err = command(capsys, 'eval', '--model', f'm={model[0]}:{model[1]}', '--test', f's={gt}', '--lq-dir',
                           f's={lq.parent}', '--qf', '20', '--device', 'cpu', '--out', tmp_path / 'out')
    assert code in (0, None) and 'Traceback' not in err, err
    scores = json.loads((tmp_path / 'out' / 'scores.json').read_text())['scores']
    assert list(scores['m']['s']['20']['images'][0]) == ['name', 'psnr', 'psnrb', 'ssim']


def test_restore_tiny_images_in_tiles(tmp_path, model):
    net, channels = load_model(*model)
    for size in ((1, 1), (1, 40), (16, 16), (17, 5)):
        img = textured_image(np.random.default_rng(0), 40, 40)[:size[0], :size[1]]
        whole = inference.Restorer(net, channels, torch.device('cpu'))(img)
        tiled = inference.Restorer(net, channels, torch.device('cpu'), tile=16, tile_overlap=4)(img)
        assert tiled.shape == whole.shape == img.shape


def test_nothing_is_left_in_the_output_folder(tmp_path, model, capsys):
    image = gray_jpeg(tmp_path / 'a.jpg')
    assert restore(capsys, image, '-o', tmp_path / 'out', '--model', model[0], '--opt', model[1])[0] == 0
    assert files(tmp_path / 'out') == ['a.png']  # no probe or temporary file


def test_eval_names_an_image_too_small_to_score(tmp_path, model, capsys):
    png(tmp_path / 'gt' / 'a.png')
    small = png(tmp_path / 'gt' / 'small.png', (5, 7))
    line = usage_error(capsys, 'eval', '--model', f'm={model[0]}:{model[1]}', '--test', f's={tmp_path / "gt"}', '--qf',
                       '20', '--out', tmp_path / 'out')
    assert f'--test s: {small}: 5x7 is too small to score' in line
    assert not (tmp_path / 'out').exists()


def test_atomic_outputs_get_the_permissions_of_a_new_file(tmp_path):
    """write_atomic's file is as readable as one open() makes (its temporary file starts private, 0o600)."""
    with open(tmp_path / 'plain', 'wb'):
        pass
    write_atomic(str(tmp_path / 'atomic'), b'x')
    assert os.stat(tmp_path / 'atomic').st_mode == os.stat(tmp_path / 'plain').st_mode
