"""Restore JPEG images (or any 8-bit images) with a trained CARN and write them losslessly.

    carn-da restore photos/ -o restored/                  # the default shipped model (carn-da models)
    carn-da restore photos/ -o restored/ --model net_g_latest.pth --opt options/train_rdn_sq_qf10.yml
    carn-da restore photo.jpg -o restored/ --model ... --opt ... --tile 512 --half
    cat photo.jpg | carn-da restore - -o restored/ --model ... --opt ...      (writes restored/stdin.png)

(also ``python -m carn_da.restore ...``). ``--model NAME`` picks a shipped model (``carn_da/weights``, each
checked against its SHA-256); without ``--model``, the default one restores. Otherwise the option file's
``network_g`` builds the network (a training option file works as is); the checkpoint is BasicSR's (``params_ema``
if present, else ``params``) or a bare state dict, loaded with ``torch.load(weights_only=True)``: a checkpoint
holding pickled Python objects is refused.

Grayscale and colour: a 1-channel model restores a colour image on the Y channel of YCbCr and keeps Cb and Cr: for
a colour JPEG, the Y, Cb and Cr planes as libjpeg decodes them (the Y the JPEG quantised, not a luma recomputed from
RGB), for other images OpenCV's BT.601 full-range YCbCr (that of JPEG). A 3-channel model restores colour as it was
trained (BGR files as RGB) and a gray image as gray replicated to RGB, then converted back. An alpha channel is kept.
Pixels are restored in the order the file stores them (where JPEG's 8x8 blocks lie); an EXIF orientation is then
applied, so outputs look as viewers show the inputs.

A routed model (``carn-da route``, ``carn-da adapt``) sends each image to the expert for the JPEG quality that shaped
its artifacts, read from the file (``read_jpeg_quality``: a JPEG's header checked against its luma plane, the coarser
quality winning when they disagree; the 64 grid offsets searched, so crops off the grid read right); an image of
a quality no expert is made for, or of unknown quality that is or may still be a JPEG (the blocking of a resized
JPEG, too few textured blocks to tell, another encoder's tables), goes to the routed model's fallback, or passes
unchanged if it has none; an image whose pixels show no JPEG grid at all (never compressed, or resized from a high
quality) passes unchanged unless the routed model sends it to the fallback (``carn-da route --unknown fallback``).
Each image's reading and expert are printed; ``--report`` writes them (and every image's status) as CSV.
``--self-ensemble`` restores each image in its 8 rotations and mirrorings and averages the outputs (the expert is
chosen once, on the image as stored).

Outputs: OUTDIR/<relative folder>/<stem>.png (``--ext``), mirroring a folder INPUT; OUTDIR must differ from a
folder INPUT. Existing outputs are skipped unless ``--overwrite`` (stdin's output must not exist without it). Each
output is written through a unique temporary file, so that runs into one folder do not disturb each other, and no
input is ever written to: an input whose output would replace an input file (also through a link) fails. A file
that cannot be read or decoded (corrupt, truncated, not an image, not a regular file) is reported by name and
skipped. Exit code: 0, 1 if any image failed, 2 for a usage error (nothing is restored).
"""
import carn_da.compat  # noqa: F401

import numpy as np
import os
import sys
import torch
from os import path as osp

from carn_da.utils.checkpoint import load_model
from carn_da.utils.cli import (add_inference_arguments, check_inference_arguments, command_parser, inference_options,
                               run_command)
from carn_da.utils.device import choose_device, choose_dtype
from carn_da.utils.errors import UserError
from carn_da.utils.files import check_output_folder, check_outputs_spare_inputs
from carn_da.utils.images import STDIN
from carn_da.utils.inference import Restorer
from carn_da.utils.restoring import list_inputs, restore_files, write_report
from carn_da.utils.zoo import resolve_model


def parse_args(argv=None):
    parser = command_parser('carn-da restore', __doc__)
    parser.add_argument('input', metavar='INPUT', help='An image file, a folder (searched recursively) or - (stdin).')
    parser.add_argument('-o', '--out', required=True, metavar='OUTDIR', help='Output folder.')
    parser.add_argument(
        '--model',
        metavar='NAME|CHECKPOINT',
        help='A shipped model by name (carn-da models), or a BasicSR checkpoint of network_g with --opt. Default: '
        'the default shipped model.')
    parser.add_argument('--opt', metavar='OPTIONS.yml', help='Option file with network_g (with --model CHECKPOINT).')
    parser.add_argument(
        '--glob',
        metavar='PATTERN',
        help='Only the files of a folder INPUT whose relative path matches PATTERN (case-insensitive; e.g. "*.jpg"). '
        'Default: all images (png, jpg, jpeg, bmp, tif, tiff).')
    parser.add_argument('--ext', choices=['png', 'tif', 'bmp'], default='png', help='Output format (lossless).')
    parser.add_argument('--overwrite', action='store_true', help='Restore again images whose output exists.')
    parser.add_argument(
        '--half',
        action='store_true',
        help='Half precision: float16 on CUDA, bfloat16 on CPU (less memory; faster only on CPUs with bfloat16 '
        'instructions). Outputs may differ from float32 by a gray level or so.')
    parser.add_argument(
        '--report',
        metavar='REPORT.csv',
        help='Also write, per input, the JPEG quality and 8x8 grid read from it (header and pixels), the network '
        'that restored it (with a routed model: its expert) and why an image failed.')
    add_inference_arguments(parser)
    args = parser.parse_args(argv)
    check_inference_arguments(parser, args)
    if args.glob is not None and not osp.isdir(args.input):
        parser.error('--glob needs a folder INPUT')
    return parser, args


def run(args):
    device = choose_device(args.device)
    dtype = choose_dtype(args.half, device)
    net, channels = load_model(*resolve_model(args.model, args.opt), device)
    inputs = list_inputs(args.input, args.glob, args.out)
    if not inputs:
        raise UserError(f'No images in {args.input}' + (f' matching {args.glob}.' if args.glob else '.'))
    stdin_out = osp.join(args.out, f'stdin.{args.ext}')
    if args.input == STDIN and osp.lexists(stdin_out) and not args.overwrite:
        raise UserError(f'{stdin_out} exists: restore stdin into another -o, or replace it with --overwrite.')
    check_output_folder(args.out, '-o')
    if args.report is not None:
        check_outputs_spare_inputs([args.report], [path for path, _ in inputs if path != STDIN], '--report')
        check_output_folder(osp.dirname(args.report) or os.curdir, '--report')
    restorer = Restorer(net, channels, device, dtype, **inference_options(args))
    if dtype != torch.float32:
        try:
            restorer.run(np.zeros((32, 32, channels), np.float32))
        except RuntimeError as error:
            raise UserError(f'--half: this torch cannot run the network in {dtype} on {device}: {error}') from error
    print(
        f'carn-da restore: {len(inputs)} image(s), {type(net).__name__} with {channels} channel(s) on {device} in '
        f'{str(dtype).replace("torch.", "")}' + (f', tiles of {args.tile}' if args.tile else '') +
        (', x8 self-ensemble' if args.self_ensemble else ''),
        file=sys.stderr)
    report = None if args.report is None else []
    done = restore_files(restorer, inputs, args.out, args.ext, args.overwrite, report)
    if report is not None:
        write_report(report, args.report)
    note = ' (outputs exist; --overwrite restores them again)' if done['skipped'] else ''
    print(f'{len(done["restored"])} restored, {len(done["skipped"])} skipped{note}, {len(done["failed"])} failed '
          f'-> {args.out}')
    return 1 if done['failed'] else 0


def main(argv=None):
    parser, args = parse_args(argv)
    return run_command(parser, run, args)


if __name__ == '__main__':
    sys.exit(main())
