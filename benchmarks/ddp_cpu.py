"""Time per iteration of CARNDAModel with DistributedDataParallel on CPU (gloo, torchrun) against one process with
the same global batch. Both runs use all cores: 1 process with N threads, N processes with 1 thread each.

    python benchmarks/ddp_cpu.py                     # 2 processes, global batch 16, 100 iterations
    python benchmarks/ddp_cpu.py --data datasets/Train400 --nproc 2 --batch 16 --iters 100
"""
import carn_da.compat  # noqa: F401

import argparse
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import torch
from datetime import datetime, timezone
from os import path as osp

from carn_da.runs import ROOT, cpu_network, experiment_dir, train_set_options, write_options


def options(name, data, batch, iters, patch):
    return {
        'name': name,
        'model_type': 'CARNDAModel',
        'num_gpu': 0,
        'manual_seed': 0,
        'network_g': cpu_network('rdn'),
        'network_q': {
            'type': 'QualityDiscriminator',
            'num_feat': 32,
            'hidden': 128,
            'pooling': 'avg'
        },
        'path': {
            'resume_state': None
        },
        'datasets': {
            'train': train_set_options('train', data, 10, batch, patch, target_qf=70)
        },
        'train': {
            'optim_g': {
                'type': 'Adam',
                'lr': 1e-4
            },
            'optim_q': {
                'type': 'Adam',
                'lr': 1e-4
            },
            'scheduler': {
                'type': 'MultiStepLR',
                'milestones': [iters],
                'gamma': 0.5
            },
            'total_iter': iters,
            'warmup_iter': -1,
            'pixel_opt': {
                'type': 'L1Loss',
                'loss_weight': 1.0
            },
            'domain_opt': {
                'type': 'DomainAdversarialLoss',
                'loss_weight': 0.1
            }
        },
        'logger': {
            'print_freq': iters,
            'save_checkpoint_freq': iters,
            'use_tb_logger': False
        },
    }


def seconds_per_iter(name):
    """BasicSR's average iteration time over the whole run (its timer's window is 200 iterations)."""
    log = ''.join(open(f, encoding='utf-8').read() for f in glob.glob(osp.join(experiment_dir(name), 'train_*.log')))
    return float(re.findall(r'time \(data\): ([\d.]+)', log)[-1])


def run(name, opt, nproc, out_dir):
    shutil.rmtree(experiment_dir(name), ignore_errors=True)
    opt_path = write_options(opt, osp.join(out_dir, f'{name}.yml'))
    train = osp.join(ROOT, 'carn_da', 'train.py')
    threads = max(1, os.cpu_count() // nproc)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), CARN_DA_DIST_BACKEND='gloo')
    if nproc == 1:
        cmd = [sys.executable, train, '-opt', opt_path]
    else:
        cmd = [
            sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
            '--master_port=29517', train, '-opt', opt_path, '--launcher', 'pytorch'
        ]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return seconds_per_iter(name), threads


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--data',
        default=osp.join(ROOT, 'datasets', 'demo', 'train'),
        help='A prepare_data.py folder with gt/, qf10/ and qf70/. Default: the demo data.')
    parser.add_argument('--nproc', type=int, default=2)
    parser.add_argument('--batch', type=int, default=16, help='Global batch size.')
    parser.add_argument('--iters', type=int, default=100)
    parser.add_argument('--patch', type=int, default=48)
    parser.add_argument('--out', default=osp.join(ROOT, 'results', 'ddp_cpu'))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for nproc in (1, args.nproc):
        name = f'bench_ddp_cpu_{nproc}proc'
        opt = options(name, args.data, args.batch // nproc, args.iters, args.patch)
        seconds, threads = run(name, opt, nproc, args.out)
        rows.append((nproc, threads, args.batch // nproc, seconds))
        shutil.rmtree(experiment_dir(name), ignore_errors=True)
    print(f'Command: `{" ".join(sys.argv)}`  \nDate: {datetime.now(timezone.utc).isoformat(timespec="seconds")}; '
          f'machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}\n')
    print('| processes | threads each | batch per process | s / iteration | speed-up |\n|---:|---:|---:|---:|---:|')
    for nproc, threads, batch, seconds in rows:
        print(f'| {nproc} | {threads} | {batch} | {seconds:.3f} | {rows[0][3] / seconds:.2f}x |')


if __name__ == '__main__':
    main()
