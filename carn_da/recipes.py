"""The training recipes of carn-da as BasicSR option dicts: the one place where a recipe is written down.

A recipe takes the few things that vary (network, data, iterations, learning rate, batch) and returns the options
that ``carn_da/train.py`` (BasicSR's training pipeline) runs. Everything else that builds options (``carn-da
adapt``, the benchmarks, ``scripts/reproduce.py``, the demo, the tests) calls these functions and changes at most a
few keys; the YAML files in ``options/`` are what :func:`option_file` returns, checked by tests/test_recipes.py.

- :func:`sq`: supervised at one JPEG quality (SQ; eq. 2 on pairs of one QF), the source model of an adaptation;
- :func:`bq`: supervised on two qualities at once (BQ); :func:`blind`: a quality drawn per image (DnCNN-3, FBCNN);
- :func:`paper_da`: Ham et al.'s adaptation (eq. 2-7): source pairs, unlabelled target JPEGs, a quality
  discriminator Q on F's features and ``DomainAdversarialLoss`` with gradient reversal (:func:`with_discriminator`);
- :func:`recommended_da`: the study's winner (docs/RESULTS.md), a model for the target's quality: the source ground
  truths compressed at the target's quality plus self-supervision on the target JPEGs (:func:`with_self_supervision`);
- :func:`quality_expert`: the same without self-supervision (the expert made from a strong blind source);
- :func:`routed_pair`: the ``network_g`` of a ``QualityRoutedCARN`` that sends each image to the model for its quality.
"""
import copy
from dataclasses import dataclass
from os import path as osp

# network_g of each built-in backbone by size ('paper': options/, 'cpu': benchmarks, the CPU reproduction preset and
# the shipped models, 'medium': the study's scale step, the demo's 'demo'), and the channels of the features its
# default split gives the quality discriminator
BACKBONES = {
    'rdn': {
        'paper': ({
            'type': 'RDN',
            'num_feat': 64,
            'num_block': 16,
            'num_layer': 8,
            'growth': 64
        }, 64),
        'cpu': ({
            'type': 'RDN',
            'num_feat': 32,
            'num_block': 4,
            'num_layer': 4,
            'growth': 16
        }, 32),
        # the cpu preset twice as wide: 0.66 M parameters against 0.16 M
        'medium': ({
            'type': 'RDN',
            'num_feat': 64,
            'num_block': 4,
            'num_layer': 4,
            'growth': 32
        }, 64),
        'demo': ({
            'type': 'RDN',
            'num_feat': 16,
            'num_block': 4,
            'num_layer': 4,
            'growth': 16
        }, 16),
    },
    'dncnn': {
        'paper': ({
            'type': 'DnCNN',
            'num_feat': 64,
            'num_conv': 17,
            'split_at': 1
        }, 64),
        'cpu': ({
            'type': 'DnCNN',
            'num_feat': 32,
            'num_conv': 10
        }, 32),
        # DnCNN-3 as published (carn-da import): 20 convs, batch normalisation folded into them
        'published': ({
            'type': 'DnCNN',
            'num_feat': 64,
            'num_conv': 20,
            'batch_norm': False
        }, 64),
    },
    'arcnn': {
        'paper': ({
            'type': 'ARCNN',
            'split_at': 1
        }, 64),
        'cpu': ({
            'type': 'ARCNN'
        }, 64),
    },
    'memnet': {
        'paper': ({
            'type': 'MemNet',
            'num_feat': 64,
            'num_memblock': 6,
            'num_resblock': 6,
            'split_at': 'fenet'
        }, 64),
        'cpu': ({
            'type': 'MemNet',
            'num_feat': 32,
            'num_memblock': 3,
            'num_resblock': 2
        }, 32),
    },
}
L1 = {'type': 'L1Loss', 'loss_weight': 1.0}
# the negative PSNR of each crop, averaged: nearly clean crops count as much as blocky ones (PSNRLoss)
PSNR = {'type': 'PSNRLoss', 'loss_weight': 1.0, 'eps': 1e-5}
# the loss DnCNN and most published CNNs of the field were trained with (PSNR is a function of it)
MSE = {'type': 'MSELoss', 'loss_weight': 1.0}
PIXEL_LOSSES = {'l1': L1, 'mse': MSE, 'psnr': PSNR}
# supervised losses a backbone adds to eq. 2 (MemNet: the loss on each memory block's prediction, averaged)
BACKBONE_LOSSES = {'memnet': {'intermediate_opt': L1}}
# the validation metrics of every training (BasicSR's PSNR and SSIM, our PSNR-B), 8-bit, no border crop
VALIDATION_METRICS = {
    name: {
        'type': f'calculate_{name}',
        'crop_border': 0,
        'test_y_channel': False
    }
    for name in ('psnr', 'psnrb', 'ssim')
}


def unknown_size(backbone, size):
    """None when ``size`` is a preset of ``backbone`` in ``BACKBONES``, else the one-line error for ``--size``."""
    return None if size in BACKBONES[backbone] else f'--size {size}: {backbone} has {", ".join(BACKBONES[backbone])}'


def network(backbone, size='cpu', channels=1):
    """``network_g`` of a built-in backbone (``BACKBONES``) for images of ``channels`` (1: gray, 3: RGB)."""
    return {'num_in_ch': channels, 'num_out_ch': channels, **copy.deepcopy(BACKBONES[backbone][size][0])}


def quality_channels(backbone, size='cpu'):
    """Channels of the features the quality discriminator reads from a built-in backbone's F (default split)."""
    return BACKBONES[backbone][size][1]


def jpeg_pairs(name, gt, lq, patch, batch, io='disk', workers=0, enlarge=100):
    """A training set of (JPEG, ground truth) pairs (JPEGPairedDataset): random ``patch`` squares, flips and
    rotations. ``io``: BasicSR's io_backend type ('disk' or 'lmdb')."""
    return dict(
        test_pairs(name, gt, lq, io),
        gt_size=patch,
        use_hflip=True,
        use_rot=True,
        num_worker_per_gpu=workers,
        batch_size_per_gpu=batch,
        dataset_enlarge_ratio=enlarge)


def prepared_pairs(name, folder, qf, patch, batch, **kwargs):
    """:func:`jpeg_pairs` of a ``scripts/prepare_data.py`` folder: ``folder/gt`` with ``folder/qf<qf>``."""
    return jpeg_pairs(name, osp.join(folder, 'gt'), osp.join(folder, f'qf{qf}'), patch, batch, **kwargs)


def two_domains(pairs, target, **options):
    """The source ``pairs`` with unlabelled target images (TwoDomainDataset; ``options`` are its own, e.g.
    ``target_quality``, ``num_target``)."""
    return dict(pairs, type='TwoDomainDataset', dataroot_target=target, **options)


def test_pairs(name, gt, lq, io='disk'):
    """A validation or test set: whole (JPEG, ground truth) pairs."""
    return {'name': name, 'type': 'JPEGPairedDataset', 'dataroot_gt': gt, 'dataroot_lq': lq, 'io_backend': {'type': io}}


def schedule(iters, lr, milestones=None, betas=(0.9, 0.999), ema=0):
    """``train`` options: Adam at ``lr`` halved at each of ``milestones`` (default: at 3/4 of the run), ``iters``
    iterations, L1 on the source pairs (eq. 2); with ``ema`` > 0, BasicSR's moving average of the weights at that
    decay, which the checkpoints hold as ``params_ema`` and the project's loader prefers."""
    train = {
        'optim_g': adam(lr, betas),
        'scheduler': {
            'type': 'MultiStepLR',
            'milestones': [max(1, iters * 3 // 4)] if milestones is None else list(milestones),
            'gamma': 0.5
        },
        'total_iter': iters,
        'warmup_iter': -1,
        'pixel_opt': dict(L1)
    }
    if ema:
        train['ema_decay'] = ema
    return train


def cosine_schedule(iters, lr, betas=(0.9, 0.999)):
    """:func:`schedule` with ``lr`` annealed to 0 on one cosine period over the ``iters`` iterations (BasicSR's
    CosineAnnealingRestartLR) instead of halved at milestones."""
    cosine = {'type': 'CosineAnnealingRestartLR', 'periods': [iters], 'restart_weights': [1], 'eta_min': 0}
    return dict(schedule(iters, lr, betas=betas), scheduler=cosine)


def adam(lr, betas=(0.9, 0.999)):
    return {'type': 'Adam', 'lr': lr, 'betas': list(betas)}


def logger(print_freq, checkpoint_freq, tb_logger=True, progress_bar=False):
    """BasicSR's ``logger`` options; ``progress_bar``: also a progress bar with a time estimate, moved at each log
    (carn_da/pipelines.py)."""
    log = {'print_freq': print_freq, 'save_checkpoint_freq': checkpoint_freq, 'use_tb_logger': tb_logger}
    if progress_bar:
        log['progress_bar'] = True
    return log


def supervised(name, network_g, train_set, train, log, seed=0, num_gpu='auto', pretrain=None, val=None):
    """Options of a supervised training (CARNModel) of ``network_g`` on ``train_set``, starting from the checkpoint
    ``pretrain`` if given. ``val``: ({key: validation set}, validation frequency, progress bar) or None."""
    opt = {
        'name': name,
        'model_type': 'CARNModel',
        'num_gpu': num_gpu,
        'manual_seed': seed,
        'datasets': {
            'train': train_set
        },
        'network_g': network_g,
        'path': {
            'pretrain_network_g': pretrain,
            'strict_load_g': True,
            'resume_state': None
        },
        'train': train,
        'logger': log
    }
    if val is not None:
        val_sets, val_freq, pbar = val
        opt['datasets'].update(val_sets)
        opt['val'] = {
            'val_freq': val_freq,
            'save_img': False,
            'pbar': pbar,
            'metrics': copy.deepcopy(VALIDATION_METRICS)
        }
    return opt


def sq(name, network_g, pairs, train, log, **kwargs):
    """SQ: supervised on the (JPEG, ground truth) ``pairs`` of one quality (eq. 2). ``kwargs``: :func:`supervised`."""
    return supervised(name, network_g, pairs, train, log, **kwargs)


def bq(name, network_g, pairs, lqs, train, log, num_pairs=None, **kwargs):
    """BQ: the ground truths of ``pairs`` with their JPEGs at every quality of the folders ``lqs``; ``num_pairs``
    (one count per folder, drawn reproducibly) uses only part of each."""
    train_set = {k: v for k, v in pairs.items() if k != 'dataroot_lq'}
    train_set['dataroot_lqs'] = list(lqs)
    if num_pairs is not None:
        train_set.update(num_pairs=list(num_pairs), subset_seed=0)
    return supervised(name, network_g, train_set, train, log, **kwargs)


def blind(name, network_g, pairs, train, log, qualities=(10, 90), degradations=None, **kwargs):
    """Blind: the ground truths of ``pairs`` compressed at a quality drawn uniformly from ``qualities`` per image,
    with OpenCV (as DnCNN-3 and FBCNN are trained); ``degradations``: JPEGPairedDataset's ``resave_prob``,
    ``resize_prob``, ``clean_prob`` (:data:`REAL_WORLD`: what the shipped blind model learns)."""
    train_set = {k: v for k, v in pairs.items() if k != 'dataroot_lq'}
    train_set.update(jpeg_range=list(qualities), **(degradations or {}))
    return supervised(name, network_g, train_set, train, log, **kwargs)


# the real-world JPEGs a blind model also learns (a share of its images each): saved twice, resized after
# compression, never compressed (JPEGPairedDataset)
REAL_WORLD = {'resave_prob': 0.1, 'resize_prob': 0.2, 'clean_prob': 0.05}


def adaptation(name, network_g, train_set, train, log, source_model, **kwargs):
    """The start of every adaptation: CARNDAModel from the ``source_model`` checkpoint on a TwoDomainDataset. On
    its own it is source-only fine-tuning; the ``with_*`` functions add what learns from the target."""
    return dict(
        supervised(name, network_g, train_set, train, log, pretrain=source_model, **kwargs), model_type='CARNDAModel')


def with_discriminator(opt, network_q, lambda_=0.1, lr=None, q_steps=None, **domain):
    """Add the paper's adversary: Q (``network_q``, Adam at ``lr``, default optim_g's) learns to tell source from
    target features (eq. 3) while F learns to fool it through gradient reversal, weighted by ``lambda_`` (eq. 7);
    ``domain``: DomainAdversarialLoss's other options (``schedule``). ``q_steps``: Q steps per step of F and D."""
    opt['network_q'] = network_q
    opt['train']['optim_q'] = adam(opt['train']['optim_g']['lr'] if lr is None else lr)
    opt['train']['domain_opt'] = {'type': 'DomainAdversarialLoss', 'loss_weight': lambda_, **domain}
    if q_steps is not None:
        opt['train']['q_steps'] = q_steps
    return opt


def with_q_warmup(opt, iters, accuracy=None):
    """Start with ``iters`` iterations of Q learning alone on F's frozen features (or fewer, once its smoothed
    accuracy reaches ``accuracy``), so that F adapts against a discriminator that tells the domains apart."""
    opt['train']['q_warmup_iters'] = iters
    if accuracy is not None:
        opt['train']['q_warmup_accuracy'] = accuracy
    return opt


def discriminator(num_feat, hidden=128, pooling='avg', kind='QualityDiscriminator', **options):
    """``network_q``: 3 fully connected layers on pooled features (the paper's), or ``kind``
    ``PatchQualityDiscriminator`` or ``BlockDCTQualityDiscriminator`` (``pooling`` None)."""
    return {
        'type': kind,
        'num_feat': num_feat,
        'hidden': hidden,
        **({
            'pooling': pooling
        } if pooling else {}),
        **options
    }


def with_self_supervision(opt, weight=1.0):
    """Add target self-supervision: each target crop, recompressed at its own quality on a shifted 8x8 grid, is
    restored back to the decoded target crop (``train.target_opt``, L1 at ``weight``)."""
    opt['datasets']['train']['target_self_supervision'] = True
    opt['train']['target_opt'] = dict(L1, loss_weight=weight)
    return opt


def with_target_quality(opt, source_quality='target', target_quality='pixels', synth_probability=None):
    """Compress source ground truths at the target's quality: ``source_quality`` 'target' (every pair; no source
    JPEGs are read) or 'both' (a share ``synth_probability``); ``target_quality``: where a target's QF comes from
    ('pixels': estimated, 'file': its quantisation table)."""
    train_set = opt['datasets']['train']
    train_set.update(target_quality=target_quality, source_quality=source_quality)
    if synth_probability is not None:
        train_set['synth_probability'] = synth_probability
    if source_quality == 'target':
        del train_set['dataroot_lq']
    return opt


def paper_da(name, network_g, train_set, train, log, source_model, network_q, lambda_=0.1, domain=None, **kwargs):
    """Ham et al.'s DA: :func:`adaptation` :func:`with_discriminator` ``network_q`` at weight ``lambda_``
    (``domain``: DomainAdversarialLoss's other options)."""
    opt = adaptation(name, network_g, train_set, train, log, source_model, **kwargs)
    return with_discriminator(opt, network_q, lambda_, **(domain or {}))


def recommended_da(name, network_g, train_set, train, log, source_model, target_quality='pixels', **kwargs):
    """The study's recommendation, a target expert: every source ground truth compressed at the quality of a target
    image, plus target self-supervision; no discriminator (docs/RESULTS.md)."""
    opt = adaptation(name, network_g, train_set, train, log, source_model, **kwargs)
    return with_self_supervision(with_target_quality(opt, 'target', target_quality))


def quality_expert(name, network_g, train_set, train, log, source_model, target_quality='file', **kwargs):
    """A target expert without self-supervision: the ``source_model`` fine-tuned (CARNModel, eq. 2) on the source
    ground truths compressed at the quality of a random target image (``target_quality``: 'file' or 'pixels'), e.g.
    to adapt a strong blind model such as DnCNN-3, whose outputs self-supervision pulls towards the JPEG."""
    opt = supervised(name, network_g, train_set, train, log, pretrain=source_model, **kwargs)
    return with_target_quality(opt, 'target', target_quality)


def routed_pair(experts, unknown=None):
    """``network_g`` of a QualityRoutedCARN: ``experts`` are (network_g, JPEG qualities) pairs, in order; qualities
    None makes that expert the fallback, the model for every other quality (e.g. a blind source model); ``unknown``:
    where an image of unknown quality goes (default: the arch's, unchanged)."""
    network = {'type': 'QualityRoutedCARN', 'experts': [routed_expert(*expert) for expert in experts]}
    return network if unknown is None else dict(network, unknown=unknown)


def routed_expert(network_g, qualities):
    role = {'fallback': True} if qualities is None else {'qualities': list(qualities)}
    return {'network': copy.deepcopy(network_g), **role}


@dataclass(frozen=True)
class Setting:
    """What an option file in ``options/`` fixes besides its recipe: data, sizes, lengths, logging."""
    size: str = 'paper'  # of BACKBONES
    train: str = 'datasets/DIV2K_train_gray_x4'  # a scripts/prepare_data.py folder: gt and qf<Q>, with ``ext``
    train_name: str = 'DIV2K_train_gray_x4'  # the training set's name in logs
    ext: str = '.lmdb'  # '.lmdb': LMDBs, '': folders
    # validation sets, (name, scripts/prepare_data.py folder) pairs; (): no validation
    tests: tuple = (('DIV2K_valid', 'datasets/DIV2K_valid_gray_x4'), ('BSD68', 'datasets/BSD68'), ('Set12',
                                                                                                   'datasets/Set12'))
    patch: int = 64
    batch: int = 16  # source pairs per step (the recommended recipe: half, plus as many target crops)
    workers: int = 6
    enlarge: int = 100
    iters: tuple = (300000, 100000)  # supervised, adaptation
    milestones: tuple = ((1 / 3, 2 / 3), (1 / 2, ))  # of each, as fractions of the run
    lr: tuple = (1e-4, 1e-4, 2e-4)  # supervised, paper DA, recommended DA
    q_hidden: int = 256  # the paper gives no width of Q
    q_pooling: str = 'avg'
    seeded: bool = False  # seed each training from its qualities (SQ: the QF; DA: 100 * source + target); else 0
    val_freq: float = 5e3  # None: once, at the end
    pbar: bool = True
    log: tuple = (100, 5e3)  # print and checkpoint frequency; None: the checkpoint at half and at the end
    subsets: bool = True  # name TwoDomainDataset's num_source / num_target (Table 2); BQ takes half at each QF
    images: int = 800  # training images (DIV2K train)
    prefix: str = ''  # of the experiment names: '' gives RDN_SQ_QF10, 'demo_' demo_rdn_sq_qf10

    def name(self, backbone, kind, source, target=None):
        if kind == 'sq':
            stem = f'{backbone}_sq_qf{source}'
        else:
            stem = f'{backbone}_{kind}' if kind == 'bq' else f'{backbone}_da_{direction(source, target)}'
            stem += '_recommended' if kind == 'recommended' else ''
        return f'{self.prefix}{stem}' if self.prefix else stem.upper()


# the demo's setting (make demo): photos that scikit-image ships, a small RDN, minutes on 2 CPU cores
DEMO = Setting(
    size='demo',
    train='datasets/demo/train',
    train_name='demo_train',
    ext='',
    tests=(('demo_test', 'datasets/demo/test'), ),
    patch=48,
    batch=8,
    workers=0,
    enlarge=50,
    iters=(400, 200),
    milestones=((3 / 4, ), (3 / 4, )),
    lr=(5e-4, 1e-4, 1e-3),
    q_hidden=64,
    q_pooling='avgstd',
    seeded=True,
    val_freq=None,
    pbar=False,
    log=(50, None),
    subsets=False,
    prefix='demo_')
PAPER = Setting()


def direction(source, target):
    return 'lq2hq' if source < target else 'hq2lq'


def option_file(kind, backbone='rdn', source=10, target=70, setting=PAPER):
    """The options of ``options/`` (``setting`` PAPER) and ``options/demo`` (DEMO): ``kind`` 'sq' (at ``source``),
    'bq' (both), 'da' (the paper's, ``source`` -> ``target``) or 'recommended'."""
    s = setting
    supervised_kind = kind in ('sq', 'bq')
    iters = s.iters[0 if supervised_kind else 1]
    milestones = [round(iters * f) for f in s.milestones[0 if supervised_kind else 1]]
    lr = s.lr[{'sq': 0, 'bq': 0, 'da': 1, 'recommended': 2}[kind]]
    data = {qf: osp.join(s.train, f'qf{qf}{s.ext}') for qf in (source, target)}
    gt, io = osp.join(s.train, f'gt{s.ext}'), 'lmdb' if s.ext == '.lmdb' else 'disk'
    batch = s.batch // 2 if kind == 'recommended' else s.batch
    train_name = f'{s.train_name}_qf{source}'
    pairs = jpeg_pairs(train_name, gt, data[source], s.patch, batch, io, s.workers, s.enlarge)
    val_qfs = [source, target] if kind == 'bq' else [source if kind == 'sq' else target]
    val = (validation_sets(s.tests, val_qfs), s.val_freq or iters, s.pbar) if s.tests else None
    log = logger(s.log[0], s.log[1] or iters // 2)
    seed = (source if kind == 'sq' else 100 * source + target) if s.seeded else 0
    name, net = s.name(backbone, kind, source, target), network(backbone, s.size)
    common = dict(seed=seed, val=val)
    train = dict(schedule(iters, lr, milestones), **copy.deepcopy(BACKBONE_LOSSES.get(backbone, {})))
    if kind == 'sq':
        return sq(name, net, pairs, train, log, **common)
    if kind == 'bq':
        pairs['name'] = f'{s.train_name}_qf{source}_qf{target}'
        halves = [s.images // 2] * 2 if s.subsets else None
        return bq(name, net, pairs, [data[source], data[target]], train, log, halves, **common)
    pairs['name'] = f'{train_name}_to_qf{target}'
    train_set = two_domains(pairs, data[target],
                            **({
                                'num_source': None,
                                'num_target': None,
                                'subset_seed': 0
                            } if s.subsets else {}))
    source_model = f'experiments/{s.name(backbone, "sq", source)}/models/net_g_latest.pth'
    if kind == 'recommended':
        return recommended_da(name, net, train_set, train, log, source_model, **common)
    q = discriminator(quality_channels(backbone, s.size), s.q_hidden, s.q_pooling)
    return paper_da(name, net, train_set, train, log, source_model, q, domain={'schedule': 'constant'}, **common)


def test_file(backbone='rdn', qf=10, setting=PAPER):
    """The options of ``options/test_<backbone>_sq_qf<qf>.yml``: BasicSR's test pipeline on the SQ model."""
    name = setting.name(backbone, 'sq', qf)
    opt = evaluation(f'test_{name}', network(backbone, setting.size), f'experiments/{name}/models/net_g_latest.pth',
                     validation_sets(setting.tests, [qf]), setting.pbar)
    opt['datasets'] = {key.replace('val', 'test'): value for key, value in opt['datasets'].items()}
    return opt


def evaluation(name, network_g, checkpoint, test_sets, pbar=True):
    """Options of BasicSR's test pipeline (``carn_da/test.py``): ``network_g`` with the ``params`` of
    ``checkpoint`` on ``test_sets`` ({key: set}), scored with ``VALIDATION_METRICS``."""
    return {
        'name': name,
        'model_type': 'CARNModel',
        'num_gpu': 'auto',
        'manual_seed': 0,
        'datasets': test_sets,
        'network_g': network_g,
        'path': {
            'pretrain_network_g': checkpoint,
            'strict_load_g': True,
            'param_key_g': 'params'
        },
        'val': {
            'save_img': False,
            'pbar': pbar,
            'metrics': copy.deepcopy(VALIDATION_METRICS)
        }
    }


def validation_sets(tests, qfs):
    """{key: test set} of every (name, prepared folder) of ``tests`` at every JPEG quality of ``qfs``."""
    sets = [
        test_pairs(f'{name}_qf{qf}', osp.join(folder, 'gt'), osp.join(folder, f'qf{qf}')) for qf in qfs
        for name, folder in tests
    ]
    if len(qfs) == 1:
        return {f'val_{i}': v for i, v in enumerate(sets, 1)}
    return {f'val_{"ab"[i // len(tests)]}{i % len(tests) + 1}': v for i, v in enumerate(sets)}
