"""Reproduce the protocol of Ham, Yoo, Kang (SPIE 11842, 2021), sec. 4 and Table 1, from one command.

1. Data: grayscale ground truths and OpenCV JPEGs at QF 10 and 70 (and ``--plot-qfs``), by scripts/prepare_data.py.
2. Trainings through BasicSR, the recipes of carn_da/recipes.py in the preset's setting (``recipes.PAPER`` is that
   of the option files in options/; the options, with this run's names and data, are written to ``OUT/options``):
   SQ at QF 10 and at QF 70, BQ (400 + 400 in the paper: half the training images at each QF), DA 10->70 and DA
   70->10, each starting from the SQ model of its source QF. A finished training
   (``experiments/<name>/models/net_g_latest.pth``) is reused.
3. Evaluation as ``carn-da eval`` does it (carn_da.utils.evaluation) on the test sets at QF 10 and 70. Per test QF
   the rows of Table 1: JPEG, SQ (the model of that QF), DQ (the model of the other QF), BQ and DA (the other QF's
   model adapted to this one), with the paper's BSD68 PSNR beside them.

Writes into ``--out``: ``table.md`` (also printed: command, date, machine, wall times, the tables),
``scores.csv`` and ``scores.json`` (per image, every model at every QF), ``gain_vs_qf.png``, ``options/``.

Presets:

- ``paper`` (a GPU): DIV2K train (``datasets/DIV2K/DIV2K_train_HR``) downscaled by 4 as LMDB, RDN D16 C8 G64, the
  option files' iterations (SQ and BQ 300k, DA 100k, batch 16 of 64x64 patches) and validation; tests DIV2K valid
  (x4), BSD68, Set12.
- ``cpu`` (about an hour on 2 idle CPU cores): Train400, RDN G0 32 D4 C4 G16 (benchmarks/da_study.py's), batch 8
  of 48x48 patches, no validation; SQ and BQ 1800 iterations (lr 5e-4, as the DA study's source models), DA 600 (the
  paper's 3:1, lr 1e-4); tests BSD68 and Set12. Estimate: the DA study's logs of this RDN show 0.3-0.4 s per
  iteration while the machine was otherwise idle (0.6-1.2 s on average beside other jobs), so 6600 iterations take
  ~40 min; restoring a BSD68 image takes ~1 s, so the 5 models x 2 QFs x 80 test images take ~13 min; with the data
  ~55 min in all, up to twice that beside other jobs.

    python scripts/reproduce.py --preset cpu
    python scripts/reproduce.py --preset paper --out results/reproduce_paper
    python scripts/reproduce.py --iters-scale 0.01 --test-limit 4 --prefix smoke --out results/reproduce_smoke
"""
import carn_da.compat  # noqa: F401

import argparse
import math
import os
import platform
import shlex
import subprocess
import sys
import time
import torch
import yaml
from dataclasses import replace
from datetime import datetime, timezone
from os import path as osp

from carn_da import recipes
from carn_da.data.image_pairs import image_paths
from carn_da.runs import latest_generator, train_unless_done
from carn_da.utils import evaluation
from carn_da.utils.checkpoint import load_network
from carn_da.utils.device import choose_device
from carn_da.utils.scores import METRIC_NAMES, METRICS, markdown_table, mean_scores

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))  # the checkout: experiments/ and tb_logger/ go there
SHARED = osp.join(REPO, os.pardir, 'shared', 'datasets')
DIV2K = osp.join(REPO, 'datasets', 'DIV2K')
TEST_QFS = (10, 70)
# key (experiment name suffix), model label, recipe: recipes.option_file's kind, source QF (and target QF)
TRAININGS = [('sq_qf10', 'SQ-10', ('sq', 10)), ('sq_qf70', 'SQ-70', ('sq', 70)), ('bq', 'BQ', ('bq', 10, 70)),
             ('da_lq2hq', 'DA 10->70', ('da', 10, 70)), ('da_hq2lq', 'DA 70->10', ('da', 70, 10))]
# Table 1 of the paper, BSD68 PSNR (dB) of RDN; the only cells known to us
PAPER_BSD68_PSNR = {
    10: dict(JPEG=26.96, SQ=28.14, DQ=27.39, DA=28.14),
    70: dict(JPEG=34.07, SQ=34.40, DQ=31.11, DA=34.39)
}
PAPER_KEY = 'paper_BSD68_psnr'
# the cpu preset's recipes.Setting: benchmarks/da_study.py's RDN, batch 8 of 48x48 patches from folders, no data
# workers, SQ and BQ 1800 iterations at lr 5e-4 (as the DA study's source models), DA 600 at 1e-4, no validation
# (the training data and iterations of a run are set by training_options)
CPU = recipes.Setting(
    size='cpu', ext='', tests=(), patch=48, batch=8, workers=0, iters=(1800, 600), lr=(5e-4, 1e-4, 2e-4))
# data sets are (name, ground-truth folder, downscale factor); setting: the recipes' (its ext '.lmdb': LMDBs, its
# tests: whether to validate, on the preset's test sets)
PRESETS = {
    'paper':
    dict(
        train=('DIV2K_train', osp.join(DIV2K, 'DIV2K_train_HR'), 4),
        tests=[('DIV2K_valid', osp.join(DIV2K, 'DIV2K_valid_HR'), 4), ('BSD68', osp.join(SHARED, 'BSD68'), 1),
               ('Set12', osp.join(SHARED, 'Set12'), 1)],
        setting=recipes.PAPER,
        plot_qfs=[10, 30, 50, 70, 90]),
    'cpu':
    dict(
        train=('Train400', osp.join(SHARED, 'Train400'), 1),
        tests=[('BSD68', osp.join(SHARED, 'BSD68'), 1), ('Set12', osp.join(SHARED, 'Set12'), 1)],
        setting=CPU,
        plot_qfs=list(TEST_QFS)),
}


def prepared_dir(data_root, name, scale):
    """Where scripts/prepare_data.py puts a data set (datasets/README.md's names: DIV2K_train_gray_x4, BSD68)."""
    return osp.join(data_root, name if scale == 1 else f'{name}_gray_x{scale}')


def prepare(gt_dir, out_dir, qfs, scale, fmt, limit=None):
    cmd = [sys.executable, osp.join(REPO, 'scripts', 'prepare_data.py'), '--input', gt_dir, '--out', out_dir]
    cmd += ['--qf', *map(str, qfs), '--scale', str(scale), '--format', fmt, '--workers', str(os.cpu_count())]
    subprocess.run(cmd + (['--limit', str(limit)] if limit else []), check=True, stdout=subprocess.DEVNULL)


def training_options(preset, args, train_dir, test_dirs):
    """{key: BasicSR options} of the five trainings: recipes.option_file in the preset's setting, on ``train_dir``
    (validated on ``test_dirs`` where the setting validates), with the run's names, network and iterations."""
    base = preset['setting']
    setting = replace(
        base,
        train=train_dir,
        tests=tuple(test_dirs.items()) if base.tests else (),
        iters=tuple(math.ceil(iters * args.iters_scale) for iters in base.iters))
    opts = {}
    for key, _, (kind, *qualities) in TRAININGS:
        opt = recipes.option_file(kind, 'rdn', *qualities, setting=setting)
        opt['name'] = f'{args.prefix}_{key}'
        opt['datasets']['train']['name'] = f'{osp.basename(train_dir)}_{key}'
        opt['network_g'].update(args.network)
        if 'network_q' in opt:
            opt['network_q']['num_feat'] = opt['network_g']['num_feat']  # Q reads RDN's SFENet2 features
        if opt['path']['pretrain_network_g'] is not None:  # the source SQ model
            opt['path']['pretrain_network_g'] = latest_generator(f'{args.prefix}_sq_qf{qualities[0]}', REPO)
        total, base_total = opt['train']['total_iter'], base.iters[0 if kind in ('sq', 'bq') else 1]
        for freq in ('print_freq', 'save_checkpoint_freq'):
            opt['logger'][freq] = min(opt['logger'][freq], total)
        if 'val' in opt:  # as often relative to the run as in the setting
            opt['val']['val_freq'] = max(1, round(base.val_freq * total / base_total))
        opts[key] = opt
    return opts


class LimitedEvalSet(evaluation.EvalSet):
    """An ``EvalSet`` of prepared JPEG folders, cut to its first ``limit`` pairs (all if None)."""

    def __init__(self, name, folder, qfs, limit):
        super().__init__(name, osp.join(folder, 'gt'), osp.join(folder, 'qf{qf}'), qfs)
        self.limit = limit
        self.stems = self.stems[:limit]

    def pairs(self, qf):
        return super().pairs(qf)[:self.limit]


def table1(results, datasets, qf):
    """Markdown table of test QF ``qf`` in the layout of the paper's Table 1, with the paper's BSD68 PSNR."""
    other = TEST_QFS[1 - TEST_QFS.index(qf)]
    roles = [('JPEG', 'JPEG', evaluation.JPEG), ('SQ', 'SQ', f'SQ-{qf}'), ('DQ', 'DQ', f'SQ-{other}'),
             ('BQ', 'BQ', 'BQ'), ('DA', f'DA ({other}->{qf})', f'DA {other}->{qf}')]
    rows = []
    for role, label, model in roles:
        values = {}
        if model in results:
            values = {f'{d}_{k}': v for d in datasets for k, v in mean_scores(results[model][d][qf]).items()}
        if role in PAPER_BSD68_PSNR[qf]:
            values[PAPER_KEY] = PAPER_BSD68_PSNR[qf][role]
        rows.append((label, values))
    columns = [(f'{d}_{m}', f'{d} {METRIC_NAMES[m]}') for d in datasets for m in METRICS]
    return markdown_table(columns + [(PAPER_KEY, 'paper: BSD68 PSNR')], rows, reference='JPEG'), rows


def machine():
    gpu = f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ', no GPU'
    return (f'{platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs{gpu}, '
            f'torch {torch.__version__}')


def named_folder(value):
    name, sep, folder = value.partition('=')
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f'expected NAME=FOLDER, got {value!r}')
    return name, folder


def mapping(value):
    try:
        opt = yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    if not isinstance(opt, dict):
        raise argparse.ArgumentTypeError(f'expected a YAML mapping, got {value!r}')
    return opt


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', choices=sorted(PRESETS), default='cpu')
    parser.add_argument('--out', help='Output folder. Default: results/reproduce_<preset>.')
    parser.add_argument('--prefix', help='Experiment name prefix. Default: reproduce_<preset>.')
    parser.add_argument('--data-root', default=osp.join(REPO, 'datasets'), help='Where data sets are prepared.')
    parser.add_argument('--train-gt', help="Training ground-truth folder (default: the preset's).")
    parser.add_argument(
        '--test',
        type=named_folder,
        action='append',
        metavar='NAME=FOLDER',
        help="A test ground-truth folder, repeatable; replaces the preset's test sets. A name of a preset's set "
        'keeps its downscale (DIV2K_valid: 4), others are used at full size.')
    parser.add_argument(
        '--network', type=mapping, default={}, help="YAML mapping of network_g changes, e.g. '{num_feat: 16}'.")
    parser.add_argument('--iters-scale', type=float, default=1.0, help='Multiply every iteration count (rounded up).')
    parser.add_argument('--test-limit', type=int, help='Only the first N images of each test set.')
    parser.add_argument('--plot-qfs', type=int, nargs='+', help="QFs of gain_vs_qf.png (default: the preset's).")
    parser.add_argument('--skip-train', action='store_true', help='Evaluate the finished experiments only.')
    args = parser.parse_args(argv)
    if args.iters_scale <= 0:
        parser.error('--iters-scale must be positive')
    args.prefix = args.prefix or f'reproduce_{args.preset}'
    args.out = args.out or osp.join(REPO, 'results', f'reproduce_{args.preset}')
    return args


def write_report(out, meta, results, datasets):
    """table.md (also printed): metadata and the Table 1 layout per test QF; scores.csv and scores.json."""
    wall = meta['wall_seconds']
    trainings = ', '.join(f'{name} {v["iterations"]} it {v["wall_seconds"]:.0f} s'
                          for name, v in meta['trainings'].items())
    lines = [
        f'# Table 1 reproduction, preset {meta["preset"]}\n', f'Command: `{meta["command"]}`  ',
        f'Date: {meta["date"]}; machine: {meta["machine"]}  ',
        f'Wall time: {wall["total"] / 60:.1f} min (data {wall["data"]:.0f} s, evaluation {wall["evaluation"]:.0f} s)  ',
        f'Network: `{meta["network_g"]}`; training data: {meta["train_data"]}  ',
        f'Trainings (iterations, wall time; 0 s: reused or --skip-train): {trainings}\n'
    ]
    for qf in TEST_QFS:
        text, meta['table1'][qf] = table1(results, datasets, qf)
        lines.append(f'## Test QF {qf}\n\n{text}')
    lines.append(
        'Rows: SQ is the model trained at the test QF, DQ the one trained at the other QF, BQ the one trained on '
        'both (half the training images at each), DA the other QF\'s SQ model adapted to the test QF without its '
        'ground truth. Gains over JPEG in parentheses. "paper: BSD68 PSNR" is Table 1 of Ham et al. (RDN, DIV2K '
        'training); only those cells are known to us, the others are empty. PSNR gain against QF of every model: '
        'gain_vs_qf.png; per-image scores: scores.csv, scores.json.\n')
    text = '\n'.join(lines)
    print(text)
    with open(osp.join(out, 'table.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    evaluation.write_scores(results, out, meta)


def main(argv=None):
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    start = time.time()
    os.makedirs(osp.join(args.out, 'options'), exist_ok=True)
    train_name, train_gt, train_scale = preset['train']
    if args.train_gt is not None:
        train_name, train_gt = osp.basename(osp.normpath(args.train_gt)), args.train_gt
    train_dir = prepared_dir(args.data_root, train_name, train_scale)
    scales = {name: scale for name, _, scale in preset['tests']}
    tests = [(n, f, scales.get(n, 1)) for n, f in args.test] if args.test else preset['tests']
    plot_qfs = sorted(set(args.plot_qfs or preset['plot_qfs']))
    qfs = sorted(set(TEST_QFS) | set(plot_qfs))

    test_dirs = {}
    for name, folder, scale in tests:
        test_dirs[name] = prepared_dir(args.data_root, name, scale)
        prepare(folder, test_dirs[name], qfs, scale, 'folder', args.test_limit)
    opts = training_options(preset, args, train_dir, test_dirs)
    train_wall = dict.fromkeys(opts, 0.0)
    data_wall = time.time() - start
    if not args.skip_train:
        prepare(train_gt, train_dir, TEST_QFS, train_scale, 'lmdb' if preset['setting'].ext == '.lmdb' else 'folder')
        data_wall = time.time() - start
        bq = opts['bq']['datasets']['train']
        bq['num_pairs'] = [len(image_paths(bq['dataroot_gt'], bq['io_backend']['type'])) // 2] * len(bq['dataroot_lqs'])
        for key, opt in opts.items():
            train_wall[key] = train_unless_done(opt, osp.join(args.out, 'options'), REPO)

    eval_start = time.time()
    device = choose_device('auto')
    nets = []
    for key, label, _ in TRAININGS:
        checkpoint = latest_generator(opts[key]['name'], REPO)
        if osp.isfile(checkpoint):
            nets.append((label, load_network(opts[key]['network_g'], checkpoint, device)))
        else:
            print(f'{label}: no {checkpoint}; its rows stay empty.')
    sets = {name: LimitedEvalSet(name, folder, qfs, args.test_limit) for name, folder in test_dirs.items()}
    results, _ = evaluation.evaluate(nets, sets, qfs, device=device)
    evaluation.plot_gains(results, plot_qfs, osp.join(args.out, 'gain_vs_qf.png'))

    meta = {
        'command': shlex.join(['python', 'scripts/reproduce.py', *(sys.argv[1:] if argv is None else argv)]),
        'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'machine': machine(),
        'preset': args.preset,
        'wall_seconds': dict(total=time.time() - start, data=data_wall, evaluation=time.time() - eval_start),
        'trainings': {
            opt['name']: dict(iterations=opt['train']['total_iter'], wall_seconds=train_wall[key])
            for key, opt in opts.items()
        },
        'network_g': opts['sq_qf10']['network_g'],
        'train_data': train_dir,
        'tests': test_dirs,
        'table1': {}
    }
    write_report(args.out, meta, results, list(test_dirs))


if __name__ == '__main__':
    main()
