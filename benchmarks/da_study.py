"""Domain adaptation across JPEG quality at CPU scale: how much of the DQ -> SQ gap does each recipe recover?

For each direction (LQ->HQ: source QF 10, target QF 70; HQ->LQ: 70 -> 10) a small RDN is trained on the source QF
(SQ of the source, whose score on the target QF is DQ) and on the target QF (SQ of the target, the oracle). Every
variant (``VARIANTS``: options of CARNModel / CARNDAModel, TwoDomainDataset and the registered discriminators and
losses, never a fork of the training loop) then starts from the same source checkpoint with the same seed and runs
the same number of iterations through BasicSR's pipeline (carn_da/train.py, options written by this script). Two
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
images) and its change from the source model (forgetting), the discriminator's mean accuracy over training, and the
time of one training step relative to a source-only step (measured in one process on random batches; it depends only
on the model, network, loss and optimiser options and the batch shape, so it is measured once for both directions
and for a files twin). Plots: gap recovery per variant (``gap_<direction>.png``) and the PSNR at the target QF on the
first ``--curve-limit`` Set12 images against adaptation iterations for the ``curve`` variants
(``curve_<direction>.png``).
Data: Train400 for training, BSD68 and Set12 for testing, from ../shared/datasets.

    OMP_NUM_THREADS=1 python benchmarks/da_study.py --test-limit 12 --jobs 2   # the default grid, two jobs at a time
    python benchmarks/da_study.py --source-iters 30 --adapt-iters 12 --test-limit 2 --prefix smoke   # smoke run

Trainings, scores and step-time ratios are kept (experiments/, ``<out>/scores_cache.json``): a rerun computes only
what is new.
"""
import carn_da.compat  # noqa: F401

import argparse
import copy
import cv2
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
from basicsr.models import build_model
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from matplotlib.figure import Figure
from os import path as osp

from carn_da.utils.jpeg import estimate_quality, read_quality
from carn_da.evaluation import evaluate_pairs, load_pairs, markdown_table, mean_scores
from carn_da.route import routed_state
from carn_da.runs import (CPU_BACKBONES, ROOT, cpu_network, experiment_dir, latest_generator, load_generator,
                          train_set_options, train_unless_done)

DIRECTIONS = {'lq2hq': (10, 70), 'hq2lq': (70, 10)}
TEST_SETS = ('BSD68', 'Set12')
PAPER_Q = {'type': 'QualityDiscriminator', 'hidden': 128, 'pooling': 'avg'}
PATCH_Q = {'type': 'PatchQualityDiscriminator', 'hidden': 32}
L1 = {'type': 'L1Loss', 'loss_weight': 1.0}
CURVE_POINTS = 3  # checkpoints per adaptation of a ``curve`` variant, scored for the PSNR-against-iterations plot
# name: options of one variant. q: network_q (num_feat added), domain: train.domain_opt of DomainAdversarialLoss,
# q_lr: optim_q's lr (default --adapt-lr), q_steps: train.q_steps, split_at: where F ends (RDN), align:
# train.align_opt, self: target self-supervision, source_quality / synth_probability / target_quality:
# TwoDomainDataset's options; batch: source (and target) crops per step (default --batch); lr: optim_g's lr (default
# --adapt-lr); schedule: 'cosine' to anneal lr to 0 over the adaptation (BasicSR's CosineAnnealingRestartLR, one
# period) instead of halving it at 3/4; seed: added to the variants' seed (--seed + 1); routed: also score it routed
# with the source model (QualityRoutedCARN); curve: in the curve plot; explore: left out of the default grid (steps
# towards the recommendation and checks of it, run them with --variants); twin: the pixels variant a files variant is
# the twin of (see files_twin); text: what it is, for the report.
SYNTH_SELF_B4_LR = dict(
    source_quality='both',
    self=True,
    target_quality='pixels',
    batch=4,
    lr=5e-4,
    explore=True,
    text='synth_self_b4 at the learning rate of the source training, 5e-4')
EXPERT = dict(
    source_quality='target',
    self=True,
    target_quality='pixels',
    batch=4,
    lr=1e-3,
    routed=True,
    curve=True,
    text='a target expert: every source pair re-compressed at the target QF, plus self-supervision, 4 + 4 crops, '
    'lr 1e-3')


def files_twin(twin, spec, text):
    """``spec`` (variant ``twin``) in the files track: the target's QF read from the JPEG headers instead of estimated
    from the pixels, nothing else changed (no curve of its own: it would repeat its twin's)."""
    files = dict(spec, target_quality='file', track='files', twin=twin, text=text)
    files.pop('curve', None)
    return files


def expert_check(text, **changes):
    """``EXPERT`` with ``changes``, a check of the recommendation outside the default grid: one row, no routed row
    or curve."""
    return dict(EXPERT, routed=False, curve=False, explore=True, text=text, **changes)


VARIANTS = {
    'control':
    dict(track='-', curve=True, text='source-only fine-tuning for the same iterations (CARNModel)'),
    'paper':
    dict(
        q=PAPER_Q,
        domain={'loss_weight': 0.1},
        curve=True,
        text='the paper: Q on average-pooled SFENet2 features, lambda 0.1'),
    'paper_avgstd':
    dict(
        q=dict(PAPER_Q, pooling='avgstd'),
        domain={'loss_weight': 0.1},
        text='the paper with average and standard-deviation pooling'),
    'paper_lambda0.01':
    dict(q=PAPER_Q, domain={'loss_weight': 0.01}, text='the paper, lambda 0.01'),
    'paper_lambda1':
    dict(q=PAPER_Q, domain={'loss_weight': 1.0}, text='the paper, lambda 1'),
    'paper_ganin':
    dict(
        q=PAPER_Q,
        domain={
            'loss_weight': 1.0,
            'schedule': 'ganin'
        },
        text="the paper, lambda rising to 1 on Ganin's schedule"),
    'paper_qlr1e-3':
    dict(q=PAPER_Q, domain={'loss_weight': 0.1}, q_lr=1e-3, text='the paper, Q learning rate 1e-3'),
    'paper_qsteps5':
    dict(q=PAPER_Q, domain={'loss_weight': 0.1}, q_steps=5, text='the paper, 5 Q steps per step of F and D'),
    'paper_sfe1':
    dict(
        q=dict(PAPER_Q, pooling='avgstd'),
        domain={'loss_weight': 0.1},
        split_at='sfe1',
        text='avg+std Q reading SFENet1 (F one conv layer)'),
    'paper_block2':
    dict(
        q=dict(PAPER_Q, pooling='avgstd'),
        domain={'loss_weight': 0.1},
        split_at=2,
        text='avg+std Q reading after the 2nd of 4 dense blocks (F non-linear)'),
    'patch':
    dict(
        q=PATCH_Q,
        domain={'loss_weight': 0.1},
        curve=True,
        text='convolutional patch Q (a logit per position), lambda 0.1'),
    'patch_sn':
    dict(
        q=dict(PATCH_Q, spectral_norm=True),
        domain={'loss_weight': 0.1},
        text='patch Q with spectral normalisation, lambda 0.1'),
    'mmd':
    dict(align={
        'type': 'MMDLoss',
        'loss_weight': 1.0
    }, text='multi-kernel MMD of F features, no Q'),
    'coral':
    dict(align={
        'type': 'CORALLoss',
        'loss_weight': 1.0
    }, text='CORAL of F features, no Q'),
    'self':
    dict(
        self=True,
        target_quality='pixels',
        batch=4,
        curve=True,
        text='target self-supervision at the QF estimated from pixels, 4 + 4 crops'),
    'patch_self':
    dict(
        q=PATCH_Q,
        domain={'loss_weight': 0.1},
        self=True,
        target_quality='pixels',
        batch=4,
        text='patch Q + self-supervision, 4 + 4 crops'),
    'synth':
    dict(
        source_quality='both',
        target_quality='pixels',
        curve=True,
        text='half the source pairs re-compressed at the estimated target QF'),
    'synth_self':
    dict(source_quality='both', self=True, target_quality='pixels', explore=True, text='synth + self-supervision'),
    'synth_self_b4':
    dict(
        source_quality='both',
        self=True,
        target_quality='pixels',
        batch=4,
        explore=True,
        text='synth + self with 4 source and 4 target crops per step (as many images through the '
        'network as a source-only step of 8)'),
    'synth_self_b4_lr5e-4':
    SYNTH_SELF_B4_LR,
    'synth_self_b4_lr5e-4_p0.25':
    dict(
        source_quality='both',
        synth_probability=0.25,
        self=True,
        target_quality='pixels',
        batch=4,
        lr=5e-4,
        explore=True,
        text='synth_self_b4_lr5e-4 with a quarter of the source pairs re-compressed (more kept at the source QF)'),
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
    expert_check('expert_lr5e-4 with the learning rate annealed to 0 on a cosine', lr=5e-4, schedule='cosine'),
    'expert_lr5e-4_cos_seed1':
    expert_check('expert_lr5e-4_cos with the next seed', lr=5e-4, schedule='cosine', seed=1),
    'expert_lr5e-4_cos_seed2':
    expert_check('expert_lr5e-4_cos with the seed after', lr=5e-4, schedule='cosine', seed=2),
}
PEERS = {'BQ': 'both QFs supervised (every image at QF 10 and at 70)', 'blind': 'QF uniform in 10-90 per image'}


def prepare_data(shared, data_root):
    script = osp.join(ROOT, 'scripts', 'prepare_data.py')
    for name in ('Train400', ) + TEST_SETS:
        cmd = [sys.executable, script, '--input', osp.join(shared, name), '--out', osp.join(data_root, name)]
        subprocess.run(cmd + ['--qf', '10', '70', '--workers', '2'], check=True, stdout=subprocess.DEVNULL)


def base_options(name, data_root, qf, iters, lr, seed, batch, patch, backbone):
    return {
        'name': name,
        'model_type': 'CARNModel',
        'num_gpu': 'auto',
        'manual_seed': seed,
        'datasets': {
            'train': train_set_options(f'Train400_qf{qf}', osp.join(data_root, 'Train400'), qf, batch, patch)
        },
        'network_g': cpu_network(backbone),
        'path': {
            'pretrain_network_g': None,
            'strict_load_g': True,
            'resume_state': None
        },
        'train': {
            'optim_g': {
                'type': 'Adam',
                'lr': lr,
                'betas': [0.9, 0.999]
            },
            'scheduler': {
                'type': 'MultiStepLR',
                'milestones': [int(iters * 0.75)],
                'gamma': 0.5
            },
            'total_iter': iters,
            'warmup_iter': -1,
            'pixel_opt': {
                'type': 'L1Loss',
                'loss_weight': 1.0
            }
        },
        'logger': {
            'print_freq': 10,
            'save_checkpoint_freq': iters,
            'use_tb_logger': True
        },
    }


def variant_options(variant, name, data_root, source, target, args):
    spec = VARIANTS[variant]
    opt = base_options(name, data_root, source, args.adapt_iters, spec.get('lr', args.adapt_lr),
                       args.seed + 1 + spec.get('seed', 0), args.batch, args.patch, args.backbone)
    opt['path']['pretrain_network_g'] = latest_generator(f'{args.prefix}_sq_qf{source}')
    if spec.get('curve'):
        opt['logger']['save_checkpoint_freq'] = max(1, args.adapt_iters // CURVE_POINTS)
    if spec.get('schedule') == 'cosine':
        opt['train']['scheduler'] = {
            'type': 'CosineAnnealingRestartLR',
            'periods': [args.adapt_iters],
            'restart_weights': [1],
            'eta_min': 0
        }
    if variant == 'control':
        return opt
    if {'self', 'q', 'align'} & spec.keys():
        opt['model_type'] = 'CARNDAModel'  # else CARNModel on TwoDomainDataset's source pairs (synth alone)
    train_set = opt['datasets']['train']
    train_set.update(type='TwoDomainDataset', dataroot_target=osp.join(data_root, 'Train400', f'qf{target}'))
    for key in ('target_quality', 'source_quality', 'synth_probability'):
        if key in spec:
            train_set[key] = spec[key]
    if spec.get('source_quality') == 'target':
        del train_set['dataroot_lq']
    train_set['batch_size_per_gpu'] = spec.get('batch', args.batch)
    if spec.get('self'):
        train_set['target_self_supervision'] = True
        opt['train']['target_opt'] = dict(L1)
    if 'split_at' in spec:
        opt['network_g']['split_at'] = spec['split_at']
    if 'q' in spec:
        opt['network_q'] = dict(spec['q'], num_feat=CPU_BACKBONES[args.backbone][1])
        opt['train']['optim_q'] = {'type': 'Adam', 'lr': spec.get('q_lr', args.adapt_lr), 'betas': [0.9, 0.999]}
        opt['train']['domain_opt'] = dict(spec['domain'], type='DomainAdversarialLoss')
        opt['train']['q_steps'] = spec.get('q_steps', 1)
    if 'align' in spec:
        opt['train']['align_opt'] = dict(spec['align'])
    return opt


def peer_options(peer, name, data_root, args):
    """A peer trained from scratch for the study's whole budget: BQ (both QFs, stored JPEGs) or blind (QF 10-90)."""
    opt = base_options(name, data_root, 10, args.source_iters + args.adapt_iters, args.lr, args.seed, args.batch,
                       args.patch, args.backbone)
    train_set = opt['datasets']['train']
    del train_set['dataroot_lq']
    if peer == 'BQ':
        train_set['dataroot_lqs'] = [osp.join(data_root, 'Train400', f'qf{qf}') for qf in (10, 70)]
    else:
        train_set['jpeg_range'] = [10, 90]
    return opt


def mean_logged(name, key):
    """Mean of a value BasicSR's message logger wrote (e.g. acc_q) over the training log of ``name``."""
    values = []
    for log in sorted(f for f in os.listdir(experiment_dir(name)) if f.startswith('train_') and f.endswith('.log')):
        with open(osp.join(experiment_dir(name), log), encoding='utf-8') as f:
            values += [float(v) for v in re.findall(rf'{key}: ([-+.\deE]+)', f.read())]
    return float(np.mean(values)) if values else None


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
    batch size, in one process, the two timed in alternating rounds of ``steps`` steps (after 3 warm-up steps each)
    so that load changes hit both."""
    gen = torch.Generator().manual_seed(0)

    def random_batch(opt):
        shape = (opt['datasets']['train']['batch_size_per_gpu'], 1) + (opt['datasets']['train']['gt_size'], ) * 2
        return {key: torch.rand(shape, generator=gen) for key in ('gt', 'lq', 'lq_target', 'lq_target_self')}

    models = []
    for opt in (control_opt, variant_opt):
        opt = copy.deepcopy(opt)
        opt.update(is_train=True, dist=False, num_gpu=0, rank=0, world_size=1)
        opt['path']['pretrain_network_g'] = None
        models.append(build_model(opt))
        models[-1].feed_data(random_batch(opt))
        for i in range(3):
            models[-1].optimize_parameters(i + 1)
    seconds = [0.0, 0.0]
    for _ in range(rounds):
        for k, model in enumerate(models):
            start = time.perf_counter()
            for i in range(steps):
                model.optimize_parameters(i + 4)
            seconds[k] += time.perf_counter() - start
    return seconds[1] / seconds[0]


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

    def __init__(self, cache, backbone, pairs):
        self.cache, self.backbone, self.pairs = cache, backbone, pairs

    def __call__(self, checkpoint, qf, datasets=TEST_SETS, network=None, experts=None, limit=None):
        """{'<dataset>_<metric>': mean} of ``checkpoint`` (None: the JPEG input) at ``qf`` on ``datasets``;
        ``network``: its network_g options (default: the study's backbone). ``experts``: the checkpoints of a
        QualityRoutedCARN's experts, in order: where it sends every image of a set to one expert, its restorations
        are that expert's, so the expert's scores are taken. ``limit``: only the first ``limit`` test pairs."""

        def load():  # only when it routes or restores: a cached score needs no network
            return None if checkpoint is None else load_generator(network or cpu_network(self.backbone), checkpoint)

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


def routed_model(path, experts, backbone):
    """Write (unless up to date) the QualityRoutedCARN checkpoint ``path`` of ``experts``, (quality, checkpoint)
    pairs of the study's backbone; return its network_g options."""
    network = {
        'type': 'QualityRoutedCARN',
        'experts': [{
            'network': cpu_network(backbone),
            'qualities': [quality]
        } for quality, _ in experts]
    }
    if not osp.isfile(path) or any(os.stat(c).st_mtime_ns > os.stat(path).st_mtime_ns for _, c in experts):
        torch.save({'params': routed_state(checkpoint for _, checkpoint in experts)}, path)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shared', default=osp.join(ROOT, os.pardir, 'shared', 'datasets'))
    parser.add_argument('--data-root', default=osp.join(ROOT, 'datasets'))
    parser.add_argument('--out', default=None, help='Output folder. Default: results/<prefix>.')
    parser.add_argument('--backbone', choices=sorted(CPU_BACKBONES), default='rdn')
    parser.add_argument('--prefix', default=None, help='Experiment name prefix. Default: da_study_<backbone>.')
    parser.add_argument('--directions', nargs='+', choices=sorted(DIRECTIONS), default=['lq2hq', 'hq2lq'])
    parser.add_argument(
        '--variants',
        nargs='+',
        choices=list(VARIANTS),
        default=[name for name, spec in VARIANTS.items() if not spec.get('explore')],
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
    args = parser.parse_args()
    args.prefix = args.prefix or f'da_study_{args.backbone}'
    args.source_limit, args.curve_limit = (min(n, args.test_limit or n) for n in (args.source_limit, args.curve_limit))
    args.out = args.out or osp.join(ROOT, 'results', args.prefix)
    os.makedirs(args.out, exist_ok=True)
    start = time.time()

    prepare_data(args.shared, args.data_root)
    wall = {}

    def train_all(options):  # --jobs trainings at a time, each in its own process
        with ThreadPoolExecutor(args.jobs) as pool:
            wall.update(
                zip((opt['name'] for opt in options), pool.map(lambda o: train_unless_done(o, args.out), options)))

    # first the source models (the variants start from them) and the peers, then the variants
    qualities = sorted({qf for direction in args.directions for qf in DIRECTIONS[direction]})
    train_all([
        base_options(f'{args.prefix}_sq_qf{qf}', args.data_root, qf, args.source_iters, args.lr, args.seed, args.batch,
                     args.patch, args.backbone) for qf in qualities
    ] + [peer_options(peer, f'{args.prefix}_{peer}', args.data_root, args) for peer in args.peers])
    variant_opts = {
        (direction, variant):
        variant_options(variant, f'{args.prefix}_{direction}_{variant}', args.data_root, *DIRECTIONS[direction], args)
        for direction in args.directions
        for variant in args.variants
    }
    # a files twin whose target QFs all read as they are estimated draws its twin's batches: training is deterministic,
    # so its twin's model is its model, trained once (the target folder is read only where a twin and its twin run)
    with_twin = [(d, v) for d, v in variant_opts if VARIANTS[v].get('twin') in args.variants]
    agree = {
        direction: qualities_agree(osp.join(args.data_root, 'Train400', f'qf{DIRECTIONS[direction][1]}'))
        for direction in dict.fromkeys(d for d, _ in with_twin)  # each direction once
    }
    same_as_twin = [(d, v) for d, v in with_twin if agree[d]]
    for direction, variant in same_as_twin:
        variant_opts[direction, variant] = variant_opts[direction, VARIANTS[variant]['twin']]
    distinct = {opt['name']: opt for opt in variant_opts.values()}
    # the costlier steps first (self-supervision doubles a step's crops), so that the --jobs workers end together
    train_all(
        sorted(
            distinct.values(),
            key=lambda opt: -opt['datasets']['train']['batch_size_per_gpu'] *
            (2 if opt['datasets']['train'].get('target_self_supervision') else 1)))

    def test_pairs(dataset, qf):
        folder = osp.join(args.data_root, dataset)
        return load_pairs(osp.join(folder, f'qf{qf}'), osp.join(folder, 'gt'))[:args.test_limit]

    cache = JsonCache(osp.join(args.out, 'scores_cache.json'))
    scores = Scores(cache, args.backbone, test_pairs)
    report = {
        'command': ' '.join(sys.argv),
        'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'machine': f'{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
        f'torch {torch.__version__}',
        'args': vars(args),
        'variants': {
            name: spec['text']
            for name, spec in VARIANTS.items()
        },
        'peers': PEERS,
        'directions': {}
    }
    network = cpu_network(args.backbone)
    report['parameters'] = sum(p.numel() for p in build_network(copy.deepcopy(network)).parameters())
    markdown = [
        f'Command: `{report["command"]}`  \nDate: {report["date"]}; machine: {report["machine"]}  \n'
        f'Backbone: `{network}`, {report["parameters"]:,} parameters\n'
    ]
    dq_label, sq_label = 'DQ (SQ of the source)', 'SQ of the target (oracle)'
    for direction in args.directions:
        source, target = DIRECTIONS[direction]
        models = {dq_label: f'{args.prefix}_sq_qf{source}', sq_label: f'{args.prefix}_sq_qf{target}'}
        models.update({f'{peer} (peer)': f'{args.prefix}_{peer}' for peer in args.peers})
        control_opt = variant_options('control', 'control', args.data_root, source, target, args)
        labels = {}  # variant: its row's label
        for variant in args.variants:
            labels[variant] = f'{variant} ({VARIANTS[variant].get("track", "pixels")})'
            models[labels[variant]] = variant_opts[direction, variant]['name']

        def row(checkpoint, network=None, experts=None):
            """Scores at the target QF and BSD68 PSNR at the source QF (None: the JPEG input, target QF only)."""
            if checkpoint is None:
                return scores(None, target)
            source_psnr = scores(checkpoint, source, ('BSD68', ), network, experts, args.source_limit)['BSD68_psnr']
            return {**scores(checkpoint, target, network=network, experts=experts), 'source_psnr': source_psnr}

        def step_ratio(opt):  # kept by what a step on random data depends on: no names, paths or logger options
            key = json.dumps([step_defining(o) for o in (opt, control_opt)], sort_keys=True)
            return cache.get(f'step_ratio|{key}', lambda: step_time_ratio(opt, control_opt))

        def curve_point(checkpoint):
            return scores(checkpoint, target, ('Set12', ), limit=args.curve_limit)['Set12_psnr']

        checkpoints = {'JPEG': (None, )}
        checkpoints.update({label: (latest_generator(name), ) for label, name in models.items()})
        routed = {}  # the routed pairs: source model for the source QF, the variant for the target
        for variant in args.variants:
            if VARIANTS[variant].get('routed'):
                checkpoint = osp.join(args.out, f'{direction}_{variant}_routed.pth')
                experts = [
                    latest_generator(models[dq_label]),
                    latest_generator(variant_opts[direction, variant]['name'])
                ]
                network = routed_model(checkpoint, list(zip((source, target), experts)), args.backbone)
                routed[f'{variant} + routing ({VARIANTS[variant].get("track", "pixels")})'] = (checkpoint, network,
                                                                                               experts)
        curve_checkpoints = {}  # curve variant: {adaptation iteration: checkpoint}, from the source model's on
        for variant in args.variants:
            if VARIANTS[variant].get('curve'):
                name = models[labels[variant]]
                folder = osp.join(experiment_dir(name), 'models')
                found = (re.fullmatch(r'net_g_(\d+)\.pth', f) for f in os.listdir(folder))
                points = {int(m[1]): osp.join(folder, m[0]) for m in found if m and int(m[1]) < args.adapt_iters}
                curve_checkpoints[variant] = {0: latest_generator(models[dq_label]), **points}
                curve_checkpoints[variant][args.adapt_iters] = latest_generator(name)
        # scorings and step times: --jobs threads of one torch thread each (torch ops release the GIL), each step time
        # measured against a source-only step in alternating rounds, so that the other thread's load hits both
        torch.set_num_threads(1)
        phase_start = time.time()
        with ThreadPoolExecutor(args.jobs) as pool:
            row_jobs = {label: pool.submit(row, *spec) for label, spec in checkpoints.items()}
            ratio_jobs = {v: pool.submit(step_ratio, variant_opts[direction, v]) for v in args.variants}
            curve_jobs = {
                (v, it): pool.submit(curve_point, c)
                for v, points in curve_checkpoints.items()
                for it, c in points.items()
            }
            row_jobs.update({label: pool.submit(row, *spec) for label, spec in routed.items()})  # after their experts
            rows = [(label, job.result()) for label, job in row_jobs.items()]
            ratios = {v: job.result() for v, job in ratio_jobs.items()}
            curve_psnr = {key: job.result() for key, job in curve_jobs.items()}
        wall[f'{direction} scoring and step-time ratios'] = time.time() - phase_start
        details = {
            labels[v]: {
                'acc_q': mean_logged(variant_opts[direction, v]['name'], 'acc_q'),
                'step_ratio': ratios[v]
            }
            for v in args.variants
        }
        values_of = dict(rows)
        dq, sq = values_of[dq_label], values_of[sq_label]
        for label, values in rows[1:]:
            for dataset in TEST_SETS:
                gap = sq[f'{dataset}_psnr'] - dq[f'{dataset}_psnr']
                values[f'{dataset}_gap'] = 100 * (values[f'{dataset}_psnr'] - dq[f'{dataset}_psnr']) / gap
            values['forgetting'] = values['source_psnr'] - dq['source_psnr']
            values.update({k: v for k, v in details.get(label, {}).items() if v is not None})
        curves = {
            labels[v]: [(it, curve_psnr[v, it]) for it in sorted(points)]
            for v, points in curve_checkpoints.items()
        }
        columns = [(f'{d}_{m}', f'{d} {m.upper().replace("PSNRB", "PSNR-B")}') for d in TEST_SETS
                   for m in ('psnr', 'psnrb', 'ssim')]
        columns += [(f'{d}_gap', f'{d} gap recovered %') for d in TEST_SETS]
        columns += [('source_psnr', f'BSD68 PSNR at QF {source} ({args.source_limit} images)'),
                    ('forgetting', 'change at source QF (dB)'), ('acc_q', 'Q accuracy'),
                    ('step_ratio', 'step time / source-only step')]
        title = f'### {direction}: source QF {source} -> target QF {target} (scores at QF {target})\n'
        gap_plot(osp.join(args.out, f'gap_{direction}.png'), direction, rows[1:])
        curve_plot(osp.join(args.out, f'curve_{direction}.png'), direction, curves, target, args.curve_limit)
        twins = ''.join(f'\n`{v}` is `{VARIANTS[v]["twin"]}`\'s model: the QF read from each target file equals the '
                        'one estimated from its pixels, so the two draw the same batches.\n' for d, v in same_as_twin
                        if d == direction)
        markdown.append(title + '\n' + markdown_table(columns, rows) + twins +
                        f'\nPlots: `gap_{direction}.png`, `curve_{direction}.png`.\n')
        report['directions'][direction] = {'rows': rows, 'details': details, 'curves': curves}
    report['wall_seconds'] = {'total': time.time() - start, **wall}
    phases = ', '.join(f'{k} {v:.0f} s' for k, v in wall.items())
    markdown.append(f'Wall time: {report["wall_seconds"]["total"] / 60:.1f} min '
                    f'(trainings, then per direction scoring and step-time ratios: {phases}).\n')
    markdown.append('Variants:\n\n' + ''.join(f'- `{name}`: {spec["text"]}\n'
                                              for name, spec in VARIANTS.items() if name in args.variants))
    markdown.append('Peers (trained from scratch for the source + adaptation iterations):\n\n' +
                    ''.join(f'- `{name}`: {text}\n' for name, text in PEERS.items() if name in args.peers))
    text = '\n'.join(markdown)
    print(text)
    with open(osp.join(args.out, 'da_study.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    with open(osp.join(args.out, 'da_study.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
