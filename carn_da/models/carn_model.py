import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY
from collections import OrderedDict
from torch.nn.parallel import DataParallel, DistributedDataParallel


@MODEL_REGISTRY.register()
class CARNModel(SRModel):
    """Supervised training of a CARN on (JPEG, ground truth) pairs: BasicSR's SRModel, also on CPU under DDP.

    basicsr 1.4.2 wraps networks in DistributedDataParallel with ``device_ids=[torch.cuda.current_device()]``,
    which fails in a CPU (gloo) process group; here CPU networks are wrapped without device ids.

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
            loss_dict['l_intermediate'] = sum(self.cri_intermediate(y, self.gt) for y in predictions) / len(predictions)
        return loss_dict

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        loss_dict = self.supervised_losses()
        sum(loss_dict.values()).backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
