"""Domain adaptation across JPEG quality at CPU scale: how much of the DQ -> SQ gap does each recipe recover?

For each direction (LQ->HQ: source QF 10, target QF 70; HQ->LQ: 70 -> 10) a small RDN is trained on the source QF
(SQ of the source, whose score on the target QF is DQ) and on the target QF (SQ of the target, the oracle). Every
variant then starts from the same source checkpoint with the same seed and runs the same number of iterations
through BasicSR's pipeline (carn_da/train.py, options written by this script):

- ``control``: source-only fine-tuning (CARNModel), the same extra iterations without the target;
- ``paper``: the paper's recipe (CARNDAModel, QualityDiscriminator on average-pooled SFENet2 features, lambda 0.1);
- ``paper_avgstd``: the same with average and standard-deviation pooling.

Reported per direction, on BSD68 and Set12 at the target QF: PSNR, PSNR-B, SSIM, the gap recovery
(PSNR_variant - PSNR_DQ) / (PSNR_SQ - PSNR_DQ), PSNR on the source QF (forgetting), the discriminator's mean
accuracy over training, and the time of one training step relative to a source-only step (measured in one process
on the same batch). Data: Train400 for training, BSD68 and Set12 for testing, from ../shared/datasets.

    python benchmarks/da_study.py                      # full study, about an hour on 2 CPU cores
    python benchmarks/da_study.py --source-iters 50 --adapt-iters 20 --test-limit 2   # smoke run
"""
import carn_da.compat  # noqa: F401

import argparse
import copy
import json
import numpy as np
import os
import platform
import re
import subprocess
import sys
import time
import torch
from basicsr.archs import build_network
from basicsr.models import build_model
from datetime import datetime, timezone
from os import path as osp

from carn_da.evaluation import evaluate_pairs, load_pairs, markdown_table, mean_scores
from carn_da.runs import (CPU_BACKBONES, ROOT, cpu_network, experiment_dir, latest_generator, load_generator,
                          train_set_options, train_unless_done)

DIRECTIONS = {'lq2hq': (10, 70), 'hq2lq': (70, 10)}
TEST_SETS = ('BSD68', 'Set12')
VARIANTS = {
    'control': {
        'model_type': 'CARNModel'
    },
    'paper': {
        'model_type': 'CARNDAModel',
        'pooling': 'avg',
        'lambda': 0.1
    },
    'paper_avgstd': {
        'model_type': 'CARNDAModel',
        'pooling': 'avgstd',
        'lambda': 0.1
    },
}


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
    opt = base_options(name, data_root, source, args.adapt_iters, args.adapt_lr, args.seed + 1, args.batch, args.patch,
                       args.backbone)
    opt['model_type'] = spec['model_type']
    opt['path']['pretrain_network_g'] = latest_generator(f'{args.prefix}_sq_qf{source}')
    if spec['model_type'] == 'CARNDAModel':
        opt['datasets']['train'].update(
            type='TwoDomainDataset', dataroot_target=osp.join(data_root, 'Train400', f'qf{target}'))
        opt['network_q'] = {
            'type': 'QualityDiscriminator',
            'num_feat': CPU_BACKBONES[args.backbone][1],
            'hidden': 128,
            'pooling': spec['pooling']
        }
        opt['train']['optim_q'] = {'type': 'Adam', 'lr': args.adapt_lr, 'betas': [0.9, 0.999]}
        opt['train']['domain_opt'] = {'type': 'DomainAdversarialLoss', 'loss_weight': spec['lambda']}
    return opt


def mean_logged(name, key):
    """Mean of a value BasicSR's message logger wrote (e.g. acc_q) over the training log of ``name``."""
    values = []
    for log in sorted(f for f in os.listdir(experiment_dir(name)) if f.startswith('train_') and f.endswith('.log')):
        with open(osp.join(experiment_dir(name), log), encoding='utf-8') as f:
            values += [float(v) for v in re.findall(rf'{key}: ([-+.\deE]+)', f.read())]
    return float(np.mean(values)) if values else None


def step_time_ratio(variant_opt, control_opt, steps=10, rounds=3):
    """Seconds per training step of ``variant_opt`` over those of ``control_opt``: same batch, one process, the two
    timed in alternating rounds of ``steps`` steps (after 3 warm-up steps each) so that load changes hit both."""
    gen = torch.Generator().manual_seed(0)
    batch = variant_opt['datasets']['train']['batch_size_per_gpu']
    patch = variant_opt['datasets']['train']['gt_size']
    data = {'gt': torch.rand(batch, 1, patch, patch, generator=gen)}
    data.update(lq=data['gt'], lq_target=torch.rand(batch, 1, patch, patch, generator=gen))
    models = []
    for opt in (control_opt, variant_opt):
        opt = copy.deepcopy(opt)
        opt.update(is_train=True, dist=False, num_gpu=0, rank=0, world_size=1)
        opt['path']['pretrain_network_g'] = None
        models.append(build_model(opt))
        models[-1].feed_data(data)
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


def score(net, pairs):
    return {
        f'{dataset}_{metric}': value
        for dataset, dataset_pairs in pairs.items()
        for metric, value in mean_scores(evaluate_pairs(dataset_pairs, net)).items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shared', default=osp.join(ROOT, os.pardir, 'shared', 'datasets'))
    parser.add_argument('--data-root', default=osp.join(ROOT, 'datasets'))
    parser.add_argument('--out', default=None, help='Output folder. Default: results/<prefix>.')
    parser.add_argument('--backbone', choices=sorted(CPU_BACKBONES), default='rdn')
    parser.add_argument('--prefix', default=None, help='Experiment name prefix. Default: da_study_<backbone>.')
    parser.add_argument('--directions', nargs='+', choices=sorted(DIRECTIONS), default=['lq2hq', 'hq2lq'])
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument('--source-iters', type=int, default=600)
    parser.add_argument('--adapt-iters', type=int, default=300)
    parser.add_argument('--lr', type=float, default=5e-4, help='Learning rate of the SQ trainings.')
    parser.add_argument('--adapt-lr', type=float, default=1e-4, help='Learning rate of every variant.')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--patch', type=int, default=48)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--test-limit', type=int, default=None, help='Only the first N images of each test set.')
    args = parser.parse_args()
    args.prefix = args.prefix or f'da_study_{args.backbone}'
    args.out = args.out or osp.join(ROOT, 'results', args.prefix)
    os.makedirs(args.out, exist_ok=True)
    start = time.time()

    prepare_data(args.shared, args.data_root)
    wall = {}
    for qf in sorted({qf for d in args.directions for qf in DIRECTIONS[d]}):
        opt = base_options(f'{args.prefix}_sq_qf{qf}', args.data_root, qf, args.source_iters, args.lr, args.seed,
                           args.batch, args.patch, args.backbone)
        wall[opt['name']] = train_unless_done(opt, args.out)

    def test_pairs(qf):
        return {
            name:
            load_pairs(osp.join(args.data_root, name, f'qf{qf}'), osp.join(args.data_root, name,
                                                                           'gt'))[:args.test_limit]
            for name in TEST_SETS
        }

    report = {
        'command': ' '.join(sys.argv),
        'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'machine': f'{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
        f'torch {torch.__version__}',
        'args': vars(args),
        'directions': {}
    }
    network = cpu_network(args.backbone)
    report['parameters'] = sum(p.numel() for p in build_network(copy.deepcopy(network)).parameters())
    markdown = [
        f'Command: `{report["command"]}`  \nDate: {report["date"]}; machine: {report["machine"]}  \n'
        f'Backbone: `{network}`, {report["parameters"]:,} parameters\n'
    ]
    for direction in args.directions:
        source, target = DIRECTIONS[direction]
        pairs_target, pairs_source = test_pairs(target), test_pairs(source)
        models = {
            'DQ (SQ of the source)': latest_generator(f'{args.prefix}_sq_qf{source}'),
            'SQ of the target (oracle)': latest_generator(f'{args.prefix}_sq_qf{target}')
        }
        details = {}
        control_opt = None
        for variant in args.variants:
            name = f'{args.prefix}_{direction}_{variant}'
            opt = variant_options(variant, name, args.data_root, source, target, args)
            control_opt = control_opt or variant_options('control', name, args.data_root, source, target, args)
            wall[name] = train_unless_done(opt, args.out)
            models[variant] = latest_generator(name)
            details[variant] = {'acc_q': mean_logged(name, 'acc_q'), 'step_ratio': step_time_ratio(opt, control_opt)}

        rows = [('JPEG', score(None, pairs_target))]
        for label, checkpoint in models.items():
            net = load_generator(cpu_network(args.backbone), checkpoint)
            rows.append((label, {**score(net, pairs_target), 'source_psnr': score(net, pairs_source)['BSD68_psnr']}))
        scores = dict(rows)
        dq, sq = scores['DQ (SQ of the source)'], scores['SQ of the target (oracle)']
        for label, values in rows[1:]:
            for dataset in TEST_SETS:
                gap = sq[f'{dataset}_psnr'] - dq[f'{dataset}_psnr']
                values[f'{dataset}_gap'] = 100 * (values[f'{dataset}_psnr'] - dq[f'{dataset}_psnr']) / gap
            values.update({k: v for k, v in details.get(label, {}).items() if v is not None})
        columns = [(f'{d}_{m}', f'{d} {m.upper().replace("PSNRB", "PSNR-B")}') for d in TEST_SETS
                   for m in ('psnr', 'psnrb', 'ssim')]
        columns += [(f'{d}_gap', f'{d} gap recovered %') for d in TEST_SETS]
        columns += [('source_psnr', f'BSD68 PSNR at QF {source}'), ('acc_q', 'Q accuracy'),
                    ('step_ratio', 'step time / source-only step')]
        title = f'### {direction}: source QF {source} -> target QF {target} (scores at QF {target})\n'
        markdown.append(title + '\n' + markdown_table(columns, rows))
        report['directions'][direction] = {'rows': rows, 'details': details}
    report['wall_seconds'] = {'total': time.time() - start, **wall}
    markdown.append(f'Wall time: {report["wall_seconds"]["total"] / 60:.1f} min '
                    f'(trainings: {", ".join(f"{k} {v:.0f} s" for k, v in wall.items())}).\n')
    text = '\n'.join(markdown)
    print(text)
    with open(osp.join(args.out, 'da_study.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    with open(osp.join(args.out, 'da_study.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
