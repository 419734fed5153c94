"""Train the shipped grayscale models and write them into the package (carn_da/weights), resumable.

    python scripts/train_zoo.py                                  # the default plan: see the option defaults
    python scripts/train_zoo.py --backbone dncnn --size cpu      # another backbone of carn_da/recipes.py
    python scripts/train_zoo.py --longer 10 20 30 40 50 10       # those experts 1200 more iterations (a warm restart),
                                                                 # the QF-10 one twice
    python scripts/train_zoo.py --blind-iters 4 --expert-iters 2 --qualities 10 50 --score-images 2 \\
        --ship /tmp/weights --prefix smoke                       # a smoke run in a few minutes
    python scripts/train_zoo.py --size medium --batch 64 --patch 64 --workers 8 \\
        --blind-minutes 3 --expert-minutes 3 --half              # on a GPU: iterations sized to minutes of it
    python scripts/train_zoo.py --size medium --blind experiments/zoo_blind --prefix zoo_cpu --half
                                                                 # experts from a blind model trained elsewhere
    python scripts/train_zoo.py --size medium --prefix zoo_ft --blind-start carn_da/weights/carn-da-gray-blind.pth \
        --blind-iters 2000 --blind-lr 5e-5 --resize-prob 0.5 --resize-qualities 50 100 --experts-from \
        carn_da/weights/carn-da-gray.pth carn_da/weights/carn-da-gray.yml --unknown fallback --half
                                                                 # the shipped blind model fine-tuned, shipped
                                                                 # beside the shipped experts

From Train400 (random crops at any offset, flips and rotations; JPEGs made on the fly with OpenCV):
1. a **blind** model for QF ``--blind-range``, which also sees images saved twice, resized after compression and
   never compressed (``--resave-prob``, ``--resize-prob``, ``--clean-prob``): the model for images whose quality
   cannot be read (the routed model's fallback) and the source of ``carn-da adapt``; ``--blind-start`` fine-tunes
   it from given weights, ``--resize-qualities`` sets the qualities of the JPEGs it sees resized, ``--blind-loss
   psnr`` weights each crop by the inverse of its error (L1 by default);
2. an **expert** per QF of ``--qualities``, each fine-tuned from the blind model on JPEGs of that quality alone (or
   taken from an earlier routed model, ``--experts-from``);
3. the **routed** model (QualityRoutedCARN): each image to the expert of the quality read from it (within 2), every
   other image to the blind model (unknown ones: ``--unknown``).
Each training is BasicSR's (``carn_da/train.py``) under ``--root``/experiments/zoo_*; a killed run resumes from its
last saved state when the script is run again, and finished trainings are reused. ``--blind-minutes`` and
``--expert-minutes`` size the iterations to a time budget from the step time measured on this machine (once: the
sizes are recorded beside the trainings' options, so a rerun resumes the same plan): the measured step leaves out
data loading and each training's start, so leave a margin. ``--jobs`` experts train at once, each in its own process
(for a machine the one training leaves idle: on an H200, nine medium RDNs at batch 64 of 64x64 were no faster
together than one after another, docs/RESULTS.md). The blind and routed models are then scored on BSD68 at QF 10,
20, ..., 90 and shipped (``carn_da.utils.zoo.ship``: weights, options, a model card with data, iterations, command,
date, machine and scores, and a SHA-256 each) as ``--name``-blind and ``--name`` (the default model).
"""
import carn_da.compat  # noqa: F401

import argparse
import copy
import hashlib
import json
import os
import platform
import shlex
import sys
import torch
from basicsr.archs import build_network
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from os import path as osp

from carn_da import recipes
from carn_da.data.image_pairs import images_by_stem
from carn_da.runs import latest_generator, step_seconds, train_unless_done
from carn_da.utils.checkpoint import expert_state, load_state_dict, network_options, routed_state
from carn_da.utils.device import choose_device
from carn_da.utils.errors import UserError
from carn_da.utils.evaluation import EvalSet, evaluate
from carn_da.utils.files import load_options, read_json, write_atomic
from carn_da.utils.scores import mean_scores
from carn_da.utils.zoo import PACKAGE_FOLDER, sha256_of, ship

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
        'training: for the qualities where the measurement asks for more. A QF given twice gets a second round '
        '(a warm restart from the first), and so on.')
    parser.add_argument('--longer-iters', type=int, default=1200)
    parser.add_argument('--resave-prob', type=float, default=recipes.REAL_WORLD['resave_prob'])
    parser.add_argument('--resize-prob', type=float, default=recipes.REAL_WORLD['resize_prob'])
    parser.add_argument('--clean-prob', type=float, default=recipes.REAL_WORLD['clean_prob'])
    parser.add_argument(
        '--blind-loss',
        choices=sorted(recipes.PIXEL_LOSSES),
        default='l1',
        help='Pixel loss of the blind model: l1, mse, or psnr (each crop weighted by the inverse of its error, so '
        'that nearly clean crops count as much as blocky ones: PSNRLoss). Default: l1.')
    parser.add_argument(
        '--resize-qualities',
        type=int,
        nargs=2,
        metavar=('MIN', 'MAX'),
        help='JPEG qualities of the crops resized after compression (JPEGPairedDataset resize_jpeg_range). '
        'Default: those of --blind-range.')
    parser.add_argument(
        '--unknown',
        choices=['unchanged', 'fallback'],
        default='unchanged',
        help='Where the routed model sends an image whose pixels show no JPEG grid, not even a resized one '
        '(QualityRoutedCARN). Default: unchanged (the shipped medium blind model restores resized JPEGs of high '
        'quality up to 4 dB below the JPEG, docs/RESULTS.md).')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--patch', type=int, default=48)
    parser.add_argument('--workers', type=int, default=0, help='Data loading processes of each training.')
    parser.add_argument('--jobs', type=int, default=1, help='Experts trained at once, each in its own process.')
    parser.add_argument(
        '--blind-minutes',
        type=float,
        help='Size --blind-iters to this many minutes of the step time measured on this machine.')
    parser.add_argument(
        '--expert-minutes',
        type=float,
        help='Size --expert-iters so that all the experts together take this many minutes of the measured step '
        'time (as if they trained one after another: a speed-up from --jobs only ends them sooner).')
    parser.add_argument(
        '--half',
        action='store_true',
        help='Ship the weights in float16 (half the size; the networks still run in float32 when loaded).')
    parser.add_argument('--train-only', action='store_true', help='Train (or resume) the models, score and ship none.')
    add_starting_points(parser)
    parser.add_argument('--score-images', type=int, default=68, help='BSD68 images scored for the model cards.')
    args = parser.parse_args(argv)
    args.command = shlex.join(['python', 'scripts/train_zoo.py', *(sys.argv[1:] if argv is None else argv)])
    check_args(parser, args)
    return args


def add_starting_points(parser):
    """The options that start the models from earlier work instead of from scratch."""
    parser.add_argument(
        '--blind',
        metavar='EXPERIMENT',
        help='Start the experts from the blind model of this finished training (experiments/NAME, e.g. trained on a '
        'GPU with --train-only) instead of training one; its card describes it from its recorded options.')
    parser.add_argument(
        '--blind-start',
        metavar='CHECKPOINT',
        help='Fine-tune the blind model from these weights (e.g. the shipped carn-da-gray-blind.pth) instead of '
        'training it from scratch.')
    parser.add_argument(
        '--blind-note',
        default='',
        help='Where and how the --blind model (or --blind-start) was trained, for its card.')
    parser.add_argument(
        '--experts-from',
        nargs=2,
        metavar=('CHECKPOINT', 'OPTIONS'),
        help='Take the experts of --qualities from this routed model (e.g. the shipped carn-da-gray, read before '
        'anything is shipped) instead of training them: a new blind model beside the experts made before.')
    parser.add_argument('--experts-note', default='', help='How the --experts-from experts were trained, for the card.')


def check_args(parser, args):
    """parser.error for options that do not fit together or are out of range."""
    if error := recipes.unknown_size(args.backbone, args.size):
        parser.error(error)
    if args.blind and args.blind_start:
        parser.error('--blind (an earlier training) and --blind-start (weights to fine-tune) exclude each other')
    if args.blind_start:  # the trainings run in --root: a path relative to here must still find the file
        try:
            load_state_dict(args.blind_start)
        except UserError as error:
            parser.error(f'--blind-start: {error}')
        args.blind_start = osp.abspath(args.blind_start)
    if args.experts_from and args.longer:
        parser.error('--longer trains experts further: not with --experts-from')
    if extra := sorted(set(args.longer) - set(args.qualities)):
        parser.error(f'--longer {" ".join(map(str, extra))}: not among the experts of --qualities')
    for key in ('workers', 'jobs', 'blind_minutes', 'expert_minutes'):
        value = getattr(args, key)
        if value is not None and (value < 0 or value == 0 and key != 'workers'):
            parser.error(f'--{key.replace("_", "-")} {value}: expected a positive number')


def model_options(args, name, qualities, iters, lr, pretrain=None, degradations=None):
    """BasicSR options of one model trained on Train400 JPEGs of ``qualities`` (min, max)."""
    pairs = recipes.jpeg_pairs(
        'Train400',
        osp.join(args.data, 'Train400'),
        None,
        args.patch,
        args.batch,
        workers=args.workers,
        enlarge=1 if args.workers == 0 else 100)
    if args.workers:  # started anew at each epoch, they cost about 15 s each time on a GPU machine (docs/RESULTS.md)
        pairs['persistent_workers'] = True
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
    return opt


def options_dir(args):
    """Where the trainings' option files (and the sized plan) are written."""
    folder = osp.join(args.root, 'experiments', f'{args.prefix}_options')
    os.makedirs(folder, exist_ok=True)
    return folder


def train_options(args, opt):
    """Train (or reuse, or resume) the model of the options ``opt``; its latest checkpoint."""
    train_unless_done(opt, options_dir(args), args.root, resume=True)
    return latest_generator(opt['name'], args.root)


def train_model(args, *options):
    """:func:`train_options` of :func:`model_options` ``(args, *options)``."""
    return train_options(args, model_options(args, *options))


def size_to_minutes(args):
    """Set ``--blind-iters`` / ``--expert-iters`` from ``--blind-minutes`` / ``--expert-minutes`` and the step time
    of this machine, measured once and recorded (plan.json beside the option files) so that a rerun resumes the same
    trainings."""
    plan_path = osp.join(options_dir(args), 'plan.json')
    plan, budget = read_json(plan_path), {'blind_minutes': args.blind_minutes, 'expert_minutes': args.expert_minutes}
    if plan and any(plan.get(key) != value for key, value in budget.items()):
        raise SystemExit(f'{plan_path} was sized for other minutes ({plan}): delete it (and the trainings) or change '
                         '--prefix.')
    if not plan:
        opt = model_options(args, f'{args.prefix}_step', tuple(args.blind_range), 1, args.blind_lr)
        seconds = step_seconds(opt, device=choose_device('auto'))
        plan = dict(budget, step_seconds=seconds, blind_iters=args.blind_iters, expert_iters=args.expert_iters)
        if args.blind_minutes:
            plan['blind_iters'] = max(1, int(args.blind_minutes * 60 / seconds))
        if args.expert_minutes:
            plan['expert_iters'] = max(1, int(args.expert_minutes * 60 / (seconds * len(args.qualities))))
        write_atomic(plan_path, json.dumps(plan, indent=1).encode('utf-8'))
    print(f'plan: a step takes {plan["step_seconds"]:.4f} s here; blind {plan["blind_iters"]} iterations, each expert '
          f'{plan["expert_iters"]} ({plan_path})')
    args.blind_iters, args.expert_iters, args.step_seconds = plan['blind_iters'], plan['expert_iters'], plan[
        'step_seconds']


def score_set(args):
    """The EvalSet of the first ``--score-images`` BSD68 images."""
    test_set = EvalSet('BSD68', osp.join(args.data, 'BSD68'))
    test_set.gts, test_set.stems = test_set.gts[:args.score_images], test_set.stems[:args.score_images]
    return test_set


def score_set_name(args):
    """The name the cards and ``carn-da models`` give :func:`score_set` (its files counted, not read)."""
    total = len(images_by_stem(osp.join(args.data, 'BSD68')))
    scored = min(args.score_images, total)
    return 'BSD68' if scored == total else f'BSD68 (first {scored} of {total} images)'


def bsd68_psnr(args, net):
    """{QF: mean PSNR} of a network (None: the JPEGs) on :func:`score_set`."""
    nets = [] if net is None else [('model', net.to(choose_device('auto')))]
    results, _ = evaluate(nets, {'BSD68': score_set(args)}, SCORE_QUALITIES)
    label = 'JPEG' if net is None else 'model'
    return {str(qf): round(mean_scores(rows)['psnr'], 2) for qf, rows in results[label]['BSD68'].items()}


def cached_psnr(args, network_g, state_dict):
    """(:func:`bsd68_psnr` of the network ``network_g`` holding ``state_dict``, whether it was cached): scores are kept
    in scores.json beside the option files, keyed by a hash of the weights, the network and the images scored, so
    that shipping an unchanged model again (the blind one, when only experts changed) does not score it again."""
    scored = [network_g, osp.abspath(args.data), args.score_images]
    digest = hashlib.sha256(json.dumps(scored, sort_keys=True).encode('utf-8'))
    for key, value in sorted(state_dict.items()):
        digest.update(key.encode('utf-8') + value.detach().cpu().numpy().tobytes())
    path, key = osp.join(options_dir(args), 'scores.json'), digest.hexdigest()
    cache = read_json(path)
    if key in cache:
        return cache[key], True
    cache[key] = bsd68_psnr(args, network_with(network_g, state_dict))
    write_atomic(path, json.dumps(cache, indent=1).encode('utf-8'))
    return cache[key], False


def network_with(network_g, state_dict):
    """The network of the ``network_g`` options holding ``state_dict``, in eval mode."""
    net = build_network(copy.deepcopy(network_g))
    net.load_state_dict(state_dict)
    return net.eval()


def card(args, title, what, trained, scores, jpeg, test_name):
    """The Markdown model card of a shipped model."""
    machine = torch.cuda.get_device_name() if torch.cuda.is_available() else f'{os.cpu_count()} CPU cores'
    rows = '\n'.join(f'| {qf} | {jpeg[qf]:.2f} | {scores[qf]:.2f} |' for qf in scores)
    return (f'# {title}\n\n{what}\n\n'
            f'- Backbone: {args.backbone} ({args.size}), grayscale (a colour image is restored on its luma).\n'
            '- Data: Train400 (../shared/datasets), random crops, flips and rotations, '
            f'JPEGs made on the fly with OpenCV.\n- Trained: {trained}\n'
            f'- Command: `{args.command}`\n'
            f'- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}, {machine}, '
            f'torch {torch.__version__}\n- Use: weights only; licence of this project (Apache-2.0).\n\n'
            f'PSNR (dB) on {test_name}, JPEGs made with OpenCV:\n\n'
            f'| QF | JPEG | this model |\n|---:|---:|---:|\n{rows}\n')


def ship_scored(args, name, network_g, state_dict, what, trained, jpeg, roles):
    """Score a model on BSD68 and ship it with its card into ``--ship`` (its weights in float16 with ``--half``:
    the scores are those of the weights shipped)."""
    if args.half:
        state_dict = {key: value.half() if value.is_floating_point() else value for key, value in state_dict.items()}
    scores, cached = cached_psnr(args, network_g, state_dict)
    test_name = score_set_name(args)
    text = card(args, name, what, trained, scores, jpeg, test_name)
    ship(args.ship, name, state_dict, network_g, text, what, {test_name: scores}, roles)
    print(f'shipped {name}: {test_name} PSNR{" (cached)" if cached else ""} ' +
          ', '.join(f'QF {qf} {jpeg[qf]:.2f} -> {scores[qf]:.2f}' for qf in scores))


def blind_text(opt, note=''):
    """(what, trained) of the blind model's card, from the options ``opt`` of its training."""
    data, train = opt['datasets']['train'], opt['train']
    low, high = data['jpeg_range']
    resized = f'{data.get("resize_prob", 0):.0%}'
    if data.get('resize_jpeg_range'):
        resized += ', JPEGs of QF {}-{}'.format(*data['resize_jpeg_range'])
    what = (f'Blind: one model for JPEG quality {low}-{high}, also trained on JPEGs saved twice '
            f'({data.get("resave_prob", 0):.0%}), resized after compression ({resized}) and '
            f'clean images ({data.get("clean_prob", 0):.0%}); the source model of carn-da adapt.')
    trained = (f'{train["total_iter"]} iterations of batch {data["batch_size_per_gpu"]} of {data["gt_size"]}x'
               f'{data["gt_size"]} crops, cosine learning rate from {train["optim_g"]["lr"]:g}, '
               f'{train["pixel_opt"]["type"]}{note}')
    return what, trained


def train_blind(args):
    """(checkpoint, options) of the blind model trained (or reused, or resumed) here."""
    degradations = dict(resave_prob=args.resave_prob, resize_prob=args.resize_prob, clean_prob=args.clean_prob)
    if args.resize_qualities:
        degradations['resize_jpeg_range'] = list(args.resize_qualities)
    opt = model_options(args, f'{args.prefix}_blind', tuple(args.blind_range), args.blind_iters, args.blind_lr,
                        args.blind_start, degradations)
    opt['train']['pixel_opt'] = dict(recipes.PIXEL_LOSSES[args.blind_loss])
    return train_options(args, opt), opt


def earlier_blind(args):
    """(checkpoint, options) of the blind model of ``--blind``, the folder of a finished training."""
    name = osp.basename(osp.normpath(args.blind))
    checkpoint, recorded = osp.join(args.blind, 'models', 'net_g_latest.pth'), osp.join(args.blind, f'{name}.yml')
    for path in (checkpoint, recorded):
        if not osp.isfile(path):
            raise SystemExit(f'--blind {args.blind}: {path} is missing; expected the folder of a finished training '
                             '(experiments/NAME with NAME.yml and models/net_g_latest.pth).')
    opt = load_options(recorded)
    if opt['network_g'] != recipes.network(args.backbone, args.size):
        raise SystemExit(f'--blind {args.blind}: its network_g {opt["network_g"]} is not that of --backbone '
                         f'{args.backbone} --size {args.size}.')
    return checkpoint, opt


def train_experts(args, blind):
    """{QF: checkpoint} of the experts, each fine-tuned from the ``blind`` checkpoint, ``--jobs`` at a time."""
    with ThreadPoolExecutor(args.jobs) as pool:  # each training is its own process
        experts = {
            q: pool.submit(train_model, args, f'{args.prefix}_qf{q}', (q, q), args.expert_iters, args.expert_lr, blind)
            for q in args.qualities
        }
        experts = {q: job.result() for q, job in experts.items()}
        longer = {q: pool.submit(train_longer, args, q, experts[q]) for q in sorted(set(args.longer))}
        return {**experts, **{q: job.result() for q, job in longer.items()}}


def earlier_experts(args):
    """{QF: state dict} of the experts for ``--qualities`` in the routed model of ``--experts-from`` (its SHA-256
    kept for the card, as the file may be shipped over)."""
    checkpoint, options = args.experts_from
    try:
        state, network_g = load_state_dict(checkpoint)[1], network_options(options)
    except UserError as error:
        raise SystemExit(f'--experts-from: {error}') from error
    args.experts_sha256, experts = sha256_of(checkpoint), {}
    for k, expert in enumerate(network_g.get('experts', [])):
        if len(expert.get('qualities', [])) == 1 and expert['qualities'][0] in args.qualities:
            if expert['network'] != recipes.network(args.backbone, args.size):
                raise SystemExit(f'--experts-from {options}: the expert for QF {expert["qualities"][0]} is not an '
                                 f'{args.backbone} of --size {args.size}.')
            experts[expert['qualities'][0]] = expert_state(state, k)
    if missing := sorted(set(args.qualities) - set(experts)):
        raise SystemExit(f'--experts-from {options}: no expert for QF {" ".join(map(str, missing))} alone (expected '
                         'a QualityRoutedCARN with one expert per quality of --qualities).')
    return experts


def train_longer(args, q, checkpoint):
    """The expert for ``q`` after its ``--longer`` rounds, each ``--longer-iters`` more iterations from the last."""
    name = f'{args.prefix}_qf{q}'
    for _ in range(args.longer.count(q)):
        name += f'_plus{args.longer_iters}'
        checkpoint = train_model(args, name, (q, q), args.longer_iters, args.expert_lr, checkpoint)
    return checkpoint


def ship_all(args, blind, blind_opt, experts):
    """Score and ship the blind model and the routed one (the default)."""
    network_g, jpeg = recipes.network(args.backbone, args.size), bsd68_psnr(args, None)
    if args.blind:
        note = f' ({args.blind_note})' if args.blind_note else f' (an earlier training: {args.blind})'
    elif args.blind_start:
        note = f', fine-tuned from {args.blind_start}' + (f' ({args.blind_note})' if args.blind_note else '')
    elif args.blind_minutes or args.expert_minutes:
        note = f' (iterations sized to minutes of a measured step of {args.step_seconds:.4f} s)'
    else:
        note = ''
    what, trained = blind_text(blind_opt, note)
    if args.half:
        trained += '; weights stored in float16'
    ship_scored(args, f'{args.name}-blind', network_g, load_state_dict(blind)[1], what, trained, jpeg, ['adapt_source'])
    routed = recipes.routed_pair([(network_g, None)] + [(network_g, [q]) for q in args.qualities], args.unknown)
    unknown = 'the blind model too' if args.unknown == 'fallback' else 'unchanged'
    start = 'an earlier blind model' if args.experts_from else 'the blind model'
    what = (f'Routed (the default model): an expert per JPEG quality {", ".join(map(str, args.qualities))} (each '
            f'{start} fine-tuned on that quality alone), chosen per image from the quality read from it; '
            f'the blind model {args.name}-blind for any other quality and for resized JPEGs whose blocking shows; an '
            f'image whose pixels show no JPEG grid at all (never compressed, resized from a high quality): {unknown}.')
    if args.experts_from:
        trained += (f'; the experts those of {args.experts_from[0]} (SHA-256 {args.experts_sha256[:16]}...)' +
                    (f': {args.experts_note}' if args.experts_note else ''))
    else:
        trained += (f'; each expert {args.expert_iters} more iterations of batch {args.batch} of '
                    f'{args.patch}x{args.patch} crops from {args.expert_lr:g}')
    if args.longer:
        rounds = ', '.join(f'QF {q}' + (f' ({args.longer.count(q)} rounds)' if args.longer.count(q) > 1 else '')
                           for q in sorted(set(args.longer)))
        trained += (f'; the experts for {rounds} {args.longer_iters} more again per round (a warm restart of the '
                    'same schedule)')
    state = routed_state([blind, *(experts[q] for q in args.qualities)])  # in the order of the routed experts
    ship_scored(args, args.name, routed, state, what, trained, jpeg, ['default'])


def main(argv=None):
    args = parse_args(argv)
    if args.blind_minutes or args.expert_minutes:
        size_to_minutes(args)
    blind, blind_opt = earlier_blind(args) if args.blind else train_blind(args)
    experts = earlier_experts(args) if args.experts_from else train_experts(args, blind)
    if not args.train_only:
        ship_all(args, blind, blind_opt, experts)


if __name__ == '__main__':
    main()
