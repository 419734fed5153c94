"""What every command shares: its parser, the inference options, and how a user's mistake is reported."""
import argparse
import re

from carn_da.utils.errors import UserError

ROLE = re.compile(r':[a-z]+:`~?([^`]+)`')  # :func:`x` and the like


def plain(doc):
    """A reST docstring as plain text for ``--help``: ``x`` and :func:`x` become x."""
    return ROLE.sub(r'\1', doc).replace('``', '')


def command_parser(prog, doc):
    """An argument parser whose description is the module docstring ``doc`` in plain text, as written."""
    return argparse.ArgumentParser(
        prog=prog, description=plain(doc), formatter_class=argparse.RawDescriptionHelpFormatter)


def add_inference_arguments(parser):
    """``--device``, ``--tile``, ``--tile-overlap`` and ``--self-ensemble`` of the commands that restore images."""
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto', help='Default: CUDA if present.')
    parser.add_argument('--tile', type=int, help='Restore in tiles of this size (default: whole images).')
    parser.add_argument(
        '--tile-overlap',
        type=int,
        default=16,
        help='Overlap of neighbouring tiles; tiling matches whole-image inference when the receptive field radius '
        'is at most half of it. Default: 16.')
    parser.add_argument(
        '--self-ensemble',
        action='store_true',
        help='Restore each image in its 8 rotations and mirrorings and average the 8 outputs (x8 self-ensemble): 8 '
        'times the time, for 0.02-0.11 dB PSNR with the shipped models on Set12 (docs/RESULTS.md).')


def inference_options(args):
    """The inference arguments as keyword arguments of ``carn_da.utils.inference.Restorer`` and ``restore``."""
    return dict(tile=args.tile, tile_overlap=args.tile_overlap, self_ensemble=args.self_ensemble)


def check_inference_arguments(parser, args):
    """Exit with a usage error naming ``--tile`` or ``--tile-overlap`` if it is out of range."""
    if args.tile_overlap < 0:
        parser.error(f'--tile-overlap must be at least 0, got {args.tile_overlap}')
    if args.tile is not None and args.tile < 1:
        parser.error(f'--tile must be at least 1, got {args.tile}')
    if args.tile is not None and args.tile <= args.tile_overlap:
        parser.error(f'--tile {args.tile} must be greater than --tile-overlap {args.tile_overlap}')


def run_command(parser, run, *args):
    """``run(*args)``, reporting a UserError as one line ``PROG: error: MESSAGE`` (its line breaks become spaces)
    and exit code 2."""
    try:
        return run(*args)
    except UserError as error:
        parser.exit(2, f'{parser.prog}: error: {" ".join(str(error).split())}\n')
