import carn_da.compat  # noqa: F401

import contextlib
import csv
import cv2
import io
import json
import math
import numpy as np
import os
import pytest
import torch
import yaml
from os import path as osp
from torch import nn

from carn_da import evaluate
from carn_da.archs.rdn_arch import RDN
from carn_da.utils import inference
from carn_da.utils.scores import evaluate_pairs, mean_scores

TINY_RDN = {'type': 'RDN', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 4}
# receptive field radius: sfe1, sfe2, 2 blocks x 2 convs, the 3x3 of the global fusion and the reconstruction
TINY_RADIUS = 8


def tiny_rdn(seed=0):
    torch.manual_seed(seed)
    return RDN(**{k: v for k, v in TINY_RDN.items() if k != 'type'}).eval()


class ShapeRecorder(nn.Module):
    """Runs ``net`` and records the (H, W) of every input."""

    def __init__(self, net):
        super().__init__()
        self.net, self.shapes = net, []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        return self.net(x)


def test_tile_spans_cover_the_axis_with_seams_mid_overlap():
    for length, tile, overlap in [(50, 24, 16), (37, 20, 18), (100, 32, 8), (56, 32, 8), (20, 32, 8), (9, 4, 1)]:
        spans = inference.tile_spans(length, tile, overlap)
        size = min(tile, length)
        assert len(spans) == 1 + math.ceil((length - size) / (size - overlap))
        assert spans[0][0] == 0 and spans[-1][1] == length  # first at the start, last aligned to the end
        kept = np.zeros(length, int)
        for start, stop, keep_start, keep_stop in spans:
            assert stop - start == size and start <= keep_start < keep_stop <= stop
            kept[keep_start:keep_stop] += 1
            # a kept pixel is at least overlap // 2 pixels away from an edge of its tile inside the image
            if start > 0:
                assert keep_start - start >= overlap // 2
            if stop < length:
                assert stop - keep_stop >= overlap // 2
        np.testing.assert_array_equal(kept, 1)
    with pytest.raises(ValueError, match='overlap'):
        inference.tile_spans(50, 16, 16)


@pytest.mark.parametrize('tile, overlap', [(24, 16), (20, 18), (33, 17), (40, 20), (64, 16)])
def test_tiled_inference_equals_whole_image(tile, overlap):
    assert TINY_RADIUS <= overlap // 2
    height, width = 37, 50
    net = ShapeRecorder(tiny_rdn())
    torch.manual_seed(1)
    lq = torch.rand(1, 1, height, width)
    with torch.no_grad():
        whole = net.net(lq)
    tiled = inference.infer(net, lq, tile=tile, tile_overlap=overlap)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < 1e-4
    # it really ran tiles of at most tile x tile, as many as the stride (tile - overlap) needs per axis
    counts = [1 + math.ceil(max(n - tile, 0) / (min(tile, n) - overlap)) for n in (height, width)]
    assert len(net.shapes) == counts[0] * counts[1]
    assert set(net.shapes) == {(min(tile, height), min(tile, width))}

    img = (lq[0, 0].numpy() * 255).round().astype(np.uint8)
    restored = inference.restore(net, img, tile=tile, tile_overlap=overlap)
    assert restored.dtype == np.uint8 and restored.shape == img.shape
    difference = np.abs(restored.astype(int) - inference.restore(net.net, img))
    assert difference.max() <= 1 and difference.mean() < 1e-2  # equal but for rounding flips of ~1e-7 differences


def test_small_overlap_changes_the_result():
    # with an overlap below twice the receptive field radius the seams show: the equality above is not vacuous
    net = tiny_rdn()
    lq = torch.rand(1, 1, 37, 50, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(lq)
    assert (inference.infer(net, lq, tile=20, tile_overlap=2) - whole).abs().max().item() > 1e-3


def test_dihedral_views_are_the_eight_symmetries_and_undo_exactly():
    x = torch.rand(1, 1, 5, 7, generator=torch.Generator().manual_seed(0))
    square = x[..., :5, :5]
    views = [inference.dihedral(square, k) for k in range(8)]
    assert all(not torch.equal(a, b) for i, a in enumerate(views) for b in views[i + 1:])
    assert torch.equal(views[0], square) and torch.equal(views[1], square.flip(-1))
    for k in range(8):
        assert torch.equal(inference.undo_dihedral(inference.dihedral(x, k), k), x)


def test_self_ensemble_commutes_with_every_view_and_keeps_an_equivariant_net():
    net = tiny_rdn()
    lq = torch.rand(1, 1, 30, 41, generator=torch.Generator().manual_seed(2))
    plain, ensembled = inference.infer(net, lq), inference.infer(net, lq, self_ensemble=True)
    assert (ensembled - plain).abs().max().item() > 1e-3  # a random RDN treats the eight views differently
    for k in range(1, 8):  # the average over the eight views is equivariant: a turned input gives the turned output
        turned = inference.infer(net, inference.dihedral(lq, k), self_ensemble=True)
        assert (turned - inference.dihedral(ensembled, k)).abs().max().item() < 1e-5
        assert (inference.infer(net, inference.dihedral(lq, k)) - inference.dihedral(plain, k)).abs().max() > 1e-3
    box = nn.Conv2d(1, 1, 3, padding=1, bias=False)  # a symmetric kernel: every view gives the same output
    nn.init.constant_(box.weight, 1 / 9)
    assert (inference.infer(box, lq, self_ensemble=True) - inference.infer(box, lq)).abs().max().item() < 1e-6
    tiled = inference.infer(net, lq, tile=24, tile_overlap=2 * TINY_RADIUS, self_ensemble=True)
    assert (tiled - ensembled).abs().max().item() < 1e-4


def _textured(rng, shape):
    return cv2.GaussianBlur(rng.integers(0, 256, shape).astype(np.uint8), (5, 5), 1.2)


def _jpeg(img, qf):
    return cv2.imdecode(cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, qf])[1], cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope='module')
def cli_run(tmp_path_factory):
    """Two test sets of three 40x48 images (set A compressed by the CLI, B read from prepared JPEG folders), a tiny
    RDN checkpoint and its options; the CLI run on them, and the pairs it should have scored."""
    root = str(tmp_path_factory.mktemp('evaluate'))
    rng = np.random.default_rng(0)
    qfs = (10, 30, 50)
    pairs = {'A': {qf: [] for qf in qfs}, 'B': {qf: [] for qf in qfs}}
    for folder in ['A', 'B'] + [f'B_jpeg/qf{qf}' for qf in qfs]:
        os.makedirs(osp.join(root, folder))
    for i in range(3):
        colour = _textured(rng, (40, 48, 3))  # A holds a colour image, read as BT.601 luma
        gt_a = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY) if i == 0 else _textured(rng, (40, 48))
        cv2.imwrite(osp.join(root, 'A', f'img{i}.png'), colour if i == 0 else gt_a)
        gt_b = _textured(rng, (40, 48))
        cv2.imwrite(osp.join(root, 'B', f'pic{i}.png'), gt_b)
        for qf in qfs:
            pairs['A'][qf].append((f'img{i}', _jpeg(gt_a, qf), gt_a))
            cv2.imwrite(osp.join(root, 'B_jpeg', f'qf{qf}', f'pic{i}.jpg'), gt_b, [cv2.IMWRITE_JPEG_QUALITY, qf])
            jpeg = cv2.imread(osp.join(root, 'B_jpeg', f'qf{qf}', f'pic{i}.jpg'), cv2.IMREAD_GRAYSCALE)
            pairs['B'][qf].append((f'pic{i}', jpeg, gt_b))

    net = tiny_rdn()
    checkpoint, options = osp.join(root, 'net_g.pth'), osp.join(root, 'train.yml')
    torch.save({'params': net.state_dict()}, checkpoint)
    with open(options, 'w') as f:
        yaml.safe_dump({'name': 'tiny', 'model_type': 'CARNModel', 'network_g': TINY_RDN}, f)
    out = osp.join(root, 'out')
    argv = [
        '--model', f'tiny={checkpoint}:{options}', '--test', f'A={root}/A', '--test', f'B={root}/B', '--lq-dir',
        f'B={root}/B_jpeg', '--qf', '10', '50', '--plot-qfs', '10', '30', '50', '--residual-image', 'A/img1',
        '--device', 'cpu', '--out', out
    ]
    return {'argv': argv, 'out': out, 'net': net, 'pairs': pairs}


@pytest.fixture(scope='module')
def cli_output(cli_run):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        evaluate.main(cli_run['argv'])
    return stdout.getvalue()


def test_cli_scores_json_equals_evaluate_pairs(cli_run, cli_output):
    with open(osp.join(cli_run['out'], 'scores.json')) as f:
        scores = json.load(f)['scores']
    assert list(scores) == ['JPEG', 'tiny']
    for name, by_qf in cli_run['pairs'].items():
        for qf, pairs in by_qf.items():
            for label, net in (('JPEG', None), ('tiny', cli_run['net'])):
                expected = evaluate_pairs(pairs, net)
                assert scores[label][name][str(qf)]['images'] == expected
                assert scores[label][name][str(qf)]['mean'] == mean_scores(expected)


def test_cli_table(cli_run, cli_output):
    with open(osp.join(cli_run['out'], 'table.md')) as f:
        text = f.read()
    assert cli_output == text
    header, rule, *rows = [[cell.strip() for cell in line.split('|')[1:-1]] for line in text.splitlines()]
    assert header == [''] + [
        f'{name} QF {qf} {metric}' for name in 'AB' for qf in (10, 50) for metric in ('PSNR', 'PSNR-B', 'SSIM')
    ]
    assert len(rule) == 13
    assert [row[0] for row in rows] == ['JPEG', 'tiny']
    cells = iter(zip(rows[0][1:], rows[1][1:]))
    for name in 'AB':
        for qf in (10, 50):
            jpeg = mean_scores(evaluate_pairs(cli_run['pairs'][name][qf]))
            model = mean_scores(evaluate_pairs(cli_run['pairs'][name][qf], cli_run['net']))
            for metric, decimals in (('psnr', 2), ('psnrb', 2), ('ssim', 4)):
                jpeg_cell, model_cell = next(cells)
                assert jpeg_cell == f'{jpeg[metric]:.{decimals}f}'
                gain = model[metric] - jpeg[metric]
                assert model_cell == f'{model[metric]:.{decimals}f} ({gain:+.{decimals}f})'


def test_cli_scores_csv(cli_run, cli_output):
    with open(osp.join(cli_run['out'], 'scores.csv'), newline='') as f:
        header, *rows = list(csv.reader(f))
    assert header == ['model', 'dataset', 'qf', 'image', 'psnr', 'psnrb', 'ssim']
    assert len(rows) == 2 * 2 * 3 * 3  # (JPEG, tiny) x sets x QFs (table's and plot's) x images
    assert {len(row) for row in rows} == {7}
    assert {(row[0], row[1], row[2])
            for row in rows} == {(m, s, q)
                                 for m in ('JPEG', 'tiny')
                                 for s in 'AB'
                                 for q in ('10', '30', '50')}
    jpeg = evaluate_pairs(cli_run['pairs']['B'][30])[2]
    assert ['JPEG', 'B', '30', 'pic2'] + [str(jpeg[m]) for m in ('psnr', 'psnrb', 'ssim')] in rows


def test_cli_figures(cli_run, cli_output):
    # gain_vs_qf.png: one 4 x 3 inch panel per test set at 100 dpi; residuals.png: 3 x 3 inch cells, a row per
    # table QF and a column for JPEG and each model
    for name, size in (('gain_vs_qf.png', (300, 800)), ('residuals.png', (600, 600))):
        img = cv2.imread(osp.join(cli_run['out'], name), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape[:2] == size
        assert img.std() > 10  # something is drawn


@pytest.mark.parametrize('case', ['checkpoint', 'options', 'network_g', 'residual'])
def test_cli_user_errors(cli_run, case, tmp_path, capsys):
    argv = list(cli_run['argv'])
    argv[argv.index('--out') + 1] = str(tmp_path / 'out')
    checkpoint, options = argv[1].split('=', 1)[1].rsplit(':', 1)
    if case == 'checkpoint':
        checkpoint = missing = str(tmp_path / 'missing.pth')
    elif case == 'options':
        options = missing = str(tmp_path / 'missing.yml')
    elif case == 'network_g':
        missing = options = str(tmp_path / 'no_net.yml')
        with open(options, 'w') as f:
            yaml.safe_dump({'name': 'x'}, f)
    else:
        argv[argv.index('--residual-image') + 1] = missing = 'A/img9'
    argv[1] = f'tiny={checkpoint}:{options}'
    with pytest.raises(SystemExit) as error:
        evaluate.main(argv)
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert missing in err and 'Traceback' not in err
    assert not osp.exists(tmp_path / 'out')
