"""Score trained CARNs on folders of ground-truth images at several JPEG qualities (the layout of the paper's Table 1).

    python -m carn_da.evaluate \\
        --model SQ-10=experiments/RDN_SQ_QF10/models/net_g_latest.pth:options/train_rdn_sq_qf10.yml \\
        --model DA=experiments/RDN_DA_LQ2HQ/models/net_g_latest.pth:options/train_rdn_da_lq2hq.yml \\
        --test BSD68=datasets/BSD68/gt --test Set12=datasets/Set12/gt --qf 10 70 --plot-qfs 10 30 50 70 90 \\
        --residual-image Set12/01 --out results/eval

Ground truths are read as 8-bit grayscale (colour through ``carn_da.utils.jpeg.to_gray``) and JPEG-compressed at
every QF with OpenCV, or read from prepared JPEG folders (``--lq-dir``). PSNR, PSNR-B and SSIM are those of
``carn_da.evaluation`` (8-bit, crop border 0). Writes ``table.md`` (also printed), ``scores.csv``, ``scores.json``,
``gain_vs_qf.png`` and, with ``--residual-image``, ``residuals.png`` under ``--out`` (figures drawn with
matplotlib's Agg renderer, without pyplot).
"""
import argparse
import csv
import cv2
import json
import numpy as np
import os
import pickle
import shlex
import sys
import torch
import yaml
from matplotlib.figure import Figure
from os import path as osp
from tqdm import tqdm

from carn_da.data.image_pairs import images_by_stem
from carn_da.utils.jpeg import jpeg_compress, to_gray
from carn_da.evaluation import (METRICS, add_inference_arguments, check_inference_arguments, image_scores, load_pairs,
                                markdown_table, mean_scores, restore)
from carn_da.runs import load_generator, load_options

JPEG = 'JPEG'
METRIC_NAMES = {'psnr': 'PSNR', 'psnrb': 'PSNR-B', 'ssim': 'SSIM'}
PANEL_INCHES = (4, 3)  # gain_vs_qf.png: width x height of one dataset's panel
CELL_INCHES = 3  # residuals.png: side of one residual map
DPI = 100


class UserError(Exception):
    """A problem with the command line or its files; reported without a traceback, exit code 2."""


def network_options(options):
    """The ``network_g`` of an option file, or UserError naming the file."""
    if not osp.isfile(options):
        raise UserError(f'Option file {options} does not exist.')
    try:
        network_opt = load_options(options).get('network_g')
    except (AttributeError, yaml.YAMLError) as error:
        raise UserError(f'Option file {options} is not a YAML mapping: {error}') from error
    if not isinstance(network_opt, dict):
        raise UserError(f'Option file {options} has no network_g.')
    return network_opt


def _named(value, what):
    name, sep, rest = value.partition('=')
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r}')
    return name, rest


def model_arg(value):
    label, rest = _named(value, 'LABEL=CHECKPOINT:OPTIONS.yml')
    checkpoint, sep, options = rest.rpartition(':')
    if not sep or not checkpoint or not options:
        raise argparse.ArgumentTypeError(f'expected LABEL=CHECKPOINT:OPTIONS.yml, got {value!r}')
    return label, checkpoint, options


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='carn-da-eval', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--model',
        type=model_arg,
        action='append',
        required=True,
        metavar='LABEL=CHECKPOINT:OPTIONS',
        help='A BasicSR checkpoint ({"params": state_dict}) and an option file with network_g; '
        'LABEL names the table row. Repeatable.')
    parser.add_argument(
        '--test',
        type=lambda v: _named(v, 'NAME=GT_FOLDER'),
        action='append',
        required=True,
        metavar='NAME=GT_FOLDER',
        help='A folder of ground-truth images. Repeatable.')
    parser.add_argument('--qf', type=int, nargs='+', required=True, help='JPEG qualities of the table.')
    parser.add_argument(
        '--lq-dir',
        type=lambda v: _named(v, 'NAME=FOLDER'),
        action='append',
        default=[],
        metavar='NAME=FOLDER',
        help='Read the JPEGs of test set NAME from FOLDER/qf<Q> (the layout of '
        'scripts/prepare_data.py), or from FOLDER with {qf} replaced by the QF, paired with the '
        'ground truths by stem, instead of compressing the ground truths.')
    parser.add_argument('--plot-qfs', type=int, nargs='+', help='JPEG qualities of gain_vs_qf.png (default: --qf).')
    parser.add_argument(
        '--residual-image',
        metavar='NAME/STEM',
        help='Draw residuals.png for this image of test set NAME at every --qf.')
    parser.add_argument('--out', required=True, help='Output folder.')
    add_inference_arguments(parser)
    args = parser.parse_args(argv)
    args.qf = list(dict.fromkeys(args.qf))
    args.plot_qfs = sorted(set(args.plot_qfs or args.qf))
    check_inference_arguments(parser, args)
    for qf in args.qf + args.plot_qfs:
        if not 1 <= qf <= 100:
            parser.error(f'a JPEG quality must be in 1..100, got {qf}')
    for option, items in (('--model', [m[0] for m in args.model]), ('--test', [t[0] for t in args.test])):
        if len(set(items)) != len(items):
            parser.error(f'{option} names must be unique, got {", ".join(items)}')
    if JPEG in [m[0] for m in args.model]:
        parser.error(f'--model label {JPEG} is taken by the JPEG input row')
    unknown = {name for name, _ in args.lq_dir} - {name for name, _ in args.test}
    if unknown:
        parser.error(f'--lq-dir names no --test set: {", ".join(sorted(unknown))}')
    return parser, args


def choose_device(name):
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device cuda, but torch sees no CUDA device.')
    return torch.device(name)


def load_models(specs, device):
    """[(label, net)] of the ``--model`` arguments; UserError naming any missing or unusable file."""
    for label, checkpoint, options in specs:
        for kind, path in (('checkpoint', checkpoint), ('option file', options)):
            if not osp.isfile(path):
                raise UserError(f'--model {label}: {kind} {path} does not exist.')
    nets = []
    for label, checkpoint, options in specs:
        try:
            network_opt = network_options(options)
        except UserError as error:
            raise UserError(f'--model {label}: {error}') from error
        try:
            nets.append((label, load_generator(network_opt, checkpoint, device)))
        except (KeyError, RuntimeError, pickle.UnpicklingError) as error:
            raise UserError(f'--model {label}: cannot load {checkpoint} into the network_g of {options}: '
                            f'{type(error).__name__}: {error}') from error
    return nets


def to_gray_checked(img, source):
    """``to_gray(img)``; UserError naming ``source`` if it is unreadable (None) or not an 8-bit image."""
    if img is None:
        raise UserError(f'Cannot read image {source}.')
    try:
        return to_gray(img)
    except ValueError as error:
        raise UserError(f'{source}: {error}') from error


class EvalSet:
    """The ground truths of one ``--test`` folder and their JPEGs at any QF, made on the fly or read from a folder.

    Args:
        name (str): Name of the set.
        gt_folder (str): Folder of ground-truth images (searched recursively).
        lq_template (str | None): Folder of the JPEGs of quality ``{qf}`` (a ``str.format`` template), paired with
            the ground truths by stem; None to compress the ground truths with OpenCV.
        qfs (list[int]): QFs whose JPEG folders must exist.
    """

    def __init__(self, name, gt_folder, lq_template=None, qfs=()):
        self.name, self.gt_folder, self.lq_template = name, gt_folder, lq_template
        if not osp.isdir(gt_folder):
            raise UserError(f'--test {name}: folder {gt_folder} does not exist.')
        try:
            paths = images_by_stem(gt_folder)
        except ValueError as error:
            raise UserError(f'--test {name}: {error}') from error
        if not paths:
            raise UserError(f'--test {name}: no images in {gt_folder}.')
        if lq_template is None:
            self.gts = [(stem, to_gray_checked(cv2.imread(path, cv2.IMREAD_UNCHANGED), path))
                        for stem, path in sorted(paths.items())]
            self.stems = [stem for stem, _ in self.gts]
            return
        self.stems = [osp.splitext(osp.basename(path))[0] for path in paths.values()]  # as load_pairs names them
        for qf in qfs:
            if not osp.isdir(lq_template.format(qf=qf)):
                raise UserError(f'--lq-dir {name}: folder {lq_template.format(qf=qf)} (QF {qf}) does not exist.')

    def pairs(self, qf):
        """[(stem, lq, gt)] of uint8 grayscale images at JPEG quality ``qf``."""
        if self.lq_template is None:
            return [(stem, jpeg_compress(gt, qf), gt) for stem, gt in self.gts]
        lq_folder = self.lq_template.format(qf=qf)
        try:
            loaded = load_pairs(lq_folder, self.gt_folder, flag=cv2.IMREAD_UNCHANGED)
        except ValueError as error:
            raise UserError(f'--lq-dir {self.name}: {error}') from error
        pairs = []
        for stem, lq, gt in loaded:
            lq, gt = to_gray_checked(lq, f'{lq_folder}/{stem}'), to_gray_checked(gt, f'{self.gt_folder}/{stem}')
            if lq.shape != gt.shape:
                raise UserError(f'--lq-dir {self.name}: {stem} is {lq.shape[0]}x{lq.shape[1]} in {lq_folder} but '
                                f'{gt.shape[0]}x{gt.shape[1]} in {self.gt_folder}.')
            pairs.append((stem, lq, gt))
        return pairs


def eval_sets(args, qfs):
    """{name: EvalSet} of the ``--test`` and ``--lq-dir`` arguments (``--lq-dir`` FOLDER means FOLDER/qf{qf})."""
    lq_dirs = {name: folder if '{qf}' in folder else osp.join(folder, 'qf{qf}') for name, folder in args.lq_dir}
    return {name: EvalSet(name, folder, lq_dirs.get(name), qfs) for name, folder in args.test}


def evaluate(nets, sets, qfs, residual=None, device=None, tile=None, tile_overlap=16):
    """Score the JPEGs and every model's restorations of them, for every test set and QF.

    Returns:
        tuple[dict, dict]: ``{label: {set: {qf: [{'name', 'psnr', 'psnrb', 'ssim'}]}}}`` with ``JPEG`` first,
        and ``{(label, qf): (image, scores)}`` of the ``residual`` (set, stem) image.
    """
    results = {label: {name: {} for name in sets} for label in [JPEG] + [label for label, _ in nets]}
    residual_images = {}
    total = sum(len(test_set.stems) for test_set in sets.values()) * len(qfs) * (len(nets) + 1)
    with tqdm(total=total, desc='scoring', unit='img', file=sys.stderr) as bar:
        for name, test_set in sets.items():
            for qf in qfs:
                qf_pairs = test_set.pairs(qf)
                for label, net in [(JPEG, None)] + nets:
                    rows = results[label][name][qf] = []
                    for stem, lq, gt in qf_pairs:
                        out = lq if net is None else restore(net, lq, device, tile, tile_overlap)
                        rows.append({'name': stem, **image_scores(out, gt)})
                        if (name, stem) == residual:
                            residual_images[label, qf] = (out, gt, rows[-1])
                        bar.update()
    return results, residual_images


def table_columns(datasets, qfs):
    return [(f'{name}_qf{qf}_{metric}', f'{name} QF {qf} {METRIC_NAMES[metric]}') for name in datasets for qf in qfs
            for metric in METRICS]


def table(results, qfs):
    """Markdown table: JPEG then each model; dataset x QF x metric columns; gains over JPEG in parentheses."""
    datasets = list(next(iter(results.values())))
    rows = []
    for label, by_name in results.items():
        means = {(name, qf): mean_scores(by_name[name][qf]) for name in datasets for qf in qfs}
        rows.append((label, {f'{name}_qf{qf}_{k}': v for (name, qf), mean in means.items() for k, v in mean.items()}))
    return markdown_table(table_columns(datasets, qfs), rows, reference=JPEG)


def write_scores(results, out_dir, meta):
    with open(osp.join(out_dir, 'scores.csv'), 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['model', 'dataset', 'qf', 'image', *METRICS])
        for label, by_name in results.items():
            for name, by_qf in by_name.items():
                for qf, rows in by_qf.items():
                    writer.writerows([label, name, qf, row['name'], *(row[m] for m in METRICS)] for row in rows)
    scores = {}
    for label, by_name in results.items():
        for name, by_qf in by_name.items():
            scores.setdefault(label, {})[name] = {
                str(qf): dict(images=v, mean=mean_scores(v))
                for qf, v in by_qf.items()
            }
    with open(osp.join(out_dir, 'scores.json'), 'w', encoding='utf-8') as f:
        json.dump({**meta, 'scores': scores}, f, indent=1)


def plot_gains(results, qfs, path):
    """Mean PSNR gain over JPEG against QF, one panel per dataset, one line per model."""
    datasets = list(results[JPEG])
    fig = Figure(figsize=(PANEL_INCHES[0] * len(datasets), PANEL_INCHES[1]), dpi=DPI, layout='constrained')
    axes = fig.subplots(1, len(datasets), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, datasets):
        jpeg = [mean_scores(results[JPEG][name][qf])['psnr'] for qf in qfs]
        for label, by_name in results.items():
            if label != JPEG:
                gains = [mean_scores(by_name[name][qf])['psnr'] - ref for qf, ref in zip(qfs, jpeg)]
                ax.plot(qfs, gains, marker='o', label=label)
        ax.axhline(0, color='gray', linewidth=0.8)
        ax.set(title=name, xlabel='JPEG quality factor')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('PSNR gain over JPEG (dB)')
    axes[-1].legend(fontsize='small')
    fig.savefig(path)


def plot_residuals(residual_images, labels, qfs, title, path):
    """Grid of log(|restored - gt| + 1) maps: a row per QF, a column for JPEG and each model, PSNR in captions."""
    fig = Figure(figsize=(CELL_INCHES * len(labels), CELL_INCHES * len(qfs)), dpi=DPI, layout='constrained')
    axes = fig.subplots(len(qfs), len(labels), squeeze=False)
    for row, qf in zip(axes, qfs):
        for ax, label in zip(row, labels):
            out, gt, scores = residual_images[label, qf]
            residual = np.log(np.abs(out.astype(np.float64) - gt) + 1)
            image = ax.imshow(residual, cmap='magma', vmin=0, vmax=np.log(256))
            ax.set_title(f'{label}, QF {qf}: {scores["psnr"]:.2f} dB', fontsize='small')
            ax.set_axis_off()
    fig.colorbar(image, ax=axes, shrink=0.8)
    fig.suptitle(f'{title}: log(|restored - ground truth| + 1)', fontsize='medium')
    fig.savefig(path)


def run(args, command):
    residual = None
    if args.residual_image is not None:
        residual = tuple(args.residual_image.split('/', 1))
        if len(residual) != 2 or residual[0] not in dict(args.test):
            raise UserError(f'--residual-image must be NAME/STEM with NAME a --test set, got {args.residual_image}.')
    device = choose_device(args.device)
    nets = load_models(args.model, device)
    qfs = sorted(set(args.qf) | set(args.plot_qfs))
    sets = eval_sets(args, qfs)
    if residual is not None and residual[1] not in sets[residual[0]].stems:
        raise UserError(f'--residual-image {args.residual_image}: test set {residual[0]} has no image {residual[1]}.')
    os.makedirs(args.out, exist_ok=True)

    results, residual_images = evaluate(nets, sets, qfs, residual, device, args.tile, args.tile_overlap)
    text = table(results, args.qf)
    print(text, end='')
    with open(osp.join(args.out, 'table.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    models = {label: dict(checkpoint=checkpoint, options=options) for label, checkpoint, options in args.model}
    meta = dict(
        command=command,
        models=models,
        tests=dict(args.test),
        lq_dirs=dict(args.lq_dir),
        device=str(device),
        tile=args.tile,
        tile_overlap=args.tile_overlap)
    write_scores(results, args.out, meta)
    plot_gains(results, args.plot_qfs, osp.join(args.out, 'gain_vs_qf.png'))
    if residual is not None:
        plot_residuals(residual_images, list(results), args.qf, args.residual_image,
                       osp.join(args.out, 'residuals.png'))


def main(argv=None):
    parser, args = parse_args(argv)
    try:
        run(args, shlex.join([parser.prog, *(sys.argv[1:] if argv is None else argv)]))
    except UserError as error:
        parser.exit(2, f'{parser.prog}: error: {error}\n')


if __name__ == '__main__':
    main()
