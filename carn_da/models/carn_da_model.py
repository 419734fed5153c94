import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.utils.registry import MODEL_REGISTRY

from carn_da.archs.splittable import require_splittable
from carn_da.models.carn_model import CARNModel, check_finite

ACCURACY_EMA = 0.9  # smoothing of Q's warm-up accuracy (about the last 10 steps) for q_warmup_accuracy


@MODEL_REGISTRY.register()
class CARNDAModel(CARNModel):
    """Domain-adaptive fine-tuning of a CARN across JPEG quality (Ham, Yoo, Kang, SPIE 11842, 2021, sec. 3), and the
    alternatives of the study beyond the paper, as options of one training step.

    ``network_g`` is a split CARN (F = ``extract``, D = ``restore``; any generator for self-supervision alone).
    Each step, F encodes the source batch and the target batch in one pass (``net_g(lq, lq_target)``, so that
    DistributedDataParallel sees the whole step); D restores the source batch only and is trained by the pixel loss
    against the source ground truth (eq. 2). Then, each where configured:

    - ``train.domain_opt`` (the paper, e.g. ``DomainAdversarialLoss``): Q (``network_q``) and, through gradient
      reversal, F are trained by the domain loss (eq. 3): the min over F, D and max over Q of
      ``L1_source - lambda * L_Q``; ``optim_q`` steps Q, ``train.q_steps`` times per step of F and D (default 1; the
      extra steps train Q alone on the step's features, detached);
    - ``train.align_opt`` (``MMDLoss``, ``CORALLoss``): a statistical distance between F's source and target
      features, minimised by F;
    - ``train.target_opt`` (a pixel loss such as ``L1Loss``): target self-supervision; ``lq_target_self`` (the
      target recompressed on a shifted grid, from ``TwoDomainDataset``) joins the source batch through F and D and
      is restored towards ``lq_target``.

    One backward, then the optimizers step. Target images have no ground truth: D only ever sees a target image
    as the input of self-supervision, whose goal is the decoded target JPEG itself.

    Q warm-up (``train.q_warmup_iters``, with ``domain_opt``): the run starts with Q learning alone to tell source
    from target features (eq. 3, unweighted; F and D frozen, their features computed without gradients), so that the
    adversary has learnt to see quality before F is asked to fool it. It ends after ``q_warmup_iters`` iterations, or
    earlier once Q's accuracy (smoothed over about 10 steps) reaches ``train.q_warmup_accuracy``; the iteration it
    ended at is kept in the training state. Warm-up iterations count in ``total_iter`` and in the schedulers; the log
    shows ``l_q_warmup`` and ``acc_q`` during the warm-up.

    Inference is plain ``net_g`` (Q is dropped), so validation, testing and the saved ``net_g`` are the same as
    for :class:`CARNModel`. ``net_q`` is saved beside it and restored on resume with both optimizers and
    schedulers.

    Options: ``network_g``, ``network_q`` (with ``domain_opt``); ``path.pretrain_network_g`` (the source-trained
    model, as in the paper), ``path.pretrain_network_q``; ``train.pixel_opt``, ``train.intermediate_opt`` (MemNet),
    ``train.domain_opt``, ``train.align_opt``, ``train.target_opt`` (at least one of these three), ``train.q_steps``,
    ``train.q_warmup_iters``, ``train.q_warmup_accuracy``,
    ``train.optim_g``, ``train.optim_q``, ``train.scheduler``. Batches carry ``lq``, ``gt`` (source), ``lq_target``
    (target) and, for self-supervision, ``lq_target_self``, e.g. from ``TwoDomainDataset``.
    """

    def init_training_settings(self):
        train_opt = self.opt['train']
        losses = {key: train_opt.get(key) for key in ('domain_opt', 'align_opt', 'target_opt')}
        if not any(losses.values()):
            raise ValueError('CARNDAModel needs at least one of train.domain_opt, train.align_opt, train.target_opt.')
        if losses['domain_opt'] or losses['align_opt']:  # they read F's features; self-supervision works on any net
            require_splittable(self.get_bare_model(self.net_g))
        self.cri_domain, self.cri_align, self.cri_target = (None if opt is None else build_loss(opt).to(self.device)
                                                            for opt in losses.values())
        self.net_q = None
        self.q_steps = train_opt.get('q_steps', 1)
        if not isinstance(self.q_steps, int) or self.q_steps < 1:
            raise ValueError(f'train.q_steps must be an integer >= 1, got {self.q_steps!r}.')
        self.init_q_warmup(train_opt, losses['domain_opt'] is not None)
        if self.cri_domain is not None:
            if self.opt.get('network_q') is None:
                raise ValueError('CARNDAModel: train.domain_opt needs network_q (the quality discriminator).')
            self.net_q = self.model_to_device(build_network(self.opt['network_q']))
            self.print_network(self.net_q)
            load_path = self.opt['path'].get('pretrain_network_q')
            if load_path is not None:
                self.load_network(self.net_q, load_path, self.opt['path'].get('strict_load_q', True), 'params')
            self.net_q.train()
        super().init_training_settings()

    def init_q_warmup(self, train_opt, adversarial):
        self.q_warmup_iters = train_opt.get('q_warmup_iters', 0)
        if isinstance(self.q_warmup_iters, bool) or not isinstance(self.q_warmup_iters, int) or self.q_warmup_iters < 0:
            raise ValueError(f'train.q_warmup_iters must be an integer >= 0, got {self.q_warmup_iters!r}.')
        if self.q_warmup_iters and not adversarial:
            raise ValueError('train.q_warmup_iters warms up the quality discriminator: it needs train.domain_opt.')
        self.q_warmup_accuracy = train_opt.get('q_warmup_accuracy')
        if self.q_warmup_accuracy is not None and not (isinstance(self.q_warmup_accuracy,
                                                                  (int, float)) and 0.5 < self.q_warmup_accuracy <= 1):
            raise ValueError(f'train.q_warmup_accuracy must be a number in (0.5, 1], got {self.q_warmup_accuracy!r}.')
        self.q_warmup_end = None if self.q_warmup_iters else 0  # the iteration the warm-up ended at
        self.q_accuracy_ema = 0.5

    def setup_optimizers(self):
        super().setup_optimizers()
        if self.net_q is not None:
            optim_opt = dict(self.opt['train']['optim_q'])
            optim_type = optim_opt.pop('type')
            self.optimizer_q = self.get_optimizer(optim_type, self.net_q.parameters(), **optim_opt)
            self.optimizers.append(self.optimizer_q)

    def feed_data(self, data):
        super().feed_data(data)
        for key in ('lq_target', 'lq_target_self'):
            if key in data:
                setattr(self, key, data[key].to(self.device))

    def warm_up_q(self, current_iter):
        """One warm-up step: Q alone learns to tell F's source features from its target features."""
        bare = self.get_bare_model(self.net_g)
        with torch.no_grad():
            feat_source, feat_target = map(bare.quality_feature, bare.extract_domains(self.lq, self.lq_target))
        self.optimizer_q.zero_grad()
        loss_dict = {'l_q_warmup': self.cri_domain.discriminator_loss(self.net_q, feat_source, feat_target)}
        check_finite(loss_dict, current_iter)
        loss_dict['l_q_warmup'].backward()
        self.optimizer_q.step()
        loss_dict['acc_q'] = torch.tensor(self.cri_domain.accuracy, device=self.device)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        accuracy = loss_dict['acc_q'].clone()
        if self.opt['dist']:  # every rank must end the warm-up at the same iteration
            torch.distributed.all_reduce(accuracy)
            accuracy /= self.opt['world_size']
        self.q_accuracy_ema = ACCURACY_EMA * self.q_accuracy_ema + (1 - ACCURACY_EMA) * accuracy.item()
        reached = self.q_warmup_accuracy is not None and self.q_accuracy_ema >= self.q_warmup_accuracy
        if reached or current_iter >= self.q_warmup_iters:
            self.q_warmup_end = current_iter

    def optimize_parameters(self, current_iter):
        if self.q_warmup_end is None:
            return self.warm_up_q(current_iter)
        optimizers = [self.optimizer_g] + ([self.optimizer_q] if self.net_q is not None else [])
        for optimizer in optimizers:
            optimizer.zero_grad()
        batch = len(self.lq)
        inputs = self.lq if self.cri_target is None else torch.cat([self.lq, self.lq_target_self])
        # one forward of the (possibly DDP-wrapped) network: F over all batches, D over the source (and recompressed
        # target) batch
        if self.cri_domain is None and self.cri_align is None:
            restored = self.net_g(inputs)
        else:
            restored, feat_source, feat_target = self.net_g(inputs, self.lq_target)
            feat_source = feat_source[:batch]
        self.output = restored[:batch]

        loss_dict = self.supervised_losses()  # eq. 2: the source batch only
        if self.cri_target is not None:
            loss_dict['l_target'] = self.cri_target(restored[batch:], self.lq_target)
        if self.cri_domain is not None:
            progress = current_iter / self.opt['train']['total_iter']
            loss_dict['l_domain'] = self.cri_domain(self.net_q, feat_source, feat_target, progress)
        if self.cri_align is not None:
            loss_dict['l_align'] = self.cri_align(feat_source, feat_target)
        check_finite(loss_dict, current_iter)
        sum(loss_dict.values()).backward()
        for optimizer in optimizers:
            optimizer.step()
        if self.cri_domain is not None:
            for _ in range(self.q_steps - 1):
                self.optimizer_q.zero_grad()
                self.cri_domain(self.net_q, feat_source.detach(), feat_target.detach(), progress).backward()
                self.optimizer_q.step()

        if self.cri_domain is not None:
            loss_dict['acc_q'] = torch.tensor(self.cri_domain.accuracy, device=self.device)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.cri_domain is not None:
            self.log_dict['lambda'] = self.cri_domain.weight
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def extra_training_state(self):
        return {'q_warmup_end': self.q_warmup_end, 'q_accuracy_ema': self.q_accuracy_ema}

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if 'q_warmup_end' in resume_state:
            self.q_warmup_end, self.q_accuracy_ema = resume_state['q_warmup_end'], resume_state['q_accuracy_ema']

    def save(self, epoch, current_iter):
        if getattr(self, 'net_q', None) is not None:
            self.save_network(self.net_q, 'net_q', current_iter)
        super().save(epoch, current_iter)
