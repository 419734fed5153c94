"""Run BasicSR trainings of the plugin from Python and load what they produce (used by the demo and benchmarks)."""
import copy
import multiprocessing
import os
import subprocess
import sys
import time
import torch
import yaml
from basicsr.archs import build_network
from os import path as osp

ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

# CPU-sized backbones of the benchmarks and the CPU reproduction preset: network_g options, and the channels of the
# features their default split gives the quality discriminator
CPU_BACKBONES = {
    'rdn': ({
        'type': 'RDN',
        'num_feat': 32,
        'num_block': 4,
        'num_layer': 4,
        'growth': 16
    }, 32),
    'dncnn': ({
        'type': 'DnCNN',
        'num_feat': 32,
        'num_conv': 10
    }, 32),
    'arcnn': ({
        'type': 'ARCNN'
    }, 64),
    'memnet': ({
        'type': 'MemNet',
        'num_feat': 32,
        'num_memblock': 3,
        'num_resblock': 2
    }, 32),
}

# the validation metrics of the plugin's trainings (BasicSR's PSNR and SSIM, our PSNR-B), for option dicts
VALIDATION_METRICS = {
    name: {
        'type': f'calculate_{name}',
        'crop_border': 0,
        'test_y_channel': False
    }
    for name in ('psnr', 'psnrb', 'ssim')
}


def train_set_options(name, folder, qf, batch, patch, target_qf=None):
    """BasicSR options of a training set from a ``scripts/prepare_data.py`` folder: pairs of ``folder/gt`` and
    ``folder/qf<qf>`` (JPEGPairedDataset) and, with ``target_qf``, the unlabelled target ``folder/qf<target_qf>``
    (TwoDomainDataset); random ``patch`` squares with flips and rotations, no data workers."""
    train_set = {
        'name': name,
        'type': 'JPEGPairedDataset',
        'dataroot_gt': osp.join(folder, 'gt'),
        'dataroot_lq': osp.join(folder, f'qf{qf}'),
        'io_backend': {
            'type': 'disk'
        },
        'gt_size': patch,
        'use_hflip': True,
        'use_rot': True,
        'num_worker_per_gpu': 0,
        'batch_size_per_gpu': batch,
        'dataset_enlarge_ratio': 100
    }
    if target_qf is not None:
        train_set.update(type='TwoDomainDataset', dataroot_target=osp.join(folder, f'qf{target_qf}'))
    return train_set


def cpu_network(backbone):
    """Grayscale ``network_g`` options of a CPU-sized backbone (``CPU_BACKBONES``)."""
    network, _ = CPU_BACKBONES[backbone]
    return {'num_in_ch': 1, 'num_out_ch': 1, **copy.deepcopy(network)}


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


def _train_in_child(argv, quiet):
    """A preloaded training process (see :func:`train`): ``argv`` as carn_da/train.py's, run from the root."""
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    os.chdir(ROOT)
    sys.argv = argv
    from carn_da.pipelines import train_pipeline
    train_pipeline(ROOT)


def train(opt_path, *args, quiet=False, preloaded=False):
    """Run ``carn_da/train.py -opt opt_path *args`` in a new process from the repository root; raise if it fails.

    ``preloaded``: fork the process from a server that imported the training pipeline once (multiprocessing's
    forkserver, started at the first such training of this process) instead of starting a new interpreter, which
    spends about 9 s of one CPU core on imports. The server imports only and never trains, so each training starts
    as in a new interpreter: no logger, random state or CUDA context of another training.
    """
    cmd = [sys.executable, osp.join(ROOT, 'carn_da', 'train.py'), '-opt', osp.abspath(opt_path), *args]
    if preloaded:
        context = multiprocessing.get_context('forkserver')
        context.set_forkserver_preload(['carn_da.pipelines'])
        child = context.Process(target=_train_in_child, args=(cmd[1:], quiet))
        child.start()
        child.join()
        code = child.exitcode
    else:
        out = subprocess.DEVNULL if quiet else None
        code = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT if quiet else None).returncode
    if code != 0:
        raise RuntimeError(f'training failed (exit {code}): {" ".join(cmd)}')


def changed_options(old, new, prefix=''):
    """Dotted keys whose values differ between option dicts ``old`` and ``new``."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix]
    return [
        key for k in sorted(old.keys() | new.keys(), key=str)
        for key in changed_options(old.get(k), new.get(k), f'{prefix}.{k}' if prefix else str(k))
    ]


def train_unless_done(opt, options_dir):
    """Train ``opt`` (written to ``options_dir``, in a preloaded process: see :func:`train`) unless an experiment of
    its name finished already; return the wall time in seconds (0 when reused). ValueError if that experiment recorded
    other options (its logger aside): a changed recipe never reuses a model trained by the old one."""
    if osp.isfile(latest_generator(opt['name'])):
        recorded = osp.join(experiment_dir(opt['name']), f'{opt["name"]}.yml')
        changed = []
        if osp.isfile(recorded):  # the option file BasicSR copied into the experiment
            changed = [key for key in changed_options(load_options(recorded), opt) if key.split('.')[0] != 'logger']
        if changed:
            raise ValueError(f'{experiment_dir(opt["name"])} was trained with other options ({", ".join(changed)} in '
                             f'{recorded}): delete it or change the name (e.g. the prefix) to train the new options.')
        print(f'reusing {latest_generator(opt["name"])}', flush=True)
        return 0.0
    start = time.time()
    print(f'training {opt["name"]} ({opt["train"]["total_iter"]} iterations)', flush=True)
    train(write_options(opt, osp.join(options_dir, f'{opt["name"]}.yml')), quiet=True, preloaded=True)
    return time.time() - start


def load_generator(network_opt, checkpoint, device='cpu'):
    """Build ``network_opt`` (a ``network_g`` dict) and load a BasicSR checkpoint into it, tensors only."""
    net = build_network(copy.deepcopy(network_opt))
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    net.load_state_dict(state['params'])
    return net.to(device).eval()
