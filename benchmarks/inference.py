"""Throughput and peak memory of ``carn_da.utils.inference.restore`` on one large grayscale image, with and without
tiles.

Each case runs in a fresh subprocess, so that its peak memory is its own:

- ``forward``: a bare ``torch.no_grad()`` forward of the network on the image's (1, 1, H, W) float tensor;
- ``restore``: ``inference.restore`` on the uint8 image (tensor conversion, forward, clamping, rounding);
- ``restore_tiled``: the same in ``--tile`` tiles overlapping by ``--tile-overlap``.

Time is the median of ``--repeats`` runs after one warm-up run; throughput is megapixels per second; the overhead is
the time over that of the bare forward (target under 5 % for ``restore``). Peak memory is the subprocess's max RSS
(``resource.getrusage``), also as the growth over its RSS before the first run (network, image and imports), and on
CUDA ``torch.cuda.max_memory_allocated``. The network is an RDN with random weights (its speed does not depend on
them) on a random image.

    python benchmarks/inference.py                               # 4000x3000 (12 MP), a few minutes on 2 CPU cores
    python benchmarks/inference.py --size 320x240 --tile 128 --repeats 1   # smoke run
"""
import carn_da.compat  # noqa: F401

import argparse
import json
import numpy as np
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
import torch
from datetime import datetime, timezone
from os import path as osp

from carn_da.archs.rdn_arch import RDN
from carn_da.utils.inference import restore

CASES = ('forward', 'restore', 'restore_tiled')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', default='4000x3000', help='Image WIDTHxHEIGHT. Default: 4000x3000.')
    parser.add_argument('--num-feat', type=int, default=16, help='RDN G0. Default: 16.')
    parser.add_argument('--num-block', type=int, default=2, help='RDN D. Default: 2.')
    parser.add_argument('--num-layer', type=int, default=2, help='RDN C. Default: 2.')
    parser.add_argument('--growth', type=int, default=8, help='RDN G. Default: 8.')
    parser.add_argument('--tile', type=int, default=512, help='Tile size of restore_tiled. Default: 512.')
    parser.add_argument('--tile-overlap', type=int, default=32, help='Tile overlap of restore_tiled. Default: 32.')
    parser.add_argument('--repeats', type=int, default=3, help='Timed runs per case. Default: 3.')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    parser.add_argument('--threads', type=int, help="torch's CPU threads (default: torch's default).")
    parser.add_argument('--case', choices=CASES, help=argparse.SUPPRESS)  # set in the per-case subprocesses
    args = parser.parse_args()
    args.width, args.height = (int(v) for v in args.size.lower().split('x'))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return args


def max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_case(args):
    """Time one case in this process; return its figures."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = RDN(1, 1, args.num_feat, args.num_block, args.num_layer, args.growth).to(device).eval()
    img = np.random.default_rng(0).integers(0, 256, (args.height, args.width), dtype=np.uint8)
    if args.case == 'forward':
        lq = torch.from_numpy(img).float().div(255.).view(1, 1, args.height, args.width).to(device)

        def call():
            with torch.no_grad():
                net(lq)
    else:
        tile = args.tile if args.case == 'restore_tiled' else None

        def call():
            restore(net, img, device, tile, args.tile_overlap)

    setup_rss = max_rss_mib()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        call()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    result = {'seconds': float(np.median(seconds[1:])), 'peak_rss_mib': max_rss_mib(), 'setup_rss_mib': setup_rss}
    if device.type == 'cuda':
        result['cuda_peak_mib'] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def machine(device):
    cpu = platform.processor() or platform.machine()
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    threads = torch.get_num_threads()
    text = f'{platform.node()}, {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, torch threads: {threads}'
    if device == 'cuda':
        text += f', {torch.cuda.get_device_name()}'
    return text


def main():
    args = parse_args()
    if args.case is not None:
        print(json.dumps(run_case(args)))
        return
    results = {}
    for case in CASES:
        print(f'running {case} ...', file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, *sys.argv[1:], '--case', case]
        results[case] = json.loads(subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout)

    megapixels = args.width * args.height / 1e6
    bare = results['forward']['seconds']
    cuda = args.device == 'cuda'
    lines = [
        '| case | time (s) | MP/s | time vs bare forward | peak RSS (MiB) | RSS growth (MiB) |' +
        (' CUDA peak (MiB) |' if cuda else ''), '|---|---:|---:|---:|---:|---:|' + ('---:|' if cuda else '')
    ]
    for case, r in results.items():
        cells = [
            case, f'{r["seconds"]:.3f}', f'{megapixels / r["seconds"]:.3f}', f'{r["seconds"] / bare - 1:+.1%}',
            f'{r["peak_rss_mib"]:.0f}', f'{r["peak_rss_mib"] - r["setup_rss_mib"]:.0f}'
        ]
        if cuda:
            cells.append(f'{r["cuda_peak_mib"]:.0f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    command = shlex.join(['python', 'benchmarks/inference.py', *sys.argv[1:]])
    date = datetime.now(timezone.utc).isoformat(timespec='seconds')
    print(f'Inference of RDN (G0={args.num_feat}, D={args.num_block}, C={args.num_layer}, G={args.growth}, random '
          f'weights) on a {args.width}x{args.height} ({megapixels:.1f} MP) grayscale image on {args.device}; '
          f'restore_tiled: tiles {args.tile}, overlap {args.tile_overlap}; median of {args.repeats} runs after a '
          'warm-up, each case in a fresh process.\n')
    print('\n'.join(lines) + '\n')
    print(f'Command: `{command}`  \nDate: {date}; machine: {machine(args.device)}')


if __name__ == '__main__':
    main()
