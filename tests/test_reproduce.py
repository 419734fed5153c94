import carn_da.compat  # noqa: F401

import cv2
import glob
import json
import numpy as np
import os
import pytest
import shutil
import sys
import yaml
from basicsr.metrics import calculate_psnr
from conftest import textured_image
from os import path as osp
from tiny import REPO

from carn_da.runs import experiment_dir, latest_generator

sys.path.insert(0, osp.join(REPO, 'scripts'))
import reproduce  # noqa: E402

TINY_RDN = "{num_feat: 8, num_block: 2, num_layer: 2, growth: 4}"
ITERS_SCALE = 0.002  # SQ and BQ: ceil(1800 * 0.002) = 4 iterations, DA: ceil(600 * 0.002) = 2


def write_images(folder, num, size, seed):
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    for i in range(num):
        cv2.imwrite(osp.join(folder, f'im{i}.png'), textured_image(rng, *size))
    return folder


def training_log(name):
    logs = sorted(glob.glob(osp.join(experiment_dir(name, REPO), 'train_*.log')))
    return ''.join(open(log, encoding='utf-8').read() for log in logs)


def written_options(reproduced, name):
    """The options reproduce.py wrote for the training ``name``."""
    with open(osp.join(reproduced['out'], 'options', f'{name}.yml'), encoding='utf-8') as f:
        return yaml.safe_load(f)


def table_rows(text, qf):
    """{label: [cells]} of the Markdown table under '## Test QF <qf>'."""
    section = text.split(f'## Test QF {qf}\n')[1].split('\n\n')[0].strip()
    rows = [[cell.strip() for cell in line.strip('|').split('|')] for line in section.splitlines()]
    return rows[0], {row[0]: row[1:] for row in rows[2:]}


@pytest.fixture(scope='module')
def reproduced(tmp_path_factory):
    """The cpu preset with a tiny RDN and 2-4 iterations per training on generated images."""
    tmp = tmp_path_factory.mktemp('reproduce')
    prefix = f'pytest_reproduce_{os.getpid()}'
    train = write_images(str(tmp / 'train'), 6, (56, 56), seed=0)
    test = write_images(str(tmp / 'A'), 2, (40, 48), seed=1)
    out = str(tmp / 'out')
    argv = ['--preset', 'cpu', '--out', out, '--prefix', prefix, '--data-root', str(tmp / 'data')]
    argv += ['--train-gt', train, '--test', f'A={test}', '--network', TINY_RDN, '--iters-scale', str(ITERS_SCALE)]
    try:
        reproduce.main(argv)
        yield dict(out=out, prefix=prefix, data=str(tmp / 'data'))
    finally:
        for key, _, _ in reproduce.TRAININGS:
            for top in ('experiments', 'tb_logger'):
                shutil.rmtree(osp.join(REPO, top, f'{prefix}_{key}'), ignore_errors=True)


def test_every_training_ran_with_its_data_and_source(reproduced):
    prefix = reproduced['prefix']
    expected_iters = {'sq_qf10': 4, 'sq_qf70': 4, 'bq': 4, 'da_lq2hq': 2, 'da_hq2lq': 2}
    for key, iters in expected_iters.items():
        name = f'{prefix}_{key}'
        assert osp.isfile(latest_generator(name, REPO)), name
        opt = written_options(reproduced, name)
        assert opt['train']['total_iter'] == iters
        assert opt['network_g']['num_feat'] == 8 and 'val' not in opt
        assert 'End of training' in training_log(name)
    train = osp.join(reproduced['data'], 'train')
    bq = written_options(reproduced, f'{prefix}_bq')['datasets']['train']
    assert bq['dataroot_lqs'] == [osp.join(train, 'qf10'), osp.join(train, 'qf70')] and bq['num_pairs'] == [3, 3]
    for key, source, target in (('da_lq2hq', 10, 70), ('da_hq2lq', 70, 10)):
        opt = written_options(reproduced, f'{prefix}_{key}')
        assert opt['model_type'] == 'CARNDAModel' and opt['network_q']['num_feat'] == 8
        source_model = latest_generator(f'{prefix}_sq_qf{source}', REPO)
        assert f'Loading RDN model from {source_model}' in training_log(f'{prefix}_{key}')
        data = opt['datasets']['train']
        assert data['type'] == 'TwoDomainDataset' and data['dataroot_lq'] == osp.join(train, f'qf{source}')
        assert data['dataroot_target'] == osp.join(train, f'qf{target}')


def test_table_has_table1_rows_and_the_papers_numbers(reproduced):
    text = open(osp.join(reproduced['out'], 'table.md'), encoding='utf-8').read()
    scores = json.load(open(osp.join(reproduced['out'], 'scores.json'), encoding='utf-8'))['scores']
    for qf, other, paper in ((10, 70, ['26.96', '28.14 (+1.18)', '27.39 (+0.43)', '', '28.14 (+1.18)']),
                             (70, 10, ['34.07', '34.40 (+0.33)', '31.11 (-2.96)', '', '34.39 (+0.32)'])):
        header, rows = table_rows(text, qf)
        assert header[1:] == ['A PSNR', 'A PSNR-B', 'A SSIM', 'paper: BSD68 PSNR']
        assert list(rows) == ['JPEG', 'SQ', 'DQ', 'BQ', f'DA ({other}->{qf})']
        assert [cells[-1] for cells in rows.values()] == paper
        # each row is the model of its role at this QF; every cell shows its gain over JPEG
        models = {
            'JPEG': 'JPEG',
            'SQ': f'SQ-{qf}',
            'DQ': f'SQ-{other}',
            'BQ': 'BQ',
            f'DA ({other}->{qf})': f'DA {other}->{qf}'
        }
        for label, model in models.items():
            psnr = scores[model]['A'][str(qf)]['mean']['psnr']
            assert rows[label][0].startswith(f'{psnr:.2f}')
            assert label == 'JPEG' or '(' in rows[label][0]
        # JPEG row: PSNR of the prepared JPEGs against their ground truths
        folder = osp.join(reproduced['data'], 'A')
        images = [(cv2.imread(osp.join(folder, f'qf{qf}',
                                       f'im{i}.jpg')), cv2.imread(osp.join(folder, 'gt', f'im{i}.png')))
                  for i in range(2)]
        expected = np.mean([calculate_psnr(lq, gt, crop_border=0) for lq, gt in images])
        assert rows['JPEG'][0] == f'{expected:.2f}'


def test_plot_and_metadata(reproduced):
    plot = cv2.imread(osp.join(reproduced['out'], 'gain_vs_qf.png'))
    assert plot is not None and plot.shape[0] > 100 and plot.shape[1] > 100
    meta = json.load(open(osp.join(reproduced['out'], 'scores.json'), encoding='utf-8'))
    assert meta['preset'] == 'cpu' and meta['command'].startswith('python scripts/reproduce.py --preset cpu')
    assert meta['wall_seconds']['total'] > 0 and meta['date'] and meta['machine']
    assert set(meta['scores']) == {'JPEG', 'SQ-10', 'SQ-70', 'BQ', 'DA 10->70', 'DA 70->10'}
    assert yaml.safe_load(TINY_RDN).items() <= meta['network_g'].items()
