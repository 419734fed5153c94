"""Adapt a trained CARN to your own JPEGs, of any and mixed quality, without their ground truth.

    carn-da adapt --model experiments/RDN_SQ_QF10/models/net_g_latest.pth --opt options/train_rdn_sq_qf10.yml \\
        --source-gt datasets/Train400/gt --source-lq datasets/Train400/qf10 --target my_jpegs/ --name my_jpegs
    carn-da adapt --model models/DnCNN3.pth --opt models/DnCNN3.yml --source-gt datasets/Train400/gt \\
        --target my_jpegs/        # a blind source model (carn-da import), clean images only
    carn-da adapt --target my_jpegs/ --restore restored/   # the shipped models and photos: nothing else to give

Without ``--model``, the source is the shipped blind model (``carn-da models``: its adapt source) and the routed
model written extends the shipped default model (the adapted model for your JPEGs' qualities, the shipped experts
and blind model for every other); without ``--source-gt``, the source images are 12 photos of scikit-image, written
as gray PNGs under ``--out``/source_photos. ``--restore OUTDIR`` then restores your JPEGs with the routed model, as
``carn-da restore`` does.

(also ``python -m carn_da.adapt``). The source model keeps training on its labelled data (``--source-gt``,
``--source-lq``: ground truths and JPEGs of the quality it was trained on, folders or BasicSR LMDBs) while it learns
your JPEGs (``--target``, a folder searched recursively, no ground truth), by one of three recipes (``--recipe``;
run by BasicSR's training pipeline in a subprocess). The recommended and expert recipes compress the ground truths
themselves and need no ``--source-lq``: leave it out for a blind source model (one model for every quality, such as
DnCNN-3).

- ``recommended`` (the default; the winner of benchmarks/da_study.py, see docs/RESULTS.md): each target's JPEG
  quality is read from its quantisation table (``--target-quality file``) or estimated from its pixels
  (``pixels``); every source ground truth is compressed at the quality of a random target image, and every target
  crop, recompressed at its own quality on a shifted 8x8 grid, is restored back to itself (self-supervision). The
  result is a model for your JPEGs' qualities;
- ``expert``: the same without self-supervision (CARNModel), at a small learning rate: for a strong source model
  such as DnCNN-3, which self-supervision pulls towards its JPEG inputs (docs/RESULTS.md);
- ``paper`` (Ham, Yoo, Kang, SPIE 11842, 2021): a quality discriminator learns to tell the model's features of the
  source JPEGs from its features of yours, and the feature extractor learns, through gradient reversal, to make
  them alike (``--lambda``).

Outputs: with ``--out DIR``, everything goes under DIR: ``<name>.yml``, the options of the run, ``report.md`` (also
printed), ``report.json``, and the training itself (``DIR/experiments/<name>``, ``DIR/tb_logger/<name>``). Without
it, the training runs in the current folder (``./experiments/<name>``, ``./tb_logger/<name>``) and the options and
report go to ``./results/<name>``. Resume or extend a run with ``carn-da adapt ... --resume`` or as the report says.
The adapted model is ``experiments/<name>/models/net_g_latest.pth``; restore with it by ``carn-da restore --model
<it> --opt <name>.yml`` (or the source model's option file). ``routed.yml`` and ``net_g_routed.pth`` join it with the
source model (``QualityRoutedCARN``, as ``carn-da route`` does): each image goes to the source model if its quality
(read from the file as ``carn-da restore`` reads it) is within 2 of the source JPEGs' (read from ``--source-lq``'s
files), to the adapted one if within 2 of your JPEGs', and passes unchanged otherwise (an unknown quality, or one
neither model is made for: the report names the qualities each serves), so that nothing is lost at the source
quality. Without ``--source-lq`` (or when its quality is unknown: an LMDB, PNGs of never-compressed images) the
source model is the routed model's fallback: images at your JPEGs' qualities go to the adapted model, every other
known quality, and an image of unknown quality that is or may still be a JPEG (the blocking of a resized JPEG, too
few textured blocks to tell), to the source model, which keeps a blind source's range; an image whose pixels show no
JPEG grid at all (never compressed, or resized from a high quality) passes unchanged, as ``carn-da route`` makes it
(blind models restore resized JPEGs of high quality below the JPEG itself: docs/RESULTS.md).

Before anything is built, the source JPEGs (when given) must pair with the ground truths by relative path without
extension (LMDBs: by their ``meta_info.txt`` keys), whatever the recipe. The report gives the JPEG quality histograms
of both image sets (each file's quantisation table checked against its pixels, or the pixels of other images:
``carn_da.utils.jpeg.read_jpeg_quality``; a target that does not decode, e.g. a truncated file, is
named and left out of the counts, the measurements and the training) and, on the target images, indicators that need
no ground truth: the mean blocking-effect factor (BEF, Yim & Bovik 2011; of the luma, in 8-bit squared units; lower
is less blocky, but blurring lowers it too) of the JPEGs and of the outputs of the source and adapted models, and the
discriminator's accuracy over training (near 0.5 once it cannot tell the domains apart). With ``--target-gt``
(ground truths of some target images, paired by relative path without extension, never given to the training):
PSNR, PSNR-B and SSIM before and after, on luma for a 1-channel model.
"""
import carn_da.compat  # noqa: F401

import cv2
import json
import math
import numpy as np
import os
import re
import shlex
import sys
import torch
from os import path as osp
from tqdm import tqdm

from carn_da import recipes
from carn_da.archs.splittable import require_splittable
from carn_da.data.image_pairs import header_size, image_paths, images_by_stem, paired_paths
from carn_da.data.two_domain_dataset import TwoDomainDataset
from carn_da.metrics.psnrb_metric import blocking_effect_factor
from carn_da.runs import experiment_dir, latest_generator, train
from carn_da.utils.checkpoint import load_model, load_state_dict, network_options, routed_state, shifted_experts
from carn_da.utils.cli import (add_inference_arguments, check_inference_arguments, command_parser, inference_options,
                               run_command)
from carn_da.utils.device import choose_device
from carn_da.utils.errors import BadInput, UserError
from carn_da.utils.files import check_output_folder, load_options, save_torch_atomic, write_atomic, write_options
from carn_da.utils.images import decode, read_input, write_sample_photos
from carn_da.utils.inference import Restorer
from carn_da.utils.jpeg import quality_histogram, to_gray
from carn_da.utils.logs import logged_values
from carn_da.utils.restoring import list_inputs, restore_files
from carn_da.utils.restoring import write_report as write_restore_report
from carn_da.utils.scores import METRIC_NAMES, METRICS, image_scores, markdown_table, mean_scores
from carn_da.utils.zoo import resolve_model

# 1000 steps of batch 8 and patch 48: minutes on a GPU; on 2 idle CPU cores 5-7 min for the CPU-sized RDNs of
# options/demo and benchmarks/da_study.py (0.3-0.4 s per step in their logs; twice that beside other jobs).
DEFAULT_ITERS = 1000
JPEG, BEFORE, AFTER = 'JPEG input', 'source model (before)', 'adapted model (after)'
RECIPE_DEFAULTS = {'recommended': (1e-3, 4), 'expert': (2e-5, 8), 'paper': (1e-4, 8)}  # --recipe: (--lr, --batch)
MAX_SEED = 2**32 - 1  # BasicSR seeds numpy with manual_seed
SHOWN_SKIPPED = 5  # skipped targets named in report.md (report.json names all)


def io_backend(root):
    """BasicSR io_backend of a data root: an LMDB (``*.lmdb``) or a folder."""
    return {'type': 'lmdb' if osp.normpath(root).endswith('.lmdb') else 'disk'}


def check_source_pairs(args):
    """Every source JPEG pairs with a ground truth by relative path without extension (LMDBs: by the keys of their
    ``meta_info.txt``), and every ground truth with a JPEG, as JPEGPairedDataset pairs them; UserError naming the
    unpaired files. Every recipe checks: the recommended and expert ones train on the ground truths alone (compressed
    at the targets' qualities) but take the source quality of the routed model from the JPEGs."""
    backends = {option: io_backend(getattr(args, option))['type'] for option in ('source_gt', 'source_lq')}
    if len(set(backends.values())) > 1:
        raise UserError(f'--source-gt ({backends["source_gt"]}) and --source-lq ({backends["source_lq"]}) must be '
                        'both LMDBs (*.lmdb) or both folders.')
    try:
        pairs = paired_paths(args.source_lq, args.source_gt, backends['source_gt'])
    except (ValueError, FileNotFoundError) as error:
        raise UserError(f'--source-lq: {error}') from error
    if not pairs:
        raise UserError(f'--source-lq: no images in {args.source_lq} and {args.source_gt}.')


def check_source_images(args):
    """With ``--source-lq``, :func:`check_source_pairs`; without, at least one image in ``--source-gt``."""
    if args.source_lq is not None:
        return check_source_pairs(args)
    if not image_paths(args.source_gt, io_backend(args.source_gt)['type']):
        raise UserError(f'--source-gt: no images in {args.source_gt}.')


def check_out(out):
    """UserError unless the folder ``out`` (``--out``) is or can be made a folder, writable."""
    existing = osp.abspath(out)
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        raise UserError(f'--out: {existing} is a file, not a folder.')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f'--out: cannot write in {existing}.')


def decodable_targets(targets, root):
    """The targets ({stem: path}) that decode as :func:`measure` decodes them, and the paths (relative to ``root``)
    of those that do not. Every target is decoded once (a truncated JPEG's header still gives its size and quality).
    The training skips those too (``skip_bad_images``)."""
    good, skipped = {}, []
    for stem, path in tqdm(sorted(targets.items()), desc='decoding targets', unit='img', file=sys.stderr):
        try:
            decode(read_input(path))
        except BadInput as error:
            tqdm.write(f'skipping target {path}: {error}', file=sys.stderr)
            skipped.append(osp.relpath(path, root))
            continue
        good[stem] = path
    return good, skipped


def source_losses(options):
    """The supervised losses of the source model's option file (``pixel_opt``, MemNet's ``intermediate_opt``)."""
    train_opt = load_options(options).get('train') or {}
    return {key: train_opt[key] for key in ('pixel_opt', 'intermediate_opt') if isinstance(train_opt.get(key), dict)}


def quality_feature_channels(net, channels, patch, device):
    """Channels of the feature map the quality discriminator reads: ``quality_feature(extract(x))`` of a dummy x."""
    try:
        require_splittable(net)
    except TypeError as error:
        raise UserError(str(error)) from error
    with torch.no_grad():
        return net.quality_feature(net.extract(torch.zeros(1, channels, patch, patch, device=device))).shape[1]


def adapt_options(args, channels, q_feat, device):
    """The recipe's options (``recipes.recommended_da``, ``recipes.quality_expert`` or ``recipes.paper_da``, the last
    with a QualityDiscriminator on the ``q_feat`` channels of F's features): the source model as ``pretrain_network_g``,
    the source pairs and the target images in a TwoDomainDataset, the source model's own losses."""
    pairs = recipes.jpeg_pairs(
        f'{args.name}_source_and_target',
        osp.abspath(args.source_gt),
        args.source_lq and osp.abspath(args.source_lq),
        args.patch,
        args.batch,
        io_backend(args.source_gt)['type'],
        workers=4 if device.type == 'cuda' else 0,
        enlarge=1)
    train_set = recipes.two_domains(
        pairs,
        osp.abspath(args.target),
        io_backend_target={'type': 'disk'},
        color='gray' if channels == 1 else 'rgb',
        skip_bad_images=True)
    schedule = dict(recipes.schedule(args.iters, args.lr, ema=args.ema), **source_losses(args.opt))
    log = recipes.logger(max(1, args.iters // 50), max(1, args.iters // 4), progress_bar=True)
    common = dict(seed=args.seed, num_gpu=1 if device.type == 'cuda' else 0)
    recipe = (args.name, network_options(args.opt), train_set, schedule, log, osp.abspath(args.model))
    if args.recipe == 'recommended':
        opt = recipes.recommended_da(*recipe, target_quality=args.target_quality, **common)
    elif args.recipe == 'expert':
        opt = recipes.quality_expert(*recipe, target_quality=args.target_quality, **common)
    else:
        q = recipes.discriminator(q_feat, 128, 'avgstd')
        opt = recipes.paper_da(*recipe, q, args.lambda_, **common)
    opt['path']['param_key_g'] = load_state_dict(args.model)[0]
    return opt


def check_dataset(train_opt, iters):
    """Build the training set as the run will (every pair and target header is checked); UserError naming what is
    wrong. Sets ``dataset_enlarge_ratio`` so that one epoch covers the run."""
    try:
        dataset = TwoDomainDataset(dict(train_opt, phase='train'))
    except (ValueError, FileNotFoundError) as error:
        raise UserError(f'Training data: {error}') from error
    train_opt['dataset_enlarge_ratio'] = max(1, math.ceil(iters * train_opt['batch_size_per_gpu'] / len(dataset)))
    return dataset


def histogram_text(histogram):
    return ', '.join(f'QF {q}: {n}' if q is not None else f'unknown: {n}' for q, n in histogram.items())


def load_ground_truths(gt_dir, targets):
    """{stem: uint8 ground truth} of the targets ({stem: path}) with one in ``gt_dir``; UserError if none pairs or a
    pair's sizes differ."""
    try:
        gt_paths = images_by_stem(gt_dir)
    except ValueError as error:
        raise UserError(f'--target-gt: {error}') from error
    stems = sorted(gt_paths.keys() & targets.keys())
    if not stems:
        raise UserError(f'--target-gt: no image of {gt_dir} has the relative path (without extension) of a target.')
    gts = {}
    for stem in stems:
        gt = cv2.imread(gt_paths[stem], cv2.IMREAD_UNCHANGED)
        if gt is None or gt.dtype != np.uint8:
            raise UserError(f'--target-gt: cannot read {gt_paths[stem]} as an 8-bit image.')
        if gt.shape[:2] != header_size(targets[stem]):
            raise UserError(f'--target-gt: {gt_paths[stem]} is {gt.shape[0]}x{gt.shape[1]} but target '
                            f'{targets[stem]} is {"x".join(map(str, header_size(targets[stem])))}.')
        gts[stem] = gt
    return gts


def evaluation_stems(targets, gts, limit):
    """The targets to measure: ``limit`` of them spread evenly over the sorted stems, and every one with a GT."""
    stems = sorted(targets)
    if len(stems) > limit:
        stems = [stems[i] for i in np.linspace(0, len(stems) - 1, limit).round().astype(int)]
    return sorted(set(stems) | gts.keys())


def comparable(out, gt, channels):
    """``out`` and ``gt`` as luma (1-channel model or a gray image) or BGR, for scoring."""
    if channels == 1 or out.ndim == 2 or gt.ndim == 2:
        return to_gray(out), to_gray(gt)
    return out[..., :3], gt[..., :3]


def measure(label, restorer, targets, stems, gts, channels):
    """Mean BEF of the luma of ``restorer``'s outputs (None: the JPEGs) over ``stems``, and per-image scores of the
    ones with a GT. Unreadable targets are reported and left out of ``stems`` (in place)."""
    befs, rows = [], []
    for stem in tqdm(list(stems), desc=label, unit='img', file=sys.stderr):
        try:
            data = read_input(targets[stem])
            img, _ = decode(data)
        except BadInput as error:
            tqdm.write(f'skipping target {targets[stem]}: {error}', file=sys.stderr)
            stems.remove(stem)
            continue
        out = img if restorer is None else restorer(img, data)
        luma = to_gray(out)
        if min(luma.shape) >= 8 and max(luma.shape) >= 16:
            befs.append(blocking_effect_factor(luma))
        if stem in gts:
            rows.append({'name': stem, **image_scores(*comparable(out, gts[stem], channels))})
    return {'bef': float(np.mean(befs)) if befs else float('nan'), **(mean_scores(rows) if rows else {})}


def accuracy_summary(accuracy):
    """Mean logged discriminator accuracy over the first and the last quarter of the logged iterations."""
    values = list(accuracy.values())
    if not values:
        return {}
    quarter = max(1, len(values) // 4)
    return {
        'first_quarter': float(np.mean(values[:quarter])),
        'last_quarter': float(np.mean(values[-quarter:])),
        'logged': len(values)
    }


def shown(path, start=os.curdir):
    """``path`` relative to ``start`` (default: the working directory) if it lies below it, else absolute."""
    rel = osp.relpath(path, start)
    return osp.abspath(path) if rel.startswith(os.pardir) else rel


def report(args, command, opt_path, histograms, results, accuracy, num_measured, num_gt, routed, skipped=()):
    """The Markdown report of an adaptation; ``skipped``: the targets that do not decode."""
    checkpoint, resume = shown(latest_generator(args.name, args.root)), shown(opt_path, args.root)
    opt_path = shown(opt_path)
    source_qfs, target_qfs = (qfs and ', '.join(map(str, qfs)) for qfs in routed['experts'])
    experts = (f'the source model for QF {source_qfs} and the adapted one for QF {target_qfs} (each within 2); '
               'images of any other or an unknown quality pass unchanged: no blind model is in the set'
               if source_qfs else f'the adapted model for QF {target_qfs} (within 2), the source model for every other '
               'quality and resized JPEGs whose blocking shows; images whose pixels show no JPEG grid pass unchanged')
    if routed.get('base'):
        experts = (f'the adapted model for QF {target_qfs} (within 2), the shipped model {routed["base"]} (its experts '
                   'and blind fallback) for every other quality and as it routes images of unknown quality')
    routing = (f'Routed model ({experts}; quality read per image from the file; it forgets nothing at the source '
               f'quality): `carn-da restore INPUT -o OUTDIR --model {shown(routed["checkpoint"])} --opt '
               f'{shown(routed["options"])}`  ')
    lines = [
        f'## carn-da adapt: {args.name}\n', f'Command: `{command}`  ',
        f'Adapted model: `{checkpoint}`, options of the run: `{opt_path}`  ',
        f'Restore: `carn-da restore INPUT -o OUTDIR --model {checkpoint} --opt {opt_path}`  ', routing,
        f'Resume or extend: `cd {shlex.quote(shown(args.root))} && python -m carn_da.train -opt {shlex.quote(resume)} '
        '--auto_resume --force_yml train:total_iter=N`\n', '| images | folder | count | JPEG quality (QF) |',
        '|---|---|---:|---|'
    ]
    for label, (folder, histogram) in histograms.items():
        lines.append(f'| {label} | `{folder}` | {sum(histogram.values())} | {histogram_text(histogram) or "n/a"} |')
    if skipped:
        more = f' and {len(skipped) - SHOWN_SKIPPED} more' if len(skipped) > SHOWN_SKIPPED else ''
        images = 'image that does' if len(skipped) == 1 else 'images that do'
        lines += [
            '', f'Skipped {len(skipped)} target {images} not decode (not counted, measured or trained on): '
            f'{", ".join(skipped[:SHOWN_SKIPPED])}{more}.'
        ]
    lines += [
        '', f'No-reference indicators on {num_measured} target images (no ground truth used): mean blocking-effect '
        'factor of the luma (BEF; lower is less blocky, but blurring lowers it too).\n',
        markdown_table([('bef', 'mean BEF')], [(label, values) for label, values in results.items()], JPEG)
    ]
    if accuracy:
        lines.append(f'Quality discriminator accuracy during adaptation ({accuracy["logged"]} logged iterations): '
                     f'{accuracy["first_quarter"]:.2f} over the first quarter, {accuracy["last_quarter"]:.2f} over '
                     'the last (0.5: the features of source and target JPEGs are indistinguishable).\n')
    if num_gt:
        columns = [(metric, METRIC_NAMES[metric]) for metric in METRICS]
        lines += [
            f'With ground truth ({num_gt} target images of `{args.target_gt}`, not used in training):\n',
            markdown_table(columns, list(results.items()), JPEG)
        ]
    return '\n'.join(lines)


def add_training_arguments(parser):
    """The options of the training: its length, recipe and hyper-parameters."""
    parser.add_argument(
        '--iters',
        type=int,
        default=DEFAULT_ITERS,
        help=f'Training iterations. Default: {DEFAULT_ITERS} (minutes on a GPU; 5-7 min for the CPU-sized RDNs of '
        'options/demo and benchmarks/da_study.py on 2 idle CPU cores).')
    parser.add_argument(
        '--lambda',
        dest='lambda_',
        metavar='LAMBDA',
        type=float,
        default=0.1,
        help='Weight of the domain loss of --recipe paper. Default: 0.1 (paper).')
    parser.add_argument(
        '--recipe',
        choices=list(RECIPE_DEFAULTS),
        default='recommended',
        help='recommended (the source ground truths compressed at your qualities + target self-supervision), expert '
        '(the same without self-supervision, for strong source models such as DnCNN-3) or paper (adversarial feature '
        'alignment). Default: recommended.')
    parser.add_argument(
        '--target-quality',
        choices=['file', 'pixels'],
        default='file',
        help="Where --recipe recommended or expert learns each target's JPEG quality: its quantisation table (file; "
        'every target must be a JPEG file) or its decoded pixels. Default: file.')
    parser.add_argument(
        '--lr',
        type=float,
        help='Learning rate of F, D (and Q). Default: 1e-3 for --recipe recommended (the best of '
        'benchmarks/da_study.py, twice the learning rate of its source models), 2e-5 for expert (DnCNN-3, '
        'benchmarks/adapt_published.py), 1e-4 for paper (the paper).')
    parser.add_argument(
        '--batch',
        type=int,
        help='Source (and target) patches per step. Default: 4 for --recipe recommended (4 source and 4 target '
        'crops: as many images through the network as a source-only step of 8), 8 for expert and paper.')
    parser.add_argument('--patch', type=int, default=48, help='Side of the training patches. Default: 48.')
    parser.add_argument(
        '--ema',
        type=float,
        default=0,
        metavar='DECAY',
        help="Keep an exponential moving average of the weights (BasicSR's ema_decay, e.g. 0.99) as the adapted "
        'model: it averages out the noise of small batches (DnCNN-3 at QF 35: the best recipe of the study; at QF 90 '
        'and 10 no better than without, docs/RESULTS.md). Default: 0 (none).')
    parser.add_argument('--seed', type=int, default=0)


def parse_args(argv=None):
    parser = command_parser('carn-da adapt', __doc__)
    parser.add_argument(
        '--model',
        metavar='NAME|CHECKPOINT',
        help='The source model: a shipped one by name (carn-da models) or a BasicSR checkpoint with --opt. Default: '
        "the shipped blind model (adapt source); the routed model written then extends the shipped default model.")
    parser.add_argument(
        '--opt', metavar='OPTIONS.yml', help="Option file with the model's network_g (with --model CHECKPOINT).")
    parser.add_argument(
        '--source-gt',
        metavar='DIR',
        help='Ground truths of the source pairs. Default: 12 photos of scikit-image, written as gray PNGs under --out '
        '(source_photos).')
    parser.add_argument(
        '--source-lq',
        metavar='DIR',
        help='Their JPEGs (the source quality), paired with them by relative path without extension. Needed by '
        '--recipe paper; the recommended recipe reads only the source quality from them (for the routed model). '
        'Leave it out for a blind source model.')
    parser.add_argument('--target', required=True, metavar='DIR', help='Your JPEGs (any quality; no ground truth).')
    parser.add_argument(
        '--target-gt', metavar='DIR', help='Ground truths of some target images, only to score before and after.')
    parser.add_argument('--name', help='Experiment name (experiments/NAME). Default: adapt_<target folder name>.')
    parser.add_argument(
        '--out',
        metavar='DIR',
        help='Folder of everything the run writes: options, report, routed model, and the training (DIR/experiments/'
        'NAME, DIR/tb_logger/NAME). Default: the training in the current folder (./experiments/NAME, '
        './tb_logger/NAME), the rest in ./results/NAME.')
    add_training_arguments(parser)
    parser.add_argument('--resume', action='store_true', help='Continue the experiment NAME if it exists.')
    parser.add_argument(
        '--eval-images',
        type=int,
        default=100,
        help='Measure BEF on at most this many target images (spread over them), plus all with a ground truth. '
        'Default: 100.')
    parser.add_argument(
        '--restore',
        metavar='OUTDIR',
        help='Then restore every target with the routed model into OUTDIR (as carn-da restore does; its per-image '
        'report goes to --out as restore_report.csv).')
    add_inference_arguments(parser)
    args = parser.parse_args(argv)
    check_inference_arguments(parser, args)
    if args.source_lq is not None and args.source_gt is None:
        parser.error('--source-lq pairs with ground truths: give them with --source-gt')
    if args.recipe == 'paper' and args.source_lq is None:
        parser.error('--recipe paper trains on source pairs: give their JPEGs with --source-lq')
    lr, batch = RECIPE_DEFAULTS[args.recipe]
    args.lr = lr if args.lr is None else args.lr
    args.batch = batch if args.batch is None else args.batch
    for option in ('iters', 'batch', 'patch', 'eval_images'):
        if getattr(args, option) < 1:
            parser.error(f'--{option.replace("_", "-")} must be at least 1')
    if args.patch < 16:
        parser.error('--patch must be at least 16')
    if not (math.isfinite(args.lr) and args.lr > 0):
        parser.error(f'--lr must be a number > 0, got {args.lr}')
    if not 0 <= args.ema < 1:
        parser.error(f'--ema must be at least 0 and below 1, got {args.ema}')
    if not (math.isfinite(args.lambda_) and args.lambda_ >= 0):
        parser.error(f'--lambda must be a number >= 0, got {args.lambda_}')
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(f'--seed must be between 0 and {MAX_SEED}, got {args.seed}')
    args.name = args.name or f'adapt_{osp.basename(osp.normpath(args.target))}'
    if not re.fullmatch(r'[\w.-]+', args.name):
        parser.error(f'--name may hold letters, digits, _ . and - only, got {args.name!r}')
    args.root = osp.abspath(args.out or os.curdir)  # where the training runs: experiments/ and tb_logger/
    args.out = args.out or osp.join('results', args.name)
    args.base = None  # the shipped routed model the result extends: set by run() when no --model is given
    return parser, args


def quality_histograms(args, targets):
    """{'source': (folder, histogram), 'target': ...} of the JPEG qualities (no source histogram for an LMDB)."""
    histograms = {}
    if args.source_lq is not None and io_backend(args.source_lq)['type'] == 'disk':
        histograms['source'] = (args.source_lq, quality_histogram(image_paths(args.source_lq, 'disk')))
    histograms['target'] = (args.target, quality_histogram(targets.values()))
    return histograms


def write_routed_model(args, histograms):
    """Write ``--out``/``routed.yml`` and ``net_g_routed.pth`` (QualityRoutedCARN, as ``carn-da route`` does;
    qualities as :func:`carn_da.utils.jpeg.file_quality` reads them): the adapted model for the targets' qualities
    and, for the others, the source model (for the source JPEGs' qualities or, when they are unknown, as the
    fallback) or, when adapting the shipped blind model (``args.base``), the experts of the shipped default model.
    Returns {'options', 'checkpoint', 'experts': [source qualities or None, target qualities], 'base'}."""
    source_qfs = sorted(q for q in histograms.get('source', (None, {}))[1] if q is not None) or None
    target_qfs = sorted(q for q in histograms['target'][1] if q is not None)
    adapted = latest_generator(args.name, args.root)
    routed = {'options': osp.join(args.out, 'routed.yml'), 'checkpoint': osp.join(args.out, 'net_g_routed.pth')}
    if args.base is None:
        network = recipes.routed_pair([(network_options(args.opt), source_qfs),
                                       (network_options(args.opt), target_qfs)])
        state = routed_state([args.model, adapted])
    else:  # the adapted model first: it wins the qualities it shares with a shipped expert
        base = network_options(args.base[1])
        network = dict(base, experts=[recipes.routed_expert(network_options(args.opt), target_qfs), *base['experts']])
        state = dict(routed_state([adapted]), **shifted_experts(load_state_dict(args.base[0])[1], 1))
    save_torch_atomic({'params': state}, routed['checkpoint'])
    write_options({'network_g': network}, routed['options'])
    return dict(routed, experts=[source_qfs, target_qfs], base=args.base and osp.basename(args.base[0])[:-len('.pth')])


def restore_targets(args, routed, device):
    """Restore every target with the routed model into ``--restore`` (``restore_report.csv`` under ``--out``);
    exit code 1 if any image failed."""
    net, channels = load_model(routed['checkpoint'], routed['options'], device)
    restorer = Restorer(net, channels, device, **inference_options(args))
    rows = []
    inputs = list_inputs(args.target, None, args.restore, '--restore')
    done = restore_files(restorer, inputs, args.restore, report=rows, option='--restore')
    write_restore_report(rows, osp.join(args.out, 'restore_report.csv'))
    print(f'{len(done["restored"])} restored, {len(done["skipped"])} skipped (outputs exist), {len(done["failed"])} '
          f'failed -> {args.restore}')
    return 1 if done['failed'] else 0


def write_report(args, command, opt_path, histograms, results, num_measured, num_gt, routed, skipped=()):
    """Print the report and write it as ``report.md`` and ``report.json`` under ``--out``."""
    accuracy = accuracy_summary(logged_values(experiment_dir(args.name, args.root), 'acc_q'))
    text = report(args, command, opt_path, histograms, results, accuracy, num_measured, num_gt, routed, skipped)
    print(text)
    write_atomic(osp.join(args.out, 'report.md'), text.encode('utf-8'))
    qf_histograms = {label: {str(q): n for q, n in histogram.items()} for label, (_, histogram) in histograms.items()}
    summary = dict(
        command=command,
        checkpoint=latest_generator(args.name, args.root),
        options=opt_path,
        qf_histograms=qf_histograms,
        results=results,
        discriminator_accuracy=accuracy,
        measured_images=num_measured,
        target_gt_images=num_gt,
        skipped_targets=list(skipped),
        routed=routed)
    write_atomic(osp.join(args.out, 'report.json'), json.dumps(summary, indent=1).encode('utf-8'))


def run(args, command):
    if args.restore:
        check_output_folder(args.restore, '--restore')
    for option in ('source_gt', 'source_lq', 'target', 'target_gt'):
        root = getattr(args, option)
        if root is not None and not osp.isdir(root):
            raise UserError(f'--{option.replace("_", "-")}: folder {root} does not exist.')
    if args.restore:  # a --restore that is the target folder: refused now, not after the training
        list_inputs(args.target, None, args.restore, '--restore')
    args.base = None if args.model else resolve_model(None, None)
    args.model, args.opt = resolve_model(args.model, args.opt, 'adapt_source')
    if network_options(args.opt).get('type') == 'QualityRoutedCARN':
        raise UserError(f'--model {args.model} is a routed model (QualityRoutedCARN), which chooses a network per '
                        'image: adapt one network, e.g. its blind fallback (the shipped adapt source, or --model '
                        'without a name).')
    check_out(args.out)
    args.source_gt = args.source_gt or write_sample_photos(osp.join(args.out, 'source_photos'))
    check_source_images(args)
    if osp.isdir(experiment_dir(args.name, args.root)) and not args.resume:
        raise UserError(f'Experiment {experiment_dir(args.name, args.root)} exists: pass --resume to continue it, '
                        'or choose another --name.')
    device = choose_device(args.device)
    net, channels = load_model(args.model, args.opt, device)
    q_feat = quality_feature_channels(net, channels, args.patch, device) if args.recipe == 'paper' else None
    opt = adapt_options(args, channels, q_feat, device)
    dataset = check_dataset(opt['datasets']['train'], args.iters)
    targets = {osp.splitext(osp.relpath(path, args.target))[0]: path for path in dataset.target_paths}
    targets, skipped = decodable_targets(targets, args.target)
    if not targets:
        raise UserError(f'--target: no image of {args.target} decodes.')
    gts = load_ground_truths(args.target_gt, targets) if args.target_gt else {}
    histograms = quality_histograms(args, targets)
    stems = evaluation_stems(targets, gts, args.eval_images)

    results = {JPEG: measure(JPEG, None, targets, stems, gts, channels)}
    inference = inference_options(args)
    results[BEFORE] = measure(BEFORE, Restorer(net, channels, device, **inference), targets, stems, gts, channels)
    del net
    torch.cuda.empty_cache()  # leave the GPU to the training process
    os.makedirs(args.out, exist_ok=True)
    opt_path = write_options(opt, osp.join(args.out, f'{args.name}.yml'))
    try:
        train(opt_path, *(['--auto_resume'] if args.resume else []), root=args.root)
    except RuntimeError as error:
        print(f'carn-da adapt: {error}; options: {opt_path}', file=sys.stderr)
        return 1
    adapted, _ = load_model(latest_generator(args.name, args.root), args.opt, device)
    results[AFTER] = measure(AFTER, Restorer(adapted, channels, device, **inference), targets, stems, gts, channels)
    routed = write_routed_model(args, histograms)
    write_report(args, command, opt_path, histograms, results, len(stems), len(gts.keys() & set(stems)), routed,
                 skipped)
    return restore_targets(args, routed, device) if args.restore else 0


def main(argv=None):
    parser, args = parse_args(argv)
    return run_command(parser, run, args, f'{parser.prog} {shlex.join(sys.argv[1:] if argv is None else argv)}')


if __name__ == '__main__':
    sys.exit(main())
