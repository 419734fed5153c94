"""The one checkpoint loader: BasicSR checkpoints (EMA weights first) into networks, tensors only.

Every command and script that loads a generator goes through :func:`load_state_dict`: the key is BasicSR's rule
(``params_ema`` if present, else ``params``, else a bare state dict), and files are read with
``torch.load(weights_only=True)``, which runs no code from the file.
"""
import copy
import pickle
import re
import torch
import yaml
import zipfile
from basicsr.archs import build_network
from os import path as osp
from torch import nn

from carn_da.utils.errors import UserError
from carn_da.utils.files import load_options


def is_torch_file(path):
    """Whether ``path`` may have been written by ``torch.save``: a zip archive (also a truncated one, which
    :func:`torch.load` names) or a legacy pickle (its first byte the pickle protocol opcode 0x80)."""
    try:
        with open(path, 'rb') as f:
            head = f.read(4)
        return head.startswith((b'\x80', b'PK\x03\x04')) or zipfile.is_zipfile(path)
    except OSError:
        return True  # torch.load names the error


def load_state_dict(checkpoint):
    """(key, state dict) of a checkpoint file; UserError if it is missing, unreadable or holds pickled objects.

    The key is ``params_ema`` if present (the EMA weights BasicSR validates with), else ``params``, or None for a
    bare state dict. A ``module.`` prefix (DataParallel) is removed.
    """
    if not osp.isfile(checkpoint):
        raise UserError(f'Checkpoint {checkpoint} does not exist.')
    if not is_torch_file(checkpoint):
        raise UserError(f'Checkpoint {checkpoint} is not a PyTorch checkpoint (expected a file written by torch.save).')
    try:
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r'Unsupported global: GLOBAL (\S+)', str(error))
        what = f'a pickled {found[1]} object' if found else 'pickled Python objects'
        raise UserError(f'Refusing checkpoint {checkpoint}: it contains {what}, and checkpoints are only loaded '
                        'with torch.load(weights_only=True), which runs no code from the file. Save the weights '
                        'alone, e.g. torch.save({"params": net.state_dict()}, path).') from error
    except (RuntimeError, KeyError, EOFError, OSError) as error:
        raise UserError(f'Cannot read checkpoint {checkpoint} (not a PyTorch file, or truncated): '
                        f'{type(error).__name__}: {error}') from error
    key = next((key for key in ('params_ema', 'params') if isinstance(state, dict) and key in state), None)
    state = state if key is None else state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f'Checkpoint {checkpoint} holds no state dict (expected {{"params": state_dict}}).')
    return key, {k.removeprefix('module.'): v for k, v in state.items()}


def network_options(option_file):
    """The ``network_g`` of an option file; UserError naming the file if it has none."""
    if not osp.isfile(option_file):
        raise UserError(f'Option file {option_file} does not exist.')
    try:
        network_opt = load_options(option_file).get('network_g')
    except UnicodeDecodeError as error:
        raise UserError(f'Option file {option_file} is not a UTF-8 text file (byte {error.start}: '
                        f'{error.reason}); expected YAML options.') from error
    except OSError as error:
        raise UserError(f'Option file {option_file} cannot be read ({error.strerror}).') from error
    except (AttributeError, yaml.YAMLError) as error:
        raise UserError(f'Option file {option_file} is not a YAML mapping: {error}') from error
    if not isinstance(network_opt, dict):
        raise UserError(f'Option file {option_file} has no network_g.')
    return network_opt


def load_network(network_opt, checkpoint, device='cpu', what='the network_g'):
    """Build the network of ``network_opt`` (a ``network_g`` dict), load ``checkpoint`` into it with
    :func:`load_state_dict` and return it in eval mode on ``device``; UserError names what does not fit
    (``what``: how the message names the network)."""
    try:
        net = build_network(copy.deepcopy(network_opt))
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f'Cannot build {what}: {type(error).__name__}: {error}') from error
    try:
        net.load_state_dict(load_state_dict(checkpoint)[1])
    except RuntimeError as error:
        raise UserError(f'Checkpoint {checkpoint} does not fit {what}: {error}') from error
    return net.to(device).eval()


def input_channels(net):
    """Input channels of ``net``: those of its first convolution."""
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise UserError(f'{type(net).__name__} has no convolution to tell its input channels from.')
    return conv.in_channels


def load_model(checkpoint, options, device='cpu'):
    """(net in eval mode on ``device``, its channels) of a checkpoint and the ``network_g`` of an option file.

    The network is run once on a small input to check it maps C channels to C (1 or 3). UserError names any
    missing, unsafe or unfitting file.
    """
    net = load_network(network_options(options), checkpoint, device, f'the network_g of {options}')
    channels = input_channels(net)
    try:
        with torch.no_grad():
            out_channels = net(torch.rand(1, channels, 32, 32, device=device)).shape[1]
    except RuntimeError as error:
        raise UserError(f'The network_g of {options} fails on a 32x32 input: {error}') from error
    if channels not in (1, 3) or out_channels != channels:
        raise UserError(f'The network_g of {options} maps {channels} channel(s) to {out_channels}; restoring needs '
                        '1 to 1 (gray) or 3 to 3 (colour).')
    return net, channels


def routed_state(experts):
    """The state dict of a QualityRoutedCARN (``recipes.routed_pair``) whose experts are ``experts`` (checkpoint
    files or state dicts), in order."""
    return {
        f'experts.{k}.{name}': value
        for k, expert in enumerate(experts)
        for name, value in (expert if isinstance(expert, dict) else load_state_dict(expert)[1]).items()
    }


def expert_state(state, k):
    """The state dict of expert ``k`` of a QualityRoutedCARN's ``state`` (the inverse of :func:`routed_state`)."""
    prefix = f'experts.{k}.'
    return {name[len(prefix):]: value for name, value in state.items() if name.startswith(prefix)}


def shifted_experts(state, by):
    """A QualityRoutedCARN state dict with expert k renamed k + ``by`` (to put experts in front of it)."""
    renamed = {}
    for name, value in state.items():
        _, k, rest = name.split('.', 2)
        renamed[f'experts.{int(k) + by}.{rest}'] = value
    return renamed
