"""Importing carn_da fills BasicSR's registries, so option files can name the plugin's parts."""
import carn_da.compat  # noqa: F401

import pytest
import subprocess
import sys
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

import carn_da  # noqa: F401
from carn_da.runs import ROOT

PARTS = [(ARCH_REGISTRY, ['RDN', 'DnCNN', 'MemNet', 'ARCNN', 'SplitCARN', 'QualityDiscriminator']),
         (DATASET_REGISTRY, ['JPEGPairedDataset', 'TwoDomainDataset']), (LOSS_REGISTRY, ['DomainAdversarialLoss']),
         (METRIC_REGISTRY, ['calculate_psnrb']), (MODEL_REGISTRY, ['CARNModel', 'CARNDAModel'])]


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
                            cwd=ROOT,
                            capture_output=True,
                            text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert '-opt' in result.stdout and '--auto_resume' in result.stdout and '--launcher' in result.stdout
