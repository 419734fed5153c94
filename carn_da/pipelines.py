"""BasicSR's train and test pipelines with the plugin registered, and the five places where they are patched.

BasicSR has no plugin loading: its registries hold what has been imported when an option file is parsed, and
``basicsr/train.py`` imports only BasicSR. So ``python basicsr/train.py -opt options/X.yml`` cannot see the plugin
(``KeyError: No object named 'TwoDomainDataset'``); ``python carn_da/train.py`` (or ``carn-da train``) takes the same
arguments, imports ``carn_da`` (which fills the registries) and runs BasicSR's own pipeline. The patches below are
set on BasicSR's module objects when that pipeline starts; BasicSR's files are not touched. Each replaces one
function or class that basicsr 1.4.2 looks up by name at run time:

1. ``basicsr.train.parse_options`` -> :func:`parse_options`. BasicSR builds each part when it first needs it, so a
   typo in a ``type`` or an option name, or a number that YAML read as a string (``lr: 1e-4``), fails after the
   experiment folder is made, with a ``KeyError``, ``TypeError`` or ``NotImplementedError`` naming no option. Here
   (:func:`check_options`), before ``experiments/`` or ``tb_logger/`` is written: every ``model_type``, network,
   loss, dataset and metric ``type`` is looked up in BasicSR's registries (listing the registered names), the
   optimizer and scheduler types against those basicsr 1.4.2 builds (Adam; MultiStepLR, MultiStepRestartLR,
   CosineAnnealingRestartLR), the options of each network, loss, optimizer, scheduler and metric against the
   arguments of what is built from them (with the nearest name), and every numeric option of the recipes (learning
   rates, schedule, iterations, loss weights, patch and batch sizes, frequencies) for being a number in range; each
   error names the option.
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

6. ``basicsr.train.MessageLogger`` -> :class:`ProgressLogger`: with ``logger: progress_bar: true`` (``carn-da
   adapt``), each log also moves a progress bar with a time estimate.

The test pipeline gets patches 1 and 2. Importing ``carn_da`` in one's own training script instead (``import
carn_da`` before ``basicsr.train.train_pipeline(root)``) registers every part but keeps BasicSR's behaviour in all
six places.
"""
import difflib
import inspect
import itertools
import os
import re
import sys
import torch
import yaml
from basicsr import test as basicsr_test
from basicsr import train as basicsr_train
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.models import lr_scheduler
from basicsr.train import create_train_val_dataloader as basicsr_create_dataloaders
from basicsr.utils import MessageLogger, check_resume, dist_util, get_root_logger, options, scandir
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from os import path as osp
from torch import distributed as dist
from tqdm import tqdm

import carn_da  # noqa: F401  (fills BasicSR's registries)
from carn_da.models.carn_model import set_rng_state
from carn_da.utils.errors import UserError

DIST_BACKEND_ENV = 'CARN_DA_DIST_BACKEND'


def init_dist(launcher, backend=None, **kwargs):
    """BasicSR's ``init_dist``, also without CUDA (see the module docstring for the choice of backend)."""
    backend = backend or os.environ.get(DIST_BACKEND_ENV) or ('nccl' if torch.cuda.is_available() else 'gloo')
    if launcher == 'pytorch' and backend == 'gloo':
        dist.init_process_group(backend=backend, **kwargs)
    else:
        dist_util.init_dist(launcher, backend, **kwargs)


# What basicsr 1.4.2 builds from ``train.optim_*`` (``BaseModel.get_optimizer``: Adam only) and ``train.scheduler``
# (``BaseModel.setup_schedulers``), with the class each name builds; any other name raises NotImplementedError there,
# after the experiment folder is made.
OPTIMIZERS = {'Adam': torch.optim.Adam}
SCHEDULERS = {
    'MultiStepLR': lr_scheduler.MultiStepRestartLR,
    'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
    'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR
}
# the arguments BasicSR passes itself, not from the options
PASSED_BY_BASICSR = {'params', 'optimizer', 'last_epoch'}
# the numeric options of the recipes: (a number or a whole number, the bound it must keep or None) by key; the lists
# of numbers: the length expected or None
NUMBER, WHOLE = 'a number', 'a whole number'
TRAIN_NUMBERS = {
    'total_iter': (NUMBER, None),
    'warmup_iter': (NUMBER, None),
    'q_steps': (WHOLE, ('>=', 1)),
    'q_warmup_iters': (WHOLE, ('>=', 0)),
    'q_warmup_accuracy': (NUMBER, None)
}
OPTIMIZER_NUMBERS = {'lr': (NUMBER, ('>=', 0)), 'weight_decay': (NUMBER, ('>=', 0)), 'eps': (NUMBER, ('>=', 0))}
OPTIMIZER_LISTS = {'betas': 2}
SCHEDULER_NUMBERS = {'gamma': (NUMBER, None), 'eta_min': (NUMBER, None)}
SCHEDULER_LISTS = {'milestones': None, 'periods': None, 'restart_weights': None, 'restarts': None}
LOSS_NUMBERS = {'loss_weight': (NUMBER, None)}
DATASET_NUMBERS = {
    'gt_size': (WHOLE, ('>=', 1)),
    'batch_size_per_gpu': (WHOLE, ('>=', 1)),
    'num_worker_per_gpu': (WHOLE, ('>=', 0)),
    'dataset_enlarge_ratio': (NUMBER, ('>', 0))
}
LOGGER_NUMBERS = {'print_freq': (NUMBER, ('>', 0)), 'save_checkpoint_freq': (NUMBER, ('>', 0))}
VAL_NUMBERS = {'val_freq': (NUMBER, ('>', 0))}
BOUNDS = {'>=': lambda value, bound: value >= bound, '>': lambda value, bound: value > bound}


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def string_hint(value, kind=NUMBER):
    """How to write the number that YAML read as the string ``value`` (PyYAML reads ``1e-4``, without a dot, as a
    string), or ''."""
    try:
        number = float(value)
    except ValueError:
        return ''
    if kind == WHOLE and number.is_integer():
        return f' (write {int(number)}: YAML reads {value} as a string)'
    exponent = re.fullmatch(r'\s*([+-]?\d+)([eE][+-]?\d+)\s*', value)
    if exponent:
        return f' (write {exponent[1]}.0{exponent[2]} or !!float {value}: YAML reads {value} as a string)'
    return ' (write it without quotes)'


def check_number(key, value, kind=NUMBER, bound=None):
    """ValueError naming ``key`` unless ``value`` is a number (``kind`` WHOLE: an integer) within ``bound``."""
    if isinstance(value, str):
        raise ValueError(f'{key}: expected {kind}, got the string {value!r}{string_hint(value, kind)}')
    if not is_number(value) or (kind == WHOLE and not isinstance(value, int)):
        raise ValueError(f'{key}: expected {kind}, got {value!r}')
    if bound is not None and not BOUNDS[bound[0]](value, bound[1]):
        raise ValueError(f'{key}: expected a number {bound[0]} {bound[1]}, got {value!r}')


def check_numbers(key, options, numbers, lists=None):
    """Check the numbers (``numbers``: {option: (kind, bound)}) and lists of numbers (``lists``: {option: length or
    None}) that the dict ``options`` (at ``key``) has."""
    if not isinstance(options, dict):
        return
    for name, (kind, bound) in numbers.items():
        if name in options:
            check_number(f'{key}.{name}', options[name], kind, bound)
    for name, length in (lists or {}).items():
        if name not in options:
            continue
        value = options[name]
        expected = f'{length} numbers' if length else 'a list of numbers'
        if not (isinstance(value, (list, tuple)) and all(map(is_number, value)) and length in (None, len(value))):
            strings = [v for v in value if isinstance(v, str)] if isinstance(value, (list, tuple)) else []
            hint = string_hint(strings[0]) if strings else ''
            raise ValueError(f'{key}.{name}: expected {expected}, got {value!r}{hint}')


def check_arguments(key, options, target, label, required=True):
    """ValueError naming the option if ``options`` (a dict with ``type``, at ``key``) has an option that ``target``
    (the class or function built from it; any option if it takes ``**kwargs``) does not take, or, if ``required``,
    lacks one it needs."""
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    parameters = {name: p for name, p in parameters.items() if name not in PASSED_BY_BASICSR}
    if any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        return
    known = [name for name, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in options:
        if name != 'type' and name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f' (did you mean {close[0]}?)' if close else f'. Its options: {", ".join(sorted(known))}.'
            raise ValueError(f'{key}.{name}: {label} takes no option {name!r}{hint}')
    if required:
        for name in known:
            if parameters[name].default is inspect.Parameter.empty and name not in options:
                raise ValueError(f'{key}: {label} needs option {name!r}.')


def networks(opt):
    """(key, options) of every network of ``opt``: the ``network_*`` and the experts of a QualityRoutedCARN."""
    found = [(key, value) for key, value in opt.items() if key.startswith('network_') and isinstance(value, dict)]
    for key, value in found:
        experts = value.get('experts')
        if isinstance(experts, list):
            found += [(f'{key}.experts[{i}].network', expert['network']) for i, expert in enumerate(experts)
                      if isinstance(expert, dict) and isinstance(expert.get('network'), dict)]
    return found


def registered(registry, name):
    """The object registered as ``name`` (or BasicSR's ``<name>_basicsr``), or None."""
    for candidate in (name, f'{name}_basicsr'):
        if isinstance(candidate, str) and candidate in registry:
            return registry.get(candidate)
    return None


def check_options(opt):
    """Raise ValueError naming the option, before anything is built, if

    - a ``type`` (or ``model_type``) of a model, network (also a QualityRoutedCARN's experts), loss, dataset or metric
      is in no BasicSR registry, or the ``type`` of an optimizer (``train.optim_*``) or of ``train.scheduler`` is not
      one that basicsr 1.4.2 builds (``OPTIMIZERS``, ``SCHEDULERS``);
    - a network, loss, optimizer, scheduler or metric has an option that its class or function does not take (with
      the nearest name), or a network, loss or scheduler lacks one it needs;
    - a numeric option of the recipes is not a number (``1e-4`` in YAML is a string), not a whole number where one
      is needed, or out of range: ``train``'s ``total_iter``, ``warmup_iter``, ``q_steps``, ``q_warmup_iters``,
      ``q_warmup_accuracy``, each optimizer's ``lr``, ``weight_decay``, ``eps``, ``betas``, the scheduler's
      ``milestones``, ``gamma``, ``periods``,
      ``restart_weights``, ``restarts``, ``eta_min``, each loss's ``loss_weight``, each dataset's ``gt_size``,
      ``batch_size_per_gpu``, ``num_worker_per_gpu``, ``dataset_enlarge_ratio``, ``logger.print_freq``,
      ``logger.save_checkpoint_freq`` and ``val.val_freq``.
    """
    train = opt.get('train') if isinstance(opt.get('train'), dict) else {}
    losses = [(f'train.{key}', value) for key, value in train.items()
              if key.endswith('_opt') and isinstance(value, dict)]
    optimizers = [(f'train.{key}', value) for key, value in train.items()
                  if key.startswith('optim_') and isinstance(value, dict)]
    datasets = [(f'datasets.{key}', value) for key, value in (opt.get('datasets') or {}).items()]
    metrics = [(f'val.metrics.{key}', value) for key, value in ((opt.get('val') or {}).get('metrics') or {}).items()]
    checks = [('model_type', opt.get('model_type'), MODEL_REGISTRY, 'model')]
    checks += [(f'{key}.type', value.get('type'), ARCH_REGISTRY, 'arch') for key, value in networks(opt)]
    checks += [(f'{key}.type', value.get('type'), LOSS_REGISTRY, 'loss') for key, value in losses]
    checks += [(f'{key}.type', value.get('type'), DATASET_REGISTRY, 'dataset') for key, value in datasets]
    checks += [(f'{key}.type', value.get('type'), METRIC_REGISTRY, 'metric') for key, value in metrics]
    for key, name, registry, kind in checks:
        if registered(registry, name) is None:
            known = ', '.join(sorted(registry.keys()))
            raise ValueError(f'{key}: no {kind} named {name!r} is registered. Registered {kind}s: {known}.')
    scheduler = train.get('scheduler')
    built = [(key, value, OPTIMIZERS, 'optimizer') for key, value in optimizers]
    built += [('train.scheduler', scheduler, SCHEDULERS, 'scheduler')] if isinstance(scheduler, dict) else []
    for key, value, accepted, kind in built:
        if value.get('type') not in accepted:
            raise ValueError(f'{key}.type: basicsr 1.4.2 has no {kind} {value.get("type")!r}. It accepts: '
                             f'{", ".join(sorted(accepted))}.')

    for key, value in networks(opt):
        check_arguments(key, value, registered(ARCH_REGISTRY, value['type']), value['type'])
    for key, value in losses:
        check_arguments(key, value, registered(LOSS_REGISTRY, value['type']), value['type'])
    for key, value in metrics:  # BasicSR passes the images; a metric's other options may have no default here
        check_arguments(key, value, registered(METRIC_REGISTRY, value['type']), value['type'], required=False)
    for key, value in optimizers:  # lr has a default in torch but not in get_optimizer: left to BasicSR
        check_arguments(key, value, OPTIMIZERS[value['type']], value['type'], required=False)
    if isinstance(scheduler, dict):
        check_arguments('train.scheduler', scheduler, SCHEDULERS[scheduler['type']], scheduler['type'])

    check_numbers('train', train, TRAIN_NUMBERS)
    for key, value in optimizers:
        check_numbers(key, value, OPTIMIZER_NUMBERS, OPTIMIZER_LISTS)
    check_numbers('train.scheduler', scheduler, SCHEDULER_NUMBERS, SCHEDULER_LISTS)
    for key, value in losses:
        check_numbers(key, value, LOSS_NUMBERS)
    for key, value in datasets:
        check_numbers(key, value, DATASET_NUMBERS)
    check_numbers('logger', opt.get('logger'), LOGGER_NUMBERS)
    check_numbers('val', opt.get('val'), VAL_NUMBERS)


def parse_options(root_path, is_train=True):
    """BasicSR's ``parse_options``, then ``check_options``; UserError naming the option file and the option."""
    try:
        opt, args = options.parse_options(root_path, is_train)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        path = sys.argv[sys.argv.index('-opt') + 1] if '-opt' in sys.argv[:-1] else 'the -opt file'
        raise UserError(f'{path}: cannot read it as a YAML text file ({type(error).__name__}: {error}).') from error
    try:
        check_options(opt)
    except ValueError as error:
        raise UserError(f'{args.opt}: {error}') from error
    return opt, args


def run_in_current_folder(pipeline, prog):
    """Run ``pipeline`` (:func:`train_pipeline` or :func:`test_pipeline`) in the current folder; a mistake in the
    option file ends with one line ``PROG: error: ...`` and exit code 2, not a traceback."""
    try:
        pipeline(os.getcwd())
    except UserError as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
    return 0


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


class ProgressLogger(MessageLogger):
    """BasicSR's message logger that, with ``logger: progress_bar: true``, also moves a progress bar (tqdm on stderr,
    with its rate and time estimate) to the logged iteration, on the first process only."""

    def __init__(self, opt, start_iter=1, tb_logger=None):
        super().__init__(opt, start_iter, tb_logger)
        self.bar = None
        if opt['logger'].get('progress_bar') and opt.get('rank', 0) == 0:
            self.bar = tqdm(
                total=self.max_iters, initial=start_iter, desc=f'training {opt["name"]}', unit='iter', file=sys.stderr)

    def __call__(self, log_vars):
        current_iter = log_vars['iter']
        super().__call__(log_vars)
        if self.bar is not None:
            self.bar.update(current_iter - self.bar.n)
            if current_iter >= self.max_iters:
                self.bar.close()


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
    basicsr_train.MessageLogger = ProgressLogger
    basicsr_train.train_pipeline(root_path)


def test_pipeline(root_path):
    """BasicSR's test pipeline with ``init_dist`` and ``parse_options`` replaced (see the module docstring)."""
    options.init_dist = init_dist
    basicsr_test.parse_options = parse_options
    basicsr_test.test_pipeline(root_path)
