"""Shipped models: the manifest, checksums, ``carn-da models`` and restoring by name or by default."""
import carn_da.compat  # noqa: F401

import cv2
import json
import numpy as np
import pytest
import torch
from test_restore import TINY_RDN, gray_jpeg, run

from carn_da import cli
from carn_da.archs.rdn_arch import RDN
from carn_da.utils import zoo
from carn_da.utils.errors import UserError


def tiny_state(seed):
    torch.manual_seed(seed)
    return RDN(**{k: v for k, v in TINY_RDN.items() if k != 'type'}).state_dict()


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A models folder with two tiny RDNs, 'gray-a' (the default) and 'gray-b', in place of the package's."""
    folder = tmp_path / 'weights'
    scores = {'BSD68': {'10': 27.5, '90': 40.25}}
    zoo.ship(str(folder), 'gray-a', tiny_state(0), TINY_RDN, '# gray-a\n', 'tiny A', scores, ('default', ))
    zoo.ship(str(folder), 'gray-b', tiny_state(1), TINY_RDN, '# gray-b\n', 'tiny B')
    monkeypatch.setenv('CARN_DA_MODELS', str(folder))
    return folder


def test_models_lists_each_shipped_model_with_its_scores(shipped, capsys):
    assert cli.main(['models']) == 0
    out = capsys.readouterr().out
    assert 'gray-a (default): tiny A' in out and 'gray-b: tiny B' in out and 'gray-b (default)' not in out
    assert 'BSD68 PSNR: QF 10 27.50, QF 90 40.25' in out
    assert str(shipped / 'gray-a.md') in out


def test_restore_without_model_uses_the_default_and_by_name_the_named_one(shipped, tmp_path, capsys):
    jpeg = gray_jpeg(tmp_path / 'a.jpg')
    outputs = {}
    for label, argv in {
            'default': [],
            'by name': ['--model', 'gray-b'],
            'by file': ['--model', shipped / 'gray-b.pth', '--opt', shipped / 'gray-b.yml']
    }.items():
        code, _, err = run(capsys, jpeg, '-o', tmp_path / label, '--device', 'cpu', *argv)
        assert code == 0, err
        outputs[label] = cv2.imread(str(tmp_path / label / 'a.png'), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(outputs['by name'], outputs['by file'])
    assert not np.array_equal(outputs['default'], outputs['by name'])  # gray-a, not gray-b
    assert not np.array_equal(outputs['default'], cv2.imread(str(jpeg), cv2.IMREAD_GRAYSCALE))


def test_a_changed_checkpoint_is_refused_by_its_checksum(shipped, tmp_path, capsys):
    data = bytearray((shipped / 'gray-a.pth').read_bytes())
    data[-30] ^= 1
    (shipped / 'gray-a.pth').write_bytes(bytes(data))
    code, _, err = run(capsys, gray_jpeg(tmp_path / 'a.jpg'), '-o', tmp_path / 'out', '--device', 'cpu')
    assert code == 2 and 'Shipped model gray-a' in err and 'SHA-256' in err and 'Traceback' not in err
    assert not (tmp_path / 'out' / 'a.png').exists()


@pytest.mark.parametrize('argv, message', [
    (['--opt', 'x.yml'], '--opt goes with --model CHECKPOINT'),
    (['--model', 'gray-a', '--opt', 'x.yml'], 'is a shipped model, which has its own options'),
    (['--model', 'gray-c'], 'neither a shipped model (gray-a, gray-b'),
])
def test_model_and_opt_that_do_not_fit_are_named(shipped, tmp_path, capsys, argv, message):
    code, _, err = run(capsys, gray_jpeg(tmp_path / 'a.jpg'), '-o', tmp_path / 'out', *argv)
    assert code == 2 and message in err


def test_without_shipped_models_the_commands_say_what_to_give(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('CARN_DA_MODELS', str(tmp_path / 'none'))
    code, _, err = run(capsys, gray_jpeg(tmp_path / 'a.jpg'), '-o', tmp_path / 'out')
    assert code == 2 and 'No shipped default model is installed' in err and '--model CHECKPOINT --opt' in err
    assert cli.main(['models']) == 1
    assert 'No shipped models' in capsys.readouterr().out


def test_manifest_errors_name_the_file(tmp_path):
    (tmp_path / 'models.json').write_text(json.dumps({'default': 'x', 'models': {}}))
    with pytest.raises(UserError, match="its default model 'x' is not among"):
        zoo.read_manifest(str(tmp_path))
    (tmp_path / 'models.json').write_text('{"models": [1]}')
    with pytest.raises(UserError, match='models.json is not a models manifest'):
        zoo.read_manifest(str(tmp_path))


def test_shipping_again_replaces_the_entry_and_keeps_the_default(shipped):
    zoo.ship(str(shipped), 'gray-b', tiny_state(2), TINY_RDN, '# gray-b v2\n', 'tiny B2')
    roles, models = zoo.read_manifest(str(shipped))
    assert roles == {'default': 'gray-a'} and models['gray-b'].summary == 'tiny B2'
    assert zoo.verified(models['gray-b']).sha256 == zoo.sha256_of(shipped / 'gray-b.pth')
