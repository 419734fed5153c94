import carn_da.compat  # noqa: F401

import csv
import cv2
import numpy as np
import pytest
import torch
from conftest import aperiodic_texture, textured_image
from os import path as osp
from test_restore import run as restore
from test_restore import save_model

from carn_da import cli
from carn_da.archs.quality_routed_arch import QualityRoutedCARN
from carn_da.utils.checkpoint import load_model
from carn_da.utils.inference import infer
from carn_da.utils.inference import restore as restore_array
from carn_da.utils.jpeg import QualityReading, jpeg_compress, jpeg_encode


def as_input(img):
    return torch.from_numpy(img).float().div(255)[None, None]


def route(capsys, *argv):
    try:
        code = cli.main(['route', *map(str, argv)])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr()


@pytest.fixture
def experts(tmp_path):
    """Checkpoints and option files of two different tiny RDNs: one for QF 10, one for QF 70 and 90."""
    models = {}
    for seed, qualities in enumerate(('10', '70,90')):
        folder = tmp_path / qualities.replace(',', '_')
        folder.mkdir()
        models[qualities] = save_model(folder, seed=seed)
    return models


def test_each_image_goes_to_the_expert_of_its_quality_and_no_other(tmp_path, experts, capsys):
    code, out = route(capsys, '--expert', '10', *experts['10'][::-1], '--expert', '70,90', *experts['70,90'][::-1],
                      '--out', tmp_path / 'routed')
    assert code == 0, out.err
    routed, channels = load_model(str(tmp_path / 'routed' / 'net_g.pth'), str(tmp_path / 'routed' / 'routed.yml'))
    low, high = (load_model(*experts[q])[0] for q in ('10', '70,90'))
    img = textured_image(np.random.default_rng(5), 64, 80)
    inputs = {q: as_input(jpeg_compress(img, q)) for q in (10, 30, 70, 90)}
    readings = routed.read(torch.cat(list(inputs.values())))
    assert channels == 1 and [(r.quality, r.offset) for r in readings] == [(q, (0, 0)) for q in inputs]
    with torch.no_grad():
        out = routed(torch.cat(list(inputs.values())))
        # QF 30 is 20 from the nearest expert: without a fallback it passes unchanged, not to the QF-10 expert
        for k, (quality, expert) in enumerate(((10, low), (30, torch.nn.Identity()), (70, high), (90, high))):
            assert torch.allclose(out[k:k + 1], expert(inputs[quality]), atol=1e-6)
        assert not torch.allclose(low(inputs[90]), high(inputs[90]))  # the experts differ
    # tiles are routed on the whole image: their own grids would not estimate the quality
    tiled = infer(routed, inputs[10], tile=32, tile_overlap=16)
    assert torch.equal(tiled, infer(low, inputs[10], tile=32, tile_overlap=16))
    # so are the turned and mirrored views of the self-ensemble: a view's grid is not the file's
    assert torch.equal(infer(routed, inputs[10], self_ensemble=True), infer(low, inputs[10], self_ensemble=True))


def test_a_crop_off_the_grid_goes_where_the_whole_image_goes(tmp_path, experts, capsys):
    code, out = route(capsys, '--expert', '10', *experts['10'][::-1], '--expert', '70,90', *experts['70,90'][::-1],
                      '--out', tmp_path / 'routed')
    routed, _ = load_model(str(tmp_path / 'routed' / 'net_g.pth'), str(tmp_path / 'routed' / 'routed.yml'))
    img = textured_image(np.random.default_rng(6), 96, 96)
    for quality, expert in ((10, 0), (70, 1)):
        whole = jpeg_compress(img, quality)
        for top, left in ((3, 5), (1, 0), (7, 7), (0, 4)):
            reading = routed.read(as_input(whole[top:top + 80, left:left + 80]))[0]
            assert (reading.quality, reading.offset) == (quality, (top, left))
            assert routed.route(reading.quality) == expert


def test_bad_experts_are_named(tmp_path, experts, capsys):
    options, checkpoint = experts['10'][1], experts['10'][0]
    code, out = route(capsys, '--expert', '10,x', options, checkpoint, '--out', tmp_path)
    assert code == 2 and "comma-separated JPEG qualities, got '10,x'" in out.err
    code, out = route(capsys, '--expert', '10', options, tmp_path / 'missing.pth', '--out', tmp_path)
    assert code == 2 and 'missing.pth does not exist' in out.err
    with pytest.raises(ValueError, match='non-empty list'):
        QualityRoutedCARN(experts=[])
    with pytest.raises(ValueError, match='1..100, got 0'):
        QualityRoutedCARN(experts=[{'network': {'type': 'DnCNN'}, 'qualities': [0]}])


def test_a_fallback_expert_takes_every_quality_no_expert_is_made_for():
    """A blind source beside an expert adapted to a QF-30 pile: the expert gets images within reach (2) of QF 30,
    the fallback everything else, whatever is nearer."""
    tiny = {'type': 'RDN', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 1, 'num_layer': 1, 'growth': 4}
    expert, fallback = dict(network=tiny, qualities=[30]), dict(network=tiny, fallback=True)
    routed = QualityRoutedCARN([expert, fallback])
    assert [routed.route(q) for q in (10, 27, 28, 30, 32, 33, 90)] == [1, 1, 0, 0, 0, 1, 1]
    assert routed.route(None) is None and [routed.describe(k)
                                           for k in (0, 1, None)] == ['QF 30', 'fallback', 'unchanged']
    assert QualityRoutedCARN([expert, fallback], unknown='fallback').route(None) == 1  # a blind model for unknown
    assert routed.route(None, no_grid=False) == 1  # unknown, but perhaps a JPEG: the blind model
    known = QualityReading(30, (0, 0), 'pixels')
    no_grid, perhaps_jpeg = (QualityReading(None, None, None, no_grid=flag) for flag in (True, False))
    assert [routed.route_reading(reading) for reading in (known, no_grid, perhaps_jpeg)] == [0, None, 1]
    # resized: a QF-10 JPEG's blocking still shows (the blind model), a QF-90 one's does not (unchanged)
    img = aperiodic_texture(np.random.default_rng(5), 256, 320)
    for quality, route in ((10, 1), (90, None)):
        resized = cv2.resize(jpeg_compress(img, quality), None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
        assert routed.route_reading(routed.read(as_input(resized))[0]) == route
    # without a fallback, an image of unknown quality or far from every expert passes unchanged
    alone = QualityRoutedCARN([expert], reach=0)
    assert [alone.route(q) for q in (10, 30, 31, None)] == [None, 0, None, None] and alone.route(None, False) is None
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(alone(x), x)
    for experts in ([fallback], [dict(expert, fallback=True)], [fallback, fallback]):
        with pytest.raises(ValueError, match='fallback'):
            QualityRoutedCARN(experts)
    with pytest.raises(ValueError, match="unknown must be 'unchanged' or, with a fallback expert, 'fallback'"):
        QualityRoutedCARN([expert], unknown='fallback')


def test_restore_routes_each_file_on_what_it_holds_and_reports_it(tmp_path, experts, capsys):
    """Experts for QF 10 and QF 70/90 and a fallback: a colour JPEG goes where its gray twin goes, a crop off the grid
    where the whole photo goes, a re-saved JPEG to the expert of its earlier, coarser quality; a resized JPEG and a
    QF no expert is made for to the fallback; a resized JPEG (unknown quality) passes unchanged, or with --unknown
    fallback goes to the fallback; an image of unknown quality that may be a JPEG (a crop of saturated colours, too
    clipped to read) goes to the fallback; the report says why."""
    fallback = save_model(tmp_path, seed=9)
    code, out = route(capsys, '--expert', '10', *experts['10'][::-1], '--expert', '70,90', *experts['70,90'][::-1],
                      '--fallback', *fallback[::-1], '--out', tmp_path / 'routed')
    assert code == 0 and f'other images -> {fallback[0]}; images with no JPEG grid -> unchanged' in out.out
    rng = np.random.default_rng(7)
    gray = textured_image(rng, 96, 112)
    color = np.stack([gray * 0.5 + 60, gray[::-1] * 0.4 + 80, (255 - gray) * 0.4 + 50], axis=2).astype(np.uint8)
    pile = tmp_path / 'pile'
    pile.mkdir()
    files = {
        'gray10.jpg':
        jpeg_encode(gray, 10),
        'color10.jpg':
        jpeg_encode(color, 10),
        'crop70.png':
        cv2.imencode('.png',
                     jpeg_compress(gray, 70)[3:83, 5:101])[1].tobytes(),
        'resaved.jpg':
        jpeg_encode(jpeg_compress(gray, 10), 90),
        'resized.png':
        cv2.imencode('.png', cv2.resize(jpeg_compress(gray, 10), (84, 72), interpolation=cv2.INTER_AREA))[1].tobytes(),
        'qf40.jpg':
        jpeg_encode(gray, 40),
        'saturated.png':
        cv2.imencode('.png',
                     jpeg_compress(np.stack([gray, 255 - gray, np.zeros_like(gray)], axis=2), 20)[3:, 5:])[1].tobytes(),
    }
    for name, data in files.items():
        (pile / name).write_bytes(data)
    routed = (tmp_path / 'routed' / 'net_g.pth', tmp_path / 'routed' / 'routed.yml')
    code, _, stderr = restore(capsys, pile, '-o', tmp_path / 'out', '--model', routed[0], '--opt', routed[1],
                              '--report', tmp_path / 'report.csv')
    assert code == 0, stderr
    with open(tmp_path / 'report.csv', encoding='utf-8') as f:
        rows = {osp.basename(row['input']): row for row in csv.DictReader(f)}
    expected = {
        'gray10.jpg': ('10', 'header', '0,0', 'QF 10'),
        'color10.jpg': ('10', 'header', '0,0', 'QF 10'),
        'crop70.png': ('70', 'pixels', '3,5', 'QF 70,90'),
        'resaved.jpg': ('10', 'pixels', '0,0', 'QF 10'),
        'resized.png': ('', '', '', 'unchanged'),
        'qf40.jpg': ('40', 'header', '0,0', 'fallback'),
        'saturated.png': ('', '', '', 'fallback'),
    }
    assert {
        name: tuple(row[k] for k in ('quality', 'source', 'grid_offset', 'restored_by'))
        for name, row in rows.items()
    } == expected
    assert rows['resaved.jpg']['header_quality'] == '90' and 'earlier, coarser' in rows['resaved.jpg']['note']
    assert 'no JPEG grid' in rows['resized.png']['note'] and all(row['status'] == 'restored' for row in rows.values())
    assert 'too few textured blocks' in rows['saturated.png']['note']
    assert f'{pile / "crop70.png"}: QF 70 (pixels, grid offset 3,5) -> QF 70,90' in stderr
    # the colour JPEG's luma is restored by the expert its gray twin goes to
    resized = cv2.imdecode(np.frombuffer(files['resized.png'], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(cv2.imread(str(tmp_path / 'out' / 'resized.png'), cv2.IMREAD_GRAYSCALE), resized)
    code, out = route(capsys, '--expert', '10', *experts['10'][::-1], '--fallback', *fallback[::-1], '--unknown',
                      'fallback', '--out', tmp_path / 'routed_unknown')
    assert code == 0 and f'images with no JPEG grid -> {fallback[0]}' in out.out
    code, _, stderr = restore(capsys, pile / 'resized.png', '-o', tmp_path / 'out_unknown', '--model',
                              tmp_path / 'routed_unknown' / 'net_g.pth', '--opt',
                              tmp_path / 'routed_unknown' / 'routed.yml')
    assert code == 0 and stderr.count('-> fallback') == 1
    low = load_model(*experts['10'])[0]
    luma = cv2.cvtColor(cv2.imread(str(tmp_path / 'out' / 'color10.png')), cv2.COLOR_BGR2YCrCb)[..., 0]
    stored = cv2.imdecode(np.frombuffer(files['color10.jpg'], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.abs(luma.astype(int) - restore_array(low, stored)).mean() < 0.6
