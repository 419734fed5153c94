"""Real trainings through carn_da/train.py (BasicSR's pipeline) in subprocesses: SQ, then DA from it, then resume."""
import carn_da.compat  # noqa: F401

import glob
import pytest
import subprocess
import sys
import torch
from os import path as osp
from tiny import REPO, TINY_RDN, train_options

from carn_da.runs import experiment_dir
from carn_da.utils.checkpoint import load_network
from carn_da.utils.files import write_options


def options(name, data, model_type='CARNModel', total_iter=20, network_g=TINY_RDN, pretrain=None):
    """A training on the 6 pairs repeated 10 times (30 iterations an epoch), saved and validated every 10 iterations."""
    opt = train_options(
        name,
        data,
        model_type,
        network_g=network_g,
        total_iter=total_iter,
        milestone=15,
        checkpoint=10,
        patch_size=32,
        print_freq=5,
        tb_logger=True,
        val_freq=10)
    opt['path']['pretrain_network_g'] = pretrain
    opt['datasets']['train']['dataset_enlarge_ratio'] = 10
    return opt


def run_train(opt_path, *args):
    result = subprocess.run(
        [sys.executable, 'carn_da/train.py', '-opt', str(opt_path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def training_log(name):
    logs = sorted(glob.glob(osp.join(experiment_dir(name, REPO), 'train_*.log')))
    return ''.join(open(log, encoding='utf-8').read() for log in logs)


@pytest.fixture(scope='module')
def source_run(jpeg_dataset, experiment_name, tmp_path_factory):
    name = experiment_name('sq')
    run_train(write_options(options(name, jpeg_dataset), tmp_path_factory.mktemp('opt') / 'sq.yml'))
    return name


def test_supervised_training_saves_checkpoints_and_validates(source_run):
    models = osp.join(experiment_dir(source_run, REPO), 'models')
    for ckpt in ('net_g_10.pth', 'net_g_20.pth', 'net_g_latest.pth'):
        assert osp.isfile(osp.join(models, ckpt)), ckpt
    assert osp.isfile(osp.join(experiment_dir(source_run, REPO), 'training_states', '20.state'))
    log = training_log(source_run)
    for metric in ('psnr', 'psnrb', 'ssim'):
        assert f'# {metric}:' in log
    assert 'l_pix:' in log
    assert glob.glob(osp.join(REPO, 'tb_logger', source_run, 'events.out.tfevents.*'))


def test_domain_adaptation_trains_saves_both_networks_and_resumes(source_run, jpeg_dataset, experiment_name, tmp_path):
    name = experiment_name('da')
    pretrain = osp.join(experiment_dir(source_run, REPO), 'models', 'net_g_latest.pth')
    opt_path = write_options(options(name, jpeg_dataset, 'CARNDAModel', pretrain=pretrain), tmp_path / 'da.yml')
    run_train(opt_path)
    models = osp.join(experiment_dir(name, REPO), 'models')
    for ckpt in ('net_g_20.pth', 'net_q_20.pth', 'net_g_latest.pth', 'net_q_latest.pth'):
        assert osp.isfile(osp.join(models, ckpt)), ckpt
    log = training_log(name)
    assert f'Loading RDN model from {pretrain}' in log
    for entry in ('l_pix:', 'l_domain:', 'acc_q:', 'lambda:', '# psnr:', '# psnrb:', '# ssim:'):
        assert entry in log, entry

    run_train(opt_path, '--auto_resume', '--force_yml', 'train:total_iter=30')
    log = training_log(name)
    assert 'Resuming training from epoch: ' in log and 'iter: 20.' in log
    assert 'net_q_20.pth' in log  # the discriminator is restored too (BasicSR's check_resume sets its path)
    for ckpt in ('net_g_30.pth', 'net_q_30.pth'):
        assert osp.isfile(osp.join(models, ckpt)), ckpt
    assert osp.isfile(osp.join(experiment_dir(name, REPO), 'training_states', '30.state'))


BACKBONES = {
    'DnCNN': ({
        'type': 'DnCNN',
        'num_feat': 8,
        'num_conv': 4
    }, 8, None),
    'MemNet': ({
        'type': 'MemNet',
        'num_feat': 8,
        'num_memblock': 2,
        'num_resblock': 1
    }, 8, {
        'type': 'L1Loss',
        'loss_weight': 1.0
    }),
    'ARCNN': ({
        'type': 'ARCNN'
    }, 64, None),
    'SplitCARN': ({
        'type': 'SplitCARN',
        'split_at': 'conv_first',
        'arch': {
            'type': 'RRDBNet',
            'num_in_ch': 1,
            'num_out_ch': 1,
            'scale': 1,
            'num_feat': 8,
            'num_block': 1,
            'num_grow_ch': 4
        }
    }, 8, None),
}


@pytest.mark.parametrize('backbone', sorted(BACKBONES))
def test_domain_adaptation_runs_with_every_backbone(backbone, jpeg_dataset, experiment_name, tmp_path):
    """Swapping ``network_g: type`` is all it takes; the saved net_g is the plain backbone."""
    network, q_feat, intermediate_opt = BACKBONES[backbone]
    name = experiment_name(f'da_{backbone.lower()}')
    network_g = {'num_in_ch': 1, 'num_out_ch': 1, **network}
    opt = options(name, jpeg_dataset, 'CARNDAModel', total_iter=4, network_g=network_g)
    opt['network_q']['num_feat'] = q_feat
    if network['type'] == 'SplitCARN':
        del opt['network_g']['num_in_ch'], opt['network_g']['num_out_ch']
    if intermediate_opt:
        opt['train']['intermediate_opt'] = intermediate_opt
    opt['logger'].update(print_freq=2, save_checkpoint_freq=4)
    run_train(write_options(opt, tmp_path / 'da.yml'))
    log = training_log(name)
    assert f'Network [{network["type"]}] is created.' in log
    for entry in ('l_domain:', 'acc_q:', '# psnr:', '# psnrb:') + (('l_intermediate:', ) if intermediate_opt else ()):
        assert entry in log, entry
    checkpoint = osp.join(experiment_dir(name, REPO), 'models', 'net_g_latest.pth')
    net = load_network(opt['network_g'], checkpoint)  # a plain generator, Q dropped
    assert net(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
