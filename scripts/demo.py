"""``make demo``: the paper's recipe and the recommended one at toy scale on CPU, on photos that scikit-image ships.

1. data: grayscale ground truths and OpenCV JPEGs at QF 10 and 70 (scripts/make_demo_data.py);
2. a small RDN trained on QF 10 (the source domain) and one on QF 70 with its ground truth (the oracle), through
   BasicSR (options/demo/, trained as ``python carn_da/train.py -opt ...`` in the checkout);
3. the QF-10 model adapted to QF-70 JPEGs without their ground truth, by the paper's recipe and by the recommended
   one (docs/RESULTS.md), and the recommended model routed with the QF-10 model (``QualityRoutedCARN``);
then PSNR / PSNR-B / SSIM on held-out photos at QF 70 and PSNR at QF 10. A finished training is reused; delete
experiments/demo_* to retrain.
"""
import carn_da.compat  # noqa: F401

import subprocess
import sys
import time
from basicsr.archs import build_network
from os import path as osp

from carn_da import recipes
from carn_da.runs import latest_generator, train
from carn_da.utils.checkpoint import load_network, routed_state
from carn_da.utils.files import load_options
from carn_da.utils.scores import evaluate_pairs, load_pairs, markdown_table, mean_scores

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(REPO, 'datasets', 'demo')
SOURCE, TARGET = 10, 70
# label, option file, what it is
MODELS = [
    ('SQ-10', 'train_rdn_demo_sq_qf10.yml', 'trained on QF 10 with ground truth: the source model (DQ at QF 70)'),
    ('DA paper', 'train_rdn_demo_da_lq2hq.yml', 'SQ-10 adapted to QF 70 without its ground truth by the paper\'s '
     'recipe: a quality discriminator on F\'s features, F trained to fool it'),
    ('DA recommended', 'train_rdn_demo_da_lq2hq_recommended.yml', 'SQ-10 adapted to QF 70 without its ground truth '
     'by the recommended recipe: the source ground truths compressed at the estimated target QF, plus '
     'self-supervision on the QF-70 JPEGs'),
    ('SQ-70', 'train_rdn_demo_sq_qf70.yml', 'trained on QF 70 with ground truth: the oracle'),
]
ROUTED = ('routed', 'each image to SQ-10 or to DA recommended by the QF estimated from its pixels')


def trained_networks():
    """{label: network in eval mode} of ``MODELS`` (trained unless finished) and the routed pair."""
    nets, checkpoints, networks = {}, {}, {}
    for label, file, _ in MODELS:
        opt_path = osp.join(REPO, 'options', 'demo', file)
        opt = load_options(opt_path)
        checkpoints[label], networks[label] = latest_generator(opt['name'], REPO), opt['network_g']
        if osp.isfile(checkpoints[label]):
            print(f'Reusing {checkpoints[label]} (delete experiments/{opt["name"]} to retrain).')
        else:
            print(f'\n=== Training {label}: python carn_da/train.py -opt options/demo/{file}', flush=True)
            train(opt_path, root=REPO)
        nets[label] = load_network(opt['network_g'], checkpoints[label])
    experts = [('SQ-10', SOURCE), ('DA recommended', TARGET)]
    routed = build_network(recipes.routed_pair([(networks[label], [qf]) for label, qf in experts]))
    routed.load_state_dict(routed_state([checkpoints[label] for label, _ in experts]))
    nets[ROUTED[0]] = routed.eval()
    return nets


def main():
    start = time.time()
    subprocess.run([sys.executable, osp.join(REPO, 'scripts', 'make_demo_data.py'), '--root', DATA], check=True)
    nets = trained_networks()
    pairs = {qf: load_pairs(osp.join(DATA, 'test', f'qf{qf}'), osp.join(DATA, 'test', 'gt')) for qf in (TARGET, SOURCE)}
    rows = []
    for label, net in [('JPEG input', None)] + list(nets.items()):
        scores = {}
        for qf, qf_pairs in pairs.items():
            scores.update({f'qf{qf}_{k}': v for k, v in mean_scores(evaluate_pairs(qf_pairs, net)).items()})
        rows.append((label, scores))
    columns = [(f'qf{TARGET}_psnr', f'QF {TARGET} PSNR'), (f'qf{TARGET}_psnrb', f'QF {TARGET} PSNR-B'),
               (f'qf{TARGET}_ssim', f'QF {TARGET} SSIM'), (f'qf{SOURCE}_psnr', f'QF {SOURCE} PSNR')]
    print(f'\nDemo test photos ({len(pairs[TARGET])}), target domain QF {TARGET}; gains over the JPEG input:\n')
    print(''.join(f'- {label}: {text}\n' for label, _, text in MODELS) + f'- {ROUTED[0]}: {ROUTED[1]}\n')
    print(markdown_table(columns, rows, reference='JPEG input'))
    psnr = {label: values[f'qf{TARGET}_psnr'] for label, values in rows}
    gap = psnr['SQ-70'] - psnr['SQ-10']
    recovered = ', '.join(f'{label} {(psnr[label] - psnr["SQ-10"]) / gap:.0%}'
                          for label in ('DA paper', 'DA recommended', ROUTED[0]))
    source_psnr = {label: values[f'qf{SOURCE}_psnr'] for label, values in rows}
    print(f'Gap recovered at QF {TARGET}, (PSNR - SQ-10) / (SQ-70 - SQ-10): {recovered}. At QF {SOURCE} the routed '
          f'model gives {source_psnr[ROUTED[0]]:.2f} dB, SQ-10 {source_psnr["SQ-10"]:.2f} dB (docs/RESULTS.md has '
          'the study at larger scale).')
    print(f'Total time: {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
