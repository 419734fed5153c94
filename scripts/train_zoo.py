"""Train the shipped grayscale models and write them into the package (carn_da/weights), resumable.

    python scripts/train_zoo.py                                  # the default plan: see the option defaults
    python scripts/train_zoo.py --backbone dncnn --size cpu      # another backbone of carn_da/recipes.py
    python scripts/train_zoo.py --longer 10 20 30 40 50          # those experts 1200 more iterations (a warm restart)
    python scripts/train_zoo.py --blind-iters 4 --expert-iters 2 --qualities 10 50 --score-images 2 \\
        --ship /tmp/weights --prefix smoke                       # a smoke run in a few minutes

From Train400 (random crops at any offset, flips and rotations; JPEGs made on the fly with OpenCV):
1. a **blind** model for QF ``--blind-range``, which also sees images saved twice, resized after compression and
   never compressed (``--resave-prob``, ``--resize-prob``, ``--clean-prob``): the model for images whose quality
   cannot be read (the routed model's fallback) and the source of ``carn-da adapt``;
2. an **expert** per QF of ``--qualities``, each fine-tuned from the blind model on JPEGs of that quality alone;
3. the **routed** model (QualityRoutedCARN): each image to the expert of the quality read from it (within 2), every
   other image to the blind model.
Each training is BasicSR's (``carn_da/train.py``) under ``--root``/experiments/zoo_*; a killed run resumes from its
last saved state when the script is run again, and finished trainings are reused. The blind and routed models are
then scored on BSD68 at QF 10, 20, ..., 90 and shipped (``carn_da.utils.zoo.ship``: weights, options, a model card
with data, iterations, command, date, machine and scores, and a SHA-256 each) as ``--name``-blind and ``--name``
(the default model).
"""
import carn_da.compat  # noqa: F401

import argparse
import copy
import os
import platform
import shlex
import sys
import torch
from basicsr.archs import build_network
from datetime import datetime, timezone
from os import path as osp

from carn_da import recipes
from carn_da.runs import latest_generator, train_unless_done
from carn_da.utils.checkpoint import load_state_dict, routed_state
from carn_da.utils.evaluation import EvalSet, evaluate
from carn_da.utils.scores import mean_scores
from carn_da.utils.zoo import PACKAGE_FOLDER, ship

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCORE_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default=osp.join(REPO, os.pardir, 'shared', 'datasets'), help='Train400, BSD68.')
    parser.add_argument('--root', default=REPO, help='Where the trainings run (experiments/, tb_logger/).')
    parser.add_argument('--ship', default=PACKAGE_FOLDER, help='Models folder to write. Default: carn_da/weights.')
    parser.add_argument('--name', default='carn-da-gray', help='Name of the routed (default) model.')
    parser.add_argument('--prefix', default='zoo', help='Prefix of the experiment names.')
    parser.add_argument('--backbone', default='rdn', choices=list(recipes.BACKBONES))
    parser.add_argument('--size', default='cpu', help='Size preset of the backbone in carn_da/recipes.py.')
    parser.add_argument('--blind-iters', type=int, default=6000)
    parser.add_argument('--expert-iters', type=int, default=600)
    parser.add_argument('--blind-lr', type=float, default=2e-4)
    parser.add_argument('--expert-lr', type=float, default=5e-5)
    parser.add_argument('--blind-range', type=int, nargs=2, default=[10, 90], metavar=('MIN', 'MAX'))
    parser.add_argument('--qualities', type=int, nargs='*', default=list(SCORE_QUALITIES), help='Experts (QF).')
    parser.add_argument(
        '--longer',
        type=int,
        nargs='*',
        default=[],
        metavar='QF',
        help='Experts (of --qualities) trained --longer-iters more iterations, a warm restart from their first '
        'training: for the qualities where the measurement asks for more.')
    parser.add_argument('--longer-iters', type=int, default=1200)
    parser.add_argument('--resave-prob', type=float, default=recipes.REAL_WORLD['resave_prob'])
    parser.add_argument('--resize-prob', type=float, default=recipes.REAL_WORLD['resize_prob'])
    parser.add_argument('--clean-prob', type=float, default=recipes.REAL_WORLD['clean_prob'])
    parser.add_argument(
        '--unknown',
        choices=['unchanged', 'fallback'],
        default='unchanged',
        help='Where the routed model sends an image of unknown quality (QualityRoutedCARN). Default: unchanged; '
        'fallback once the blind model is measured above the JPEG on resized images (benchmarks/real_world.py).')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--patch', type=int, default=48)
    parser.add_argument('--score-images', type=int, default=68, help='BSD68 images scored for the model cards.')
    args = parser.parse_args(argv)
    args.command = shlex.join(['python', 'scripts/train_zoo.py', *(sys.argv[1:] if argv is None else argv)])
    if error := recipes.unknown_size(args.backbone, args.size):
        parser.error(error)
    if extra := sorted(set(args.longer) - set(args.qualities)):
        parser.error(f'--longer {" ".join(map(str, extra))}: not among the experts of --qualities')
    return args


def train_model(args, name, qualities, iters, lr, pretrain=None, degradations=None):
    """Train (or reuse, or resume) one model on Train400 JPEGs of ``qualities`` (min, max); its latest checkpoint."""
    pairs = recipes.jpeg_pairs('Train400', osp.join(args.data, 'Train400'), None, args.patch, args.batch, enlarge=1)
    log = recipes.logger(max(1, iters // 20), max(1, iters // 4))
    schedule = recipes.cosine_schedule(iters, lr)
    opt = recipes.blind(
        name,
        recipes.network(args.backbone, args.size),
        pairs,
        schedule,
        log,
        qualities,
        degradations,
        pretrain=pretrain)
    opt['path']['param_key_g'] = 'params'
    options_dir = osp.join(args.root, 'experiments', f'{args.prefix}_options')
    os.makedirs(options_dir, exist_ok=True)
    train_unless_done(opt, options_dir, args.root, resume=True)
    return latest_generator(name, args.root)


def bsd68_psnr(args, net):
    """{QF: mean PSNR} of a network (None: the JPEGs) on the first ``--score-images`` BSD68 images."""
    test_set = EvalSet('BSD68', osp.join(args.data, 'BSD68'))
    test_set.gts, test_set.stems = test_set.gts[:args.score_images], test_set.stems[:args.score_images]
    results, _ = evaluate([] if net is None else [('model', net)], {'BSD68': test_set}, SCORE_QUALITIES)
    label = 'JPEG' if net is None else 'model'
    return {str(qf): round(mean_scores(rows)['psnr'], 2) for qf, rows in results[label]['BSD68'].items()}


def network_with(network_g, state_dict):
    """The network of the ``network_g`` options holding ``state_dict``, in eval mode."""
    net = build_network(copy.deepcopy(network_g))
    net.load_state_dict(state_dict)
    return net.eval()


def card(args, title, what, trained, scores, jpeg):
    """The Markdown model card of a shipped model."""
    machine = torch.cuda.get_device_name() if torch.cuda.is_available() else f'{os.cpu_count()} CPU cores'
    rows = '\n'.join(f'| {qf} | {jpeg[qf]:.2f} | {scores[qf]:.2f} |' for qf in scores)
    return (f'# {title}\n\n{what}\n\n'
            f'- Backbone: {args.backbone} ({args.size}), grayscale (a colour image is restored on its luma).\n'
            f'- Data: Train400 (../shared/datasets), random {args.patch}x{args.patch} crops, flips and rotations, '
            f'JPEGs made on the fly with OpenCV.\n- Trained: {trained}\n'
            f'- Command: `{args.command}`\n'
            f'- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}, {machine}, '
            f'torch {torch.__version__}\n- Use: weights only; licence of this project (Apache-2.0).\n\n'
            f'PSNR (dB) on the first {args.score_images} BSD68 images, JPEGs made with OpenCV:\n\n'
            f'| QF | JPEG | this model |\n|---:|---:|---:|\n{rows}\n')


def ship_scored(args, name, network_g, state_dict, what, trained, jpeg, roles):
    """Score a model on BSD68 and ship it with its card into ``--ship``."""
    scores = bsd68_psnr(args, network_with(network_g, state_dict))
    text = card(args, name, what, trained, scores, jpeg)
    ship(args.ship, name, state_dict, network_g, text, what, {'BSD68': scores}, roles)
    print(f'shipped {name}: BSD68 PSNR ' + ', '.join(f'QF {qf} {jpeg[qf]:.2f} -> {scores[qf]:.2f}' for qf in scores))


def main(argv=None):
    args = parse_args(argv)
    degradations = dict(resave_prob=args.resave_prob, resize_prob=args.resize_prob, clean_prob=args.clean_prob)
    low, high = args.blind_range
    blind = train_model(args, f'{args.prefix}_blind', (low, high), args.blind_iters, args.blind_lr, None, degradations)
    experts = {
        q: train_model(args, f'{args.prefix}_qf{q}', (q, q), args.expert_iters, args.expert_lr, blind)
        for q in args.qualities
    }
    for q in args.longer:
        name = f'{args.prefix}_qf{q}_plus{args.longer_iters}'
        experts[q] = train_model(args, name, (q, q), args.longer_iters, args.expert_lr, experts[q])
    network_g, jpeg = recipes.network(args.backbone, args.size), bsd68_psnr(args, None)
    what = (f'Blind: one model for JPEG quality {low}-{high}, also trained on JPEGs saved twice '
            f'({args.resave_prob:.0%}), resized after compression ({args.resize_prob:.0%}) and clean images '
            f'({args.clean_prob:.0%}); the source model of carn-da adapt.')
    trained = f'{args.blind_iters} iterations of batch {args.batch}, cosine learning rate from {args.blind_lr:g}'
    ship_scored(args, f'{args.name}-blind', network_g, load_state_dict(blind)[1], what, trained, jpeg, ['adapt_source'])
    routed = recipes.routed_pair([(network_g, None)] + [(network_g, [q]) for q in args.qualities], args.unknown)
    unknown = 'the blind model too' if args.unknown == 'fallback' else 'unchanged'
    what = (f'Routed (the default model): an expert per JPEG quality {", ".join(map(str, args.qualities))} (each '
            f'the blind model fine-tuned on that quality alone), chosen per image from the quality read from it; '
            f'the blind model {args.name}-blind for any other quality; an image of unknown quality: {unknown}.')
    trained += f'; each expert {args.expert_iters} more iterations from {args.expert_lr:g}'
    if args.longer:
        trained += (f'; the experts for QF {", ".join(map(str, args.longer))} {args.longer_iters} more again '
                    '(a warm restart of the same schedule)')
    state = routed_state([blind, *(experts[q] for q in args.qualities)])  # in the order of the routed experts
    ship_scored(args, args.name, routed, state, what, trained, jpeg, ['default'])


if __name__ == '__main__':
    main()
