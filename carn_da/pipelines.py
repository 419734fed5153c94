"""BasicSR's train and test pipelines with the plugin's parts registered and BasicSR 1.4.2's CPU gaps closed.

basicsr 1.4.2's ``load_resume_state`` maps the saved state with ``torch.cuda.current_device()`` (fails without a
GPU) and, for ``--auto_resume``, looks for states under ``experiments/`` relative to the working directory rather
than the experiment's own folder. The replacement below loads onto the device BasicSR's ``num_gpu`` picked, with
``weights_only=True``, from ``opt['path']['training_states']``. It is installed on the ``basicsr.train`` module
object at run time; BasicSR's files are not touched.
"""
import torch
from basicsr import test as basicsr_test
from basicsr import train as basicsr_train
from basicsr.utils import check_resume, scandir
from os import path as osp

import carn_da  # noqa: F401  (fills BasicSR's registries)


def latest_training_state(state_dir):
    """Path of the highest-iteration ``<iter>.state`` file in ``state_dir``, or None."""
    if not osp.isdir(state_dir):
        return None
    stems = (osp.splitext(name)[0] for name in scandir(state_dir, suffix='.state'))
    iters = [int(stem) for stem in stems if stem.isdigit()]
    return osp.join(state_dir, f'{max(iters)}.state') if iters else None


def load_resume_state(opt):
    """Load the training state to resume from (``--auto_resume`` or ``path.resume_state``), or return None."""
    if opt['auto_resume']:
        state_path = latest_training_state(opt['path']['training_states'])
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


def train_pipeline(root_path):
    basicsr_train.load_resume_state = load_resume_state
    basicsr_train.train_pipeline(root_path)


def test_pipeline(root_path):
    basicsr_test.test_pipeline(root_path)
