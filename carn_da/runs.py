"""Run BasicSR trainings of the plugin from Python and load what they produce (used by the demo and benchmarks)."""
import copy
import subprocess
import sys
import torch
import yaml
from basicsr.archs import build_network
from os import path as osp

ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))


def experiment_dir(name, root=ROOT):
    """BasicSR's experiment folder of the training called ``name``."""
    return osp.join(root, 'experiments', name)


def latest_generator(name, root=ROOT):
    """The ``net_g`` that a finished training called ``name`` saved last."""
    return osp.join(experiment_dir(name, root), 'models', 'net_g_latest.pth')


def load_options(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def write_options(opt, path):
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def train(opt_path, *args, quiet=False):
    """Run ``carn_da/train.py -opt opt_path *args`` in a subprocess from the repository root; raise if it fails."""
    cmd = [sys.executable, osp.join(ROOT, 'carn_da', 'train.py'), '-opt', osp.abspath(opt_path), *args]
    out = subprocess.DEVNULL if quiet else None
    result = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT if quiet else None)
    if result.returncode != 0:
        raise RuntimeError(f'training failed (exit {result.returncode}): {" ".join(cmd)}')


def load_generator(network_opt, checkpoint, device='cpu'):
    """Build ``network_opt`` (a ``network_g`` dict) and load a BasicSR checkpoint into it, tensors only."""
    net = build_network(copy.deepcopy(network_opt))
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    net.load_state_dict(state['params'])
    return net.to(device).eval()
