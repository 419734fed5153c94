"""The carn-da command line: help in plain text, and outputs never inside the installed package."""
import carn_da.compat  # noqa: F401

import os
import pytest
import shutil
import subprocess
import sys
import torch
import yaml
from conftest import write_jpeg_dataset
from os import path as osp
from tiny import REPO

import carn_da
from carn_da import cli
from carn_da.archs.rdn_arch import RDN

NAME = f'adapt_{os.getpid()}'
TINY_RDN = {'type': 'RDN', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 4}


def exit_code_and_output(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    out, err = capsys.readouterr()
    return exit_.value.code, out + err


def test_version(capsys):
    assert exit_code_and_output(capsys, ['--version']) == (0, f'carn-da {carn_da.__version__}\n')


@pytest.mark.parametrize('argv', [['--help']] + [[command, '--help'] for command in cli.COMMANDS])
def test_help_is_plain_text(capsys, monkeypatch, argv):
    monkeypatch.setattr(sys, 'argv', list(sys.argv))  # carn-da train and test hand BasicSR their arguments there
    code, text = exit_code_and_output(capsys, argv)
    assert code == 0 and 'usage: carn-da' in text and '``' not in text and ':func:' not in text


def snapshot(folder, skip=('.git', '.venv', '__pycache__', '.pytest_cache')):
    """{path: mtime} of every file and folder below ``folder`` but those named in ``skip``."""
    found = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip]
        found.update((osp.join(root, name), os.stat(osp.join(root, name)).st_mtime_ns) for name in dirs + files)
    return found


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """carn_da installed without --editable into a folder of its own (from a copy, so the checkout gets no build/)."""
    if subprocess.run([sys.executable, '-m', 'pip', '--version'], capture_output=True).returncode != 0:
        pytest.skip('pip is not available to install carn_da')
    root = tmp_path_factory.mktemp('installed')
    source = root / 'source'
    shutil.copytree(osp.join(REPO, 'carn_da'), source / 'carn_da', ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('setup.py', 'README.md'):
        shutil.copy(osp.join(REPO, name), source)
    pip = [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-build-isolation', '--no-index']
    subprocess.run(pip + ['--target', str(root / 'site'), str(source)], check=True)
    env = dict(os.environ, PYTHONPATH=str(root / 'site'))
    find = 'import importlib.util; print(importlib.util.find_spec("carn_da").origin)'
    spec = subprocess.run([sys.executable, '-c', find], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert spec.stdout.strip() == str(root / 'site' / 'carn_da' / '__init__.py')
    source = write_jpeg_dataset(str(root / 'data' / 'source'), 2, (40, 48), qfs=(10, ), seed=0)
    target = write_jpeg_dataset(str(root / 'data' / 'target'), 2, (40, 48), qfs=(50, ), seed=1)
    torch.manual_seed(0)
    torch.save({'params': RDN(**{k: v for k, v in TINY_RDN.items() if k != 'type'}).state_dict()}, root / 'src.pth')
    (root / 'src.yml').write_text(yaml.safe_dump({'name': 'src', 'network_g': TINY_RDN}))
    argv = [
        '--model',
        str(root / 'src.pth'), '--opt',
        str(root / 'src.yml'), '--source-gt',
        osp.join(source, 'gt'), '--source-lq',
        osp.join(source, 'qf10'), '--target',
        osp.join(target, 'qf50'), '--name', NAME, '--iters', '2', '--batch', '2', '--patch', '32', '--device', 'cpu'
    ]
    return {'root': root, 'package': str(root / 'site' / 'carn_da'), 'env': env, 'argv': argv}


@pytest.mark.parametrize('out', [None, 'elsewhere'])
def test_adapt_writes_only_below_its_folder(installed, tmp_path, out):
    """From an empty folder, ``carn-da adapt`` writes in it (or under ``--out``) and nowhere else: not into the
    installed package, not into the checkout."""
    work = tmp_path / 'work'
    work.mkdir()
    argv = installed['argv'] + ([] if out is None else ['--out', str(tmp_path / out)])
    before = {folder: snapshot(folder) for folder in (installed['package'], REPO, str(installed['root']))}
    subprocess.run([sys.executable, '-m', 'carn_da.cli', 'adapt', *argv],
                   env=installed['env'],
                   cwd=work,
                   check=True,
                   stdout=subprocess.DEVNULL)
    assert snapshot(installed['package'], skip=('__pycache__', )) == before[installed['package']]
    new = snapshot(REPO).keys() - before[REPO].keys()  # other tests may train in the checkout meanwhile
    assert not [path for path in new if NAME in path or osp.dirname(path) == REPO]
    assert snapshot(str(installed['root'])).keys() == before[str(installed['root'])].keys()
    root = work if out is None else tmp_path / out
    results = root / 'results' / NAME if out is None else root
    for path in (f'experiments/{NAME}/models/net_g_latest.pth', f'tb_logger/{NAME}'):
        assert osp.exists(root / path), path
    for name in (f'{NAME}.yml', 'report.md', 'report.json', 'routed.yml', 'net_g_routed.pth'):
        assert osp.isfile(results / name), name
    assert f'cd {root if out else "."} && python -m carn_da.train -opt ' in (results / 'report.md').read_text()
    assert sorted(os.listdir(work)) == ([] if out else ['experiments', 'results', 'tb_logger'])
    assert not [name for name in os.listdir(results) if name.startswith('.')]  # no temporary file left
