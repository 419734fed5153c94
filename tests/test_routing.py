import carn_da.compat  # noqa: F401

import numpy as np
import pytest
import torch
from conftest import textured_image
from test_restore import save_model

from carn_da import cli
from carn_da.archs.quality_routed_arch import QualityRoutedCARN
from carn_da.utils.checkpoint import load_model
from carn_da.utils.inference import infer
from carn_da.utils.jpeg import jpeg_compress


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


def test_each_image_goes_to_the_expert_of_its_estimated_quality(tmp_path, experts, capsys):
    code, out = route(capsys, '--expert', '10', *experts['10'][::-1], '--expert', '70,90', *experts['70,90'][::-1],
                      '--out', tmp_path / 'routed')
    assert code == 0, out.err
    routed, channels = load_model(str(tmp_path / 'routed' / 'net_g.pth'), str(tmp_path / 'routed' / 'routed.yml'))
    low, high = (load_model(*experts[q])[0] for q in ('10', '70,90'))
    img = textured_image(np.random.default_rng(5), 64, 80)
    inputs = {q: as_input(jpeg_compress(img, q)) for q in (10, 30, 50, 90)}
    assert channels == 1 and routed.estimate(torch.cat(list(inputs.values()))) == [10, 30, 50, 90]
    with torch.no_grad():
        out = routed(torch.cat(list(inputs.values())))
        # nearest quality: 30 is nearer 10 than 70, 50 nearer 70 than 10
        for k, (quality, expert) in enumerate(((10, low), (30, low), (50, high), (90, high))):
            assert torch.allclose(out[k:k + 1], expert(inputs[quality]), atol=1e-6)
        assert not torch.allclose(low(inputs[90]), high(inputs[90]))  # the experts differ
    # tiles are routed on the whole image: their own grids would not estimate the quality
    tiled = infer(routed, inputs[10], tile=32, tile_overlap=16)
    assert torch.equal(tiled, infer(low, inputs[10], tile=32, tile_overlap=16))


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
    assert [QualityRoutedCARN([expert], reach=0).route(q) for q in (10, 90)] == [0, 0]
    for experts in ([fallback], [dict(expert, fallback=True)], [fallback, fallback]):
        with pytest.raises(ValueError, match='fallback'):
            QualityRoutedCARN(experts)
