import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.utils.registry import MODEL_REGISTRY

from carn_da.archs.splittable import require_splittable
from carn_da.models.carn_model import CARNModel, check_finite


@MODEL_REGISTRY.register()
class CARNDAModel(CARNModel):
    """Domain-adaptive fine-tuning of a CARN across JPEG quality (Ham, Yoo, Kang, SPIE 11842, 2021, sec. 3).

    ``network_g`` is a split CARN (F = ``extract``, D = ``restore``), ``network_q`` the quality discriminator Q.
    Each step, F encodes the source batch and the target batch in one pass (``net_g(lq, lq_target)``, so that
    DistributedDataParallel sees the whole step); D restores the source batch only and
    is trained by the pixel loss against the source ground truth (eq. 2); Q and, through gradient reversal, F are
    trained by the domain loss (eq. 3, ``DomainAdversarialLoss``). One backward, then ``optim_g`` steps F and D and
    ``optim_q`` steps Q: the min over F, D and max over Q of ``L1_source - lambda * L_Q``. Target images have no
    ground truth and never pass through D.

    Inference is plain ``net_g`` (Q is dropped), so validation, testing and the saved ``net_g`` are the same as
    for :class:`CARNModel`. ``net_q`` is saved beside it and restored on resume with both optimizers and
    schedulers.

    Options: ``network_g``, ``network_q``; ``path.pretrain_network_g`` (the source-trained model, as in the paper),
    ``path.pretrain_network_q``; ``train.pixel_opt``, ``train.intermediate_opt`` (MemNet), ``train.domain_opt``,
    ``train.optim_g``, ``train.optim_q``, ``train.scheduler``. Batches carry ``lq``, ``gt`` (source) and
    ``lq_target`` (target), e.g. from ``TwoDomainDataset``.
    """

    def init_training_settings(self):
        require_splittable(self.get_bare_model(self.net_g))
        train_opt = self.opt['train']
        if self.opt.get('network_q') is None or train_opt.get('domain_opt') is None:
            raise ValueError('CARNDAModel needs the options network_q and train.domain_opt.')
        self.net_q = self.model_to_device(build_network(self.opt['network_q']))
        self.print_network(self.net_q)
        load_path = self.opt['path'].get('pretrain_network_q')
        if load_path is not None:
            self.load_network(self.net_q, load_path, self.opt['path'].get('strict_load_q', True), 'params')
        self.net_q.train()
        self.cri_domain = build_loss(train_opt['domain_opt']).to(self.device)
        super().init_training_settings()

    def setup_optimizers(self):
        super().setup_optimizers()
        optim_opt = dict(self.opt['train']['optim_q'])
        optim_type = optim_opt.pop('type')
        self.optimizer_q = self.get_optimizer(optim_type, self.net_q.parameters(), **optim_opt)
        self.optimizers.append(self.optimizer_q)

    def feed_data(self, data):
        super().feed_data(data)
        if 'lq_target' in data:
            self.lq_target = data['lq_target'].to(self.device)

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        self.optimizer_q.zero_grad()
        # one forward of the (possibly DDP-wrapped) network: F over both batches, D over the source batch only
        self.output, q_source, q_target = self.net_g(self.lq, self.lq_target)

        loss_dict = self.supervised_losses()  # eq. 2: the source batch only
        progress = current_iter / self.opt['train']['total_iter']
        loss_dict['l_domain'] = self.cri_domain(self.net_q, q_source, q_target, progress)
        check_finite(loss_dict, current_iter)
        sum(loss_dict.values()).backward()
        self.optimizer_g.step()
        self.optimizer_q.step()

        loss_dict['acc_q'] = torch.tensor(self.cri_domain.accuracy, device=self.device)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        self.log_dict['lambda'] = self.cri_domain.weight
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def save(self, epoch, current_iter):
        if hasattr(self, 'net_q'):
            self.save_network(self.net_q, 'net_q', current_iter)
        super().save(epoch, current_iter)
