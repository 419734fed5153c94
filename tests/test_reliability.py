"""Bad input and wrong options fail fast and clearly; NaN losses stop training; killed trainings resume exactly."""
import carn_da.compat  # noqa: F401

import copy
import cv2
import multiprocessing
import numpy as np
import os
import pytest
import random
import re
import signal
import subprocess
import sys
import time
import torch
from basicsr import train as basicsr_train
from basicsr.utils import get_root_logger
from os import path as osp
from tiny import REPO, TINY_Q, TINY_RDN, model_options, train_options

from carn_da import recipes
from carn_da.data.image_pairs import BadImageError
from carn_da.data.two_domain_dataset import TwoDomainDataset
from carn_da.models.carn_da_model import CARNDAModel
from carn_da.models.carn_model import CARNModel, rng_state, set_rng_state
from carn_da.pipelines import check_options, latest_training_state, train_pipeline
from carn_da.runs import experiment_dir
from carn_da.utils.files import save_torch_atomic, write_options


def write_images(folder, names, h=40, w=48, quality=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    for name in names:
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality else []
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (h, w), dtype=np.uint8), params)


def dataset_opt(root, **changes):
    """TwoDomainDataset options over ``root``/{gt, qf10, target} (3 pairs a-c, 2 targets), in training."""
    write_images(root / 'gt', ['a.png', 'b.png', 'c.png'])
    write_images(root / 'qf10', ['a.jpg', 'b.jpg', 'c.jpg'], quality=10)
    write_images(root / 'target', ['x.jpg', 'y.jpg'], quality=70)
    opt = {
        'name': 'train',
        'type': 'TwoDomainDataset',
        'phase': 'train',
        'dataroot_gt': str(root / 'gt'),
        'dataroot_lq': str(root / 'qf10'),
        'dataroot_target': str(root / 'target'),
        'io_backend': {
            'type': 'disk'
        },
        'gt_size': 32
    }
    return dict(opt, **changes)


def truncate(path, keep=60):
    """Keep the first bytes of an image: its header still reads, its pixels do not decode."""
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture
def basicsr_log(caplog):
    logger = get_root_logger()
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.mark.parametrize('case, error, message', [
    ('no gt root', FileNotFoundError, r'dataroot_gt: folder .*nowhere does not exist'),
    ('no target root', FileNotFoundError, r'dataroot_target: folder .*nowhere does not exist'),
    ('lmdb without meta_info', FileNotFoundError, r'LMDB .*gt\.lmdb has no meta_info\.txt'),
    ('too few targets', ValueError, r'num_target=3, but it must be between 1 and the 2 images found in .*target'),
    ('sizes differ', ValueError, r'LQ .*qf10/b\.jpg is 40x44 but GT .*gt/b\.png is 40x48'),
    ('lmdb sizes differ', ValueError, r'LQ b is 40x44 but GT b is 40x48'),
    ('patch too large', ValueError, r'Patch 32x32 is larger than image .*gt/c\.png \(40x24\)'),
    ('target too small', ValueError, r'Patch 32x32 is larger than image .*target/y\.jpg \(20x48\)'),
    ('unreadable image', BadImageError, r'Cannot decode image .*gt/a\.png'),
])
def test_bad_datasets_fail_when_built_naming_the_file_or_key(tmp_path, case, error, message):
    opt = dataset_opt(tmp_path)
    if case == 'no gt root':
        opt['dataroot_gt'] = str(tmp_path / 'nowhere')
    elif case == 'no target root':
        opt['dataroot_target'] = str(tmp_path / 'nowhere')
    elif case == 'lmdb without meta_info':
        for root in ('gt', 'qf10'):
            (tmp_path / f'{root}.lmdb').mkdir()
        (tmp_path / 'qf10.lmdb' / 'meta_info.txt').write_text('a.jpg (40,48,1) 1\n')
        opt.update(
            dataroot_gt=str(tmp_path / 'gt.lmdb'), dataroot_lq=str(tmp_path / 'qf10.lmdb'), io_backend={'type': 'lmdb'})
    elif case == 'too few targets':
        opt['num_target'] = 3
    elif case == 'sizes differ':
        write_images(tmp_path / 'qf10', ['b.jpg'], w=44)
    elif case == 'lmdb sizes differ':  # read from meta_info.txt: no image is decoded
        for root, shape in (('gt', '(40,48,1)'), ('qf10', '(40,44,1)')):
            (tmp_path / f'{root}.lmdb').mkdir()
            (tmp_path / f'{root}.lmdb' / 'meta_info.txt').write_text(f'a.png (40,48,1) 1\nb.png {shape} 1\n')
        opt.update(
            dataroot_gt=str(tmp_path / 'gt.lmdb'),
            dataroot_lq=str(tmp_path / 'qf10.lmdb'),
            io_backend={'type': 'lmdb'},
            io_backend_target={'type': 'disk'})
    elif case == 'patch too large':
        for root in ('gt', 'qf10'):
            write_images(tmp_path / root, [f'c.{"png" if root == "gt" else "jpg"}'], w=24)
    elif case == 'target too small':
        write_images(tmp_path / 'target', ['y.jpg'], h=20)
    elif case == 'unreadable image':
        (tmp_path / 'gt' / 'a.png').write_bytes(b'not an image')
    with pytest.raises(error, match=message):
        TwoDomainDataset(opt)


def test_a_corrupt_image_is_named_or_skipped_with_a_warning(tmp_path, basicsr_log):
    opt = dataset_opt(tmp_path)
    truncate(tmp_path / 'gt' / 'b.png')  # the header reads, the pixels do not: found when the pair is read
    dataset = TwoDomainDataset(opt)
    with pytest.raises(BadImageError, match=r'Cannot decode image .*gt/b\.png'):
        dataset[1]

    (tmp_path / 'gt' / 'a.png').write_bytes(b'not an image')  # found when the dataset is built
    write_images(tmp_path / 'target', ['w.png'])
    truncate(tmp_path / 'target' / 'w.png')
    dataset = TwoDomainDataset(dict(opt, skip_bad_images=True))
    assert [pair['gt_path'] for pair in dataset.paths] == [str(tmp_path / 'gt' / v) for v in ('b.png', 'c.png')]
    random.seed(0)
    items = [dataset[i] for i in (0, 1) * 4]
    assert all(item['gt_path'] == str(tmp_path / 'gt' / 'c.png') for item in items)  # b is replaced by the next
    assert dataset.target_paths == [str(tmp_path / 'target' / v) for v in ('x.jpg', 'y.jpg')]
    assert {item['target_path'] for item in items} == set(dataset.target_paths)
    warnings = [r.getMessage() for r in basicsr_log.records if 'Skipping it (skip_bad_images)' in r.getMessage()]
    assert len(warnings) == 3  # each bad file once
    for name in ('gt/a.png', 'gt/b.png', 'target/w.png'):
        assert sum(name in w for w in warnings) == 1, name


def test_unknown_types_are_named_with_the_option():
    opt = {
        'model_type': 'CARNDAModel',
        'network_g': dict(TINY_RDN),
        'network_q': dict(TINY_Q),
        'datasets': {
            'train': {
                'type': 'TwoDomainDataset'
            },
            'val': {
                'type': 'JPEGPairedDataset'
            }
        },
        'train': {
            'pixel_opt': {
                'type': 'L1Loss'
            },
            'domain_opt': {
                'type': 'DomainAdversarialLoss'
            },
            'optim_g': {
                'type': 'Adam'
            }
        },
        'val': {
            'metrics': {
                'psnrb': {
                    'type': 'calculate_psnrb'
                }
            }
        }
    }
    check_options(opt)
    for keys, kind, known in ((['network_g'], 'arch', 'RDN'), (['network_q'], 'arch', 'QualityDiscriminator'),
                              (['train',
                                'pixel_opt'], 'loss', 'L1Loss'), (['train',
                                                                   'domain_opt'], 'loss', 'DomainAdversarialLoss'),
                              (['datasets',
                                'val'], 'dataset', 'JPEGPairedDataset'), (['val', 'metrics',
                                                                           'psnrb'], 'metric', 'calculate_psnrb')):
        wrong = copy.deepcopy(opt)
        entry = wrong
        for key in keys:
            entry = entry[key]
        entry['type'] = 'Nonexistent'
        with pytest.raises(ValueError) as error:
            check_options(wrong)
        message = str(error.value)
        assert message.startswith(f"{'.'.join(keys)}.type: no {kind} named 'Nonexistent' is registered. "
                                  f'Registered {kind}s: ')
        assert f' {known},' in message or message.endswith(f' {known}.')
    with pytest.raises(ValueError, match=r"^model_type: no model named 'CARNModle' .*CARNDAModel, CARNModel"):
        check_options(dict(opt, model_type='CARNModle'))


def test_da_model_needs_a_splittable_generator():
    msrresnet = {'type': 'MSRResNet', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    with pytest.raises(TypeError, match='network_g: MSRResNet has no extract/restore split'):
        CARNDAModel(model_options(network_g=msrresnet))


@pytest.mark.parametrize('model_type', ['CARNModel', 'CARNDAModel'])
def test_non_finite_loss_raises_before_the_optimizer_step(model_type):
    model = (CARNModel if model_type == 'CARNModel' else CARNDAModel)(model_options(model_type))
    before = copy.deepcopy(model.net_g.state_dict())
    lq = torch.rand(2, 1, 16, 16)
    lq[0, 0, 3, 3] = float('nan')
    model.feed_data({'lq': lq, 'gt': torch.rand(2, 1, 16, 16), 'lq_target': torch.rand(2, 1, 16, 16)})
    with pytest.raises(FloatingPointError, match=r'^Iteration 7: non-finite loss \(l_pix: nan'):
        model.optimize_parameters(7)
    assert all(torch.equal(v, model.net_g.state_dict()[k]) for k, v in before.items())


def test_save_torch_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / '8.state'
    save_torch_atomic({'iter': 8}, path)
    with pytest.raises(Exception):
        save_torch_atomic({'iter': 12, 'unpicklable': lambda: None}, path)
    assert torch.load(path, weights_only=True) == {'iter': 8}
    assert os.listdir(tmp_path) == ['8.state']


def test_auto_resume_takes_the_latest_state_whose_networks_exist(tmp_path):
    opt = {
        'network_g': {},
        'network_q': {},
        'path': {
            'training_states': str(tmp_path / 'states'),
            'models': str(tmp_path / 'models')
        }
    }
    assert latest_training_state(opt) is None
    for folder, names in (('states', ['4.state', '8.state', '12.state.tmp']),
                          ('models', ['net_g_4.pth', 'net_q_4.pth', 'net_g_8.pth', 'net_g_12.pth', 'net_q_12.pth'])):
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / name).touch()
    assert latest_training_state(opt) == str(tmp_path / 'states' / '4.state')  # net_q_8.pth is missing
    opt['path']['ignore_resume_networks'] = ['network_q']
    assert latest_training_state(opt) == str(tmp_path / 'states' / '8.state')


def test_random_states_load_tensors_only_and_restore_the_streams(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_torch_atomic({'rng': [rng_state()]}, tmp_path / 'rng.state')
    draws = random.random(), np.random.rand(), np.random.randn(), torch.rand(1)
    set_rng_state(torch.load(tmp_path / 'rng.state', weights_only=True)['rng'][0])
    assert (random.random(), np.random.rand(), np.random.randn(), torch.rand(1)) == draws


def test_nan_loss_stops_training_naming_the_iteration_and_keeps_the_last_checkpoint(jpeg_dataset, experiment_name,
                                                                                    tmp_path):
    name = experiment_name('nan')
    # the learning rate jumps to 1e27 at iteration 4: the weights explode and the loss of iteration 5 is not finite
    opt = train_options(name, jpeg_dataset, 'CARNModel', total_iter=9, checkpoint=3)
    opt['train']['scheduler'] = {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 1e30}
    result = subprocess.run([sys.executable, 'carn_da/train.py', '-opt',
                             str(write_options(opt, tmp_path / 'o.yml'))],
                            cwd=REPO,
                            capture_output=True,
                            text=True,
                            timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode != 0
    assert re.search(r'FloatingPointError: Iteration 5: non-finite loss \(l_pix: (nan|inf)', result.stderr)
    assert os.listdir(osp.join(experiment_dir(name, REPO), 'models')) == ['net_g_3.pth']
    assert os.listdir(osp.join(experiment_dir(name, REPO), 'training_states')) == ['3.state']


def run_training(argv, log_path, pause_at=None, paused=None):
    """carn_da/train.py's pipeline with ``argv`` (in a forked process); log the iterations it trains to ``log_path``.
    At iteration ``pause_at`` it sets ``paused`` and waits to be killed."""
    torch.set_num_threads(1)
    sys.argv = ['carn_da/train.py', *argv]
    build_model = basicsr_train.build_model

    def build(opt):
        model = build_model(opt)
        optimize = model.optimize_parameters

        def logged_step(current_iter):
            if current_iter == pause_at:
                paused.set()
                time.sleep(300)
            with open(log_path, 'a') as f:
                f.write(f'{current_iter}\n')
            optimize(current_iter)

        model.optimize_parameters = logged_step
        return model

    basicsr_train.build_model = build
    train_pipeline(REPO)


def trained_iters(log_path):
    with open(log_path) as f:
        return [int(line) for line in f]


def final_weights(name):
    """{network/key: state dict} of the run's last checkpoints, the EMA weights (``params_ema``) included."""
    weights = {}
    for net in ('net_g', 'net_q'):
        saved = torch.load(osp.join(experiment_dir(name, REPO), 'models', f'{net}_latest.pth'), weights_only=True)
        weights.update({f'{net}/{key}': saved[key] for key in ('params', 'params_ema') if key in saved})
    return weights


def assert_same_weights(got, expected):
    assert got.keys() == expected.keys()
    for net in expected:
        assert got[net].keys() == expected[net].keys()
        assert all(torch.equal(got[net][k], expected[net][k]) for k in expected[net]), net


def resumable_options(name, jpeg_dataset, q_warmup, ema):
    opt = recipes.with_q_warmup(train_options(name, jpeg_dataset), q_warmup)
    if ema:
        opt['train']['ema_decay'] = ema
    return opt


@pytest.mark.parametrize('q_warmup, ema', [(0, 0), (10, 0), (0, 0.9)])
def test_training_killed_between_checkpoints_resumes_exactly(jpeg_dataset, experiment_name, tmp_path, q_warmup, ema):
    """16 iterations, checkpoint at 8 (in the middle of an epoch), SIGKILL at 12; resume to 16 with --auto_resume,
    then again from the state of iteration 8 with path.resume_state: both end with the weights of an uninterrupted
    run. Also with a Q warm-up of 10 iterations, which the checkpoint interrupts, and with an EMA of the weights
    (``carn-da adapt --ema``), which must resume as the average, not restart from the weights."""
    fork = multiprocessing.get_context('fork')
    names = {run: experiment_name(f'resume_{run}_warmup{q_warmup}_ema{ema}') for run in ('whole', 'killed')}
    opt_paths = {
        run: str(write_options(resumable_options(name, jpeg_dataset, q_warmup, ema), tmp_path / f'{run}.yml'))
        for run, name in names.items()
    }
    paused = fork.Event()
    whole = fork.Process(target=run_training, args=(['-opt', opt_paths['whole']], tmp_path / 'whole.log'))
    killed = fork.Process(
        target=run_training, args=(['-opt', opt_paths['killed']], tmp_path / 'killed.log', 12, paused))
    whole.start()
    killed.start()
    assert paused.wait(timeout=120)
    os.kill(killed.pid, signal.SIGKILL)
    killed.join()
    whole.join()
    assert killed.exitcode == -signal.SIGKILL and whole.exitcode == 0
    assert trained_iters(tmp_path / 'whole.log') == list(range(1, 17))
    killed_dir = experiment_dir(names['killed'], REPO)
    assert sorted(os.listdir(osp.join(killed_dir, 'models'))) == ['net_g_8.pth', 'net_q_8.pth']
    assert os.listdir(osp.join(killed_dir, 'training_states')) == ['8.state']
    expected = final_weights(names['whole'])
    assert ('net_g/params_ema' in expected) == bool(ema)

    resume_from_state = ['--force_yml', f'path:resume_state={osp.join(killed_dir, "training_states", "8.state")}']
    for run, args in (('auto', ['--auto_resume']), ('state', resume_from_state)):
        resumed = fork.Process(
            target=run_training, args=(['-opt', opt_paths['killed'], *args], tmp_path / f'{run}.log'))
        resumed.start()
        resumed.join()
        assert resumed.exitcode == 0, run
        assert trained_iters(tmp_path / f'{run}.log') == list(range(9, 17)), run
        assert_same_weights(final_weights(names['killed']), expected)
