"""The shipped models against JPEG and the published DnCNN-3, and what using them costs.

    python benchmarks/zoo.py                 # PSNR / SSIM on BSD68, Set12, Classic5 at QF 10, 20, ..., 90
    python benchmarks/zoo.py --adapt-pile    # carn-da adapt --target PILE --restore OUT, nothing else given
    python benchmarks/zoo.py --package       # the wheel's size; loading the default model on one CPU core
    python benchmarks/zoo.py --pilot 10      # which backbone for the zoo: each blind model trained 10 min, scored

- Scores: every shipped model (``carn-da models``; ``--models`` to choose) and DnCNN-3 (``--mat``, imported with
  ``carn-da import``; left out, and said so, when the file is absent), on the grayscale test
  sets of ``--data`` compressed with OpenCV; the gap to DnCNN-3 per set and QF. Scores are cached per model file
  under ``--out`` (a rerun scores only what is new).
- ``--adapt-pile``: a pile of ``--pile-size`` BSD68 images (the last ones) at ``--pile-qf``, adapted to with the
  shipped models and scikit-image's photos only, timed; its restored images scored against the hidden ground truth
  beside the JPEGs and the shipped default model.
- ``--package``: ``pip wheel`` of the repository (its size, shipped models included) and the median time of 5 loads
  of the default model (checksum, options, weights, the check run) with torch on one thread.
- ``--pilot MINUTES``: each backbone of ``--candidates`` trained as scripts/train_zoo.py trains its blind model
  (recipes.blind with recipes.REAL_WORLD), for as many iterations as MINUTES of its measured step time allow (the
  same CPU budget for each), then scored on Set12 at ``--qualities``: the choice of the zoo's backbone. Run it on an
  otherwise idle machine: the step times decide the iterations.

Writes ``--out``/zoo.md and zoo.json (scores), adapt_pile.md / .json, package.md / .json, pilot.md / .json.
"""
import carn_da.compat  # noqa: F401

import argparse
import cv2
import glob
import json
import numpy as np
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import torch
from datetime import datetime, timezone
from os import path as osp

from carn_da import recipes
from carn_da.import_model import imported_once
from carn_da.runs import latest_generator, recorded_options, step_seconds, train_unless_done
from carn_da.utils.checkpoint import load_model
from carn_da.utils.device import choose_device
from carn_da.utils.evaluation import EvalSet, evaluate
from carn_da.utils.files import load_options, read_json, write_atomic
from carn_da.utils.inference import restore
from carn_da.utils.jpeg import jpeg_encode
from carn_da.utils.scores import image_scores, mean_scores
from carn_da.utils.zoo import read_manifest, resolve_model

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(REPO, os.pardir, 'shared')
SETS = ('BSD68', 'Set12', 'Classic5')
QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
DNCNN3 = 'DnCNN-3'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--adapt-pile', action='store_true', help='Time and score carn-da adapt on a pile alone.')
    parser.add_argument('--package', action='store_true', help='Wheel size and default-model load time.')
    parser.add_argument('--models', nargs='+', help='Shipped models to score. Default: all.')
    parser.add_argument('--sets', nargs='+', default=list(SETS), choices=SETS)
    parser.add_argument('--qualities', type=int, nargs='+', default=list(QUALITIES))
    parser.add_argument('--limit', type=int, help='Only the first N images of each set (smoke runs).')
    parser.add_argument('--pile-qf', type=int, default=50)
    parser.add_argument('--pile-size', type=int, default=12)
    parser.add_argument('--adapt-iters', type=int, help="carn-da adapt's --iters (smoke runs). Default: its own.")
    parser.add_argument('--pilot', type=float, metavar='MINUTES', help='Train each --candidates blind this long.')
    parser.add_argument(
        '--candidates',
        nargs='+',
        default=['rdn:cpu', 'dncnn:cpu', 'dncnn:paper', 'arcnn:cpu', 'memnet:cpu'],
        help='BACKBONE:SIZE of carn_da/recipes.py for --pilot.')
    parser.add_argument('--prefix', default='zoo', help='Prefix of the pilot experiments. Default: zoo.')
    parser.add_argument('--mat', default=osp.join(SHARED, 'peers', 'DnCNN3.mat'))
    parser.add_argument('--data', default=osp.join(SHARED, 'datasets'))
    parser.add_argument('--out', default=osp.join(REPO, 'results', 'zoo'))
    args = parser.parse_args()
    for candidate in args.candidates:
        backbone, _, size = candidate.partition(':')
        if backbone not in recipes.BACKBONES or recipes.unknown_size(backbone, size):
            sizes = '; '.join(f'{b}:{"|".join(presets)}' for b, presets in recipes.BACKBONES.items())
            parser.error(f'--candidates {candidate}: expected BACKBONE:SIZE among {sizes}')
    return args


def eval_set(args, name):
    test_set = EvalSet(name, osp.join(args.data, name))
    test_set.gts, test_set.stems = test_set.gts[:args.limit], test_set.stems[:args.limit]
    return test_set


def scores(args, label, files, sets):
    """{set: {QF: mean scores}} of a model ((checkpoint, options); None: the JPEGs), cached in ``--out``."""
    key = json.dumps([label, files and [osp.abspath(files[0]), osp.getmtime(files[0])], args.limit])
    cache_path = osp.join(args.out, 'scores_cache.json')
    found = read_json(cache_path).get(key, {})
    missing = [q for q in args.qualities if any(str(q) not in found.get(name, {}) for name in sets)]
    if missing:
        nets = [] if files is None else [(label, load_model(*files)[0].to(choose_device('auto')))]
        results, _ = evaluate(nets, sets, missing)
        for name, by_qf in results[label if nets else 'JPEG'].items():
            found.setdefault(name, {}).update({str(q): mean_scores(rows) for q, rows in by_qf.items()})
        write_atomic(cache_path, json.dumps(dict(read_json(cache_path), **{key: found}), indent=0).encode())
    return found


def dncnn3(args):
    """(checkpoint, options) of DnCNN-3 imported into ``--out``, or None when the .mat file is absent."""
    return imported_once(args.mat, args.out) if osp.isfile(args.mat) else None


def scores_table(args, rows):
    """A Markdown table per test set: a row per QF, PSNR / SSIM per model, each model's PSNR gap to DnCNN-3."""
    lines = []
    models = [label for label in rows if label not in ('JPEG', DNCNN3)]
    for name in args.sets:
        lines += [
            f'\n#### {name}\n',
            '| QF | ' + ' | '.join(rows) + ' | ' + ' | '.join(f'{m} - DnCNN-3' for m in models) + ' |',
            '|---:|' + '---:|' * (len(rows) + len(models))
        ]
        for q in args.qualities:
            cells = [
                f'{by_set[name][str(q)]["psnr"]:.2f} / {by_set[name][str(q)]["ssim"]:.4f}' for by_set in rows.values()
            ]
            reference = rows.get(DNCNN3, {}).get(name, {}).get(str(q), {}).get('psnr')
            gaps = [f'{rows[m][name][str(q)]["psnr"] - reference:+.2f}' if reference else 'n/a' for m in models]
            lines.append(f'| {q} | ' + ' | '.join(cells + gaps) + ' |')
    return '\n'.join(lines) + '\n'


def score_all(args, head):
    sets = {name: eval_set(args, name) for name in args.sets}
    roles, shipped = read_manifest()
    rows = {'JPEG': scores(args, 'JPEG', None, sets)}
    reference = dncnn3(args)
    if reference:
        rows[DNCNN3] = scores(args, DNCNN3, reference, sets)
    for name in args.models or list(shipped):
        rows[name] = scores(args, name, resolve_model(name, None), sets)
    text = (f'### Shipped models\n\n{head}PSNR (dB) / SSIM on the luma of OpenCV JPEGs'
            f'{"" if reference else f"; DnCNN-3 left out: {args.mat} is absent"}.\n' + scores_table(args, rows))
    return text, rows


def adapt_pile(args, head):
    """Adapt to a pile of BSD68 images with ``carn-da adapt --target PILE --restore OUT`` alone; time and score."""
    gts = sorted(glob.glob(osp.join(args.data, 'BSD68', '*.png')))[-args.pile_size:]
    work = osp.abspath(tempfile.mkdtemp(prefix='zoo_pile_', dir=args.out))  # the command runs in it
    pile, restored = osp.join(work, 'pile'), osp.join(work, 'restored')
    os.makedirs(pile)
    for path in gts:
        gt = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        write_atomic(osp.join(pile, osp.basename(path)[:-4] + '.jpg'), jpeg_encode(gt, args.pile_qf))
    command = [sys.executable, '-m', 'carn_da.adapt', '--target', pile, '--restore', restored, '--out', work]
    command += [] if args.adapt_iters is None else ['--iters', str(args.adapt_iters)]
    start = time.time()
    subprocess.run(command, check=True, cwd=work, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    default = load_model(*resolve_model(None, None))[0]
    rows = {'JPEG': [], 'default model': [], 'adapted (routed)': []}
    for path in gts:
        gt, stem = cv2.imread(path, cv2.IMREAD_GRAYSCALE), osp.basename(path)[:-4]
        jpeg = cv2.imread(osp.join(pile, f'{stem}.jpg'), cv2.IMREAD_GRAYSCALE)
        rows['JPEG'].append(image_scores(jpeg, gt))
        rows['default model'].append(image_scores(restore(default, jpeg), gt))
        rows['adapted (routed)'].append(image_scores(cv2.imread(osp.join(restored, f'{stem}.png'), 0), gt))
    means = {label: mean_scores(r) for label, r in rows.items()}
    lines = [
        f'### carn-da adapt --target PILE --restore OUT\n\n{head}Pile: the last {len(gts)} BSD68 images at QF '
        f'{args.pile_qf}; whole command {wall / 60:.1f} min.\n', '| | PSNR | PSNR-B | SSIM |', '|---|---:|---:|---:|'
    ]
    lines += [f'| {label} | {m["psnr"]:.2f} | {m["psnrb"]:.2f} | {m["ssim"]:.4f} |' for label, m in means.items()]
    return '\n'.join(lines) + '\n', dict(means, wall_seconds=wall)


def package(args, head):
    """The wheel's size and the median time to load the default model with one torch thread."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', folder, REPO],
            check=True)
        wheel = glob.glob(osp.join(folder, '*.whl'))[0]
        size = osp.getsize(wheel)
    torch.set_num_threads(1)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        load_model(*resolve_model(None, None))
        times.append(time.perf_counter() - start)
    text = (f'### Package\n\n{head}Wheel `{osp.basename(wheel)}`: {size / 2**20:.1f} MB. Loading the default model '
            f'(checksum, options, weights, check run) on one thread: median {np.median(times):.2f} s of 5.\n')
    return text, {'wheel_bytes': size, 'load_seconds': times}


def pilot_options(args, candidate, iters):
    """The blind model of scripts/train_zoo.py for the ``backbone:size`` candidate, ``iters`` iterations."""
    backbone, size = candidate.split(':')
    pairs = recipes.jpeg_pairs('Train400', osp.join(args.data, 'Train400'), None, 48, 16, enlarge=1)
    log = recipes.logger(max(1, iters // 20), iters, tb_logger=False)
    opt = recipes.blind(f'{args.prefix}_pilot_{backbone}_{size}', recipes.network(backbone, size), pairs,
                        recipes.cosine_schedule(iters, 2e-4), log, (10, 90), recipes.REAL_WORLD)
    opt['path']['param_key_g'] = 'params'
    return opt


def pilot(args, head):
    """Each candidate trained for ``--pilot`` minutes of its step time, then scored on Set12."""
    sets = {'Set12': eval_set(args, 'Set12')}
    rows = {'JPEG': {'scores': scores(args, 'JPEG', None, sets)['Set12']}}
    for candidate in args.candidates:
        one_step = pilot_options(args, candidate, 1)
        seconds, name = step_seconds(one_step), one_step['name']
        checkpoint, options = latest_generator(name, REPO), recorded_options(name, REPO)
        done = osp.isfile(checkpoint) and osp.isfile(options)  # a rerun keeps the iterations it was trained for
        iters = load_options(options)['train']['total_iter'] if done else max(1, int(args.pilot * 60 / seconds))
        opt = pilot_options(args, candidate, iters)
        wall = train_unless_done(opt, args.out, REPO)
        net = load_model(checkpoint, options)[0]
        rows[candidate] = dict(
            scores=scores(args, candidate, (checkpoint, options), sets)['Set12'],
            params=sum(p.numel() for p in net.parameters()),
            step_seconds=seconds,
            iters=opt['train']['total_iter'],
            wall=wall)
    lines = [
        f'### Pilot: blind models for {args.pilot:g} min of training each\n\n{head}Set12 PSNR (dB) at each QF, '
        'blind models (QF 10-90 and recipes.REAL_WORLD) trained for the same CPU time.\n',
        '| model | parameters | s / step | iterations | ' + ' | '.join(f'QF {q}' for q in args.qualities) + ' | mean |',
        '|---|---:|---:|---:|' + '---:|' * (len(args.qualities) + 1)
    ]
    for label, row in rows.items():
        psnr = [row['scores'][str(q)]['psnr'] for q in args.qualities]
        size = [f'{row["params"]:,}', f'{row["step_seconds"]:.2f}', str(row['iters'])] if 'params' in row else [''] * 3
        lines.append(f'| {label} | ' + ' | '.join(size + [f'{p:.2f}' for p in psnr] + [f'{np.mean(psnr):.2f}']) + ' |')
    return '\n'.join(lines) + '\n', rows


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    head = (f'Command: `python benchmarks/zoo.py {shlex.join(sys.argv[1:])}`  \nDate: '
            f'{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}, {os.cpu_count()} CPUs, '
            f'torch {torch.__version__}\n\n')
    if not read_manifest()[1] and not args.pilot:
        print('skipped: no shipped models (train them with scripts/train_zoo.py)')
        return 0
    jobs = [('adapt_pile', adapt_pile)] if args.adapt_pile else []
    jobs += [('package', package)] if args.package else []
    jobs += [('pilot', pilot)] if args.pilot else []
    for name, job in jobs or [('zoo', score_all)]:
        text, data = job(args, head)
        print(text)
        write_atomic(osp.join(args.out, f'{name}.md'), text.encode())
        write_atomic(osp.join(args.out, f'{name}.json'), json.dumps(data, indent=1).encode())
    return 0


if __name__ == '__main__':
    sys.exit(main())
