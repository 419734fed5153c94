"""The one checkpoint loader: an EMA-trained checkpoint is scored and restored with its EMA weights everywhere."""
import carn_da.compat  # noqa: F401

import cv2
import json
import numpy as np
import pytest
import torch
import yaml
from conftest import textured_image
from os import path as osp

from carn_da import cli, evaluate
from carn_da.archs.rdn_arch import RDN
from carn_da.utils.checkpoint import load_network, load_state_dict, routed_state
from carn_da.utils.errors import UserError
from carn_da.utils.inference import restore

TINY_RDN = {'type': 'RDN', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 4}


def tiny_weights(seed):
    torch.manual_seed(seed)
    return RDN(**{k: v for k, v in TINY_RDN.items() if k != 'type'}).state_dict()


@pytest.fixture(scope='module')
def ema(tmp_path_factory):
    """Checkpoints of two differently initialised tiny RDNs: ``params`` (A) beside ``params_ema`` (B), B alone as
    ``params_ema`` or as ``params``, A alone; the option file; a gray JPEG."""
    root = tmp_path_factory.mktemp('ema')
    a, b = tiny_weights(0), tiny_weights(1)
    files = {}
    for name, state in (('ema', {
            'params': a,
            'params_ema': b
    }), ('ema_only', {
            'params_ema': b
    }), ('b', {
            'params': b
    }), ('a', {
            'params': a
    })):
        files[name] = str(root / f'{name}.pth')
        torch.save(state, files[name])
    files['opt'] = str(root / 'tiny.yml')
    with open(files['opt'], 'w') as f:
        yaml.safe_dump({'name': 'tiny', 'network_g': TINY_RDN}, f)
    (root / 'gt').mkdir()
    cv2.imwrite(str(root / 'gt' / 'img.png'), textured_image(np.random.default_rng(0), 40, 48))
    files['gt'] = str(root / 'gt')
    files['jpeg'] = str(root / 'img.jpg')
    gray = cv2.imread(str(root / 'gt' / 'img.png'), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(files['jpeg'], gray, [cv2.IMWRITE_JPEG_QUALITY, 20])
    return files


def test_loader_takes_the_ema_weights(ema):
    assert load_state_dict(ema['ema'])[0] == 'params_ema' and load_state_dict(ema['ema_only'])[0] == 'params_ema'
    img = cv2.imread(ema['jpeg'], cv2.IMREAD_GRAYSCALE)
    out = {name: restore(load_network(TINY_RDN, ema[name]), img) for name in ('ema', 'ema_only', 'b', 'a')}
    assert np.array_equal(out['ema'], out['b']) and np.array_equal(out['ema_only'], out['b'])
    assert not np.array_equal(out['ema'], out['a'])
    assert routed_state([ema['ema']]).keys() == {f'experts.0.{k}' for k in tiny_weights(0)}
    with pytest.raises(UserError, match='does not fit the network_g'):
        load_network(dict(TINY_RDN, num_feat=4), ema['ema'])


def test_eval_scores_the_ema_weights(ema, tmp_path, capsys):
    out = tmp_path / 'eval'
    models = [f'--model={name}={ema[name]}:{ema["opt"]}' for name in ('ema', 'ema_only', 'b', 'a')]
    cli.main(['eval', *models, '--test', f'set={ema["gt"]}', '--qf', '20', '--device', 'cpu', '--out', str(out)])
    scores = json.loads((out / 'scores.json').read_text())['scores']
    mean = {name: scores[name]['set']['20']['mean'] for name in ('ema', 'ema_only', 'b', 'a')}
    assert mean['ema'] == mean['b'] == mean['ema_only'] != mean['a']
    assert 'carn-da eval: error' not in capsys.readouterr().err


def test_restore_uses_the_ema_weights(ema, tmp_path):
    for name in ('ema', 'b', 'a'):
        assert cli.main(['restore', ema['jpeg'], '-o',
                         str(tmp_path / name), '--model', ema[name], '--opt', ema['opt']]) == 0
    out = {name: cv2.imread(str(tmp_path / name / 'img.png'), cv2.IMREAD_UNCHANGED) for name in ('ema', 'b', 'a')}
    assert np.array_equal(out['ema'], out['b']) and not np.array_equal(out['ema'], out['a'])
    expected = restore(load_network(TINY_RDN, ema['ema']), cv2.imread(ema['jpeg'], cv2.IMREAD_GRAYSCALE))
    assert np.array_equal(out['ema'], expected)  # the loader with a network_g dict (scripts) restores the same


def test_eval_reports_an_unloadable_checkpoint_in_one_line(ema, tmp_path, capsys):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(SystemExit) as exit_:
        evaluate.main(
            [f'--model=x={bad}:{ema["opt"]}', '--test', f's={ema["gt"]}', '--qf', '20', '--out',
             str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith('carn-da eval: error: --model x: ')
    assert str(bad) in err and err.count('\n') == 1
    assert 'Traceback' not in err and not osp.exists(tmp_path / 'out')
