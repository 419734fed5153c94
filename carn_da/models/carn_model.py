import numpy as np
import random
import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from collections import OrderedDict
from os import path as osp
from torch import distributed as dist
from torch.nn.parallel import DataParallel, DistributedDataParallel

from carn_da.utils.files import save_torch_atomic


def rng_state():
    """The random states of python, numpy, torch and the current CUDA device (if used), as types that
    ``torch.load(weights_only=True)`` reads."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': [name, keys.tolist(), pos, has_gauss, cached_gaussian],
        'torch': torch.get_rng_state()
    }
    if torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state):
    """Restore random states saved by ``rng_state`` (tensors may have been loaded onto a GPU)."""
    random.setstate(state['python'])
    name, keys, *rest = state['numpy']
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'].cpu())


def check_finite(loss_dict, current_iter):
    """Raise FloatingPointError naming the iteration and the losses if a loss is NaN or infinite."""
    if not all(torch.isfinite(loss).all() for loss in loss_dict.values()):
        losses = ', '.join(f'{name}: {loss.mean().item():.4g}' for name, loss in loss_dict.items())
        raise FloatingPointError(f'Iteration {current_iter}: non-finite loss ({losses}). Training stops before '
                                 'this step; nothing is saved after the last checkpoint.')


@MODEL_REGISTRY.register()
class CARNModel(SRModel):
    """Supervised training of a CARN on (JPEG, ground truth) pairs: BasicSR's SRModel, also on CPU under DDP.

    basicsr 1.4.2 wraps networks in DistributedDataParallel with ``device_ids=[torch.cuda.current_device()]``,
    which fails in a CPU (gloo) process group; here CPU networks are wrapped without device ids.

    For reliability: a NaN or infinite loss raises FloatingPointError before the optimizer step (``check_finite``);
    networks and training states are written atomically (``save_torch_atomic``; a failed write raises instead of being
    ignored as in BasicSR); the training state also holds the random states of every rank (``rng_state``), which
    ``carn_da.pipelines`` restores where the saved run stood, so that a resumed run continues exactly.

    ``train.intermediate_opt`` (a BasicSR loss, e.g. ``{type: MSELoss, loss_weight: 0.5}``) adds MemNet's
    multi-supervision (Tai et al. 2017): the loss averaged over the network's intermediate predictions, for
    networks that keep them (``keep_predictions``/``predictions``, as MemNet does).
    """

    def model_to_device(self, net):
        net = net.to(self.device)
        if self.opt['dist']:
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(
                net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
        elif self.opt['num_gpu'] > 1:
            net = DataParallel(net)
        return net

    def init_training_settings(self):
        super().init_training_settings()
        intermediate_opt = self.opt['train'].get('intermediate_opt')
        self.cri_intermediate = None
        if intermediate_opt:
            net = self.get_bare_model(self.net_g)
            if not hasattr(net, 'keep_predictions'):
                raise ValueError(f'train.intermediate_opt: {type(net).__name__} has no intermediate predictions '
                                 '(only multi-supervised networks such as MemNet have).')
            net.keep_predictions = True
            self.cri_intermediate = build_loss(intermediate_opt).to(self.device)

    def supervised_losses(self):
        """Losses of ``self.output`` against ``self.gt``: pixel, perceptual and intermediate, as configured."""
        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            loss_dict.update((k, v) for k, v in (('l_percep', l_percep), ('l_style', l_style)) if v is not None)
        if self.cri_intermediate:
            predictions = self.get_bare_model(self.net_g).predictions
            batch = len(self.gt)  # predictions may also cover inputs beyond the labelled batch (CARNDAModel)
            loss_dict['l_intermediate'] = sum(self.cri_intermediate(y[:batch], self.gt)
                                              for y in predictions) / len(predictions)
        return loss_dict

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        loss_dict = self.supervised_losses()
        check_finite(loss_dict, current_iter)
        sum(loss_dict.values()).backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def extra_training_state(self):
        """What a subclass adds to the training state to resume exactly (weights-only types)."""
        return {}

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's ``save_network`` (``models/<net_label>_<iter | latest>.pth``), written atomically."""
        nets, param_keys = (net, param_key) if isinstance(net, list) else ([net], [param_key])
        state = {
            key: {
                name.removeprefix('module.'): v.cpu()
                for name, v in self.get_bare_model(net_).state_dict().items()
            }
            for net_, key in zip(nets, param_keys, strict=True)
        }
        label = 'latest' if current_iter == -1 else current_iter
        save_torch_atomic(state, osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    def save_training_state(self, epoch, current_iter):
        """BasicSR's training state (epoch, iteration, optimizers, schedulers) plus ``rng``, the ``rng_state`` of
        every rank, written by rank 0 with ``save_torch_atomic`` to ``training_states/<iter>.state``."""
        if current_iter == -1:
            return
        rng = [rng_state()]
        if self.opt['dist']:
            gathered = [None] * self.opt['world_size'] if self.opt['rank'] == 0 else None
            dist.gather_object(rng[0], gathered, dst=0)
            rng = gathered
        if self.opt['rank'] == 0:
            state = {
                'epoch': epoch,
                'iter': current_iter,
                'optimizers': [o.state_dict() for o in self.optimizers],
                'schedulers': [s.state_dict() for s in self.schedulers],
                'rng': rng,
                **self.extra_training_state()
            }
            save_torch_atomic(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))
