"""Join CARNs made for different JPEG qualities into one model that sends each image to the right one.

    carn-da route --expert 70 options/train_rdn_sq_qf70.yml experiments/RDN_SQ_QF70/models/net_g_latest.pth \\
        --expert 10 results/my_jpegs/my_jpegs.yml experiments/my_jpegs/models/net_g_latest.pth --out routed/

(also ``python -m carn_da.route``). ``--expert QUALITIES OPTIONS CHECKPOINT``: the JPEG qualities the model is for
(comma-separated, e.g. the source QF of a source model, or the target's QFs of a model from ``carn-da adapt``), its
option file (for ``network_g``) and its checkpoint. Writes ``--out``/``routed.yml`` (``network_g``:
``QualityRoutedCARN``) and ``--out``/``net_g.pth`` (BasicSR's ``{'params': ...}``), which ``carn-da restore`` loads
and whose ``network_g`` BasicSR test options can use, like any other model: each image goes to the expert with the
quality nearest to the one estimated from its pixels. Keeping the source model beside an adapted one this way, the
adaptation forgets nothing at the source quality (docs/RESULTS.md).
"""
import carn_da.compat  # noqa: F401

import argparse
import os
import sys
import torch
from os import path as osp

from carn_da.evaluate import UserError, network_options
from carn_da.restore import load_checkpoint, load_model
from carn_da.runs import write_options


def qualities_arg(text):
    try:
        qualities = [int(q) for q in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated JPEG qualities, got {text!r}') from None
    if not all(1 <= q <= 100 for q in qualities):
        raise argparse.ArgumentTypeError(f'JPEG qualities are in 1..100, got {text!r}')
    return qualities


def routed_state(checkpoints):
    """The QualityRoutedCARN state dict of the experts' ``checkpoints``, in order."""
    return {
        f'experts.{k}.{name}': value
        for k, checkpoint in enumerate(checkpoints)
        for name, value in load_checkpoint(checkpoint)[1].items()
    }


def routed_model(experts):
    """(network_g options, state dict) of a QualityRoutedCARN from ``experts``: (qualities, options file,
    checkpoint) each; UserError names a file that does not load."""
    network = {'type': 'QualityRoutedCARN', 'experts': []}
    for qualities, options, checkpoint in experts:
        load_model(checkpoint, options)  # checks that the pair loads and restores, naming the file if not
        network['experts'].append({'network': network_options(options), 'qualities': list(qualities)})
    return network, routed_state(checkpoint for _, _, checkpoint in experts)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='carn-da route', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--expert',
        nargs=3,
        action='append',
        required=True,
        metavar=('QUALITIES', 'OPTIONS', 'CHECKPOINT'),
        help='JPEG qualities (comma-separated), option file and checkpoint of one model; give it once per model.')
    parser.add_argument('--out', required=True, help='Output folder (routed.yml, net_g.pth).')
    args = parser.parse_args(argv)
    try:
        experts = [(qualities_arg(q), options, checkpoint) for q, options, checkpoint in args.expert]
    except argparse.ArgumentTypeError as error:
        parser.error(f'--expert: {error}')
    try:
        network, state = routed_model(experts)
    except UserError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    torch.save({'params': state}, osp.join(args.out, 'net_g.pth'))
    write_options({'network_g': network}, osp.join(args.out, 'routed.yml'))
    load_model(osp.join(args.out, 'net_g.pth'), osp.join(args.out, 'routed.yml'))
    print(f'wrote {osp.join(args.out, "routed.yml")} and {osp.join(args.out, "net_g.pth")}: ' +
          ', '.join(f'QF {",".join(map(str, q))} -> {checkpoint}' for q, _, checkpoint in experts))
    return 0


if __name__ == '__main__':
    sys.exit(main())
