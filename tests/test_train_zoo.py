"""scripts/train_zoo.py at a tiny size: it trains, scores and ships models the commands then use by default."""
import carn_da.compat  # noqa: F401

import cv2
import json
import numpy as np
import pytest
import sys
import torch
from conftest import textured_image
from os import path as osp
from test_restore import run
from tiny import REPO

from carn_da import cli
from carn_da.utils import zoo
from carn_da.utils.files import load_options
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
        '--expert-iters', 1, '--qualities', 30, '--longer', 30, 30, '--longer-iters', 1, '--score-images', 1, '--batch',
        2, '--prefix', 'tiny'
    ]
    train_zoo.main(list(map(str, argv)))
    roles, models = zoo.read_manifest(str(weights))
    assert roles == {'default': 'carn-da-gray', 'adapt_source': 'carn-da-gray-blind'}
    assert set(models) == {'carn-da-gray', 'carn-da-gray-blind'}
    routed = json.loads((weights / 'models.json').read_text())['models']['carn-da-gray']
    scores = routed['scores']['BSD68 (first 1 of 2 images)']
    assert sorted(scores, key=int) == [str(q) for q in train_zoo.SCORE_QUALITIES]
    card = (weights / 'carn-da-gray.md').read_text()
    assert 'an expert per JPEG quality 30' in card and '--blind-iters 2' in card and '| 90 |' in card
    assert 'the experts for QF 30 (2 rounds) 1 more again per round' in card
    assert osp.isfile(tmp_path / 'experiments' / 'tiny_qf30_plus1_plus1' / 'models' / 'net_g_latest.pth')
    second = load_options(str(tmp_path / 'experiments' / 'tiny_options' / 'tiny_qf30_plus1_plus1.yml'))
    assert second['path']['pretrain_network_g'].endswith(osp.join('tiny_qf30_plus1', 'models', 'net_g_latest.pth'))
    train_zoo.main(list(map(str, argv)))  # finished trainings are reused, not trained again, nor scored again
    out = capsys.readouterr().out
    assert out.count('reusing') == 4 and out.count('PSNR (cached)') == 2

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
    assert cli.main(['models']) == 0
    listed = capsys.readouterr().out
    assert 'carn-da-gray-blind (adapt source)' in listed and 'BSD68 (first 1 of 2 images) PSNR: QF 10' in listed


def test_a_zoo_sized_to_minutes_keeps_its_plan_and_ships_float16_weights(tmp_path, capsys):
    write_set(tmp_path / 'data' / 'Train400', 3, 0)
    write_set(tmp_path / 'data' / 'BSD68', 1, 1)
    weights = tmp_path / 'weights'
    argv = [
        '--data', tmp_path / 'data', '--root', tmp_path, '--ship', weights, '--size', 'demo', '--qualities', 30, 60,
        '--jobs', 2, '--score-images', 1, '--batch', 2, '--prefix', 'timed', '--blind-minutes', 0.002,
        '--expert-minutes', 0.002, '--half', '--train-only'
    ]
    train_zoo.main(list(map(str, argv)))
    assert not weights.exists()  # --train-only: trained, nothing scored or shipped
    plan = json.loads((tmp_path / 'experiments' / 'timed_options' / 'plan.json').read_text())
    assert plan['step_seconds'] > 0
    assert plan['blind_iters'] == max(1, int(0.002 * 60 / plan['step_seconds']))
    assert plan['expert_iters'] == max(1, int(0.002 * 60 / (plan['step_seconds'] * 2)))
    for name, iters in (('timed_blind', plan['blind_iters']), ('timed_qf60', plan['expert_iters'])):
        recorded = load_options(str(tmp_path / 'experiments' / name / f'{name}.yml'))
        assert recorded['train']['total_iter'] == iters

    train_zoo.main(list(map(str, argv[:-1])))  # the same plan, reused: ship in float16
    assert capsys.readouterr().out.count('reusing') == 3
    state = torch.load(weights / 'carn-da-gray.pth', weights_only=True)['params']
    assert {value.dtype for value in state.values()} == {torch.float16}
    card = (weights / 'carn-da-gray.md').read_text()
    assert 'sized to minutes of a measured step' in card and 'weights stored in float16' in card

    changed = list(map(str, argv[:-1]))
    changed[changed.index('--blind-minutes') + 1] = '0.5'
    with pytest.raises(SystemExit, match='plan.json was sized for other minutes'):
        train_zoo.main(changed)


def test_experts_start_from_the_blind_model_of_an_earlier_training(tmp_path):
    write_set(tmp_path / 'data' / 'Train400', 3, 0)
    write_set(tmp_path / 'data' / 'BSD68', 1, 1)
    common = ['--data', tmp_path / 'data', '--root', tmp_path, '--size', 'demo', '--score-images', 1, '--batch', 2]
    train_zoo.main(list(map(str, common + ['--prefix', 'gpu', '--blind-iters', 3, '--qualities', '--train-only'])))
    earlier = tmp_path / 'experiments' / 'gpu_blind'
    weights = tmp_path / 'weights'
    argv = common + ['--prefix', 'cpu', '--blind', earlier, '--blind-note', 'on a GPU', '--expert-iters', 1]
    train_zoo.main(list(map(str, argv + ['--qualities', 30, '--ship', weights])))
    assert not (tmp_path / 'experiments' / 'cpu_blind').exists()  # the earlier blind model, not a new one
    recorded = load_options(str(tmp_path / 'experiments' / 'cpu_qf30' / 'cpu_qf30.yml'))
    assert recorded['path']['pretrain_network_g'] == str(earlier / 'models' / 'net_g_latest.pth')
    card = (weights / 'carn-da-gray-blind.md').read_text()
    assert '3 iterations of batch 2 of 48x48 crops, cosine learning rate from 0.0002, L1Loss (on a GPU)' in card
    with pytest.raises(SystemExit, match='is not that of --backbone rdn --size cpu'):
        train_zoo.main(list(map(str, argv[:-1] + [1, '--size', 'cpu', '--qualities', 30, '--train-only'])))
    with pytest.raises(SystemExit, match='models/net_g_latest.pth is missing'):
        train_zoo.main(list(map(str, common + ['--blind', tmp_path / 'nowhere', '--train-only'])))


def test_a_new_blind_model_is_fine_tuned_and_shipped_beside_the_experts_shipped_before(tmp_path, monkeypatch, capsys):
    write_set(tmp_path / 'data' / 'Train400', 3, 0)
    write_set(tmp_path / 'data' / 'BSD68', 1, 1)
    common = ['--data', tmp_path / 'data', '--root', tmp_path, '--size', 'demo', '--score-images', 1, '--batch', 2]
    first, second = tmp_path / 'first', tmp_path / 'second'
    earlier = common + [
        '--prefix', 'a', '--blind-iters', 2, '--expert-iters', 1, '--qualities', 30, 60, '--ship', first
    ]
    train_zoo.main(list(map(str, earlier)))
    monkeypatch.chdir(first)  # a checkpoint named relative to here, trained in --root
    argv = common + [
        '--prefix', 'b', '--blind-iters', 2, '--blind-start', 'carn-da-gray-blind.pth', '--blind-loss', 'psnr',
        '--resize-qualities', 60, 95, '--experts-from', first / 'carn-da-gray.pth', first / 'carn-da-gray.yml',
        '--experts-note', 'as before', '--qualities', 60, '--unknown', 'fallback', '--ship', second
    ]
    train_zoo.main(list(map(str, argv)))
    assert not (tmp_path / 'experiments' / 'b_qf60').exists()  # taken, not trained
    recorded = load_options(str(tmp_path / 'experiments' / 'b_blind' / 'b_blind.yml'))
    assert recorded['path']['pretrain_network_g'] == str(first / 'carn-da-gray-blind.pth')
    assert recorded['datasets']['train']['resize_jpeg_range'] == [60, 95]
    assert recorded['train']['pixel_opt']['type'] == 'PSNRLoss'
    before = torch.load(first / 'carn-da-gray.pth', weights_only=True)['params']
    after = torch.load(second / 'carn-da-gray.pth', weights_only=True)['params']
    blind = torch.load(second / 'carn-da-gray-blind.pth', weights_only=True)['params']
    options = load_options(str(second / 'carn-da-gray.yml'))['network_g']
    assert [e.get('qualities') for e in options['experts']] == [None, [60]] and options['unknown'] == 'fallback'
    for name, value in blind.items():  # the new blind model as fallback, the QF-60 expert (2 of 3 before) kept
        assert torch.equal(after[f'experts.0.{name}'], value)
        assert torch.equal(after[f'experts.1.{name}'], before[f'experts.2.{name}'])
    assert any(not torch.equal(value, before[f'experts.0.{name}']) for name, value in blind.items())
    card = (second / 'carn-da-gray.md').read_text()
    assert f'the experts those of {first / "carn-da-gray.pth"} (SHA-256' in card and ': as before' in card
    assert f'fine-tuned from {first / "carn-da-gray-blind.pth"}' in card and 'the blind model too' in card
    blind_card = (second / 'carn-da-gray-blind.md').read_text()
    assert 'resized after compression (20%, JPEGs of QF 60-95)' in blind_card and 'PSNRLoss' in blind_card
    with pytest.raises(SystemExit, match='no expert for QF 90 alone'):
        train_zoo.main(list(map(str, argv[:-6] + ['--qualities', 90, '--train-only'])))
    with pytest.raises(SystemExit):
        train_zoo.main(list(map(str, common + ['--blind-start', 'nowhere.pth', '--train-only'])))
    assert '--blind-start: Checkpoint nowhere.pth does not exist.' in capsys.readouterr().err
    with pytest.raises(SystemExit, match='--experts-from: Option file .*nowhere.yml does not exist'):
        train_zoo.main(list(map(str, argv[:-9] + [first / 'nowhere.yml', '--train-only'])))
