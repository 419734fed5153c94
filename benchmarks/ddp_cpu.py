"""Time per iteration of CARNDAModel with DistributedDataParallel on CPU (gloo, torchrun) against one process with
the same global batch. Both runs use all cores: 1 process with N threads, N processes with 1 thread each.

    python benchmarks/ddp_cpu.py                     # 2 processes, global batch 16, 100 iterations
    python benchmarks/ddp_cpu.py --data datasets/Train400 --nproc 2 --batch 16 --iters 100
"""
import carn_da.compat  # noqa: F401

import argparse
import os
import platform
import shutil
import subprocess
import sys
import torch
from datetime import datetime, timezone
from os import path as osp

from carn_da import recipes
from carn_da.runs import experiment_dir
from carn_da.utils.files import write_options
from carn_da.utils.logs import logged_values

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))  # the checkout: the trainings run there


def options(name, data, batch, iters, patch):
    """The paper's DA (recipes.paper_da) of the CPU-sized RDN from scratch, QF 10 -> 70, on the CPU, lr 1e-4 kept for
    the whole run, logged once."""
    train_set = recipes.two_domains(recipes.prepared_pairs('train', data, 10, patch, batch), osp.join(data, 'qf70'))
    q = recipes.discriminator(recipes.quality_channels('rdn'))
    return recipes.paper_da(
        name,
        recipes.network('rdn'),
        train_set,
        recipes.schedule(iters, 1e-4, [iters]),
        recipes.logger(iters, iters, tb_logger=False),
        None,
        q,
        num_gpu=0)


def seconds_per_iter(name):
    """BasicSR's average iteration time over the whole run (its timer's window is 200 iterations)."""
    return list(logged_values(experiment_dir(name, REPO), 'time (data)').values())[-1]


def run(name, opt, nproc, out_dir):
    shutil.rmtree(experiment_dir(name, REPO), ignore_errors=True)
    opt_path = osp.abspath(write_options(opt, osp.join(out_dir, f'{name}.yml')))
    threads = max(1, os.cpu_count() // nproc)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), CARN_DA_DIST_BACKEND='gloo')
    if nproc == 1:
        cmd = [sys.executable, '-m', 'carn_da.train', '-opt', opt_path]
    else:
        cmd = [
            sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
            '--master_port=29517', '-m', 'carn_da.train', '-opt', opt_path, '--launcher', 'pytorch'
        ]
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return seconds_per_iter(name), threads


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--data',
        default=osp.join(REPO, 'datasets', 'demo', 'train'),
        help='A prepare_data.py folder with gt/, qf10/ and qf70/. Default: the demo data.')
    parser.add_argument('--nproc', type=int, default=2)
    parser.add_argument('--batch', type=int, default=16, help='Global batch size.')
    parser.add_argument('--iters', type=int, default=100)
    parser.add_argument('--patch', type=int, default=48)
    parser.add_argument('--out', default=osp.join(REPO, 'results', 'ddp_cpu'))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for nproc in (1, args.nproc):
        name = f'bench_ddp_cpu_{nproc}proc'
        opt = options(name, args.data, args.batch // nproc, args.iters, args.patch)
        seconds, threads = run(name, opt, nproc, args.out)
        rows.append((nproc, threads, args.batch // nproc, seconds))
        shutil.rmtree(experiment_dir(name, REPO), ignore_errors=True)
    print(f'Command: `{" ".join(sys.argv)}`  \nDate: {datetime.now(timezone.utc).isoformat(timespec="seconds")}; '
          f'machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}\n')
    print('| processes | threads each | batch per process | s / iteration | speed-up |\n|---:|---:|---:|---:|---:|')
    for nproc, threads, batch, seconds in rows:
        print(f'| {nproc} | {threads} | {batch} | {seconds:.3f} | {rows[0][3] / seconds:.2f}x |')


if __name__ == '__main__':
    main()
