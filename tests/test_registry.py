"""Importing carn_da fills BasicSR's registries, so option files can name the plugin's parts."""
import carn_da.compat  # noqa: F401

import pytest
import subprocess
import sys
import yaml
from basicsr.models import build_model
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from os import path as osp
from tiny import REPO

import carn_da  # noqa: F401

PARTS = [(ARCH_REGISTRY,
          ['RDN', 'DnCNN', 'MemNet', 'ARCNN', 'SplitCARN', 'QualityDiscriminator', 'PatchQualityDiscriminator']),
         (DATASET_REGISTRY, ['JPEGPairedDataset', 'TwoDomainDataset']),
         (LOSS_REGISTRY, ['DomainAdversarialLoss', 'MMDLoss', 'CORALLoss']), (METRIC_REGISTRY, ['calculate_psnrb']),
         (MODEL_REGISTRY, ['CARNModel', 'CARNDAModel'])]


@pytest.mark.parametrize('registry, names', PARTS, ids=[registry._name for registry, _ in PARTS])
def test_parts_are_registered(registry, names):
    for name in names:
        assert name in registry, f'{name} missing from {registry._name}'
        assert registry.get(name).__module__.startswith('carn_da.')


def test_basicsr_parts_stay_available():
    assert 'RRDBNet' in ARCH_REGISTRY and 'L1Loss' in LOSS_REGISTRY and 'calculate_psnr' in METRIC_REGISTRY


def test_module_entry_point_parses_basicsr_options():
    """``python -m carn_da.train`` is BasicSR's option parser with the plugin loaded."""
    result = subprocess.run([sys.executable, '-m', 'carn_da.train', '--help'],
                            cwd=REPO,
                            capture_output=True,
                            text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert '-opt' in result.stdout and '--auto_resume' in result.stdout and '--launcher' in result.stdout


@pytest.mark.parametrize('direction', ['lq2hq', 'hq2lq'])
def test_recommended_option_files_build_the_self_supervised_model(direction):
    with open(osp.join(REPO, 'options', f'train_rdn_da_{direction}_recommended.yml'), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    opt['network_g'].update(num_feat=8, num_block=2, num_layer=2, growth=8)  # the paper's RDN, smaller: a quick build
    opt.update(is_train=True, dist=False, num_gpu=0, rank=0, world_size=1)
    opt['path'].update(pretrain_network_g=None, models='unused', training_states='unused')
    model = build_model(opt)
    assert model.net_q is None and model.cri_domain is None and model.cri_target is not None
    train_set = opt['datasets']['train']
    assert (train_set['source_quality'], train_set['target_self_supervision']) == ('target', True)
    assert 'dataroot_lq' not in train_set  # the source ground truths are compressed at the target's quality
