"""scripts/train_zoo.py at a tiny size: it trains, scores and ships models the commands then use by default."""
import carn_da.compat  # noqa: F401

import cv2
import json
import numpy as np
import sys
from conftest import textured_image
from os import path as osp
from test_restore import run
from tiny import REPO

from carn_da import cli
from carn_da.utils import zoo
from carn_da.utils.jpeg import jpeg_compress

sys.path.insert(0, osp.join(REPO, 'scripts'))
import train_zoo  # noqa: E402


def write_set(folder, num, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(num):
        cv2.imwrite(str(folder / f'im{i}.png'), textured_image(rng, 56, 64))


def test_the_zoo_is_trained_scored_shipped_and_then_the_default(tmp_path, monkeypatch, capsys):
    write_set(tmp_path / 'data' / 'Train400', 3, 0)
    write_set(tmp_path / 'data' / 'BSD68', 2, 1)
    weights = tmp_path / 'weights'
    argv = [
        '--data', tmp_path / 'data', '--root', tmp_path, '--ship', weights, '--size', 'demo', '--blind-iters', 2,
        '--expert-iters', 1, '--qualities', 30, '--longer', 30, '--longer-iters', 1, '--score-images', 1, '--batch', 2,
        '--prefix', 'tiny'
    ]
    train_zoo.main(list(map(str, argv)))
    roles, models = zoo.read_manifest(str(weights))
    assert roles == {'default': 'carn-da-gray', 'adapt_source': 'carn-da-gray-blind'}
    assert set(models) == {'carn-da-gray', 'carn-da-gray-blind'}
    routed = json.loads((weights / 'models.json').read_text())['models']['carn-da-gray']
    assert sorted(routed['scores']['BSD68'], key=int) == [str(q) for q in train_zoo.SCORE_QUALITIES]
    card = (weights / 'carn-da-gray.md').read_text()
    assert 'an expert per JPEG quality 30' in card and '--blind-iters 2' in card and '| 90 |' in card
    assert 'the experts for QF 30 1 more again' in card
    assert osp.isfile(tmp_path / 'experiments' / 'tiny_qf30_plus1' / 'models' / 'net_g_latest.pth')
    train_zoo.main(list(map(str, argv)))  # finished trainings are reused, not trained again
    assert capsys.readouterr().out.count('reusing') == 3

    monkeypatch.setenv('CARN_DA_MODELS', str(weights))
    photos = tmp_path / 'photos'
    photos.mkdir()
    gt = textured_image(np.random.default_rng(5), 48, 56)
    for quality in (30, 60):  # the QF-30 expert, then the blind fallback
        cv2.imwrite(str(photos / f'qf{quality}.png'), jpeg_compress(gt, quality))
    code, _, err = run(capsys, photos, '-o', tmp_path / 'out', '--device', 'cpu')
    assert code == 0, err
    assert 'qf30.png: QF 30 (pixels, grid offset 0,0) -> QF 30' in err and 'qf60.png: QF 60' in err
    assert '-> fallback' in err
    assert cli.main(['models']) == 0 and 'carn-da-gray-blind (adapt source)' in capsys.readouterr().out
