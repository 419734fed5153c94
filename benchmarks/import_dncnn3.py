"""Does ``carn-da import`` reproduce DnCNN-3's published Classic5 table? (Zhang et al., IEEE TIP 26(7), 2017)

Imports ``--mat`` (cszn/DnCNN's ``model/DnCNN3.mat``) with ``carn-da import`` into ``--out``, compresses Classic5
with OpenCV at QF 10, 20, 30 and 40 and scores the restorations (carn_da.utils.scores: PSNR, SSIM, 8-bit, no border
crop) against the published PSNR / SSIM. Exits 1 if a mean differs by more than 0.01 dB or 0.001 SSIM, and 0 with a
message saying so when the model file or Classic5 is absent.

    python benchmarks/import_dncnn3.py                         # ../shared/peers/DnCNN3.mat, ../shared/datasets/Classic5
"""
import carn_da.compat  # noqa: F401

import argparse
import sys
from os import path as osp

from carn_da.import_model import main as import_model
from carn_da.utils.checkpoint import load_model
from carn_da.utils.evaluation import EvalSet, evaluate
from carn_da.utils.scores import mean_scores

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(REPO, osp.pardir, 'shared')
# DnCNN-3 on Classic5, the DnCNN paper's Table (MATLAB JPEG): QF -> (PSNR, SSIM)
PUBLISHED = {10: (29.40, 0.8026), 20: (31.63, 0.8610), 30: (32.91, 0.8861), 40: (33.77, 0.9003)}
TOLERANCE = {'psnr': 0.01, 'ssim': 0.001}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--mat', default=osp.join(SHARED, 'peers', 'DnCNN3.mat'), help='The published model.')
    parser.add_argument('--classic5', default=osp.join(SHARED, 'datasets', 'Classic5'), help='Classic5 images.')
    parser.add_argument('--out', default=osp.join(REPO, 'results', 'import_dncnn3'), help='Where to import it to.')
    return parser.parse_args()


def main():
    args = parse_args()
    for what, found in (('model', osp.isfile(args.mat)), ('Classic5 folder', osp.isdir(args.classic5))):
        if not found:
            print(f'skipped: the {what} {args.mat if what == "model" else args.classic5} is absent')
            return 0
    import_model([args.mat, '--out', args.out])
    name = osp.splitext(osp.basename(args.mat))[0]
    net, _ = load_model(osp.join(args.out, f'{name}.pth'), osp.join(args.out, f'{name}.yml'))
    results, _ = evaluate([('DnCNN-3', net)], {'Classic5': EvalSet('Classic5', args.classic5)}, list(PUBLISHED))
    print('| QF | PSNR | published | SSIM | published | within 0.01 dB / 0.001 |\n|---:|---:|---:|---:|---:|---|')
    failed = 0
    for qf, published in PUBLISHED.items():
        mean = mean_scores(results['DnCNN-3']['Classic5'][qf])
        ok = all(abs(mean[m] - p) <= TOLERANCE[m] for m, p in zip(TOLERANCE, published))
        failed += not ok
        print(f'| {qf} | {mean["psnr"]:.2f} | {published[0]:.2f} | {mean["ssim"]:.4f} | {published[1]:.4f} | '
              f'{"yes" if ok else "NO"} |')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
