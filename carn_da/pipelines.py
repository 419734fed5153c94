"""BasicSR's train and test pipelines with the plugin registered, and the five places where they are patched.

BasicSR has no plugin loading: its registries hold what has been imported when an option file is parsed, and
``basicsr/train.py`` imports only BasicSR. So ``python basicsr/train.py -opt options/X.yml`` cannot see the plugin
(``KeyError: No object named 'TwoDomainDataset'``); ``python carn_da/train.py`` (or ``carn-da train``) takes the same
arguments, imports ``carn_da`` (which fills the registries) and runs BasicSR's own pipeline. The patches below are
set on BasicSR's module objects when that pipeline starts; BasicSR's files are not touched. Each replaces one
function or class that basicsr 1.4.2 looks up by name at run time:

1. ``basicsr.train.parse_options`` -> :func:`parse_options`. BasicSR builds each part when it first needs it, so a
   typo in a ``type`` fails after the experiment folder is made, with ``KeyError`` naming no option. Here every
   ``model_type``, network, loss, dataset and metric ``type`` is checked first, naming the option and listing the
   registered names.
2. ``basicsr.utils.options.init_dist`` -> :func:`init_dist`. BasicSR calls ``torch.cuda.set_device`` and uses nccl
   unconditionally, so distributed training without CUDA fails. Here the backend is ``dist_params.backend`` if given,
   else the environment variable ``CARN_DA_DIST_BACKEND``, else nccl if CUDA is available and gloo if not
   (``parse_options`` initialises the process group before ``num_gpu`` is read, hence the variable: a CPU run on a
   machine with GPUs sets ``CARN_DA_DIST_BACKEND=gloo`` and ``num_gpu: 0``). With gloo, ``--launcher pytorch``
   (torchrun) initialises the group from torchrun's environment and selects no GPU; nccl, and Slurm, go through
   BasicSR's ``init_dist``.
3. ``basicsr.train.load_resume_state`` -> :func:`load_resume_state`. basicsr 1.4.2 maps the saved state with
   ``torch.cuda.current_device()`` (fails without a GPU) and, for ``--auto_resume``, takes the newest state under
   ``experiments/`` even if a network of its iteration was never saved (a run killed while saving). Here the state
   is loaded onto the device ``num_gpu`` picked, with ``weights_only=True``, and ``--auto_resume`` takes the
   experiment's latest state whose networks were all saved.
4. ``basicsr.train.EnlargedSampler`` -> :class:`ResumableSampler` and 5. ``basicsr.train.create_train_val_dataloader``
   -> the same function, then :func:`resume_data_stream`. BasicSR restarts a resumed epoch from its first batch and
   saves no random states, so a resumed run differs from an uninterrupted one. Here the resumed epoch continues
   after the batches the saved run had drawn, with the random states the saved run had then (saved by
   ``CARNModel``). With ``num_worker_per_gpu: 0`` and no ``prefetch_mode`` the resumed run is identical to an
   uninterrupted one (same batches, crops, flips, targets and weights). With data workers, or a prefetcher that
   reads ahead, the order of the images is kept but their random crops and flips are not: the workers' random states
   are BasicSR's per-epoch seeds and not saved.

The test pipeline gets patches 1 and 2. Importing ``carn_da`` in one's own training script instead (``import
carn_da`` before ``basicsr.train.train_pipeline(root)``) registers every part but keeps BasicSR's behaviour in all
five places.
"""
import itertools
import os
import torch
from basicsr import test as basicsr_test
from basicsr import train as basicsr_train
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.train import create_train_val_dataloader as basicsr_create_dataloaders
from basicsr.utils import check_resume, dist_util, get_root_logger, options, scandir
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from os import path as osp
from torch import distributed as dist

import carn_da  # noqa: F401  (fills BasicSR's registries)
from carn_da.models.carn_model import set_rng_state

DIST_BACKEND_ENV = 'CARN_DA_DIST_BACKEND'


def init_dist(launcher, backend=None, **kwargs):
    """BasicSR's ``init_dist``, also without CUDA (see the module docstring for the choice of backend)."""
    backend = backend or os.environ.get(DIST_BACKEND_ENV) or ('nccl' if torch.cuda.is_available() else 'gloo')
    if launcher == 'pytorch' and backend == 'gloo':
        dist.init_process_group(backend=backend, **kwargs)
    else:
        dist_util.init_dist(launcher, backend, **kwargs)


def check_options(opt):
    """Raise ValueError naming the option if a ``type`` (or ``model_type``) is in no BasicSR registry."""
    checks = [('model_type', opt.get('model_type'), MODEL_REGISTRY, 'model')]
    checks += [(f'{key}.type', value.get('type'), ARCH_REGISTRY, 'arch') for key, value in opt.items()
               if key.startswith('network_') and isinstance(value, dict)]
    checks += [(f'train.{key}.type', value.get('type'), LOSS_REGISTRY, 'loss')
               for key, value in (opt.get('train') or {}).items() if key.endswith('_opt') and isinstance(value, dict)]
    checks += [(f'datasets.{key}.type', value.get('type'), DATASET_REGISTRY, 'dataset')
               for key, value in opt['datasets'].items()]
    checks += [(f'val.metrics.{key}.type', value.get('type'), METRIC_REGISTRY, 'metric')
               for key, value in ((opt.get('val') or {}).get('metrics') or {}).items()]
    for key, name, registry, kind in checks:
        if name not in registry and f'{name}_basicsr' not in registry:
            known = ', '.join(sorted(registry.keys()))
            raise ValueError(f'{key}: no {kind} named {name!r} is registered. Registered {kind}s: {known}.')


def parse_options(root_path, is_train=True):
    """BasicSR's ``parse_options``, then ``check_options``."""
    opt, args = options.parse_options(root_path, is_train)
    check_options(opt)
    return opt, args


def latest_training_state(opt):
    """Path of the highest-iteration ``<iter>.state`` of the experiment whose networks (``net_<x>_<iter>.pth`` for
    every ``network_<x>`` that resuming loads) all exist, or None."""
    state_dir, models_dir = opt['path']['training_states'], opt['path']['models']
    if not osp.isdir(state_dir):
        return None
    ignored = opt['path'].get('ignore_resume_networks') or []
    labels = [key[len('network_'):] for key in opt if key.startswith('network_') and key not in ignored]
    stems = (osp.splitext(name)[0] for name in scandir(state_dir, suffix='.state'))
    for resume_iter in sorted((int(stem) for stem in stems if stem.isdigit()), reverse=True):
        if all(osp.isfile(osp.join(models_dir, f'net_{label}_{resume_iter}.pth')) for label in labels):
            return osp.join(state_dir, f'{resume_iter}.state')
        print(f'auto_resume: skipping training state {resume_iter}.state, whose networks are not all saved.')
    return None


def load_resume_state(opt):
    """Load the training state to resume from (``--auto_resume`` or ``path.resume_state``), or return None."""
    if opt['auto_resume']:
        state_path = latest_training_state(opt)
        if state_path is not None:
            opt['path']['resume_state'] = state_path
    else:
        state_path = opt['path'].get('resume_state')
    if state_path is None:
        return None
    if not osp.isfile(state_path):
        raise FileNotFoundError(f'path.resume_state: no training state at {state_path}.')
    use_cuda = opt['num_gpu'] != 0 and torch.cuda.is_available()
    device = torch.device('cuda', torch.cuda.current_device()) if use_cuda else torch.device('cpu')
    resume_state = torch.load(state_path, map_location=device, weights_only=True)
    check_resume(opt, resume_state['iter'])
    return resume_state


class ResumableSampler(EnlargedSampler):
    """BasicSR's ``EnlargedSampler`` that can continue an epoch where a saved training state left it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_point = None

    def resume(self, num_drawn, rng=None):
        """Make the next epoch (the resumed one) skip its first ``num_drawn`` indices and, if given, restore the
        random states ``rng`` (``carn_da.models.carn_model.rng_state``) when its first batch is drawn, after the
        DataLoader has drawn the seed of its iterator as the saved run had done before saving."""
        self.resume_point = num_drawn, rng

    def __iter__(self):
        indices = super().__iter__()
        if self.resume_point is None:
            return indices
        (num_drawn, rng), self.resume_point = self.resume_point, None
        if rng is not None:
            set_rng_state(rng)
        return itertools.islice(indices, num_drawn, None)


def resume_data_stream(train_loader, resume_state, opt):
    """Position the ``ResumableSampler`` of ``train_loader`` where the run that saved ``resume_state`` stood."""
    logger = get_root_logger()
    num_drawn = (resume_state['iter'] - resume_state['epoch'] * len(train_loader)) * train_loader.batch_size
    if not 0 <= num_drawn <= len(train_loader.sampler):
        logger.warning('The resumed epoch restarts from its first batch: the training state does not match this '
                       'dataset, batch size and world size.')
        num_drawn = 0
    rng = resume_state.get('rng')
    if rng is not None and len(rng) == opt['world_size']:
        rng = rng[opt['rank']]
    else:
        logger.warning('Random states are not restored: the training state has none for this world size.')
        rng = None
    train_loader.sampler.resume(num_drawn, rng)
    logger.info(f'Epoch {resume_state["epoch"]} continues after its first {num_drawn // train_loader.batch_size} '
                'batches.')


def train_pipeline(root_path):
    """BasicSR's training pipeline with the replacements of the module docstring."""
    resume = {}

    def load_and_keep_resume_state(opt):
        resume['state'] = load_resume_state(opt)
        return resume['state']

    def create_train_val_dataloader(opt, logger):
        result = basicsr_create_dataloaders(opt, logger)
        if resume['state'] is not None:
            resume_data_stream(result[0], resume['state'], opt)
        return result

    options.init_dist = init_dist
    basicsr_train.parse_options = parse_options
    basicsr_train.load_resume_state = load_and_keep_resume_state
    basicsr_train.EnlargedSampler = ResumableSampler
    basicsr_train.create_train_val_dataloader = create_train_val_dataloader
    basicsr_train.train_pipeline(root_path)


def test_pipeline(root_path):
    """BasicSR's test pipeline with ``init_dist`` and ``parse_options`` replaced (see the module docstring)."""
    options.init_dist = init_dist
    basicsr_test.parse_options = parse_options
    basicsr_test.test_pipeline(root_path)
