"""Score trained CARNs on folders of ground-truth images at several JPEG qualities (the layout of the paper's Table 1).

    carn-da eval \\
        --model SQ-10=experiments/RDN_SQ_QF10/models/net_g_latest.pth:options/train_rdn_sq_qf10.yml \\
        --model DA=experiments/RDN_DA_LQ2HQ/models/net_g_latest.pth:options/train_rdn_da_lq2hq.yml \\
        --test BSD68=datasets/BSD68/gt --test Set12=datasets/Set12/gt --qf 10 70 --plot-qfs 10 30 50 70 90 \\
        --residual-image Set12/01 --out results/eval

(also ``carn-da-eval``, ``python -m carn_da.evaluate``). A checkpoint's ``params_ema`` (BasicSR's EMA weights) are
scored if present, else its ``params``. Ground truths are read as 8-bit grayscale (colour through
``carn_da.utils.jpeg.to_gray``) and JPEG-compressed at every QF with OpenCV, or read from prepared JPEG folders
(``--lq-dir``). PSNR, PSNR-B and SSIM are those of ``carn_da.utils.scores`` (8-bit, crop border 0). Writes
``table.md`` (also printed), ``scores.csv``, ``scores.json``, ``gain_vs_qf.png`` and, with ``--residual-image``,
``residuals.png`` under ``--out`` (figures drawn with matplotlib's Agg renderer, without pyplot).
"""
import carn_da.compat  # noqa: F401

import argparse
import os
import shlex
import sys
from os import path as osp

from carn_da.utils.checkpoint import load_network, network_options
from carn_da.utils.cli import (add_inference_arguments, check_inference_arguments, command_parser, inference_options,
                               run_command)
from carn_da.utils.device import choose_device
from carn_da.utils.errors import UserError
from carn_da.utils.evaluation import JPEG, EvalSet, evaluate, plot_gains, plot_residuals, table, write_scores
from carn_da.utils.files import check_output_folder, check_outputs_spare_inputs, write_atomic

OUTPUTS = ('table.md', 'scores.csv', 'scores.json', 'gain_vs_qf.png', 'residuals.png')


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
    parser = command_parser('carn-da eval', __doc__)
    parser.add_argument(
        '--model',
        type=model_arg,
        action='append',
        required=True,
        metavar='LABEL=CHECKPOINT:OPTIONS',
        help='A BasicSR checkpoint (its params_ema if present, else params) and an option file with network_g; '
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


def load_models(specs, device):
    """[(label, net)] of the ``--model`` arguments; UserError naming any missing or unusable file."""
    for label, checkpoint, options in specs:
        for kind, path in (('checkpoint', checkpoint), ('option file', options)):
            if not osp.isfile(path):
                raise UserError(f'--model {label}: {kind} {path} does not exist.')
    nets = []
    for label, checkpoint, options in specs:
        try:
            nets.append(
                (label, load_network(network_options(options), checkpoint, device, f'the network_g of {options}')))
        except UserError as error:
            raise UserError(f'--model {label}: {error}') from error
    return nets


def eval_sets(args, qfs):
    """{name: EvalSet} of the ``--test`` and ``--lq-dir`` arguments (``--lq-dir`` FOLDER means FOLDER/qf{qf})."""
    lq_dirs = {name: folder if '{qf}' in folder else osp.join(folder, 'qf{qf}') for name, folder in args.lq_dir}
    return {name: EvalSet(name, folder, lq_dirs.get(name), qfs) for name, folder in args.test}


def check_out(args, sets, qfs):
    """Make ``--out`` and check it can be written; UserError if it is a file, lies in a folder of images that is
    read (what it holds would be read as images) or if an output would replace a checkpoint or option file."""
    out = osp.realpath(args.out) + os.sep
    for name, test_set in sets.items():
        folders = [('--test', test_set.gt_folder)]
        folders += [('--lq-dir', test_set.lq_folder(qf)) for qf in qfs] if test_set.lq_template is not None else []
        for option, folder in folders:
            if out.startswith(osp.realpath(folder) + os.sep):
                raise UserError(f'--out {args.out} lies in the {option} folder {folder} of {name}; its files would be '
                                'read as images. Choose another --out.')
    inputs = [path for _, checkpoint, options in args.model for path in (checkpoint, options)]
    check_outputs_spare_inputs([osp.join(args.out, name) for name in OUTPUTS], inputs, '--out')
    check_output_folder(args.out, '--out')


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
    check_out(args, sets, qfs)

    results, residual_images = evaluate(nets, sets, qfs, residual, device, **inference_options(args))
    text = table(results, args.qf)
    print(text, end='')
    write_atomic(osp.join(args.out, 'table.md'), text.encode('utf-8'))
    models = {label: dict(checkpoint=checkpoint, options=options) for label, checkpoint, options in args.model}
    meta = dict(
        command=command,
        models=models,
        tests=dict(args.test),
        lq_dirs=dict(args.lq_dir),
        device=str(device),
        **inference_options(args))
    write_scores(results, args.out, meta)
    plot_gains(results, args.plot_qfs, osp.join(args.out, 'gain_vs_qf.png'))
    if residual is not None:
        plot_residuals(residual_images, list(results), args.qf, args.residual_image,
                       osp.join(args.out, 'residuals.png'))


def main(argv=None):
    parser, args = parse_args(argv)
    return run_command(parser, run, args, shlex.join([parser.prog, *(sys.argv[1:] if argv is None else argv)]))


if __name__ == '__main__':
    sys.exit(main())
