"""Adapting a published blind model (DnCNN-3) to a pile of JPEGs: what lifts a strong model, measured.

The published DnCNN-3 (``../shared/peers/DnCNN3.mat``, imported with ``carn-da import``) is the source model. A pile
is BSD68 compressed with OpenCV at one quality, or at a quality drawn per image from 20-90 (``mixed``), under
``--out``/piles; its ground truths are read only to score. Source images: Train400 ground truths, compressed on the
fly at the pile's qualities as read from each file's header. No target ground truth reaches a training.

- ``--study``: the recipes of ``STUDY`` (carn_da/recipes.py, trained by BasicSR's pipeline) on one pile (``--qf``,
  default 35), each from DnCNN-3 with the same seed: the PSNR of every saved checkpoint on every ``--curve-every``-th
  pile image (the learning curve) and of the last on the whole pile. Writes ``study_qf<QF>[_PREFIX].md`` / ``.json``.
- ``--transductive`` (what a user does): ``carn-da adapt`` (``--adaptation``: a best recipe of the study) on each pile
  of ``--piles``, scored on the same pile: JPEG, DnCNN-3, adapted and routed, and how many BSD68 images at the other
  qualities (every ``--curve-every``-th) the routed model sends to the adapted expert (none: it is DnCNN-3 there).
- ``--inductive`` (what a paper must report): ``carn-da adapt`` on the even-numbered images of each BSD68 pile,
  scored on the odd-numbered ones and on Set12 and Classic5 at the pile's qualities.

Scores are cached by model file (``--out``/piles/scores_cache.json) and finished adaptations reused.

    python benchmarks/adapt_published.py --study                        # the recipes of STUDY on BSD68 at QF 35
    python benchmarks/adapt_published.py --transductive --inductive     # 10 piles each: hours on 2 CPU cores
    python benchmarks/adapt_published.py --transductive --piles 50 mixed --iters 2 --limit 4 --prefix smoke  # smoke
"""
import carn_da.compat  # noqa: F401

import argparse
import cv2
import glob
import json
import math
import numpy as np
import os
import platform
import shlex
import subprocess
import sys
import time
import torch
from collections import namedtuple
from datetime import datetime, timezone
from os import path as osp

from carn_da import recipes
from carn_da.import_model import imported_once
from carn_da.runs import experiment_dir, train_unless_done
from carn_da.utils.checkpoint import load_model
from carn_da.utils.device import choose_device
from carn_da.utils.errors import UserError
from carn_da.utils.files import read_json, write_atomic
from carn_da.utils.inference import restore
from carn_da.utils.jpeg import estimate_quality, jpeg_compress, jpeg_encode
from carn_da.utils.scores import METRIC_NAMES, METRICS, image_scores, markdown_table, mean_scores

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(REPO, os.pardir, 'shared')
JPEG, SOURCE = 'JPEG', 'DnCNN-3'
# a recipe of the study: what it is, its recipe function, batch, learning rate, self-supervision weight, EMA decay
# (0: none), the share of the run over which the learning rate rises linearly from 0 (0: none) and the pixel loss
# (recipes.PIXEL_LOSSES)
Recipe = namedtuple('Recipe', 'what kind batch lr weight ema warmup loss', defaults=(0, 'l1'))
STUDY = {
    'expert_selfsup_lr1e-4':
    Recipe('expert + self-supervision (the study winner), lr 1e-4', 'recommended', 4, 1e-4, 1., 0),
    'expert_selfsup_lr2e-5':
    Recipe('expert + self-supervision, lr 2e-5', 'recommended', 4, 2e-5, 1., 0),
    'expert_lr2e-5':
    Recipe('expert: source crops at the pile QF only, lr 2e-5', 'expert', 8, 2e-5, None, 0),
    'expert_lr1e-4':
    Recipe('expert, lr 1e-4', 'expert', 8, 1e-4, None, 0),
    'expert_lr1e-4_ema':
    Recipe('expert, lr 1e-4, EMA of the weights (decay 0.99)', 'expert', 8, 1e-4, None, 0.99),
    'expert_lr5e-5_batch16':
    Recipe('expert, lr 5e-5, batch 16', 'expert', 16, 5e-5, None, 0),
    'expert_lr1e-4_ema0.999':
    Recipe('expert, lr 1e-4, EMA of the weights (decay 0.999)', 'expert', 8, 1e-4, None, 0.999),
    'expert_lr1e-4_warmup':
    Recipe('expert, lr 1e-4 reached linearly over the first third', 'expert', 8, 1e-4, None, 0, 1 / 3),
    'expert_lr1e-4_ema_mse':
    Recipe('expert, lr 1e-4, EMA (decay 0.99), MSE (the loss DnCNN-3 was trained with)', 'expert', 8, 1e-4, None, 0.99,
           0, 'mse'),
    'expert_lr1e-4_ema_mse_batch2':
    Recipe('expert, lr 1e-4, EMA (decay 0.99), MSE, batch 2 (with --patch 96: the pixels of batch 8 of 48x48)',
           'expert', 2, 1e-4, None, 0.99, 0, 'mse'),
}

# the flags of ``carn-da adapt`` the protocols may adapt DnCNN-3 with (``--adaptation``): the best recipes of the study
# at QF 90 (expert: lr 2e-5) and at QF 35 (lr 1e-4 with an EMA of the weights, best with 1800 iterations)
ADAPTATIONS = {
    'expert': ['--recipe', 'expert'],
    'expert_ema': ['--recipe', 'expert', '--lr', '1e-4', '--ema', '0.99'],
}
AWAY_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--study', action='store_true', help='Run the recipes of STUDY on one pile.')
    parser.add_argument('--qf', type=int, default=35, help='Quality of the study pile. Default: 35.')
    parser.add_argument('--transductive', action='store_true', help='Adapt on each pile, score on it.')
    parser.add_argument('--inductive', action='store_true', help='Adapt on half a pile, score elsewhere.')
    parser.add_argument(
        '--piles',
        nargs='+',
        default=[str(q) for q in AWAY_QUALITIES] + ['mixed'],
        help='BSD68 piles of the protocols: qualities, or mixed (QF 20-90 per image). Default: 10 20 ... 90 mixed.')
    parser.add_argument('--recipes', nargs='+', default=list(STUDY), choices=list(STUDY), help='Default: all.')
    parser.add_argument('--iters', type=int, default=600, help='Adaptation iterations. Default: 600.')
    parser.add_argument(
        '--adaptation',
        choices=list(ADAPTATIONS),
        default='expert',
        help='The carn-da adapt flags of the protocols (ADAPTATIONS). Default: expert.')
    parser.add_argument('--patch', type=int, default=48)
    parser.add_argument('--checkpoints', type=int, default=4, help='Checkpoints per run (the curve). Default: 4.')
    parser.add_argument('--curve-every', type=int, default=4, help='Curve on every n-th pile image. Default: 4.')
    parser.add_argument('--limit', type=int, help='Use only the first N pile images (smoke runs).')
    parser.add_argument('--mat', default=osp.join(SHARED, 'peers', 'DnCNN3.mat'))
    parser.add_argument('--data', default=osp.join(SHARED, 'datasets'))
    parser.add_argument('--out', default=osp.join(REPO, 'results', 'adapt_published'))
    parser.add_argument('--prefix', default='pub', help='Prefix of the experiment names. Default: pub.')
    parser.add_argument(
        '--device',
        choices=['cpu', 'cuda', 'auto'],
        default='cpu',
        help='Where adaptations train (auto: CUDA if present); models are scored on the CPU. Default: cpu.')
    args = parser.parse_args()
    try:
        args.device = choose_device(args.device)
    except UserError as error:
        parser.error(str(error))
    return args


def source_model(args):
    """(checkpoint, option file) of DnCNN-3, imported once into ``--out``."""
    return imported_once(args.mat, args.out)


def read_gts(args, dataset, every=1, start=0):
    """[(stem, uint8 gray ground truth)] of every ``every``-th image of ``dataset`` from ``start`` (``--limit``)."""
    folder = osp.join(args.data, dataset)
    paths = sorted(p for p in glob.glob(osp.join(folder, '*')) if p.lower().endswith(('.png', '.bmp')))
    gts = [(osp.splitext(osp.basename(p))[0], cv2.imread(p, cv2.IMREAD_GRAYSCALE)) for p in paths]
    gts = gts[:args.limit][start::every]
    if not gts:
        sys.exit(f'No PNG or BMP images in {folder}.')
    return gts


def pile_qualities(pile, gts):
    """{stem: JPEG quality} of a pile: ``pile`` is a quality, or 'mixed' (QF 20-90 drawn per image, seed 0)."""
    if pile == 'mixed':
        return dict(zip((stem for stem, _ in gts), map(int, np.random.default_rng(0).integers(20, 91, len(gts)))))
    return {stem: int(pile) for stem, _ in gts}


def make_pile(args, name, gts, qualities):
    """The folder ``--out``/piles/``name`` of the ground truths ``gts`` as OpenCV JPEGs of ``qualities`` ({stem: QF}),
    written once."""
    folder = osp.join(args.out, 'piles', name + ('' if args.limit is None else f'_first{args.limit}'))
    os.makedirs(folder, exist_ok=True)
    for stem, gt in gts:
        path = osp.join(folder, f'{stem}.jpg')
        if not osp.isfile(path):
            write_atomic(path, jpeg_encode(gt, qualities[stem]))
    return folder


def study_options(args, recipe, pile, checkpoint, network_g):
    """The options of one recipe of ``STUDY`` adapting DnCNN-3 (``checkpoint``) to the pile folder ``pile``."""
    kind, batch, lr, weight, ema, warmup, loss = STUDY[recipe][1:]
    source = osp.join(args.data, 'Train400')
    enlarge = max(1, math.ceil(args.iters * batch / len(glob.glob(osp.join(source, '*.png')))))
    pairs = recipes.jpeg_pairs(f'Train400_to_{osp.basename(pile)}', source, None, args.patch, batch, enlarge=enlarge)
    train_set = recipes.two_domains(pairs, pile, io_backend_target={'type': 'disk'}, color='gray')
    log = recipes.logger(max(1, args.iters // 20), max(1, args.iters // args.checkpoints), tb_logger=False)
    name = f'{args.prefix}_{recipe}_{osp.basename(pile)}_{args.iters}'
    train = dict(recipes.schedule(args.iters, lr, ema=ema), pixel_opt=dict(recipes.PIXEL_LOSSES[loss]))
    if warmup:  # tried against the early dip of fine-tuning; it does not remove it (docs/RESULTS.md)
        train['warmup_iter'] = max(1, round(warmup * args.iters))
    common = (name, network_g, train_set, train, log, checkpoint)
    num_gpu = int(args.device.type == 'cuda')
    if kind == 'expert':
        return recipes.quality_expert(*common, target_quality='file', num_gpu=num_gpu)
    opt = recipes.recommended_da(*common, target_quality='file', num_gpu=num_gpu)
    return recipes.with_self_supervision(opt, weight)


def scores(checkpoint, options, pile, gts, every=1):
    """Mean scores of the model (None: the JPEGs) on every ``every``-th image of the pile, with their count; kept in
    ``pile``/../scores_cache.json by model file, its time and the images, so that a rerun scores only what is new."""
    images = [stem for stem, _ in gts[::every]]
    model = None if checkpoint is None else f'{osp.abspath(checkpoint)}@{osp.getmtime(checkpoint)}'
    key = json.dumps([model, osp.abspath(options) if model else None, osp.basename(pile), images])
    cache_path = osp.join(osp.dirname(pile), 'scores_cache.json')
    cached = read_json(cache_path).get(key)
    if cached is not None:
        return cached
    net = None if checkpoint is None else load_model(checkpoint, options)[0]
    rows = []
    for stem, gt in gts[::every]:
        lq = cv2.imread(osp.join(pile, f'{stem}.jpg'), cv2.IMREAD_GRAYSCALE)
        rows.append(image_scores(lq if net is None else restore(net, lq), gt))
    result = dict(mean_scores(rows), images=len(rows))
    cache = dict(read_json(cache_path), **{key: result})  # read again: another run may have added scores
    write_atomic(cache_path, json.dumps(cache, indent=0).encode())
    return result


def curve(args, name, options, pile, gts):
    """{iteration: PSNR on every ``--curve-every``-th pile image} of the run's saved checkpoints."""
    models = osp.join(experiment_dir(name, REPO), 'models')
    points = {}
    for path in glob.glob(osp.join(models, 'net_g_*.pth')):
        label = osp.basename(path)[len('net_g_'):-len('.pth')]
        if label.isdigit():
            points[int(label)] = scores(path, options, pile, gts, args.curve_every)['psnr']
    return dict(sorted(points.items()))


def study(args, source):
    checkpoint, options = source
    network_g = recipes.network('dncnn', 'published')
    gts = read_gts(args, 'BSD68')
    pile = make_pile(args, f'BSD68_qf{args.qf}', gts, pile_qualities(args.qf, gts))
    rows = {JPEG: scores(None, options, pile, gts), SOURCE: scores(checkpoint, options, pile, gts)}
    start_curve = scores(checkpoint, options, pile, gts, args.curve_every)['psnr']
    details = {}
    for recipe in args.recipes:
        opt = study_options(args, recipe, pile, checkpoint, network_g)
        wall = train_unless_done(opt, args.out, REPO)
        latest = osp.join(experiment_dir(opt['name'], REPO), 'models', 'net_g_latest.pth')
        rows[recipe] = scores(latest, options, pile, gts)
        details[recipe] = {
            'what': STUDY[recipe].what,
            'train_seconds': wall,
            'curve': {
                0: start_curve,
                **curve(args, opt['name'], options, pile, gts)
            }
        }
        print(f'{recipe}: {rows[recipe]["psnr"]:.3f} dB ({rows[SOURCE]["psnr"]:.3f} before)', flush=True)
    return pile, rows, details


def adapt_pile(args, source, name, pile, *extra):
    """Run ``carn-da adapt`` (``--adaptation``) from DnCNN-3 to the folder ``pile`` under ``--out``/``name``; returns
    (its report.json, wall seconds). A finished run is reused."""
    out = osp.join(args.out, 'adapt', name)
    if not osp.isfile(osp.join(out, 'report.json')):
        command = [
            sys.executable, '-m', 'carn_da.adapt', '--model', source[0], '--opt', source[1], '--source-gt',
            osp.join(args.data, 'Train400'), '--target', pile, '--name', name, '--out', out, '--iters',
            str(args.iters), '--eval-images', '1', '--device', args.device.type, *ADAPTATIONS[args.adaptation], *extra
        ]
        start = time.time()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        write_atomic(osp.join(out, 'wall_seconds'), f'{time.time() - start:.0f}'.encode())
    with open(osp.join(out, 'wall_seconds'), encoding='utf-8') as wall:
        return read_json(osp.join(out, 'report.json')), float(wall.read())


def routed_elsewhere(report, gts, qualities):
    """(how many, of how many) of the ground truths ``gts`` compressed at each of ``qualities`` the routed model of an
    adaptation sends to the adapted expert: none should go there, so that the routed model is DnCNN-3 on them."""
    router, _ = load_model(report['routed']['checkpoint'], report['routed']['options'])
    adapted = 1  # routed_pair([(source, None), (adapted, target qualities)])
    routes = [router.route(estimate_quality(jpeg_compress(gt, q))) for q in qualities for _, gt in gts]
    return routes.count(adapted), len(routes)


def transductive(args, source):
    """Adapt on each pile of BSD68 and score on the same pile (its ground truths only scored)."""
    rows = {}
    for pile in args.piles:
        gts = read_gts(args, 'BSD68')
        qualities = pile_qualities(pile, gts)
        folder = make_pile(args, f'BSD68_qf{pile}', gts, qualities)
        report, wall = adapt_pile(args, source, f'{args.prefix}_transductive_qf{pile}', folder, '--target-gt',
                                  osp.join(args.data, 'BSD68'))
        results = report['results']
        row = {JPEG: results['JPEG input'], SOURCE: results['source model (before)']}
        row['adapted'] = results['adapted model (after)']
        row['routed'] = scores(report['routed']['checkpoint'], report['routed']['options'], folder, gts)
        away = [] if pile == 'mixed' else [q for q in AWAY_QUALITIES if q != int(pile)]
        rows[pile] = dict(row, wall=wall, misrouted=routed_elsewhere(report, gts[::args.curve_every], away))
        print(f'transductive {pile}: {row[SOURCE]["psnr"]:.3f} -> routed {row["routed"]["psnr"]:.3f}', flush=True)
    return rows


def inductive(args, source):
    """Adapt on the even-numbered images of each BSD68 pile; score on the odd ones, and on Set12 and Classic5 at the
    pile's quality (mixed: drawn per image, seed 0)."""
    rows = {}
    for pile in args.piles:
        gts = read_gts(args, 'BSD68', 2, 0)
        folder = make_pile(args, f'BSD68_qf{pile}_even', gts, pile_qualities(pile, gts))
        report, wall = adapt_pile(args, source, f'{args.prefix}_inductive_qf{pile}', folder)
        models = {JPEG: (None, source[1]), SOURCE: source, 'adapted': (report['checkpoint'], source[1])}
        models['routed'] = (report['routed']['checkpoint'], report['routed']['options'])
        for test, every, start in (('BSD68', 2, 1), ('Set12', 1, 0), ('Classic5', 1, 0)):
            test_gts = read_gts(args, test, every, start)
            test_pile = make_pile(args, f'{test}_qf{pile}{"_odd" if every == 2 else ""}', test_gts,
                                  pile_qualities(pile, test_gts))
            rows[pile, test] = {label: scores(*model, test_pile, test_gts) for label, model in models.items()}
            rows[pile, test]['wall'] = wall
        print(
            f'inductive {pile}: ' + ', '.join(f'{test} {row[SOURCE]["psnr"]:.3f} -> {row["routed"]["psnr"]:.3f}'
                                              for (p, test), row in rows.items() if p == pile),
            flush=True)
    return rows


def protocol_table(rows):
    """Markdown: one line per pile (and test set): PSNR / PSNR-B / SSIM of each model, gains over DnCNN-3."""
    lines = [
        '| pile | test | JPEG | DnCNN-3 | adapted | routed | routed - DnCNN-3 (dB) | adaptation | images of other QFs '
        'routed to the adapted model |', '|---|---|---:|---:|---:|---:|---:|---:|---:|'
    ]
    for key, row in rows.items():
        pile, test = key if isinstance(key, tuple) else (key, 'the pile')
        cells = [
            ' / '.join(f'{row[label][m]:.{4 if m == "ssim" else 2}f}' for m in METRICS)
            for label in (JPEG, SOURCE, 'adapted', 'routed')
        ]
        gain = row['routed']['psnr'] - row[SOURCE]['psnr']
        misrouted = '{} of {}'.format(*row['misrouted']) if row.get('misrouted', (0, 0))[1] else 'n/a'
        lines.append(
            f'| {pile} | {test} | {" | ".join(cells)} | {gain:+.3f} | {row["wall"] / 60:.1f} min | {misrouted} |')
    return '\n'.join(lines) + '\n'


def study_report(args, pile, rows, details):
    columns = [(m, METRIC_NAMES[m]) for m in METRICS]
    lines = [
        f'### DnCNN-3 adapted to {osp.basename(pile)} ({rows[JPEG]["images"]} images), {args.iters} iterations\n',
        markdown_table(columns, list(rows.items()), SOURCE), '', '| recipe | what | train time | PSNR on every '
        f'{args.curve_every}th image by iteration |', '|---|---|---:|---|'
    ]
    for recipe, d in details.items():
        points = ', '.join(f'{it}: {psnr:.3f}' for it, psnr in d['curve'].items())
        lines.append(f'| {recipe} | {d["what"]} | {d["train_seconds"] / 60:.1f} min | {points} |')
    return '\n'.join(lines) + '\n'


def write_report(args, name, text, data):
    """Print ``text`` and write it as ``--out``/``name``.md, ``data`` as ``name``.json."""
    print(text)
    write_atomic(osp.join(args.out, f'{name}.md'), text.encode())
    write_atomic(osp.join(args.out, f'{name}.json'), json.dumps(data, indent=1).encode())


def main():
    args = parse_args()
    if not osp.isfile(args.mat):
        print(f'skipped: the published model {args.mat} is absent')
        return 0
    os.makedirs(args.out, exist_ok=True)
    head = (
        f'Command: `python benchmarks/adapt_published.py {shlex.join(sys.argv[1:])}`  \nDate: '
        f'{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}, {os.cpu_count()} CPUs, torch '
        f'{torch.__version__}; adaptation: `carn-da adapt {shlex.join(ADAPTATIONS[args.adaptation])} --iters '
        f'{args.iters}`\n\n')
    suffix = '' if args.prefix == 'pub' else f'_{args.prefix}'  # another prefix: other runs, other reports
    source = source_model(args)
    if args.study:
        pile, rows, details = study(args, source)
        write_report(args, f'study_qf{args.qf}{suffix}', head + study_report(args, pile, rows, details), {
            'rows': rows,
            'details': details
        })
    for protocol, run in (('transductive', transductive), ('inductive', inductive)):
        if getattr(args, protocol):
            rows = run(args, source)
            table = f'### {protocol}\n\n{head}{protocol_table(rows)}'
            write_report(args, protocol + suffix, table, {str(key): row for key, row in rows.items()})
    return 0


if __name__ == '__main__':
    sys.exit(main())
