"""List the shipped models: carn-da models.

Each model's name (with its role: ``default``, what ``carn-da restore`` uses; ``adapt source``, what ``carn-da
adapt`` starts from), what it is, its PSNR on the standard test sets at each JPEG quality (from
its model card, measured by benchmarks/zoo.py) and where its card lies. Restore with one by ``carn-da restore INPUT
-o OUTDIR --model NAME``.
The folder is the package's ``weights`` (or ``$CARN_DA_MODELS``); each checkpoint is checked against its SHA-256.
"""
import sys

from carn_da.utils.cli import command_parser, run_command
from carn_da.utils.zoo import models_folder, read_manifest, verified


def score_lines(scores):
    """'  BSD68 PSNR: QF 10 29.10, QF 20 31.50' lines of a manifest's ``scores`` ({test set: {QF: PSNR}})."""
    lines = []
    for test, by_qf in scores.items():
        ordered = sorted(by_qf.items(), key=lambda item: int(item[0]))
        lines.append(f'  {test} PSNR: ' + ', '.join(f'QF {qf} {psnr:.2f}' for qf, psnr in ordered))
    return lines


def run(args):
    roles, shipped = read_manifest()
    if not shipped:
        print(f'No shipped models in {models_folder()}; train them with scripts/train_zoo.py.')
        return 1
    for name, model in shipped.items():
        verified(model)
        its_roles = ', '.join(role.replace('_', ' ') for role, named in roles.items() if named == name)
        print(f'{name}{f" ({its_roles})" if its_roles else ""}: {model.summary}')
        print('\n'.join(score_lines(model.scores) + [f'  card: {model.card}']))
    return 0


def main(argv=None):
    parser = command_parser('carn-da models', __doc__)
    args = parser.parse_args(argv)
    return run_command(parser, run, args)


if __name__ == '__main__':
    sys.exit(main())
