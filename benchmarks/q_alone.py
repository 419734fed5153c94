"""Can a quality discriminator learn to see JPEG quality on F's features at all? Q trained alone, F frozen.

    python benchmarks/q_alone.py                         # every discriminator, both crop kinds, QF 10 vs 70, 30 vs 50
    python benchmarks/q_alone.py --qs blockdct --steps 300 --pairs 10,70     # one line of the table
    python benchmarks/q_alone.py --source A.pth B.pth --qs blockdct --crops aligned --pairs 10,70 --lrs 1e-3
                                                         # a probe: can a fresh Q still tell the domains apart in F?

The source model's F (``--source``/``--opt``; default: the QF-10 RDN that benchmarks/real_world.py trains, the
study's CPU-sized RDN; several checkpoints: each in turn, with the options saved beside it) gives the features of
Train400 crops compressed on the fly at the two qualities of a pair (JPEGPairedDataset, random crops at any offset or
``grid_aligned`` ones); each discriminator of ``QS`` learns alone to tell them apart
(DomainAdversarialLoss.discriminator_loss, Adam, ``--batch`` crops of each quality a step), as the
Q warm-up of CARNDAModel does. Reported per run: the training accuracy by window of ``--window`` steps, the first
step at which it averaged 0.9 over a window, and the accuracy on held-out BSD68 crops (``--held-out`` per quality)
at the end. Writes ``--out``/q_alone.md and .json.
"""
import carn_da.compat  # noqa: F401

import argparse
import json
import numpy as np
import os
import platform
import random
import shlex
import sys
import time
import torch
from basicsr.archs import build_network
from datetime import datetime, timezone
from os import path as osp

from carn_da import recipes
from carn_da.data.jpeg_paired_dataset import JPEGPairedDataset
from carn_da.losses.domain_adversarial_loss import DomainAdversarialLoss
from carn_da.runs import latest_generator
from carn_da.utils.checkpoint import load_model
from carn_da.utils.files import write_atomic

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(REPO, os.pardir, 'shared')
SOURCE = latest_generator('real_world_rdn_qf10', REPO)
# the discriminators compared: recipes.discriminator's options (num_feat added)
BLOCK_DCT = {'kind': 'BlockDCTQualityDiscriminator', 'hidden': 128, 'pooling': None}
QS = {
    'paper': dict(hidden=128),
    'avgstd': dict(hidden=128, pooling='avgstd'),
    'patch': dict(kind='PatchQualityDiscriminator', hidden=32, pooling=None),
    'blockdct': BLOCK_DCT,
    'blockdct_absolute': dict(BLOCK_DCT, relative=False),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--source', nargs='+', default=[SOURCE], help='Checkpoints whose F is frozen, each in turn.')
    parser.add_argument(
        '--opt',
        help="The option file of a single --source. Default: the one BasicSR saved beside "
        "each --source's run.")
    parser.add_argument('--qs', nargs='+', default=list(QS), choices=list(QS))
    parser.add_argument('--crops', nargs='+', default=['aligned', 'random'], choices=['aligned', 'random'])
    parser.add_argument('--pairs', nargs='+', default=['10,70', '30,50'], help='Source,target qualities.')
    parser.add_argument('--lrs', type=float, nargs='+', default=[1e-3, 1e-4])
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--batch', type=int, default=8, help='Crops of each quality a step. Default: 8.')
    parser.add_argument('--patch', type=int, default=48)
    parser.add_argument('--window', type=int, default=100)
    parser.add_argument('--held-out', type=int, default=256, help='BSD68 crops of each quality scored at the end.')
    parser.add_argument('--data', default=osp.join(SHARED, 'datasets'))
    parser.add_argument('--out', default=osp.join(REPO, 'results', 'q_alone'))
    args = parser.parse_args()
    if args.opt and len(args.source) > 1:
        parser.error('--opt names the options of a single --source; several take the ones saved beside each.')
    return args


def crops(args, folder, quality, aligned):
    """JPEGPairedDataset of ``folder``'s ground truths compressed at ``quality``: training crops and flips."""
    return JPEGPairedDataset({
        'name': f'{osp.basename(folder)}_qf{quality}',
        'dataroot_gt': folder,
        'jpeg_range': [quality, quality],
        'phase': 'train',
        'gt_size': args.patch,
        'use_hflip': True,
        'use_rot': True,
        'grid_aligned': aligned
    })


def batch(dataset, size):
    return torch.stack([dataset[random.randrange(len(dataset))]['lq'] for _ in range(size)])


def features(net, x):
    with torch.no_grad():
        return net.quality_feature(net.extract(x))


def held_out_accuracy(args, net, q, datasets):
    """Q's accuracy on ``--held-out`` fresh crops of each quality of ``datasets`` (source, target)."""
    loss, correct = DomainAdversarialLoss(), []
    with torch.no_grad():
        for _ in range(0, args.held_out, 32):
            loss.discriminator_loss(q, *(features(net, batch(d, 32)) for d in datasets))
            correct.append(loss.accuracy)
    return float(np.mean(correct))


def run(args, net, channels, kind, pair, aligned, lr):
    """Train one Q alone; its accuracy curve, first window at 0.9 and held-out accuracy."""
    random.seed(0)
    torch.manual_seed(0)
    train = [crops(args, osp.join(args.data, 'Train400'), q, aligned) for q in pair]
    test = [crops(args, osp.join(args.data, 'BSD68'), q, aligned) for q in pair]
    q_net = build_network(recipes.discriminator(channels, **QS[kind]))
    optimizer = torch.optim.Adam(q_net.parameters(), lr=lr)
    loss, accuracy, start = DomainAdversarialLoss(), [], time.time()
    for _ in range(args.steps):
        optimizer.zero_grad()
        loss.discriminator_loss(q_net, *(features(net, batch(d, args.batch)) for d in train)).backward()
        optimizer.step()
        accuracy.append(loss.accuracy)
    windows = [float(np.mean(accuracy[i:i + args.window])) for i in range(0, len(accuracy), args.window)]
    reached = next((i * args.window + args.window for i, a in enumerate(windows) if a >= 0.9), None)
    return dict(
        windows=windows,
        reached_0_9=reached,
        held_out=held_out_accuracy(args, net, q_net.eval(), test),
        seconds=time.time() - start)


def table(args, rows):
    lines = [
        f'| F of | Q | crops | QF pair | lr | accuracy by {args.window} steps | 0.9 by step | held-out |',
        '|---|---|---|---|---:|---|---:|---:|'
    ]
    for (source, kind, crop, pair, lr), r in rows.items():
        curve = ', '.join(f'{a:.2f}' for a in r['windows'])
        lines.append(f'| {source} | {kind} | {crop} | {pair} | {lr:g} | {curve} | {r["reached_0_9"] or "-"} | '
                     f'{r["held_out"]:.3f} |')
    return '\n'.join(lines) + '\n'


def runs_of(args, checkpoint, rows):
    """Every Q, crop kind, pair and learning rate on the frozen F of ``checkpoint``, into ``rows``."""
    run_dir = osp.dirname(osp.dirname(checkpoint))  # experiments/NAME of experiments/NAME/models/x.pth
    source = osp.basename(run_dir)
    net, _ = load_model(checkpoint, args.opt or osp.join(run_dir, f'{source}.yml'))  # the options BasicSR saved there
    channels = features(net, torch.zeros(1, 1, 16, 16)).shape[1]
    for pair in args.pairs:
        for kind in args.qs:
            for crop in args.crops:
                for lr in args.lrs:
                    row = run(args, net, channels, kind, tuple(map(int, pair.split(','))), crop == 'aligned', lr)
                    rows[source, kind, crop, pair, lr] = row
                    print(
                        f'{source}: {kind} {crop} {pair} lr {lr:g}: held-out {row["held_out"]:.3f}, 0.9 by '
                        f'{row["reached_0_9"]} ({row["seconds"]:.0f} s)',
                        flush=True)


def main():
    args = parse_args()
    missing = [checkpoint for checkpoint in args.source if not osp.isfile(checkpoint)]
    if missing:
        sys.exit(f'No source model {missing[0]}: run benchmarks/real_world.py (it trains the default) or give '
                 '--source/--opt.')
    torch.set_num_threads(min(2, os.cpu_count()))
    rows = {}
    for checkpoint in args.source:
        runs_of(args, checkpoint, rows)
    head = (f'### Q alone on frozen F features\n\nCommand: `python benchmarks/q_alone.py {shlex.join(sys.argv[1:])}`  '
            f'\nDate: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}, {os.cpu_count()} '
            f'CPUs, torch {torch.__version__}; F: {", ".join(f"`{c}`" for c in args.source)}\n\n')
    os.makedirs(args.out, exist_ok=True)
    text = head + table(args, rows)
    print(text)
    write_atomic(osp.join(args.out, 'q_alone.md'), text.encode())
    write_atomic(
        osp.join(args.out, 'q_alone.json'),
        json.dumps({
            ' '.join(map(str, k)): v
            for k, v in rows.items()
        }, indent=1).encode())


if __name__ == '__main__':
    main()
