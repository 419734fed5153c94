"""Join CARNs made for different JPEG qualities into one model that sends each image to the right one.

    carn-da route --expert 70 options/train_rdn_sq_qf70.yml experiments/RDN_SQ_QF70/models/net_g_latest.pth \\
        --expert 10 results/my_jpegs/my_jpegs.yml experiments/my_jpegs/models/net_g_latest.pth --out routed/

(also ``python -m carn_da.route``). ``--expert QUALITIES OPTIONS CHECKPOINT``: the JPEG qualities the model is for
(comma-separated, e.g. the source QF of a source model, or the target's QFs of a model from ``carn-da adapt``), its
option file (for ``network_g``) and its checkpoint. Writes ``--out``/``routed.yml`` (``network_g``:
``QualityRoutedCARN``) and ``--out``/``net_g.pth`` (BasicSR's ``{'params': ...}``), which ``carn-da restore`` loads
and whose ``network_g`` BasicSR test options can use, like any other model: each image goes to the expert with the
quality nearest to the one read from it, if within 2 QF; an image of a quality no expert is made for goes to
``--fallback`` (a blind model), or passes unchanged without one: an expert made for another quality is never trusted
with it; nor is one of unknown quality that is or may still be a JPEG (the blocking of a resized JPEG, too few
textured blocks to find its grid, another encoder's tables): the fallback takes it. An image whose pixels show no
JPEG grid at all (never compressed, or resized from a high quality) passes unchanged, or goes to the fallback with
``--unknown fallback`` (measured: blind models restore resized JPEGs of high quality below the JPEG itself,
docs/RESULTS.md).
Keeping the source model beside an adapted one this way, the adaptation forgets nothing at the source quality.
"""
import carn_da.compat  # noqa: F401

import argparse
import sys
from os import path as osp

from carn_da.recipes import routed_pair
from carn_da.utils.checkpoint import load_model, network_options, routed_state
from carn_da.utils.cli import command_parser, run_command
from carn_da.utils.files import check_output_folder, check_outputs_spare_inputs, save_torch_atomic, write_options


def qualities_arg(text):
    try:
        qualities = [int(q) for q in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated JPEG qualities, got {text!r}') from None
    if not all(1 <= q <= 100 for q in qualities):
        raise argparse.ArgumentTypeError(f'JPEG qualities are in 1..100, got {text!r}')
    return qualities


def parse_args(argv=None):
    parser = command_parser('carn-da route', __doc__)
    parser.add_argument(
        '--expert',
        nargs=3,
        action='append',
        required=True,
        metavar=('QUALITIES', 'OPTIONS', 'CHECKPOINT'),
        help='JPEG qualities (comma-separated), option file and checkpoint of one model; give it once per model.')
    parser.add_argument(
        '--fallback',
        nargs=2,
        metavar=('OPTIONS', 'CHECKPOINT'),
        help="Option file and checkpoint of the model for every image further than 2 QF from every expert's "
        'qualities (a blind model), and with --unknown fallback of unknown quality. Without it, such images pass '
        'unchanged.')
    parser.add_argument(
        '--unknown',
        choices=['unchanged', 'fallback'],
        default='unchanged',
        help='Where an image whose pixels show no JPEG grid, not even a resized one, goes (never compressed, or '
        'resized from a high quality). Default: unchanged (blind models measured below the JPEG on resized JPEGs of '
        'high quality, docs/RESULTS.md); fallback needs --fallback.')
    parser.add_argument('--out', required=True, help='Output folder (routed.yml, net_g.pth).')
    args = parser.parse_args(argv)
    try:
        args.expert = [(qualities_arg(q), options, checkpoint) for q, options, checkpoint in args.expert]
    except argparse.ArgumentTypeError as error:
        parser.error(f'--expert: {error}')
    experts = {}
    for k, (qualities, _, checkpoint) in enumerate(args.expert):
        for quality in qualities:
            if experts.setdefault(quality, (k, checkpoint))[0] != k:
                parser.error(f'--expert: QF {quality} has two experts, {experts[quality][1]} and {checkpoint}; give '
                             'each quality to one')
    if args.unknown == 'fallback' and not args.fallback:
        parser.error('--unknown fallback needs --fallback')
    return parser, args


def run(args):
    experts = args.expert + ([(None, *args.fallback)] if args.fallback else [])
    for _, options, checkpoint in experts:
        load_model(checkpoint, options)  # checks that the pair loads and restores, naming the file if not
    network = routed_pair([(network_options(options), qualities) for qualities, options, _ in experts], args.unknown)
    checkpoint, options = osp.join(args.out, 'net_g.pth'), osp.join(args.out, 'routed.yml')
    check_outputs_spare_inputs([checkpoint, options], [path for expert in experts for path in expert[1:]], '--out')
    check_output_folder(args.out, '--out')
    save_torch_atomic({'params': routed_state(checkpoint for _, _, checkpoint in experts)}, checkpoint)
    write_options({'network_g': network}, options)
    load_model(checkpoint, options)
    others = f'{args.fallback[1]}' if args.fallback else 'unchanged (no --fallback)'
    routes = ', '.join(f'QF {",".join(map(str, q))} -> {path}' for q, _, path in args.expert)
    unknown = others if args.unknown == 'fallback' else 'unchanged'
    print(f'wrote {options} and {checkpoint}: {routes}; other images -> {others}; images with no JPEG grid -> '
          f'{unknown}')
    return 0


def main(argv=None):
    parser, args = parse_args(argv)
    return run_command(parser, run, args)


if __name__ == '__main__':
    sys.exit(main())
