"""Domain adaptation across JPEG quality at CPU scale: how much of the DQ -> SQ gap does each recipe recover?

For each direction (LQ->HQ: source QF 10, target QF 70; HQ->LQ: 70 -> 10) a small RDN is trained on the source QF
(SQ of the source, whose score on the target QF is DQ) and on the target QF (SQ of the target, the oracle). Every
variant (``VARIANTS``: options of CARNModel / CARNDAModel, TwoDomainDataset and the registered discriminators and
losses, never a fork of the training loop) then starts from the same source checkpoint with the same seed and runs
the same number of iterations through BasicSR's pipeline (carn_da/train.py, options from carn_da/recipes.py). Two
peers are trained from scratch for the whole budget (source + adaptation iterations) on the same images: BQ (both
QFs supervised) and a blind model (QFs drawn uniformly from 10-90 per image, as DnCNN-3 and FBCNN are trained).

Tracks: ``pixels`` variants know the target only as decoded images (its QF, where needed, is estimated from the
pixels, ``carn_da.utils.jpeg.estimate_quality``); ``files`` variants read it from the JPEG headers. No variant reads a
target ground truth. Where the QF read from every target file is the one estimated from its pixels, a files variant
draws the same batches as its pixels twin, and the twin's model (trained once, deterministically) is taken for both.

Variants marked ``routed`` get a second row: the variant routed with the source model (``QualityRoutedCARN``: each
test image goes to the model of the quality nearest the one estimated from its pixels), scored like the others
(where it sends every image of a test set to one model, its restorations are that model's: their scores are taken).

Reported per direction, on BSD68 and Set12 at the target QF: PSNR, PSNR-B, SSIM, the gap recovery
(PSNR_variant - PSNR_DQ) / (PSNR_SQ - PSNR_DQ), the PSNR on the source QF (on the first ``--source-limit`` BSD68 test
images) and its change from the source model (forgetting), the discriminator's accuracy (at the end of its warm-up,
if any; its mean over the adaptation and over the adaptation's last tenth), and the time of one adaptation step
relative to a source-only step (measured in one process on random batches; it depends only on the model, network,
loss and optimiser options and the batch shape, so it is measured once for both directions and for a files twin).
Plots: gap recovery per variant (``gap_<direction>.png``), the PSNR at the target QF on the first ``--curve-limit``
Set12 images against adaptation iterations for the ``curve`` variants (``curve_<direction>.png``) and Q's accuracy
against iterations, warm-up included (``q_<direction>.png``).
Data: Train400 for training, BSD68 and Set12 for testing, from ../shared/datasets.

    OMP_NUM_THREADS=1 python benchmarks/da_study.py --test-limit 12 --jobs 2   # the default grid, two jobs at a time
    python benchmarks/da_study.py --source-iters 30 --adapt-iters 12 --test-limit 2 --prefix smoke   # smoke run

Trainings, scores and step-time ratios are kept (experiments/, ``<out>/scores_cache.json``): a rerun computes only
what is new, and a training killed midway resumes from its last saved state.
"""
import carn_da.compat  # noqa: F401

import argparse
import copy
import cv2
import functools
import json
import numpy as np
import os
import platform
import re
import subprocess
import sys
import threading
import time
import torch
from basicsr.archs import build_network
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from matplotlib.figure import Figure
from os import path as osp

from carn_da import recipes
from carn_da.runs import experiment_dir, latest_generator, train_unless_done, warmed_up_model
from carn_da.utils.checkpoint import load_network, routed_state
from carn_da.utils.device import choose_device
from carn_da.utils.files import save_torch_atomic
from carn_da.utils.jpeg import estimate_quality, read_quality
from carn_da.utils.logs import logged_values
from carn_da.utils.scores import evaluate_pairs, load_pairs, markdown_table, mean_scores

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))  # the checkout: experiments/ and tb_logger/ go there
DIRECTIONS = {'lq2hq': (10, 70), 'hq2lq': (70, 10)}
TEST_SETS = ('BSD68', 'Set12')
# recipes.discriminator's options of the two kinds of Q: the paper's (3 layers on average-pooled features) and a
# convolutional patch Q (a logit per position)
PAPER_Q = {'hidden': 128}
PATCH_Q = {'kind': 'PatchQualityDiscriminator', 'hidden': 32, 'pooling': None}
# a Q that can see compression: the log spectrum of the 8x8 block DCT of F's features (benchmarks/q_alone.py: alone on
# frozen features it tells QF 10 from 70 apart where the two above stay at chance)
BLOCK_DCT_Q = {'kind': 'BlockDCTQualityDiscriminator', 'hidden': 128, 'pooling': None}
CURVE_POINTS = 3  # checkpoints per adaptation of a ``curve`` variant, scored for the PSNR-against-iterations plot
SCORING_DEVICE = choose_device('auto')  # CUDA where there is one; the trainings pick theirs through num_gpu: auto


def adversary(lambda_=0.1, q=PAPER_Q, q_steps=1, **options):
    """``Variant.adversary``: Q of ``q`` (recipes.discriminator's options) against F at weight ``lambda_``, ``q_steps``
    Q steps per step of F and D; ``options``: recipes.with_discriminator's others (``lr``: Q's, ``schedule``)."""
    return dict(options, q=q, lambda_=lambda_, q_steps=q_steps)


@dataclass(frozen=True)
class Variant:
    """An adaptation of the study (see :func:`adaptation`): the source model fine-tuned for --adapt-iters on its
    source pairs (the control) plus what the fields add; a field left at its default adds nothing."""
    text: str  # what it is, for the report
    adversary: dict = None  # the paper's adversary (recipes.with_discriminator): :func:`adversary`'s arguments
    align: str = None  # train.align_opt: this loss (weight 1) between F's source and target features, no Q
    self_supervised: bool = False  # target self-supervision (recipes.with_self_supervision)
    target_quality: str = None  # where a target's QF comes from ('pixels': estimated, 'file': its header)
    # recipes.with_target_quality: source ground truths compressed at the target's QF ('both': a share
    # ``synth_probability`` of the pairs, default half; 'target': every pair)
    source_quality: str = None
    synth_probability: float = None
    split_at: object = None  # where F ends in network_g (RDN: 'sfe1', a dense block's number; default SFENet2)
    batch: int = None  # source (and target) crops per step (default --batch)
    lr: float = None  # optim_g's (default --adapt-lr)
    cosine: bool = False  # anneal lr to 0 over the adaptation (recipes.cosine_schedule) instead of halving it at 3/4
    seed: int = 0  # added to the variants' seed (--seed + 1)
    track: str = 'pixels'  # what it knows of the target: 'pixels' (decoded images), 'files' (their JPEG headers)
    routed: bool = False  # also score it routed with the source model (QualityRoutedCARN)
    curve: bool = False  # in the curve plot
    explore: bool = False  # left out of the default grid (steps towards the recommendation and checks of it)
    q_warmup: tuple = None  # (iterations, accuracy): Q learns alone first (recipes.with_q_warmup)
    grid_aligned: bool = False  # crops on the 8x8 JPEG grid (source and target), where a block-aware Q reads them
    twin: str = None  # the pixels variant a files variant is the twin of (see files_twin)

    @property
    def learns_from_target(self):
        """Whether a loss reads the target (CARNDAModel); else the target is data only (CARNModel)."""
        return bool(self.adversary or self.align or self.self_supervised)

    @property
    def reads_target(self):
        return self.learns_from_target or bool(self.source_quality or self.target_quality)


SYNTH_SELF_B4_LR = Variant(
    'synth_self_b4 at the learning rate of the source training, 5e-4',
    source_quality='both',
    self_supervised=True,
    target_quality='pixels',
    batch=4,
    lr=5e-4,
    explore=True)
EXPERT = Variant(
    'a target expert: every source pair re-compressed at the target QF, plus self-supervision, 4 + 4 crops, lr 1e-3',
    source_quality='target',
    self_supervised=True,
    target_quality='pixels',
    batch=4,
    lr=1e-3,
    routed=True,
    curve=True)

PAPER_BLOCKDCT = Variant(
    'the paper with a block-DCT Q (Q lr 1e-3), crops on the JPEG grid, Q warmed up alone to 0.9 (at most 500 '
    'iterations) before F is asked to fool it',
    adversary(q=BLOCK_DCT_Q, lr=1e-3),
    q_warmup=(500, 0.9),
    grid_aligned=True,
    curve=True,
    explore=True)
CONTROL_ALIGNED = Variant(
    'control with crops on the JPEG grid (the twin of paper_blockdct)',
    track='-',
    grid_aligned=True,
    curve=True,
    explore=True)


def files_twin(twin, variant, text):
    """``variant`` (named ``twin``) in the files track: the target's QF read from the JPEG headers instead of estimated
    from the pixels, nothing else changed (no curve of its own: it would repeat its twin's)."""
    return replace(variant, text=text, target_quality='file', track='files', twin=twin, curve=False)


def reseeded(name, variant, seed):
    """``variant`` (named ``name``) with its seed moved on by ``seed``: a row of the spread between seeds (no curve:
    it would repeat the first seed's)."""
    return replace(variant, text=f'{name} with the seed moved on by {seed}', seed=seed, curve=False)


def expert_check(text, **changes):
    """``EXPERT`` with ``changes``, a check of the recommendation outside the default grid: one row, no routed row
    or curve."""
    return replace(EXPERT, text=text, routed=False, curve=False, explore=True, **changes)


VARIANTS = {
    'control':
    Variant('source-only fine-tuning for the same iterations (CARNModel)', track='-', curve=True),
    'paper':
    Variant('the paper: Q on average-pooled SFENet2 features, lambda 0.1', adversary(), curve=True),
    'paper_avgstd':
    Variant('the paper with average and standard-deviation pooling', adversary(q=dict(PAPER_Q, pooling='avgstd'))),
    'paper_lambda0.01':
    Variant('the paper, lambda 0.01', adversary(0.01)),
    'paper_lambda1':
    Variant('the paper, lambda 1', adversary(1.0)),
    'paper_ganin':
    Variant("the paper, lambda rising to 1 on Ganin's schedule", adversary(1.0, schedule='ganin')),
    'paper_qlr1e-3':
    Variant('the paper, Q learning rate 1e-3', adversary(lr=1e-3)),
    'paper_qsteps5':
    Variant('the paper, 5 Q steps per step of F and D', adversary(q_steps=5)),
    'paper_sfe1':
    Variant(
        'avg+std Q reading SFENet1 (F one conv layer)', adversary(q=dict(PAPER_Q, pooling='avgstd')), split_at='sfe1'),
    'paper_block2':
    Variant(
        'avg+std Q reading after the 2nd of 4 dense blocks (F non-linear)',
        adversary(q=dict(PAPER_Q, pooling='avgstd')),
        split_at=2),
    'patch':
    Variant('convolutional patch Q (a logit per position), lambda 0.1', adversary(q=PATCH_Q), curve=True),
    'paper_blockdct':
    PAPER_BLOCKDCT,
    'paper_blockdct_cold':
    replace(
        PAPER_BLOCKDCT,
        text='paper_blockdct without the warm-up: F is asked to fool Q from the first step',
        q_warmup=None),
    'paper_blockdct_strong':
    replace(
        PAPER_BLOCKDCT,
        text='paper_blockdct with a stronger adversary: lambda 1, and Q warmed up alone for all 500 iterations (no '
        'early stop on its accuracy, which stopped paper_blockdct at about 50; F and D train for the iterations after)',
        adversary=dict(PAPER_BLOCKDCT.adversary, lambda_=1.0),
        q_warmup=(500, None)),
    'control_aligned':
    CONTROL_ALIGNED,
    **{
        f'{name}_seed{seed}': reseeded(name, variant, seed)
        for name, variant in (('paper_blockdct', PAPER_BLOCKDCT), ('control_aligned', CONTROL_ALIGNED))
        for seed in (1, 2)
    },
    'patch_sn':
    Variant('patch Q with spectral normalisation, lambda 0.1', adversary(q=dict(PATCH_Q, spectral_norm=True))),
    'mmd':
    Variant('multi-kernel MMD of F features, no Q', align='MMDLoss'),
    'coral':
    Variant('CORAL of F features, no Q', align='CORALLoss'),
    'self':
    Variant(
        'target self-supervision at the QF estimated from pixels, 4 + 4 crops',
        self_supervised=True,
        target_quality='pixels',
        batch=4,
        curve=True),
    'patch_self':
    Variant(
        'patch Q + self-supervision, 4 + 4 crops',
        adversary(q=PATCH_Q),
        self_supervised=True,
        target_quality='pixels',
        batch=4),
    'synth':
    Variant(
        'half the source pairs re-compressed at the estimated target QF',
        source_quality='both',
        target_quality='pixels',
        curve=True),
    'synth_self':
    Variant(
        'synth + self-supervision', source_quality='both', self_supervised=True, target_quality='pixels', explore=True),
    'synth_self_b4':
    Variant(
        'synth + self with 4 source and 4 target crops per step (as many images through the network as a source-only '
        'step of 8)',
        source_quality='both',
        self_supervised=True,
        target_quality='pixels',
        batch=4,
        explore=True),
    'synth_self_b4_lr5e-4':
    SYNTH_SELF_B4_LR,
    'synth_self_b4_lr5e-4_p0.25':
    replace(
        SYNTH_SELF_B4_LR,
        text='synth_self_b4_lr5e-4 with a quarter of the source pairs re-compressed (more kept at the source QF)',
        synth_probability=0.25),
    'synth_self_b4_lr5e-4_files':
    files_twin('synth_self_b4_lr5e-4', SYNTH_SELF_B4_LR, 'synth_self_b4_lr5e-4 with the QF read from the files'),
    'expert':
    EXPERT,
    'expert_files':
    files_twin('expert', EXPERT, 'expert with the QF read from the files'),
    'expert_seed1':
    expert_check('expert with the next seed', seed=1),
    'expert_seed2':
    expert_check('expert with the seed after', seed=2),
    'expert_lr5e-4':
    expert_check('expert at lr 5e-4, the learning rate of the source models (the recommendation before)', lr=5e-4),
    'expert_lr5e-4_seed1':
    expert_check('expert_lr5e-4 with the next seed', lr=5e-4, seed=1),
    'expert_lr5e-4_seed2':
    expert_check('expert_lr5e-4 with the seed after', lr=5e-4, seed=2),
    'expert_lr5e-4_cos':
    expert_check('expert_lr5e-4 with the learning rate annealed to 0 on a cosine', lr=5e-4, cosine=True),
    'expert_lr5e-4_cos_seed1':
    expert_check('expert_lr5e-4_cos with the next seed', lr=5e-4, cosine=True, seed=1),
    'expert_lr5e-4_cos_seed2':
    expert_check('expert_lr5e-4_cos with the seed after', lr=5e-4, cosine=True, seed=2),
}
PEERS = {'BQ': 'both QFs supervised (every image at QF 10 and at 70)', 'blind': 'QF uniform in 10-90 per image'}


def prepare_data(shared, data_root):
    script = osp.join(REPO, 'scripts', 'prepare_data.py')
    for name in ('Train400', ) + TEST_SETS:
        cmd = [sys.executable, script, '--input', osp.join(shared, name), '--out', osp.join(data_root, name)]
        subprocess.run(cmd + ['--qf', '10', '70', '--workers', '2'], check=True, stdout=subprocess.DEVNULL)


def study_network(args):
    """A fresh copy of the options of the study's network (--backbone at --size), for a caller to change."""
    return recipes.network(args.backbone, args.size)


def source_pairs(args, qf, batch=None):
    """The Train400 pairs at ``qf`` (recipes.prepared_pairs), ``batch`` (default --batch) per step."""
    return recipes.prepared_pairs(f'Train400_qf{qf}', osp.join(args.data_root, 'Train400'), qf, args.patch, batch
                                  or args.batch)


def source_model(args, qf):
    """SQ at ``qf`` (recipes.sq): the source model of the directions from ``qf``, the oracle of those to it."""
    iters = args.source_iters
    return recipes.sq(
        f'{args.prefix}_sq_qf{qf}',
        study_network(args),
        source_pairs(args, qf),
        recipes.schedule(iters, args.lr),
        recipes.logger(10, iters),
        seed=args.seed)


def peer(args, kind):
    """A peer trained from scratch for the study's whole budget: BQ (recipes.bq: both QFs, stored JPEGs) or blind
    (recipes.blind: QF 10-90)."""
    iters = args.source_iters + args.adapt_iters
    common = dict(train=recipes.schedule(iters, args.lr), log=recipes.logger(10, iters), seed=args.seed)
    name, network_g, pairs = f'{args.prefix}_{kind}', study_network(args), source_pairs(args, 10)
    if kind == 'BQ':
        lqs = [osp.join(args.data_root, 'Train400', f'qf{qf}') for qf in (10, 70)]
        return recipes.bq(name, network_g, pairs, lqs, **common)
    return recipes.blind(name, network_g, pairs, **common)


def adaptation(args, direction, variant):
    """Options of ``variant`` (of ``VARIANTS``) in ``direction``: the source model of the direction fine-tuned with
    the target's Train400 JPEGs beside its pairs (recipes.adaptation; where the target is data only, CARNModel on the
    same TwoDomainDataset; the control: no target) plus what the variant adds (:func:`with_variant`)."""
    v, (source, target) = VARIANTS[variant], DIRECTIONS[direction]
    name, iters, seed = f'{args.prefix}_{direction}_{variant}', args.adapt_iters, args.seed + 1 + v.seed
    network_g = study_network(args)
    if v.split_at is not None:
        network_g['split_at'] = v.split_at
    train = (recipes.cosine_schedule if v.cosine else recipes.schedule)(iters, v.lr or args.adapt_lr)
    log = recipes.logger(10, max(1, iters // CURVE_POINTS) if v.curve else iters)
    pairs, start = source_pairs(args, source, v.batch), latest_generator(f'{args.prefix}_sq_qf{source}', REPO)
    if not v.reads_target:
        return on_grid(recipes.supervised(name, network_g, pairs, train, log, seed=seed, pretrain=start), v)
    train_set = recipes.two_domains(pairs, osp.join(args.data_root, 'Train400', f'qf{target}'))
    if v.learns_from_target:
        opt = recipes.adaptation(name, network_g, train_set, train, log, start, seed=seed)
    else:
        opt = recipes.supervised(name, network_g, train_set, train, log, seed=seed, pretrain=start)
    return with_variant(opt, v, recipes.quality_channels(args.backbone, args.size))


def with_variant(opt, v, q_channels):
    """Add to ``opt`` what the Variant ``v`` learns from the target; ``q_channels``: those of F's features."""
    if v.source_quality:
        recipes.with_target_quality(opt, v.source_quality, v.target_quality, v.synth_probability)
    elif v.target_quality:  # the QF at which self-supervision recompresses a target crop
        opt['datasets']['train']['target_quality'] = v.target_quality
    if v.self_supervised:
        recipes.with_self_supervision(opt)
    if v.adversary:
        options = dict(v.adversary)
        recipes.with_discriminator(opt, recipes.discriminator(q_channels, **options.pop('q')), **options)
    if v.align:
        opt['train']['align_opt'] = {'type': v.align, 'loss_weight': 1.0}
    if v.q_warmup:
        recipes.with_q_warmup(opt, *v.q_warmup)
    return on_grid(opt, v)


def on_grid(opt, v):
    """``opt`` with crops on the JPEG grid if the Variant ``v`` asks for it (the key is absent otherwise, so that
    the options of earlier runs stay as they were recorded)."""
    if v.grid_aligned:
        opt['datasets']['train']['grid_aligned'] = True
    return opt


@functools.lru_cache(maxsize=None)  # the report reads a finished run's log for its table, its curve and its plot
def q_accuracy(name):
    """Q's accuracy as BasicSR's message logger wrote it in the run ``name``: {iteration: acc_q} (not to be changed:
    it is cached), and the iteration its warm-up ended at (0 without one; the last logged warm-up iteration, to the
    logger's print frequency)."""
    folder = experiment_dir(name, REPO)
    return logged_values(folder, 'acc_q'), max(logged_values(folder, 'l_q_warmup'), default=0)


def q_details(name, last_share=0.1):
    """Q's accuracy in the run ``name``: at the end of its warm-up (the last five logged points), its mean over the
    adaptation and over the adaptation's last ``last_share`` (those logged; {} where no Q was trained)."""
    accuracy, warmup_end = q_accuracy(name)
    end = max(accuracy, default=0)
    details = {}
    if end > warmup_end:
        details['acc_q'] = np.mean([a for it, a in accuracy.items() if it > warmup_end])
        details['acc_q_last'] = np.mean([a for it, a in accuracy.items() if it > end - last_share * (end - warmup_end)])
    if warmup_end:
        details.update(
            q_warmup_end=warmup_end, acc_q_warmup=np.mean([a for it, a in accuracy.items() if it <= warmup_end][-5:]))
    return {key: value if key == 'q_warmup_end' else float(value) for key, value in details.items()}


def qualities_agree(folder):
    """Whether the QF read from each JPEG header in ``folder`` is the one estimated from its decoded pixels: then
    TwoDomainDataset gives every target the same QF with ``target_quality: file`` as with ``pixels``."""
    paths = [entry.path for entry in os.scandir(folder) if entry.is_file()]
    return all(read_quality(path) == estimate_quality(cv2.imread(path, cv2.IMREAD_GRAYSCALE)) for path in paths)


def step_defining(opt):
    """The options a training step on random data depends on: the model, networks, losses and optimisers, and the
    batch's shape (not the data's folders or QFs, the experiment's name, paths or logger)."""
    train_set = opt['datasets']['train']
    defining = {k: v for k, v in opt.items() if k not in ('name', 'path', 'logger', 'datasets')}
    return dict(defining, batch=[train_set['batch_size_per_gpu'], train_set['gt_size']])


def step_time_ratio(variant_opt, control_opt, steps=5, rounds=2):
    """Seconds per training step of ``variant_opt`` over those of ``control_opt``, each on random data of its own
    batch size (runs.warmed_up_model), in one process, the two timed in alternating rounds of ``steps`` steps so that
    load changes hit both."""
    models = [warmed_up_model(opt) for opt in (control_opt, variant_opt)]
    seconds = [0.0, 0.0]
    for _ in range(rounds):
        for k, model in enumerate(models):
            start = time.perf_counter()
            for i in range(steps):
                model.optimize_parameters(i + 4)
            seconds[k] += time.perf_counter() - start
    return seconds[1] / seconds[0]


def adaptation_step(opt):
    """``opt`` without its Q warm-up (if any): the steps then timed are adaptation steps (F, D and Q), not Q's alone."""
    opt = copy.deepcopy(opt)
    for key in ('q_warmup_iters', 'q_warmup_accuracy'):
        opt['train'].pop(key, None)
    return opt


class JsonCache:
    """Values kept in a JSON file by key, so that a rerun computes only what is new; threads of one process and
    several study processes may share it (each write merges what the others wrote meanwhile, through an atomic
    rename)."""

    def __init__(self, path):
        self.path = path
        self.values = {}
        self.lock = threading.Lock()
        self.key_locks = {}  # a thread that needs a value another thread is computing waits for it
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                self.values = json.load(f)

    def get(self, key, compute):
        with self.lock:
            key_lock = self.key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if key not in self.values:
                value = compute()
                with self.lock:
                    if osp.isfile(self.path):
                        with open(self.path, encoding='utf-8') as f:
                            self.values = {**json.load(f), **self.values}
                    self.values[key] = value
                    with open(f'{self.path}.{os.getpid()}', 'w', encoding='utf-8') as f:
                        json.dump(self.values, f, indent=1)
                    os.replace(f'{self.path}.{os.getpid()}', self.path)
        return self.values[key]


class Scores:
    """Mean scores of checkpoints on test pairs, cached by checkpoint, its mtime, QF and image count."""

    def __init__(self, cache, network, pairs):
        self.cache, self.network, self.pairs = cache, network, pairs

    def __call__(self, checkpoint, qf, datasets=TEST_SETS, network=None, experts=None, limit=None):
        """{'<dataset>_<metric>': mean} of ``checkpoint`` (None: the JPEG input) at ``qf`` on ``datasets``;
        ``network``: its network_g options (default: the study's network). ``experts``: the checkpoints of a
        QualityRoutedCARN's experts, in order: where it sends every image of a set to one expert, its restorations
        are that expert's, so the expert's scores are taken. ``limit``: only the first ``limit`` test pairs."""

        def load():  # only when it routes or restores: a cached score needs no network
            return None if checkpoint is None else load_network(network or self.network, checkpoint, SCORING_DEVICE)

        scores = {}
        stamp = 'jpeg' if checkpoint is None else f'{checkpoint}@{os.stat(checkpoint).st_mtime_ns}'
        for dataset in datasets:
            pairs = self.pairs(dataset, qf)[:limit]
            if experts:
                router = load()
                chosen = {router.route(estimate_quality(lq)) for _, lq, _ in pairs}
                if len(chosen) == 1:
                    scores.update(self(experts[chosen.pop()], qf, (dataset, ), limit=limit))
                    continue
            values = self.cache.get(f'{stamp}|{dataset}|qf{qf}|{len(pairs)}',
                                    lambda: mean_scores(evaluate_pairs(pairs, load())))
            scores.update({f'{dataset}_{metric}': value for metric, value in values.items()})
        return scores


def routed_model(path, experts, network_g):
    """Write (unless up to date) the QualityRoutedCARN checkpoint ``path`` of ``experts``, (quality, checkpoint)
    pairs of networks of the options ``network_g``; return its network_g options."""
    network = recipes.routed_pair([(network_g, [quality]) for quality, _ in experts])
    if not osp.isfile(path) or any(os.stat(c).st_mtime_ns > os.stat(path).st_mtime_ns for _, c in experts):
        save_torch_atomic({'params': routed_state(checkpoint for _, checkpoint in experts)}, path)
    return network


def gap_plot(path, direction, rows):
    """Bar chart of the gap recovery of every row on each test set."""
    labels = [label for label, values in rows if f'{TEST_SETS[0]}_gap' in values]
    fig = Figure(figsize=(max(6, 0.55 * len(labels)), 4), dpi=100)
    ax = fig.add_subplot()
    width = 0.8 / len(TEST_SETS)
    for k, dataset in enumerate(TEST_SETS):
        gaps = [dict(rows)[label][f'{dataset}_gap'] for label in labels]
        ax.bar(np.arange(len(labels)) + (k - (len(TEST_SETS) - 1) / 2) * width, gaps, width, label=dataset)
    ax.axhline(100, color='k', lw=0.8, ls='--')
    ax.axhline(0, color='k', lw=0.8)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=60, ha='right', fontsize=8)
    ax.set_ylabel('gap recovered (%)')
    ax.set_title(f'{direction}: (PSNR - DQ) / (SQ - DQ)')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def q_plot(path, direction, runs, smooth=10):
    """Q's accuracy against iterations (mean of ``smooth`` logged points), one line per run with a Q, its warm-up's
    end dashed; ``runs``: {label: experiment name}. False where no run trained a Q."""
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot()
    for label, name in runs.items():
        accuracy, warmup_end = q_accuracy(name)
        if len(accuracy) >= smooth:
            iterations, values = np.array(list(accuracy)), np.array(list(accuracy.values()))
            smoothed = np.convolve(values, np.ones(smooth) / smooth, mode='valid')
            line, = ax.plot(iterations[smooth - 1:], smoothed, label=label)
            if warmup_end:
                ax.axvline(warmup_end, color=line.get_color(), lw=0.8, ls='--')
    if not ax.lines:
        return False
    ax.axhline(0.5, color='k', lw=0.8)
    ax.set_xlabel('adaptation iterations (warm-up included; dashed: its end)')
    ax.set_ylabel(f'Q accuracy (mean of {smooth} logged points)')
    ax.set_title(direction)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    return True


def curve_plot(path, direction, curves, target, images):
    """PSNR on the first ``images`` Set12 images at the target QF against adaptation iterations, one line per
    variant."""
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot()
    for label, points in curves.items():
        ax.plot(*zip(*points), marker='o', label=label)
    ax.set_xlabel('adaptation iterations')
    ax.set_ylabel(f'Set12 ({images} images) PSNR at QF {target} (dB)')
    ax.set_title(direction)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shared', default=osp.join(REPO, os.pardir, 'shared', 'datasets'))
    parser.add_argument('--data-root', default=osp.join(REPO, 'datasets'))
    parser.add_argument('--out', default=None, help='Output folder. Default: results/<prefix>.')
    parser.add_argument('--backbone', choices=sorted(recipes.BACKBONES), default='rdn')
    parser.add_argument('--size', default='cpu', help='Size preset of the backbone in carn_da/recipes.py.')
    parser.add_argument('--prefix', default=None, help='Experiment name prefix. Default: da_study_<backbone>[_<size>].')
    parser.add_argument('--directions', nargs='+', choices=sorted(DIRECTIONS), default=['lq2hq', 'hq2lq'])
    parser.add_argument(
        '--variants',
        nargs='+',
        choices=list(VARIANTS),
        default=[name for name, variant in VARIANTS.items() if not variant.explore],
        help='Default: every variant not marked explore.')
    parser.add_argument('--peers', nargs='*', choices=list(PEERS), default=list(PEERS))
    parser.add_argument('--source-iters', type=int, default=600)
    parser.add_argument('--adapt-iters', type=int, default=300)
    parser.add_argument('--lr', type=float, default=5e-4, help='Learning rate of the SQ trainings.')
    parser.add_argument('--adapt-lr', type=float, default=1e-4, help='Learning rate of every variant.')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--patch', type=int, default=48)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--test-limit', type=int, default=None, help='Only the first N images of each test set.')
    parser.add_argument(
        '--source-limit',
        type=int,
        default=6,
        help='BSD68 images (the first N of the test images) of the PSNR at the source QF and its change.')
    parser.add_argument(
        '--curve-limit',
        type=int,
        default=7,
        help='Set12 images (the first N of the test images) of the curves: its first 7 are its 256x256 images.')
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='Trainings run at a time (one process each), and scorings and step-time ratios (one thread each).')
    args = parser.parse_args(argv)
    if error := recipes.unknown_size(args.backbone, args.size):
        parser.error(error)
    args.prefix = args.prefix or f'da_study_{args.backbone}' + ('' if args.size == 'cpu' else f'_{args.size}')
    args.source_limit, args.curve_limit = (min(n, args.test_limit or n) for n in (args.source_limit, args.curve_limit))
    args.out = args.out or osp.join(REPO, 'results', args.prefix)
    return args


def train_all(options, args, wall):
    """Train ``options`` unless done (resuming one that was killed), --jobs at a time (each in its own process); their
    wall times into ``wall``."""
    train = functools.partial(train_unless_done, options_dir=args.out, root=REPO, resume=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        wall.update(zip((opt['name'] for opt in options), pool.map(train, options)))


def train_study(args, wall):
    """Train what the study scores: first the source models (the variants start from them) and the peers, then the
    variants. Return {(direction, variant): options} and the (direction, variant) of the files twins that are their
    twin's model (see :func:`twins_trained_once`)."""
    qualities = sorted({qf for direction in args.directions for qf in DIRECTIONS[direction]})
    train_all([source_model(args, qf) for qf in qualities] + [peer(args, kind) for kind in args.peers], args, wall)
    variant_opts = {(d, v): adaptation(args, d, v) for d in args.directions for v in args.variants}
    same_as_twin = twins_trained_once(args, variant_opts)
    distinct = {opt['name']: opt for opt in variant_opts.values()}
    # the costlier steps first (self-supervision doubles a step's crops), so that the --jobs workers end together
    train_all(
        sorted(
            distinct.values(),
            key=lambda opt: -opt['datasets']['train']['batch_size_per_gpu'] *
            (2 if opt['datasets']['train'].get('target_self_supervision') else 1)), args, wall)
    return variant_opts, same_as_twin


def twins_trained_once(args, variant_opts):
    """A files twin whose target QFs all read as they are estimated draws its twin's batches: training is
    deterministic, so its twin's model is its model, trained once (the target folder is read only where a twin and
    its twin run). Replace those twins' options in ``variant_opts`` by their twin's; return their (direction,
    variant)."""
    with_twin = [(d, v) for d, v in variant_opts if VARIANTS[v].twin in args.variants]
    agree = {
        direction: qualities_agree(osp.join(args.data_root, 'Train400', f'qf{DIRECTIONS[direction][1]}'))
        for direction in dict.fromkeys(d for d, _ in with_twin)  # each direction once
    }
    same_as_twin = [(d, v) for d, v in with_twin if agree[d]]
    for direction, variant in same_as_twin:
        variant_opts[direction, variant] = variant_opts[direction, VARIANTS[variant].twin]
    return same_as_twin


def load_test_pairs(data_root, limit, dataset, qf):
    """The first ``limit`` (all if None) test pairs of ``dataset`` at ``qf``."""
    folder = osp.join(data_root, dataset)
    return load_pairs(osp.join(folder, f'qf{qf}'), osp.join(folder, 'gt'))[:limit]


DQ_LABEL, SQ_LABEL = 'DQ (SQ of the source)', 'SQ of the target (oracle)'  # the rows the gap is measured between


class DirectionScoring:
    """What is computed of the models of one direction: rows, step-time ratios and curve points."""

    def __init__(self, args, direction, scores, cache):
        self.args, self.scores, self.cache = args, scores, cache
        self.source, self.target = DIRECTIONS[direction]
        self.control_opt = adaptation(args, direction, 'control')

    def row(self, checkpoint, network=None, experts=None):
        """Scores at the target QF and BSD68 PSNR at the source QF (None: the JPEG input, target QF only)."""
        if checkpoint is None:
            return self.scores(None, self.target)
        source_psnr = self.scores(checkpoint, self.source, ('BSD68', ), network, experts,
                                  self.args.source_limit)['BSD68_psnr']
        return {**self.scores(checkpoint, self.target, network=network, experts=experts), 'source_psnr': source_psnr}

    def step_ratio(self, opt):
        """That of an adaptation step of ``opt`` (its Q warm-up left out), kept by what a step on random data depends
        on: no names, paths or logger options."""
        opt = adaptation_step(opt)
        key = json.dumps([step_defining(o) for o in (opt, self.control_opt)], sort_keys=True)
        return self.cache.get(f'step_ratio|{key}', lambda: step_time_ratio(opt, self.control_opt))

    def curve_point(self, checkpoint):
        return self.scores(checkpoint, self.target, ('Set12', ), limit=self.args.curve_limit)['Set12_psnr']


def row_models(args, direction, variant_opts):
    """{row label: experiment name} of the models of ``direction``, and {variant: its row's label}."""
    source, target = DIRECTIONS[direction]
    models = {DQ_LABEL: f'{args.prefix}_sq_qf{source}', SQ_LABEL: f'{args.prefix}_sq_qf{target}'}
    models.update({f'{kind} (peer)': f'{args.prefix}_{kind}' for kind in args.peers})
    labels = {variant: f'{variant} ({VARIANTS[variant].track})' for variant in args.variants}
    models.update({labels[variant]: variant_opts[direction, variant]['name'] for variant in args.variants})
    return models, labels


def routed_rows(args, direction, models, variant_opts):
    """{row label: (checkpoint, network_g, expert checkpoints)} of the routed pairs (written unless up to date): the
    source model for the source QF, the variant for the target."""
    routed = {}
    for variant in args.variants:
        if VARIANTS[variant].routed:
            checkpoint = osp.join(args.out, f'{direction}_{variant}_routed.pth')
            experts = [
                latest_generator(models[DQ_LABEL], REPO),
                latest_generator(variant_opts[direction, variant]['name'], REPO)
            ]
            network = routed_model(checkpoint, list(zip(DIRECTIONS[direction], experts)), study_network(args))
            routed[f'{variant} + routing ({VARIANTS[variant].track})'] = (checkpoint, network, experts)
    return routed


def curve_checkpoints(args, models, labels):
    """{curve variant: {adaptation iteration: checkpoint}}, from the source model's on."""
    curves = {}
    for variant in args.variants:
        if VARIANTS[variant].curve:
            name = models[labels[variant]]
            folder = osp.join(experiment_dir(name, REPO), 'models')
            found = (re.fullmatch(r'net_g_(\d+)\.pth', f) for f in os.listdir(folder))
            points = {int(m[1]): osp.join(folder, m[0]) for m in found if m and int(m[1]) < args.adapt_iters}
            curves[variant] = {0: latest_generator(models[DQ_LABEL], REPO), **points}
            curves[variant][args.adapt_iters] = latest_generator(name, REPO)
    return curves


def score_all(args, scoring, checkpoints, routed, variant_opts, curves):
    """Rows of ``checkpoints`` and then ``routed``, step-time ratios of ``variant_opts`` ({variant: options}) and
    curve points: --jobs threads of one torch thread each (torch ops release the GIL), each step time measured against
    a source-only step in alternating rounds, so that the other thread's load hits both."""
    torch.set_num_threads(1)
    with ThreadPoolExecutor(args.jobs) as pool:
        row_jobs = {label: pool.submit(scoring.row, *spec) for label, spec in checkpoints.items()}
        ratio_jobs = {v: pool.submit(scoring.step_ratio, variant_opts[v]) for v in args.variants}
        curve_jobs = {
            (v, it): pool.submit(scoring.curve_point, c)
            for v, points in curves.items()
            for it, c in points.items()
        }
        row_jobs.update({
            label: pool.submit(scoring.row, *spec)
            for label, spec in routed.items()
        })  # after their experts
        rows = [(label, job.result()) for label, job in row_jobs.items()]
        ratios = {v: job.result() for v, job in ratio_jobs.items()}
        curve_psnr = {key: job.result() for key, job in curve_jobs.items()}
    return rows, ratios, curve_psnr


def add_gaps(rows, details):
    """Add to every row but the first (JPEG) its gap recovery on each test set, its forgetting and the details of its
    variant."""
    values_of = dict(rows)
    dq, sq = values_of[DQ_LABEL], values_of[SQ_LABEL]
    for label, values in rows[1:]:
        for dataset in TEST_SETS:
            gap = sq[f'{dataset}_psnr'] - dq[f'{dataset}_psnr']
            values[f'{dataset}_gap'] = 100 * (values[f'{dataset}_psnr'] - dq[f'{dataset}_psnr']) / gap
        values['forgetting'] = values['source_psnr'] - dq['source_psnr']
        values.update({k: v for k, v in details.get(label, {}).items() if v is not None})


def study_direction(args, direction, variant_opts, scores, cache, wall):
    """Score the models of ``direction`` (the time it takes into ``wall``); return its rows, the details of its
    variants (Q accuracy, step-time ratio) and its curves."""
    models, labels = row_models(args, direction, variant_opts)
    opts = {variant: variant_opts[direction, variant] for variant in args.variants}
    scoring = DirectionScoring(args, direction, scores, cache)
    checkpoints = {'JPEG': (None, )}
    checkpoints.update({label: (latest_generator(name, REPO), ) for label, name in models.items()})
    routed = routed_rows(args, direction, models, variant_opts)
    curve_points = curve_checkpoints(args, models, labels)
    phase_start = time.time()
    rows, ratios, curve_psnr = score_all(args, scoring, checkpoints, routed, opts, curve_points)
    wall[f'{direction} scoring and step-time ratios'] = time.time() - phase_start
    details = {labels[v]: {**q_details(opts[v]['name']), 'step_ratio': ratios[v]} for v in args.variants}
    add_gaps(rows, details)
    curves = {labels[v]: [(it, curve_psnr[v, it]) for it in sorted(points)] for v, points in curve_points.items()}
    return rows, details, curves


def direction_section(args, direction, rows, curves, variant_opts, same_as_twin):
    """The Markdown of ``direction``: its table and Q's accuracy curves; writes its plots."""
    source, target = DIRECTIONS[direction]
    columns = [(f'{d}_{m}', f'{d} {m.upper().replace("PSNRB", "PSNR-B")}') for d in TEST_SETS
               for m in ('psnr', 'psnrb', 'ssim')]
    columns += [(f'{d}_gap', f'{d} gap recovered %') for d in TEST_SETS]
    columns += [('source_psnr', f'BSD68 PSNR at QF {source} ({args.source_limit} images)'),
                ('forgetting', 'change at source QF (dB)'), ('acc_q_warmup', 'Q accuracy at warm-up end'),
                ('acc_q', 'Q accuracy (adaptation mean)'), ('acc_q_last', 'Q accuracy (last tenth)'),
                ('step_ratio', 'step time / source-only step')]
    title = f'### {direction}: source QF {source} -> target QF {target} (scores at QF {target})\n'
    twins = ''.join(f'\n`{v}` is `{VARIANTS[v].twin}`\'s model: the QF read from each target file equals the '
                    'one estimated from its pixels, so the two draw the same batches.\n' for d, v in same_as_twin
                    if d == direction)
    plots = ', '.join(f'`{name}`' for name in direction_plots(args, direction, rows, curves, variant_opts))
    return (title + '\n' + markdown_table(columns, rows) + twins + q_curves(args, direction, variant_opts) +
            f'\nPlots: {plots}.\n')


def q_curves(args, direction, variant_opts, parts=10):
    """Markdown: for each variant with a Q, its warm-up's length and its accuracy by tenth of the run."""
    lines = []
    for variant in args.variants:
        accuracy, warmup_end = q_accuracy(variant_opts[direction, variant]['name'])
        if accuracy:
            tenths = np.array_split(np.array(list(accuracy.values())), parts)
            warmup = f'warmed up alone for {warmup_end} iterations, then ' if warmup_end else ''
            lines.append(f'- `{variant}`: {warmup}accuracy by tenth of the {args.adapt_iters} iterations '
                         f'{", ".join(f"{t.mean():.2f}" for t in tenths)}\n')
    if not lines:
        return ''
    head = '\nQ (iterations to the logger\'s print frequency; the warm-up counts in the adaptation\'s):\n\n'
    return head + ''.join(lines)


def direction_plots(args, direction, rows, curves, variant_opts):
    """Write the plots of ``direction`` (gap recovery, PSNR and Q's accuracy against iterations); return their names."""
    names = [f'gap_{direction}.png', f'curve_{direction}.png', f'q_{direction}.png']
    gap_plot(osp.join(args.out, names[0]), direction, rows[1:])
    curve_plot(osp.join(args.out, names[1]), direction, curves, DIRECTIONS[direction][1], args.curve_limit)
    runs = {f'{v} ({VARIANTS[v].track})': variant_opts[direction, v]['name'] for v in args.variants}
    return names if q_plot(osp.join(args.out, names[2]), direction, runs) else names[:2]


def report_head(args):
    """The report's metadata (JSON) and the Markdown's first lines."""
    report = {
        'command': ' '.join(sys.argv),
        'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'machine': f'{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
        f'torch {torch.__version__}',
        'args': vars(args),
        'variants': {
            name: variant.text
            for name, variant in VARIANTS.items()
        },
        'peers': PEERS,
        'directions': {}
    }
    network = study_network(args)
    report['parameters'] = sum(p.numel() for p in build_network(copy.deepcopy(network)).parameters())
    markdown = [
        f'Command: `{report["command"]}`  \nDate: {report["date"]}; machine: {report["machine"]}  \n'
        f'Backbone: `{network}`, {report["parameters"]:,} parameters\n'
    ]
    return report, markdown


def write_report(args, report, markdown, wall):
    """Add the wall times and the list of variants and peers; print the Markdown and write da_study.md and .json."""
    phases = ', '.join(f'{k} {v:.0f} s' for k, v in wall.items())
    markdown.append(f'Wall time: {report["wall_seconds"]["total"] / 60:.1f} min '
                    f'(trainings, then per direction scoring and step-time ratios: {phases}).\n')
    markdown.append('Variants:\n\n' + ''.join(f'- `{name}`: {variant.text}\n'
                                              for name, variant in VARIANTS.items() if name in args.variants))
    markdown.append('Peers (trained from scratch for the source + adaptation iterations):\n\n' +
                    ''.join(f'- `{name}`: {text}\n' for name, text in PEERS.items() if name in args.peers))
    text = '\n'.join(markdown)
    print(text)
    with open(osp.join(args.out, 'da_study.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    with open(osp.join(args.out, 'da_study.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    prepare_data(args.shared, args.data_root)
    wall = {}
    variant_opts, same_as_twin = train_study(args, wall)
    cache = JsonCache(osp.join(args.out, 'scores_cache.json'))
    test_pairs = functools.partial(load_test_pairs, args.data_root, args.test_limit)
    scores = Scores(cache, study_network(args), test_pairs)
    report, markdown = report_head(args)
    for direction in args.directions:
        rows, details, curves = study_direction(args, direction, variant_opts, scores, cache, wall)
        markdown.append(direction_section(args, direction, rows, curves, variant_opts, same_as_twin))
        report['directions'][direction] = {'rows': rows, 'details': details, 'curves': curves}
    report['wall_seconds'] = {'total': time.time() - start, **wall}
    write_report(args, report, markdown, wall)


if __name__ == '__main__':
    main()
