"""Import a published MatConvNet model (e.g. DnCNN-3, cszn/DnCNN's ``model/DnCNN3.mat``) as a carn-da model.

    carn-da import DnCNN3.mat --out models/
    carn-da restore my_jpegs/ -o restored/ --model models/DnCNN3.pth --opt models/DnCNN3.yml

(also ``python -m carn_da.import_model``). Reads a MatConvNet ``simplenn`` network of 3x3 conv, ReLU and batch
normalisation layers (folded into the convs) that predicts the residual (restored = input - network(input)), from a
MATLAB v7.3 file (HDF5) or an older MAT file. Writes ``--out``/NAME.pth (BasicSR's ``{'params': state dict}``) and
``--out``/NAME.yml (``network_g``: the project's ``DnCNN`` without batch normalisation), NAME being the MAT file's
name (``--name``). Those two files work wherever a trained model does: ``carn-da restore``, ``eval``, ``adapt`` (as
the source model) and BasicSR's option files. A layer it does not understand is named and nothing is written.

Published weights carry their authors' terms: DnCNN's repository states no licence, so keep its weights, and
anything made from them, out of what you redistribute.
"""
import carn_da.compat  # noqa: F401

import re
import sys
from os import path as osp

from carn_da.utils.checkpoint import load_model
from carn_da.utils.cli import command_parser, run_command
from carn_da.utils.errors import UserError
from carn_da.utils.files import check_output_folder, check_outputs_spare_inputs, save_torch_atomic, write_options
from carn_da.utils.matconvnet import read_simplenn, simplenn_to_dncnn


def parse_args(argv=None):
    parser = command_parser('carn-da import', __doc__)
    parser.add_argument('model', metavar='MODEL.mat', help='The MatConvNet model file.')
    parser.add_argument('--out', required=True, metavar='DIR', help='Output folder (NAME.pth, NAME.yml).')
    parser.add_argument('--name', help="Name of the written files. Default: the MAT file's name without extension.")
    args = parser.parse_args(argv)
    args.name = args.name or osp.splitext(osp.basename(args.model))[0]
    if not re.fullmatch(r'[\w.-]+', args.name):
        parser.error(f'--name may hold letters, digits, _ . and - only, got {args.name!r}')
    return parser, args


def run(args):
    if not osp.isfile(args.model):
        raise UserError(f'{args.model}: no such file.')
    network_g, state = simplenn_to_dncnn(read_simplenn(args.model), args.model)
    checkpoint, options = (osp.join(args.out, f'{args.name}{ext}') for ext in ('.pth', '.yml'))
    check_outputs_spare_inputs([checkpoint, options], [args.model], '--out')
    check_output_folder(args.out, '--out')
    save_torch_atomic({'params': state}, checkpoint)
    write_options({'network_g': network_g}, options)
    net, _ = load_model(checkpoint, options)
    params = sum(p.numel() for p in net.parameters())
    print(f'wrote {checkpoint} and {options}: DnCNN of {network_g["num_conv"]} convs, {network_g["num_feat"]} '
          f'channels, {network_g["num_in_ch"]}-channel images, {params / 1e6:.2f} M parameters')
    return 0


def main(argv=None):
    parser, args = parse_args(argv)
    return run_command(parser, run, args)


def imported_once(mat_file, out):
    """(checkpoint, option file) of ``mat_file`` imported into ``out``, importing it only when they are not there
    yet (benchmarks that score a published model on every run)."""
    name = osp.splitext(osp.basename(mat_file))[0]
    files = tuple(osp.join(out, f'{name}{ext}') for ext in ('.pth', '.yml'))
    if not all(osp.isfile(f) for f in files) and main([mat_file, '--out', out]):
        raise SystemExit(f'importing {mat_file} failed (message above)')
    return files


if __name__ == '__main__':
    sys.exit(main())
