"""Run BasicSR trainings of the plugin from Python and find what they produce.

The functions that run or find a training take ``root``, the folder it runs in (BasicSR's ``root_path``): its
``experiments/<name>`` and ``tb_logger/<name>`` go there, and relative paths in its options are read from there.
"""
import copy
import multiprocessing
import os
import subprocess
import sys
import time
import torch
from os import path as osp

from carn_da.utils.files import load_options, write_options


def experiment_dir(name, root):
    """BasicSR's experiment folder of the training called ``name`` run in ``root``."""
    return osp.join(root, 'experiments', name)


def recorded_options(name, root):
    """The option file BasicSR copied into the experiment folder of the training called ``name`` run in ``root``."""
    return osp.join(experiment_dir(name, root), f'{name}.yml')


def latest_generator(name, root):
    """The ``net_g`` that a finished training called ``name`` (run in ``root``) saved last."""
    return osp.join(experiment_dir(name, root), 'models', 'net_g_latest.pth')


def _train_in_child(argv, root, quiet):
    """A preloaded training process (see :func:`train`): ``argv`` as carn_da/train.py's, run in ``root``."""
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    os.chdir(root)
    sys.argv = argv
    from carn_da.pipelines import train_pipeline
    train_pipeline(root)


def train(opt_path, *args, root, quiet=False, preloaded=False):
    """Run ``python -m carn_da.train -opt opt_path *args`` in a new process in the folder ``root``; raise if it fails.

    ``preloaded``: fork the process from a server that imported the training pipeline once (multiprocessing's
    forkserver, started at the first such training of this process) instead of starting a new interpreter, which
    spends about 9 s of one CPU core on imports. The server imports only and never trains, so each training starts
    as in a new interpreter: no logger, random state or CUDA context of another training.
    """
    cmd = [sys.executable, '-m', 'carn_da.train', '-opt', osp.abspath(opt_path), *args]
    if preloaded:
        context = multiprocessing.get_context('forkserver')
        context.set_forkserver_preload(['carn_da.pipelines'])
        child = context.Process(target=_train_in_child, args=(cmd[2:], osp.abspath(root), quiet))
        child.start()
        child.join()
        code = child.exitcode
    else:
        out = subprocess.DEVNULL if quiet else None
        code = subprocess.run(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT if quiet else None).returncode
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


def train_unless_done(opt, options_dir, root, resume=False):
    """Train ``opt`` in ``root`` (written to ``options_dir``, in a preloaded process: see :func:`train`) unless an
    experiment of its name finished there already; return the wall time in seconds (0 when reused). ``resume``:
    continue an unfinished training from its last saved state (BasicSR's ``--auto_resume``). ValueError if the
    experiment to reuse or resume recorded other options (its logger aside): a changed recipe never reuses or
    continues a model trained by the old one."""
    checkpoint, recorded = latest_generator(opt['name'], root), recorded_options(opt['name'], root)
    finished = osp.isfile(checkpoint)
    if (finished or resume) and osp.isfile(recorded):  # the option file BasicSR copied into the experiment
        changed = [key for key in changed_options(load_options(recorded), opt) if key.split('.')[0] != 'logger']
        if changed:
            raise ValueError(f'{experiment_dir(opt["name"], root)} was trained with other options '
                             f'({", ".join(changed)} in {recorded}): delete it or change the name (e.g. the prefix) '
                             'to train the new options.')
    if finished:
        print(f'reusing {checkpoint}', flush=True)
        return 0.0
    start = time.time()
    print(f'training {opt["name"]} ({opt["train"]["total_iter"]} iterations)', flush=True)
    opt_path = write_options(opt, osp.join(options_dir, f'{opt["name"]}.yml'))
    train(opt_path, *(['--auto_resume'] if resume else []), root=root, quiet=True, preloaded=True)
    return time.time() - start


def warmed_up_model(opt, warmup=3, device='cpu'):
    """The BasicSR model of the options ``opt`` on one process of ``device`` ('cpu' or 'cuda'), without pretrained
    weights, fed one random batch of its batch and patch size (source and target keys alike) and trained ``warmup``
    steps on it: what the training steps of ``opt`` cost, without data loading, is then the time of
    ``optimize_parameters``."""
    from basicsr.models import build_model  # importing BasicSR's models registers the plugin's through carn_da
    opt = copy.deepcopy(opt)
    opt.update(is_train=True, dist=False, num_gpu=int(torch.device(device).type == 'cuda'), rank=0, world_size=1)
    opt['path']['pretrain_network_g'] = None
    model = build_model(opt)
    train_set = opt['datasets']['train']
    shape = (train_set['batch_size_per_gpu'], 1, train_set['gt_size'], train_set['gt_size'])
    gen = torch.Generator().manual_seed(0)
    model.feed_data({key: torch.rand(shape, generator=gen) for key in ('gt', 'lq', 'lq_target', 'lq_target_self')})
    for i in range(warmup):
        model.optimize_parameters(i + 1)
    return model


def step_seconds(opt, steps=5, warmup=3, device='cpu'):
    """Seconds per training step of the options ``opt`` on ``device`` (:func:`warmed_up_model`, then ``steps``
    steps): what an iteration costs, to size a training to a time budget."""
    model = warmed_up_model(opt, warmup, device)
    synchronize = torch.cuda.synchronize if torch.device(device).type == 'cuda' else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for i in range(steps):
        model.optimize_parameters(warmup + i + 1)
    synchronize()  # CUDA kernels run asynchronously: the steps are done only when the device says so
    return (time.perf_counter() - start) / steps
