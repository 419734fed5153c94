"""Real-world JPEGs: how well the quality reading and the routing of ``carn-da restore`` hold on colour files, crops
off the 8x8 grid, re-saved and resized JPEGs.

Cases, built from BSD68, Set12 and Classic5 (grayscale ground truths) and the scikit-image colour photos (``COLOUR``),
every file made with OpenCV (libjpeg) as a user's software would:

- ``jpeg``: a gray JPEG at QF 10, 20, ..., 90; ``colour``: a colour JPEG (4:2:0) at QF 10, 15, ..., 95 (restored at
  every other one);
- ``crop``: a decoded gray JPEG at QF 10-90 cropped at a grid offset (dy, dx) and saved as PNG (every offset in
  turn, ``--offsets`` per image and QF); ``colour crop``: the same of a colour JPEG, one offset per photo and QF;
- ``resaved``: a gray JPEG at QF a re-saved as a JPEG at QF b (``RESAVES``): the coarser quantisation shaped it;
- ``resized``: a decoded gray JPEG resized by 0.5-0.9 (area, linear or cubic), saved as PNG: no quality to find;
- ``original``: the original itself as PNG, gray or colour: what restoring does to an image not compressed here
  (BSD68's originals and some of the colour photos were JPEGs once, so their readings have no truth to check and
  are left out of the readings' table; the input's PSNR is infinite).

Reading: ``read_jpeg_quality`` of each file's bytes, as ``carn-da restore`` reads it; exact when its quality has the
true one's luminance table (and, where the truth has one, its grid offset is the true one); ``unknown`` counted apart.

Restoration: on every ``--restore-every``-th image of each set (all colour photos), each case is restored as
``carn-da restore`` does (``Restorer``: the stored luma of a colour JPEG, its expert chosen from the reading) by a
``QualityRoutedCARN`` with a fallback (crops: one per image and QF, colour crops every third QF), and by the oracle
told the true quality (the same router's choice for it: an image no expert is made for goes to the fallback, one
with no true quality where the router sends unknown images, unchanged unless ``unknown: fallback``). PSNR on Y
(gray) and, for colour, on RGB against the originals; the JPEG input and the fallback (the blind model) alone beside
them. The routed model is
``--model``/``--opt`` or, by default, RDNs trained here (``EXPERTS`` and a blind one for QF 10-90, ``--iters`` each on
Train400 compressed on the fly), joined as ``carn-da route`` joins them.

Writes ``--out``/real_world.md and .json.

    python benchmarks/real_world.py                                  # about an hour on 2 CPU cores
    python benchmarks/real_world.py --model routed/net_g.pth --opt routed/routed.yml
    python benchmarks/real_world.py --limit 2 --iters 4 --prefix smoke --out results/smoke_real_world   # smoke
"""
import carn_da.compat  # noqa: F401

import argparse
import cv2
import glob
import json
import numpy as np
import os
import platform
import shlex
import sys
import torch
from basicsr.metrics import calculate_psnr
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from os import path as osp
from skimage import data as skimage_data
from tqdm import tqdm

from carn_da import recipes
from carn_da.runs import latest_generator, train_unless_done
from carn_da.utils.checkpoint import load_model, routed_state
from carn_da.utils.files import save_torch_atomic, write_atomic, write_options
from carn_da.utils.images import decode
from carn_da.utils.inference import Restorer
from carn_da.utils.jpeg import IJG_TABLES, jpeg_compress, jpeg_encode, read_jpeg_quality

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(REPO, os.pardir, 'shared', 'datasets')
GRAY_SETS = ('BSD68', 'Set12', 'Classic5')
COLOUR = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry', 'hubble_deep_field', 'retina',
          'colorwheel')
GRAY_QUALITIES = tuple(range(10, 100, 10))
COLOUR_QUALITIES = tuple(range(10, 100, 5))
RESAVES = ((10, 30), (30, 90), (50, 90), (70, 95), (90, 30), (50, 10), (95, 50))
SCALES = (0.5, 0.6, 0.7, 0.8, 0.9)
RESIZERS = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)
EXPERTS = (10, 30, 50, 70, 90)
KINDS = ('jpeg', 'colour', 'crop', 'colour crop', 'resaved', 'resized', 'original')


@dataclass
class Case:
    """One file a user might hand to ``carn-da restore``: its bytes, the original it comes from (gray or BGR) and
    the truth: the quality that shaped it (None: none to find) and its grid offset (None: none)."""
    kind: str
    image: str
    data: bytes
    original: np.ndarray
    quality: int = None
    offset: tuple = None
    restore: bool = False
    qualities: tuple = None  # of a re-saved JPEG: (first, second); of a resized one: (the JPEG's before resizing, )


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default=SHARED, help='Folder of BSD68, Set12, Classic5 and Train400.')
    parser.add_argument('--out', default=osp.join(REPO, 'results', 'real_world'))
    parser.add_argument('--model', help='A QualityRoutedCARN checkpoint (with a fallback) to restore with.')
    parser.add_argument('--opt', help='Its option file.')
    parser.add_argument('--iters', type=int, default=500, help='Training iterations per RDN. Default: 500.')
    parser.add_argument('--offsets', type=int, default=4, help='Crops per gray image and QF. Default: 4.')
    parser.add_argument('--restore-every', type=int, default=4, help='Restore every n-th gray image. Default: 4.')
    parser.add_argument('--limit', type=int, help='Only the first N images of each set (smoke runs).')
    parser.add_argument('--prefix', default='real_world', help='Prefix of the trained models. Default: real_world.')
    parser.add_argument('--self-ensemble', action='store_true', help='Restore as carn-da restore --self-ensemble.')
    parser.add_argument(
        '--kinds',
        nargs='+',
        choices=KINDS,
        help='Only these kinds of cases (e.g. resized, with a slow fallback). Default: all.')
    args = parser.parse_args()
    if (args.model is None) != (args.opt is None):
        parser.error('--model and --opt go together')
    return args


def originals(args):
    """[(set, name, uint8 gray or BGR original)]: the gray test sets, then the colour photos."""
    found = []
    for name in GRAY_SETS:
        paths = sorted(p for p in glob.glob(osp.join(args.data, name, '*')) if p.lower().endswith(('.png', '.bmp')))
        if not paths:
            sys.exit(f'No images in {osp.join(args.data, name)}.')
        found += [(name, osp.basename(p), cv2.imread(p, cv2.IMREAD_GRAYSCALE)) for p in paths[:args.limit]]
    found += [('colour', name, getattr(skimage_data, name)()[..., ::-1].copy()) for name in COLOUR[:args.limit]]
    return found


def png(img):
    return cv2.imencode('.png', img)[1].tobytes()


def gray_cases(name, gt, index, args, restore):
    """The cases of one gray original (the ``index``-th): JPEGs, crops, re-saves and resizes."""
    cases = []
    for k, quality in enumerate(GRAY_QUALITIES):
        cases.append(Case('jpeg', name, jpeg_encode(gt, quality), gt, quality, (0, 0), restore))
        decoded = jpeg_compress(gt, quality)
        for j in range(args.offsets):  # every offset in turn over images and qualities
            dy, dx = divmod((index * len(GRAY_QUALITIES) * args.offsets + k * args.offsets + j) * 7 % 64, 8)
            cases.append(Case('crop', name, png(decoded[dy:, dx:]), gt[dy:, dx:], quality, (dy, dx), restore and j < 1))
    for first, second in RESAVES:
        resaved = jpeg_encode(jpeg_compress(gt, first), second)
        cases.append(Case('resaved', name, resaved, gt, min(first, second), (0, 0), restore, (first, second)))
    for k, scale in enumerate(SCALES):
        quality, resizer = GRAY_QUALITIES[(index + 2 * k) % len(GRAY_QUALITIES)], RESIZERS[(index + k) % 3]
        size = (round(gt.shape[1] * scale), round(gt.shape[0] * scale))
        resized = cv2.resize(jpeg_compress(gt, quality), size, interpolation=resizer)
        cases.append(
            Case('resized', name, png(resized), cv2.resize(gt, size, interpolation=resizer), None, None, restore,
                 (quality, )))
    return cases + [Case('original', name, png(gt), gt, None, None, restore)]


def colour_cases(name, bgr, index):
    """The cases of one colour photo: JPEGs at every quality of ``COLOUR_QUALITIES``, and a crop of each."""
    cases = []
    for k, quality in enumerate(COLOUR_QUALITIES):
        cases.append(Case('colour', name, jpeg_encode(bgr, quality), bgr, quality, (0, 0), k % 2 == 0))
        dy, dx = divmod((index * len(COLOUR_QUALITIES) + k) * 7 % 64, 8)
        decoded = jpeg_compress(bgr, quality)
        cases.append(Case('colour crop', name, png(decoded[dy:, dx:]), bgr[dy:, dx:], quality, (dy, dx), k % 3 == 0))
    return cases + [Case('original', name, png(bgr), bgr, None, None, True)]


def make_cases(args):
    cases, counters = [], defaultdict(int)
    for dataset, name, img in originals(args):
        index = counters[dataset]
        counters[dataset] += 1
        if dataset == 'colour':
            cases += colour_cases(name, img, index)
        else:
            cases += gray_cases(f'{dataset}/{name}', img, index, args, index % args.restore_every == 0)
    return cases


def reading_correct(case, reading):
    """'exact' (the true table, and offset where the truth has one), 'unknown' or 'wrong'."""
    if not reading.known:
        return 'exact' if case.quality is None else 'unknown'
    if case.quality is None:
        return 'wrong'
    same_table = np.array_equal(IJG_TABLES[reading.quality - 1], IJG_TABLES[case.quality - 1])
    return 'exact' if same_table and reading.offset == case.offset else 'wrong'


def routed_model(args):
    """(checkpoint, option file) of the routed model: ``--model``/``--opt``, or RDNs for ``EXPERTS`` and a blind one
    trained here and joined (unless done)."""
    if args.model:
        return args.model, args.opt
    pairs = recipes.jpeg_pairs('Train400', osp.join(args.data, 'Train400'), None, 48, 16, enlarge=1)
    network_g = recipes.network('rdn', 'cpu')
    experts = []
    for qualities in [(q, q) for q in EXPERTS] + [(10, 90)]:
        name = f'{args.prefix}_rdn_qf{qualities[0]}' + ('' if qualities[0] == qualities[1] else f'-{qualities[1]}')
        log = recipes.logger(max(1, args.iters // 10), args.iters, tb_logger=False)
        opt = recipes.blind(name, network_g, pairs, recipes.schedule(args.iters, 2e-4), log, qualities, num_gpu=0)
        train_unless_done(opt, args.out, REPO)
        experts.append((latest_generator(name, REPO), [qualities[0]] if qualities[0] == qualities[1] else None))
    checkpoint, options = osp.join(args.out, 'routed.pth'), osp.join(args.out, 'routed.yml')
    save_torch_atomic({'params': routed_state(path for path, _ in experts)}, checkpoint)
    write_options({'network_g': recipes.routed_pair([(network_g, qualities) for _, qualities in experts])}, options)
    return checkpoint, options


def scores(out, case):
    """PSNR on the luma (for colour, BasicSR's Y of BT.601 YCbCr, as FBCNN and QGAC report it) and on RGB (colour
    only)."""
    if case.original.ndim == 2:
        return {'y': calculate_psnr(out, case.original, 0)}
    return {
        'y': calculate_psnr(out, case.original, 0, test_y_channel=True),
        'rgb': calculate_psnr(out, case.original, 0)
    }


def restore_case(restorer, case, route):
    """{label: scores} of the JPEG input, the routed model (``route``: the router's choice from the file's reading),
    the oracle and the fallback on one case; every expert runs once per case."""
    img, _ = decode(case.data)
    router = restorer.net
    routes = {
        'routed': route,
        'oracle': router.route(case.quality),  # None: a resized image, which has no grid
        'blind': router.fallback
    }
    outputs = {route: restorer(img, case.data, router.expert(route)) for route in set(routes.values())}
    return {'JPEG': scores(img, case), **{label: scores(outputs[route], case) for label, route in routes.items()}}


def evaluate(args, cases, model):
    """Per case: the reading, whether it is right and (for the cases to restore) the scores."""
    net, channels = load_model(*model)
    if getattr(net, 'fallback', None) is None:
        sys.exit(f'{model[0]}: a QualityRoutedCARN with a fallback (carn-da route --fallback) is needed.')
    restorer = Restorer(net.eval(), channels, torch.device('cpu'), self_ensemble=args.self_ensemble)
    rows = []
    for case in tqdm(cases, desc='cases', unit='case', file=sys.stderr):
        reading = read_jpeg_quality(case.data)
        row = {'kind': case.kind, 'image': case.image, 'quality': case.quality, 'offset': case.offset}
        row['qualities'] = case.qualities
        row.update(read=reading.quality, read_offset=reading.offset, verdict=reading_correct(case, reading))
        if case.restore:
            route = net.route_reading(reading)
            row['scores'] = restore_case(restorer, case, route)
            row['known'] = reading.known
            row['to_expert'] = route not in (None, net.fallback)  # not unchanged, not the fallback
        rows.append(row)
    return rows


def reading_table(rows):
    """Markdown: per kind of case, how often the reading is exact, unknown or wrong; for crops, the worst offset."""
    lines = [
        '| case | files | exact | unknown | wrong | worst grid offset (exact / crops) |',
        '|---|---:|---:|---:|---:|---|'
    ]
    for kind in KINDS:
        verdicts = [row['verdict'] for row in rows if row['kind'] == kind]
        if not verdicts or kind == 'original':  # no truth to check
            continue
        shares = [f'{100 * verdicts.count(v) / len(verdicts):.2f} %' for v in ('exact', 'unknown', 'wrong')]
        worst = ''
        if 'crop' in kind:
            by_offset = defaultdict(list)
            for row in rows:
                if row['kind'] == kind:
                    by_offset[row['offset']].append(row['verdict'] == 'exact')
            offset, hits = min(by_offset.items(), key=lambda item: np.mean(item[1]))
            worst = f'{offset}: {sum(hits)} / {len(hits)} ({len(by_offset)} offsets)'
        lines.append(f'| {kind} | {len(verdicts)} | {" | ".join(shares)} | {worst} |')
    return '\n'.join(lines) + '\n'


def resave_table(rows):
    """Markdown: per re-save (QF a, then b), how often the reading gives a, b or another quality."""
    lines = [
        '| first QF | then QF | files | read as the first | as the second | other |', '|---:|---:|---:|---:|---:|---:|'
    ]
    for first, second in RESAVES:
        reads = [row['read'] for row in rows if row['kind'] == 'resaved' and tuple(row['qualities']) == (first, second)]
        if reads:
            shares = [sum(q == v for q in reads) for v in (first, second)]
            lines.append(f'| {first} | {second} | {len(reads)} | {shares[0]} | {shares[1]} | '
                         f'{len(reads) - sum(shares)} |')
    return '\n'.join(lines) + '\n'


def restoration_table(rows):
    """Markdown: per kind of case, mean PSNR of the JPEG, routed, oracle and blind restorations; over the images of a
    known reading, the largest |routed - oracle| of one image; over those no expert takes (an unknown reading, or a
    quality no expert is made for: to the fallback or unchanged), how many the routed model restores below the blind
    model or the JPEG."""
    lines = [
        '| case | images (unknown) | PSNR-Y: JPEG | routed | oracle | blind (fallback) | PSNR-RGB: JPEG / routed | '
        'largest \\|routed - oracle\\| (known) | no expert: images | routed < blind | routed < JPEG |',
        '|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|'
    ]
    for kind in KINDS:
        scored = [row for row in rows if row['kind'] == kind and 'scores' in row]
        if not scored:
            continue
        mean = {
            label: np.mean([row['scores'][label]['y'] for row in scored])
            for label in ('JPEG', 'routed', 'oracle', 'blind')
        }
        rgb = 'n/a'
        if 'rgb' in scored[0]['scores']['JPEG']:
            rgb = ' / '.join(f'{np.mean([row["scores"][k]["rgb"] for row in scored]):.2f}' for k in ('JPEG', 'routed'))
        known = [row['scores'] for row in scored if row['known']]
        unknown = sum(not row['known'] for row in scored)
        no_expert = [row['scores'] for row in scored if not row['to_expert']]
        gap = f'{max(abs(s["routed"]["y"] - s["oracle"]["y"]) for s in known):.3f}' if known else 'n/a'
        below = [sum(s['routed']['y'] < s[label]['y'] - 1e-9 for s in no_expert) for label in ('blind', 'JPEG')]
        lines.append(f'| {kind} | {len(scored)} ({unknown}) | ' + ' | '.join(f'{v:.2f}' for v in mean.values()) +
                     f' | {rgb} | {gap} | {len(no_expert)} | {below[0]} | {below[1]} |')
    return '\n'.join(lines) + '\n'


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    model = routed_model(args)
    cases = [case for case in make_cases(args) if args.kinds is None or case.kind in args.kinds]
    rows = evaluate(args, cases, model)
    head = (f'Command: `python benchmarks/real_world.py {shlex.join(sys.argv[1:])}`  \nDate: '
            f'{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}, {os.cpu_count()} CPUs, '
            f'torch {torch.__version__}; routed model: `{model[1]}`\n\n')
    text = (
        f'### Quality readings ({len(rows)} files)\n\n{head}{reading_table(rows)}\nRe-saved JPEGs (the truth above is '
        f'the coarser quality):\n\n{resave_table(rows)}\n### Routed restoration\n\n{restoration_table(rows)}')
    print(text)
    write_atomic(osp.join(args.out, 'real_world.md'), text.encode())
    write_atomic(osp.join(args.out, 'real_world.json'), json.dumps(rows, indent=0, default=str).encode())
    return 0


if __name__ == '__main__':
    sys.exit(main())
