"""Training options are checked before anything is built or written: types, option names and numbers, each named."""
import carn_da.compat  # noqa: F401

import copy
import glob
import multiprocessing
import os
import pytest
import re
import subprocess
import sys
import torch
import yaml
from basicsr.models.base_model import BaseModel
from basicsr.utils.options import ordered_yaml
from os import path as osp
from tiny import REPO, TINY_RDN, train_options
from types import SimpleNamespace

from carn_da import recipes
from carn_da.pipelines import OPTIMIZERS, SCHEDULERS, check_options, parse_options, train_pipeline
from carn_da.utils.errors import UserError
from carn_da.utils.files import write_options

OPTION_FILES = sorted(glob.glob(osp.join(REPO, 'options', '**', '*.yml'), recursive=True))
NOWHERE = {'train': '/nowhere/train', 'val': '/nowhere/val'}  # checking options reads no data


def read_as_basicsr(text):
    """Options from YAML text, read as BasicSR's parse_options reads an option file."""
    return yaml.load(text, Loader=ordered_yaml()[0])


def tiny_options(**kwargs):
    """carn_da/train.py options of the tests' tiny paper DA (validated), on data that is never read."""
    return train_options('checks', NOWHERE, val_freq=4, tb_logger=True, **kwargs)


def changed(opt, dotted, value):
    """A copy of ``opt`` with the option at the dotted key ``dotted`` set to ``value``."""
    opt = copy.deepcopy(opt)
    *parents, last = dotted.split('.')
    entry = opt
    for key in parents:
        entry = entry[key]
    entry[last] = value
    return opt


@pytest.mark.parametrize('path', OPTION_FILES, ids=[osp.relpath(p, REPO) for p in OPTION_FILES])
def test_every_option_file_passes_the_checks(path):
    with open(path, encoding='utf-8') as f:
        check_options(read_as_basicsr(f.read()))


def test_the_recipes_pass_the_checks():
    check_options(tiny_options())
    check_options(train_options('sq', NOWHERE, 'CARNModel'))
    opt = tiny_options()
    opt['train'] = recipes.cosine_schedule(16, 1e-3)
    check_options(opt)
    opt = recipes.recommended_da('r', dict(TINY_RDN), opt['datasets']['train'], opt['train'], opt['logger'], None)
    check_options(opt)


def test_a_number_that_yaml_reads_as_a_string_is_named():
    text = yaml.safe_dump(tiny_options(), sort_keys=False).replace('lr: 0.001', 'lr: 1e-4', 1)
    opt = read_as_basicsr(text)
    assert opt['train']['optim_g']['lr'] == '1e-4'  # PyYAML: a float needs a dot (YAML 1.1)
    message = ("train.optim_g.lr: expected a number, got the string '1e-4' (write 1.0e-4 or !!float 1e-4: YAML reads "
               '1e-4 as a string)')
    with pytest.raises(ValueError, match=f'^{re.escape(message)}$'):
        check_options(opt)


@pytest.mark.parametrize('key', [
    'train.optim_g.lr', 'train.optim_q.lr', 'train.optim_g.weight_decay', 'train.optim_g.eps', 'train.scheduler.gamma',
    'train.total_iter', 'train.warmup_iter', 'train.pixel_opt.loss_weight', 'train.domain_opt.loss_weight',
    'train.q_steps', 'datasets.train.gt_size', 'datasets.train.batch_size_per_gpu', 'datasets.train.num_worker_per_gpu',
    'datasets.train.dataset_enlarge_ratio', 'logger.print_freq', 'logger.save_checkpoint_freq', 'val.val_freq'
])
def test_every_numeric_option_is_checked(key):
    with pytest.raises(ValueError, match=f"^{re.escape(key)}: expected a (whole )?number, got the string '5e3'"):
        check_options(changed(tiny_options(), key, '5e3'))
    with pytest.raises(ValueError, match=f"^{re.escape(key)}: expected a (whole )?number, got the string 'many'$"):
        check_options(changed(tiny_options(), key, 'many'))


@pytest.mark.parametrize('key, value, message', [
    ('train.optim_g.betas', [0.9, '9.99e-1'], "train.optim_g.betas: expected 2 numbers, got [0.9, '9.99e-1']"),
    ('train.optim_g.betas', 0.9, 'train.optim_g.betas: expected 2 numbers, got 0.9'),
    ('train.scheduler.milestones', ['1e3'], "train.scheduler.milestones: expected a list of numbers, got ['1e3']"),
    ('train.scheduler.milestones', 10, 'train.scheduler.milestones: expected a list of numbers, got 10'),
    ('datasets.train.batch_size_per_gpu', 2.5, 'datasets.train.batch_size_per_gpu: expected a whole number, got 2.5'),
    ('datasets.train.batch_size_per_gpu', 0, 'datasets.train.batch_size_per_gpu: expected a number >= 1, got 0'),
    ('datasets.train.gt_size', True, 'datasets.train.gt_size: expected a whole number, got True'),
    ('train.q_steps', 0, 'train.q_steps: expected a number >= 1, got 0'),
    ('train.optim_g.lr', -1e-3, 'train.optim_g.lr: expected a number >= 0, got -0.001'),
    ('train.optim_g.lr', None, 'train.optim_g.lr: expected a number, got None'),
    ('logger.print_freq', 0, 'logger.print_freq: expected a number > 0, got 0'),
    ('val.val_freq', -5, 'val.val_freq: expected a number > 0, got -5'),
])
def test_numbers_of_the_wrong_kind_or_range_are_named(key, value, message):
    with pytest.raises(ValueError, match=f'^{re.escape(message)}'):
        check_options(changed(tiny_options(), key, value))


def test_cosine_schedule_numbers_are_checked():
    opt = tiny_options()
    opt['train']['scheduler'] = dict(recipes.cosine_schedule(16, 1e-3)['scheduler'], eta_min='1e-7')
    with pytest.raises(ValueError, match=r"^train\.scheduler\.eta_min: expected a number, got the string '1e-7'"):
        check_options(opt)
    opt['train']['scheduler'].update(eta_min=0, periods=['16'])
    with pytest.raises(ValueError, match=r"^train\.scheduler\.periods: expected a list of numbers, got \['16'\]"):
        check_options(opt)


def test_optimizer_and_scheduler_types_are_those_basicsr_accepts():
    with pytest.raises(
            ValueError, match=r"^train\.optim_q\.type: basicsr 1\.4\.2 has no optimizer 'AdamW'\. "
            r'It accepts: Adam\.$'):
        check_options(changed(tiny_options(), 'train.optim_q.type', 'AdamW'))
    accepted = 'CosineAnnealingRestartLR, MultiStepLR, MultiStepRestartLR'
    with pytest.raises(
            ValueError,
            match=r"^train\.scheduler\.type: basicsr 1\.4\.2 has no scheduler "
            rf"'CosineAnnealingLR'\. It accepts: {accepted}\.$"):
        check_options(changed(tiny_options(), 'train.scheduler.type', 'CosineAnnealingLR'))
    # the names accepted are exactly those BasicSR's BaseModel builds
    params = [torch.nn.Parameter(torch.zeros(1))]
    for name in OPTIMIZERS:
        BaseModel.get_optimizer(None, name, params, 0.1)
    with pytest.raises(NotImplementedError):
        BaseModel.get_optimizer(None, 'AdamW', params, 0.1)
    arguments = {'MultiStepLR': {'milestones': [2]}, 'MultiStepRestartLR': {'milestones': [2]}}
    for name in list(SCHEDULERS) + ['CosineAnnealingLR']:
        scheduler = dict(arguments.get(name, {'periods': [4]}), type=name)
        model = SimpleNamespace(opt={'train': {'scheduler': scheduler}}, optimizers=[torch.optim.Adam(params)])
        model.schedulers = []
        if name in SCHEDULERS:
            BaseModel.setup_schedulers(model)
            assert len(model.schedulers) == 1
        else:
            with pytest.raises(NotImplementedError):
                BaseModel.setup_schedulers(model)


@pytest.mark.parametrize('key, message', [
    ('network_g.num_blocks', "network_g.num_blocks: RDN takes no option 'num_blocks' (did you mean num_block?)"),
    ('network_q.hiden', "network_q.hiden: QualityDiscriminator takes no option 'hiden' (did you mean hidden?)"),
    ('train.pixel_opt.loss_wieght', "train.pixel_opt.loss_wieght: L1Loss takes no option 'loss_wieght' (did you mean "
     'loss_weight?)'),
    ('train.domain_opt.shedule', "train.domain_opt.shedule: DomainAdversarialLoss takes no option 'shedule' (did you "
     'mean schedule?)'),
    ('train.optim_g.beta', "train.optim_g.beta: Adam takes no option 'beta' (did you mean betas?)"),
    ('train.scheduler.milestone', "train.scheduler.milestone: MultiStepLR takes no option 'milestone' (did you mean "
     'milestones?)'),
    ('train.optim_g.momentum', "train.optim_g.momentum: Adam takes no option 'momentum'. Its options: "),
])
def test_an_option_its_class_does_not_take_is_named(key, message):
    with pytest.raises(ValueError, match=f'^{re.escape(message)}'):
        check_options(changed(tiny_options(), key, 2))


def test_options_of_routed_experts_and_of_classes_taking_any_option():
    routed = recipes.routed_pair([(dict(TINY_RDN), [10]), (dict(TINY_RDN, num_layers=2), [70])])
    opt = dict(tiny_options(), network_g=routed)
    with pytest.raises(
            ValueError,
            match=r"^network_g\.experts\[1\]\.network\.num_layers: RDN takes no option "
            r"'num_layers' \(did you mean num_layer\?\)"):
        check_options(opt)
    routed['experts'][1]['network']['type'] = 'RDM'
    with pytest.raises(ValueError, match=r"^network_g\.experts\[1\]\.network\.type: no arch named 'RDM'"):
        check_options(opt)
    opt = tiny_options()
    opt['val']['metrics']['psnr']['anything'] = 1  # calculate_psnr takes **kwargs
    check_options(opt)


def test_a_missing_option_a_class_needs_is_named():
    with pytest.raises(ValueError, match=r"^train\.scheduler: MultiStepLR needs option 'milestones'"):
        check_options(changed(tiny_options(), 'train.scheduler', {'type': 'MultiStepLR', 'gamma': 0.5}))


WRONG_OPTIONS = {  # what a user writes, and the start of the error
    'lr written 1e-4': (('lr: 0.001', 'lr: 1e-4'), "train.optim_g.lr: expected a number, got the string '1e-4'"),
    'optimizer type': (('type: Adam', 'type: SGD'), "train.optim_g.type: basicsr 1.4.2 has no optimizer 'SGD'"),
    'network option': (('num_block: 2', 'num_blocks: 2'), "network_g.num_blocks: RDN takes no option 'num_blocks'"),
    'loss weight': (('loss_weight: 1.0', 'loss_weight: 1e0'), 'train.pixel_opt.loss_weight: expected a number'),
}


def wrong_option_file(case, folder):
    """An option file of a tiny training in ``folder`` (on data that does not exist) with the mistake ``case``."""
    opt = train_options('checks', {'train': str(folder / 'data'), 'val': str(folder / 'data')}, tb_logger=True)
    (right, wrong), _ = WRONG_OPTIONS[case]
    text = yaml.safe_dump(opt, sort_keys=False)
    assert right in text
    folder.mkdir()
    (folder / 'o.yml').write_text(text.replace(right, wrong, 1))
    return folder / 'o.yml'


def train_in_child(root, error_path):
    """carn_da/train.py's pipeline on ``root``/o.yml in ``root`` (in a forked process): the ValueError it stops
    with goes to ``error_path``."""
    torch.set_num_threads(1)
    sys.argv = ['carn_da/train.py', '-opt', str(root / 'o.yml')]
    try:
        train_pipeline(str(root))
    except UserError as error:
        error_path.write_text(str(error))
        os._exit(3)
    os._exit(0)


@pytest.mark.parametrize('case', WRONG_OPTIONS)
def test_a_failing_check_stops_training_before_anything_is_written(case, tmp_path):
    """The training pipeline, run in an empty folder, stops at the check: no experiments/ or tb_logger/."""
    root = tmp_path / 'run'
    wrong_option_file(case, root)
    child = multiprocessing.get_context('fork').Process(target=train_in_child, args=(root, tmp_path / 'error'))
    child.start()
    child.join(120)
    assert child.exitcode == 3
    assert (tmp_path / 'error').read_text().startswith(f'{root / "o.yml"}: {WRONG_OPTIONS[case][1]}')
    assert os.listdir(root) == ['o.yml']  # no experiments/ or tb_logger/


def test_carn_da_train_stops_at_a_check_in_an_empty_folder(tmp_path):
    """The same through the command, in a new interpreter: the error names the option, nothing is written."""
    root = tmp_path / 'run'
    wrong_option_file('lr written 1e-4', root)
    result = subprocess.run([sys.executable, '-m', 'carn_da.train', '-opt', 'o.yml'],
                            cwd=root,
                            capture_output=True,
                            text=True,
                            timeout=120,
                            env=dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1'))
    assert result.returncode == 2
    message = ("carn_da.train: error: o.yml: train.optim_g.lr: expected a number, got the string '1e-4' "
               '(write 1.0e-4 or !!float 1e-4: YAML reads 1e-4 as a string)\n')
    assert result.stderr == message, result.stderr[-2000:]
    assert os.listdir(root) == ['o.yml']  # no experiments/ or tb_logger/


def test_write_options_keeps_numbers_numbers(tmp_path):
    """Option files the project writes read back as BasicSR reads them, with the same numbers."""
    opt = tiny_options()
    path = write_options(opt, str(tmp_path / 'o.yml'))
    with open(path) as f:
        check_options(read_as_basicsr(f.read()))


@pytest.mark.parametrize(
    'content', [b'\x89PNG\r\n\x1a\n\x00\xff\xfe', b'name: [unclosed\n'], ids=['binary', 'bad YAML'])
def test_an_unreadable_option_file_is_named(content, tmp_path, monkeypatch):
    """A binary or broken option file stops the pipeline with a UserError naming it, not a traceback from YAML."""
    path = tmp_path / 'o.yml'
    path.write_bytes(content)
    monkeypatch.setattr(sys, 'argv', ['carn_da/train.py', '-opt', str(path)])
    with pytest.raises(UserError, match=f'^{re.escape(str(path))}: cannot read it as a YAML text file'):
        parse_options(str(tmp_path))
    assert os.listdir(tmp_path) == ['o.yml']
