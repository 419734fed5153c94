"""The models shipped in the package (carn_da/weights, made by scripts/train_zoo.py): complete, intact, and better
than the JPEG they are given, with no argument but the input and the output folder."""
import carn_da.compat  # noqa: F401

import cv2
import itertools
import pytest
from conftest import SHARED_DATASETS
from os import path as osp
from test_restore import run

from carn_da.utils import zoo
from carn_da.utils.scores import image_scores

BSD68 = osp.join(SHARED_DATASETS, 'BSD68')
QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


@pytest.fixture
def package_models(monkeypatch):
    monkeypatch.delenv('CARN_DA_MODELS', raising=False)
    roles, models = zoo.read_manifest(zoo.PACKAGE_FOLDER)
    return roles, models


def test_the_package_ships_a_default_and_an_adapt_source_each_with_its_card_and_checksum(package_models):
    roles, models = package_models
    assert set(roles) == set(zoo.ROLES), f'{zoo.PACKAGE_FOLDER}/models.json names {roles}'
    for model in models.values():
        zoo.verified(model)  # raises UserError when the weights are not those of the manifest
        assert osp.isfile(model.options) and osp.isfile(model.card)
        card = open(model.card, encoding='utf-8').read()
        assert 'Command: `python scripts/train_zoo.py' in card and 'machine' in card
        (test_name, by_qf), = model.scores.items()
        assert test_name.startswith('BSD68') and sorted(by_qf, key=int) == [str(q) for q in QUALITIES]


@pytest.mark.skipif(not osp.isdir(BSD68), reason=f'BSD68 is not in {SHARED_DATASETS}')
def test_restore_with_no_model_given_beats_the_jpeg_at_every_quality(package_models, tmp_path, capsys):
    gts = {stem: cv2.imread(osp.join(BSD68, f'{stem}.png'), cv2.IMREAD_GRAYSCALE) for stem in ('test001', 'test002')}
    for (stem, gt), qf in itertools.product(gts.items(), QUALITIES):
        cv2.imwrite(str(tmp_path / f'{stem}_qf{qf}.jpg'), gt, [cv2.IMWRITE_JPEG_QUALITY, qf])
    code, _, err = run(capsys, tmp_path, '-o', tmp_path / 'out', '--device', 'cpu')
    assert code == 0, err
    for qf in QUALITIES:
        gain = 0
        for stem, gt in gts.items():
            jpeg = cv2.imread(str(tmp_path / f'{stem}_qf{qf}.jpg'), cv2.IMREAD_GRAYSCALE)
            restored = cv2.imread(str(tmp_path / 'out' / f'{stem}_qf{qf}.png'), cv2.IMREAD_GRAYSCALE)
            gain += image_scores(restored, gt)['psnr'] - image_scores(jpeg, gt)['psnr']
            line = next(line for line in err.splitlines() if f'{stem}_qf{qf}.jpg: ' in line)
            assert f': QF {qf} (header' in line and line.endswith(f'-> QF {qf}'), line  # to its quality's expert
        assert gain > 0, f'QF {qf}: the default model is {-gain / len(gts):.2f} dB below the JPEG'
