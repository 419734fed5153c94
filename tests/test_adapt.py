import carn_da.compat  # noqa: F401

import csv
import cv2
import json
import os
import pytest
import re
import shutil
import torch
import yaml
from conftest import write_jpeg_dataset
from os import path as osp
from tiny import REPO

from carn_da import adapt, cli, recipes
from carn_da.archs.rdn_arch import RDN
from carn_da.data.two_domain_dataset import TwoDomainDataset
from carn_da.runs import experiment_dir, latest_generator
from carn_da.utils import images, zoo
from carn_da.utils.checkpoint import load_model
from carn_da.utils.jpeg import quality_histogram

TINY_RDN = {'type': 'RDN', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 4}
PILE_QFS = (30, 50, 70, 90)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Source pairs at QF 10, a pile of target JPEGs of mixed QF (no ground truth) and the GTs of two of them."""
    root = tmp_path_factory.mktemp('adapt')
    source = write_jpeg_dataset(str(root / 'source'), 6, (40, 48), qfs=(10, ), seed=0)
    images = write_jpeg_dataset(str(root / 'images'), len(PILE_QFS), (40, 48), qfs=PILE_QFS, seed=1)
    os.makedirs(root / 'pile' / 'sub')
    os.makedirs(root / 'pile_gt' / 'sub')
    for i, qf in enumerate(PILE_QFS):
        folder = 'sub/' if i % 2 else ''
        shutil.copy(osp.join(images, f'qf{qf}', f'img{i:03d}.jpg'), root / 'pile' / f'{folder}img{i:03d}.jpg')
        if i < 2:
            shutil.copy(osp.join(images, 'gt', f'img{i:03d}.png'), root / 'pile_gt' / f'{folder}img{i:03d}.png')
    torch.manual_seed(0)
    net = RDN(**{k: v for k, v in TINY_RDN.items() if k != 'type'})
    torch.save({'params': net.state_dict()}, root / 'source.pth')
    (root / 'source.yml').write_text(yaml.safe_dump({'name': 'tiny_sq_qf10', 'network_g': TINY_RDN}))
    return {
        'source': source,
        'pile': str(root / 'pile'),
        'pile_gt': str(root / 'pile_gt'),
        'model': str(root / 'source.pth'),
        'opt': str(root / 'source.yml')
    }


def test_mixed_quality_target_folder_is_one_target_domain(data):
    opt = {
        'name': 'mixed',
        'type': 'TwoDomainDataset',
        'phase': 'train',
        'dataroot_gt': osp.join(data['source'], 'gt'),
        'dataroot_lq': osp.join(data['source'], 'qf10'),
        'dataroot_target': data['pile'],
        'io_backend': {
            'type': 'disk'
        },
        'gt_size': 32
    }
    dataset = TwoDomainDataset(opt)
    assert list(quality_histogram(dataset.target_paths)) == list(PILE_QFS)
    drawn = {dataset[i % len(dataset)]['target_path'] for i in range(40)}
    assert drawn == set(dataset.target_paths)
    assert dataset[0]['lq_target'].shape == (1, 32, 32)


def test_adapt_end_to_end_then_restore_with_the_adapted_model(data, experiment_name, tmp_path, capfd):
    name = experiment_name('adapt')
    out = tmp_path / 'out'
    argv = [
        '--model', data['model'], '--opt', data['opt'], '--source-gt',
        osp.join(data['source'], 'gt'), '--source-lq',
        osp.join(data['source'], 'qf10'), '--target', data['pile'], '--target-gt', data['pile_gt'], '--name', name,
        '--out',
        str(out), '--iters', '4', '--batch', '2', '--patch', '32', '--device', 'cpu'
    ]
    assert adapt.main(argv) == 0
    stdout, stderr = capfd.readouterr()
    assert f'training {name}: 100%' in stderr and '4/4' in stderr  # the progress bar, with its time estimate
    checkpoint = latest_generator(name, str(out))  # with --out, the training runs there too
    opt_path = out / f'{name}.yml'
    for path in (checkpoint, opt_path, out / 'report.md', out / 'report.json', out / 'tb_logger' / name):
        assert osp.exists(path), path
    assert not any(osp.exists(osp.join(REPO, top, name)) for top in ('experiments', 'tb_logger'))

    opt = yaml.safe_load(opt_path.read_text())
    assert opt['model_type'] == 'CARNDAModel' and opt['network_g'] == TINY_RDN
    assert 'network_q' not in opt and opt['train']['target_opt']['type'] == 'L1Loss'  # the recommended recipe
    assert opt['path']['pretrain_network_g'] == data['model'] and opt['train']['total_iter'] == 4
    train_set = opt['datasets']['train']
    assert train_set['type'] == 'TwoDomainDataset' and train_set['dataroot_target'] == data['pile']
    assert (train_set['source_quality'], train_set['target_self_supervision'],
            train_set['target_quality']) == ('target', True, 'file')
    assert 'dataroot_lq' not in train_set  # every source pair is compressed at a target's quality
    assert data['pile_gt'] not in opt_path.read_text()  # the ground truths never reach the training

    report = (out / 'report.md').read_text()
    assert report in stdout
    assert 'QF 30: 1, QF 50: 1, QF 70: 1, QF 90: 1' in report and 'QF 10: 6' in report
    resume = f'cd {adapt.shown(out)} && python -m carn_da.train -opt {name}.yml --auto_resume'
    for text in ('mean BEF', adapt.JPEG, adapt.BEFORE, adapt.AFTER, 'PSNR-B', adapt.shown(checkpoint),
                 adapt.shown(opt_path), resume):
        assert text in report, text
    assert 'discriminator accuracy' not in report
    summary = json.loads((out / 'report.json').read_text())
    assert summary['qf_histograms']['target'] == {str(qf): 1 for qf in PILE_QFS}
    assert summary['measured_images'] == 4 and summary['target_gt_images'] == 2
    for label in (adapt.JPEG, adapt.BEFORE, adapt.AFTER):
        assert set(summary['results'][label]) == {'bef', 'psnr', 'psnrb', 'ssim'}
    assert summary['results'][adapt.BEFORE] != summary['results'][adapt.AFTER]
    assert summary['discriminator_accuracy'] == {}
    # the routed model: the source model for the source quality, the adapted one for the pile's
    routed = summary['routed']
    assert routed['experts'] == [[10], list(PILE_QFS)] and adapt.shown(routed['checkpoint']) in report
    assert ('the source model for QF 10 and the adapted one for QF 30, 50, 70, 90 (each within 2); images of any '
            'other or an unknown quality pass unchanged') in report
    router, _ = load_model(routed['checkpoint'], routed['options'])
    experts = {
        name: load_model(path, data['opt'])[0]
        for name, path in (('source', data['model']), ('adapted', checkpoint))
    }
    for name, path in (('source', osp.join(data['source'], 'qf10',
                                           'img000.jpg')), ('adapted', osp.join(data['pile'], 'img000.jpg'))):
        x = torch.from_numpy(cv2.imread(path, cv2.IMREAD_GRAYSCALE)).float().div(255)[None, None]
        with torch.no_grad():
            assert torch.allclose(router(x), experts[name](x), atol=1e-6), name

    source = torch.load(data['model'], weights_only=True)['params']
    adapted = torch.load(checkpoint, weights_only=True)['params']
    assert any((source[k] != adapted[k]).any() for k in source)
    assert cli.main(
        ['restore', data['pile'], '-o',
         str(tmp_path / 'restored'), '--model', checkpoint, '--opt',
         str(opt_path)]) == 0
    assert sorted(p.name for p in (tmp_path / 'restored').rglob('*.png')) == [f'img{i:03d}.png' for i in range(4)]

    with pytest.raises(SystemExit) as exit_:
        adapt.main(argv)
    assert exit_.value.code == 2 and '--resume' in capfd.readouterr().err


def test_adapt_paper_recipe_options(data, tmp_path):
    argv = [
        '--model', data['model'], '--opt', data['opt'], '--source-gt',
        osp.join(data['source'], 'gt'), '--source-lq',
        osp.join(data['source'], 'qf10'), '--target', data['pile'], '--recipe', 'paper', '--lambda', '0.3'
    ]
    _, args = adapt.parse_args(argv)
    opt = adapt.adapt_options(args, 1, 8, torch.device('cpu'))
    assert opt['network_q'] == {'type': 'QualityDiscriminator', 'num_feat': 8, 'hidden': 128, 'pooling': 'avgstd'}
    assert opt['train']['domain_opt'] == {'type': 'DomainAdversarialLoss', 'loss_weight': 0.3}
    assert 'target_opt' not in opt['train'] and 'source_quality' not in opt['datasets']['train']
    assert (opt['train']['optim_g']['lr'], opt['datasets']['train']['batch_size_per_gpu']) == (1e-4, 8)
    _, args = adapt.parse_args(argv[:-4])
    recommended = adapt.adapt_options(args, 1, None, torch.device('cpu'))
    assert (recommended['train']['optim_g']['lr'], recommended['datasets']['train']['batch_size_per_gpu']) == (1e-3, 4)


def parsed_args(data, source_lq, target, out, *extra):
    """``carn-da adapt``'s arguments for the fixture's source model and ground truths."""
    argv = ['--model', data['model'], '--opt', data['opt'], '--source-gt', osp.join(data['source'], 'gt')]
    return adapt.parse_args(argv + ['--source-lq', source_lq, '--target', target, '--out', str(out), *extra])[1]


def test_the_source_is_the_fallback_when_its_quality_is_unknown(data, experiment_name, tmp_path):
    name = experiment_name('routed_fallback')
    os.makedirs(osp.join(experiment_dir(name, str(tmp_path)), 'models'))  # --out tmp_path: the training's root
    shutil.copy(data['model'], latest_generator(name, str(tmp_path)))
    args = parsed_args(data, osp.join(data['source'], 'gt'), data['pile'], tmp_path, '--name', name)
    histograms = {'source': (args.source_lq, {None: 6}), 'target': (args.target, {30: 1})}
    routed = adapt.write_routed_model(args, histograms)
    assert routed['experts'] == [None, [30]]
    network = yaml.safe_load(open(routed['options']))['network_g']
    assert [expert.get('fallback', False) for expert in network['experts']] == [True, False]


def test_a_blind_source_needs_only_clean_source_images(data, experiment_name, tmp_path, capfd):
    """No --source-lq: the expert recipe (for strong blind models) compresses the ground truths at the pile's
    qualities, and the routed model sends the pile's qualities to the adapted model and every other one to the
    source. No target ground truth reaches the training."""
    name = experiment_name('adapt_blind')
    out = tmp_path / 'out'
    argv = [
        '--model', data['model'], '--opt', data['opt'], '--source-gt',
        osp.join(data['source'], 'gt'), '--target', data['pile'], '--target-gt', data['pile_gt'], '--name', name,
        '--out',
        str(out), '--iters', '2', '--batch', '2', '--patch', '32', '--device', 'cpu'
    ]
    assert adapt.main(argv + ['--recipe', 'expert']) == 0
    report = capfd.readouterr().out
    opt_text = (out / f'{name}.yml').read_text()
    assert data['pile_gt'] not in opt_text and 'qf10' not in opt_text
    opt = yaml.safe_load(opt_text)
    assert opt['model_type'] == 'CARNModel' and opt['train']['optim_g']['lr'] == 2e-5
    assert (opt['datasets']['train']['source_quality'], opt['datasets']['train']['target_quality']) == ('target',
                                                                                                        'file')
    assert 'target_opt' not in opt['train'] and 'target_self_supervision' not in opt['datasets']['train']
    assert ('the adapted model for QF 30, 50, 70, 90 (within 2), the source model for every other quality and '
            'resized JPEGs whose blocking shows; images whose pixels show no JPEG grid pass unchanged') in report
    summary = json.loads((out / 'report.json').read_text())
    assert summary['routed']['experts'] == [None, list(PILE_QFS)] and 'source' not in summary['qf_histograms']
    router, _ = load_model(summary['routed']['checkpoint'], summary['routed']['options'])
    source, _ = load_model(data['model'], data['opt'])
    adapted, _ = load_model(latest_generator(name, str(out)), data['opt'])
    for path, expert in ((osp.join(data['source'], 'qf10',
                                   'img000.jpg'), source), (osp.join(data['pile'], 'img000.jpg'), adapted)):
        x = torch.from_numpy(cv2.imread(path, cv2.IMREAD_GRAYSCALE)).float().div(255)[None, None]
        with torch.no_grad():
            assert torch.allclose(router(x), expert(x), atol=1e-6), path
    with pytest.raises(SystemExit):
        adapt.main(argv + ['--recipe', 'paper', '--name', name + '_paper'])
    assert '--recipe paper trains on source pairs' in capfd.readouterr().err


def test_ema_weights_are_the_adapted_model(data, experiment_name, tmp_path):
    """--ema: BasicSR keeps the average of the weights, and that average (not the last step's weights) is the
    routed model's expert for the pile."""
    name = experiment_name('adapt_ema')
    out = tmp_path / 'out'
    assert adapt.main([
        '--model', data['model'], '--opt', data['opt'], '--source-gt',
        osp.join(data['source'], 'gt'), '--target', data['pile'], '--name', name, '--out',
        str(out), '--iters', '3', '--batch', '2', '--patch', '32', '--device', 'cpu', '--recipe', 'expert', '--lr',
        '1e-2', '--ema', '0.5'
    ]) == 0
    assert yaml.safe_load((out / f'{name}.yml').read_text())['train']['ema_decay'] == 0.5
    saved = torch.load(latest_generator(name, str(out)), weights_only=True)
    summary = json.loads((out / 'report.json').read_text())
    routed = torch.load(summary['routed']['checkpoint'], weights_only=True)['params']
    expert = {k: routed[f'experts.1.{k}'] for k in saved['params_ema']}
    assert all(torch.equal(expert[k], saved['params_ema'][k]) for k in expert)
    assert not all(torch.equal(expert[k], saved['params'][k]) for k in expert)


def test_routed_model_reads_the_quality_of_non_jpeg_targets_from_their_pixels(data, experiment_name, tmp_path):
    """A target that is not a JPEG file (here a PNG of a QF-50 JPEG's pixels) has no quantisation tables to read:
    the histogram, and so the routed model, take its quality from its pixels."""
    name = experiment_name('routed_png')
    os.makedirs(osp.join(experiment_dir(name, str(tmp_path)), 'models'))  # --out tmp_path: the training's root
    shutil.copy(data['model'], latest_generator(name, str(tmp_path)))
    png = str(tmp_path / 'img001.png')
    cv2.imwrite(png, cv2.imread(osp.join(data['pile'], 'sub', 'img001.jpg'), cv2.IMREAD_GRAYSCALE))
    jpeg = osp.join(data['pile'], 'sub', 'img003.jpg')  # QF 90, read from the file
    args = parsed_args(data, osp.join(data['source'], 'qf10'), str(tmp_path), tmp_path, '--name', name)
    target = quality_histogram([png, jpeg])
    assert target == {50: 1, 90: 1}
    histograms = {'source': (args.source_lq, {10: 6}), 'target': (args.target, target)}
    routed = adapt.write_routed_model(args, histograms)
    assert routed['experts'] == [[10], [50, 90]]
    assert osp.isfile(routed['checkpoint']) and osp.isfile(routed['options'])


def adapt_argv(data, source_gt, source_lq, target, out, *extra):
    return [
        '--model', data['model'], '--opt', data['opt'], '--source-gt', source_gt, '--source-lq', source_lq, '--target',
        target, '--out',
        str(out), '--iters', '1', '--batch', '2', '--patch', '32', '--device', 'cpu', *extra
    ]


def refused(argv, capfd):
    """The one-line error of ``carn-da adapt`` (exit 2), with nothing trained."""
    with pytest.raises(SystemExit) as exit_:
        adapt.main(argv)
    err = capfd.readouterr().err
    assert exit_.value.code == 2, err
    assert err.splitlines()[-1].startswith('carn-da adapt: error: '), err  # after the usage for argument errors
    return err.splitlines()[-1]


@pytest.mark.parametrize('recipe', ['recommended', 'paper'])
def test_a_source_jpeg_without_its_ground_truth_is_refused(data, tmp_path, capfd, recipe):
    """The recommended recipe never reads the source JPEGs in training (it compresses the ground truths), so a
    folder of other images used to train silently; both recipes now refuse it before anything is built."""
    lq = tmp_path / 'lq'
    shutil.copytree(osp.join(data['source'], 'qf10'), lq)
    os.rename(lq / 'img005.jpg', lq / 'other.jpg')
    out = tmp_path / 'out'
    err = refused(
        adapt_argv(data, osp.join(data['source'], 'gt'), str(lq), data['pile'], out, '--recipe', recipe), capfd)
    assert '--source-lq: 1 LQ image(s) without a GT of the same stem' in err and 'other.jpg' in err
    assert 'img005.png' in err  # and the ground truth left without its JPEG
    assert not osp.exists(out)


def test_lmdb_sources_pair_by_their_keys(data, tmp_path, capfd):
    for name, keys in (('gt.lmdb', 'abc'), ('lq.lmdb', 'abd')):
        os.makedirs(tmp_path / name)
        (tmp_path / name / 'meta_info.txt').write_text(''.join(f'{k}.png (40,48,1) 1\n' for k in keys))
    err = refused(
        adapt_argv(data, str(tmp_path / 'gt.lmdb'), str(tmp_path / 'lq.lmdb'), data['pile'], tmp_path / 'o'), capfd)
    assert '--source-lq: 1 LQ image(s) without a GT of the same stem' in err and ': d.' in err
    err = refused(
        adapt_argv(data, str(tmp_path / 'gt.lmdb'), osp.join(data['source'], 'qf10'), data['pile'], tmp_path / 'o'),
        capfd)
    assert 'both LMDBs' in err


def test_out_naming_a_file_is_refused(data, tmp_path, capfd):
    out = tmp_path / 'report.txt'
    out.write_text('mine')
    err = refused(
        adapt_argv(data, osp.join(data['source'], 'gt'), osp.join(data['source'], 'qf10'), data['pile'], out), capfd)
    assert f'--out: {out} is a file, not a folder' in err
    assert out.read_text() == 'mine'


@pytest.mark.parametrize('option, value, message', [
    ('--lambda', '-0.1', '--lambda must be a number >= 0, got -0.1'),
    ('--lambda', 'nan', '--lambda must be a number >= 0, got nan'),
    ('--lr', '0', '--lr must be a number > 0, got 0.0'),
    ('--lr', '-1e-4', '--lr must be a number > 0, got -0.0001'),
    ('--lr', 'inf', '--lr must be a number > 0, got inf'),
    ('--seed', '-1', '--seed must be between 0 and 4294967295, got -1'),
    ('--eval-images', '0', '--eval-images must be at least 1'),
    ('--iters', '0', '--iters must be at least 1'),
    ('--ema', '1', '--ema must be at least 0 and below 1, got 1.0'),
    ('--ema', 'nan', '--ema must be at least 0 and below 1, got nan'),
])
def test_numeric_arguments_out_of_range_are_refused(data, tmp_path, capfd, option, value, message):
    argv = adapt_argv(data, osp.join(data['source'], 'gt'), osp.join(data['source'], 'qf10'), data['pile'], tmp_path)
    assert refused(argv + [f'{option}={value}'], capfd) == f'carn-da adapt: error: {message}'


def test_targets_that_do_not_decode_are_left_out_of_the_report_and_named(data, experiment_name, tmp_path, monkeypatch,
                                                                         capfd):
    """A truncated target keeps its header (and quantisation tables) but does not decode: it is skipped by the
    measurement and the training, so the histogram and the counts leave it out, and the report names it. (The
    training is replaced by a copy of the source model: this is about the report.)"""
    name = experiment_name('adapt_truncated')
    target = tmp_path / 'pile'
    shutil.copytree(data['pile'], target)
    jpeg = (target / 'img000.jpg').read_bytes()
    (target / 'broken.jpg').write_bytes(jpeg[:jpeg.find(b'\xff\xda') + 20])  # QF 30 in its header, cut in its scan
    png = tmp_path / 'x.png'
    cv2.imwrite(str(png), cv2.imread(str(target / 'img000.jpg'), cv2.IMREAD_GRAYSCALE))
    (target / 'sub' / 'cut.png').write_bytes(png.read_bytes()[:200])  # not a JPEG: no header quality

    def trained(opt_path, *args, root):
        os.makedirs(osp.dirname(latest_generator(name, root)))
        shutil.copy(data['model'], latest_generator(name, root))

    monkeypatch.setattr(adapt, 'train', trained)
    out = tmp_path / 'out'
    argv = adapt_argv(data, osp.join(data['source'], 'gt'), osp.join(data['source'], 'qf10'), str(target), out,
                      '--name', name, '--target-quality', 'pixels')
    assert adapt.main(argv) == 0, capfd.readouterr().err
    report = (out / 'report.md').read_text()
    assert f'| target | `{target}` | 4 | QF 30: 1, QF 50: 1, QF 70: 1, QF 90: 1 |' in report
    assert 'Skipped 2 target images that do not decode (not counted, measured or trained on): broken.jpg, ' \
        'sub/cut.png' in report
    summary = json.loads((out / 'report.json').read_text())
    assert summary['qf_histograms']['target'] == {str(qf): 1 for qf in PILE_QFS}
    assert summary['skipped_targets'] == ['broken.jpg', 'sub/cut.png'] and summary['measured_images'] == 4
    assert summary['routed']['experts'] == [[10], list(PILE_QFS)]


def test_a_pile_alone_adapts_the_shipped_model_and_restores_the_pile(data, experiment_name, tmp_path, monkeypatch,
                                                                     capfd):
    """``carn-da adapt --target PILE --restore OUT``: the shipped blind model adapted with scikit-image's photos;
    the routed model is the shipped default one with the adapted model in front for the pile's qualities."""
    weights = tmp_path / 'weights'
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append(RDN(**{k: v for k, v in TINY_RDN.items() if k != 'type'}).state_dict())
    zoo.ship(str(weights), 'tiny-blind', states[0], TINY_RDN, '# blind\n', 'blind', roles=['adapt_source'])
    routed_state = {f'experts.{k}.{name}': v for k, state in enumerate(states) for name, v in state.items()}
    network = recipes.routed_pair([(TINY_RDN, None), (TINY_RDN, [10])])
    zoo.ship(str(weights), 'tiny', routed_state, network, '# routed\n', 'routed', roles=['default'])
    monkeypatch.setenv('CARN_DA_MODELS', str(weights))
    name, out, restored = experiment_name('adapt_pile_alone'), tmp_path / 'out', tmp_path / 'restored'
    argv = [
        '--target', data['pile'], '--name', name, '--out', out, '--restore', restored, '--iters', 2, '--batch', 2,
        '--patch', 32, '--device', 'cpu'
    ]
    assert adapt.main(list(map(str, argv))) == 0
    report = capfd.readouterr().out
    assert 'the shipped model tiny (its experts and blind fallback) for every other quality and as it' in report
    assert '4 restored, 0 skipped (outputs exist), 0 failed' in report
    assert sorted(os.listdir(out / 'source_photos')) == sorted(f'{photo}.png' for photo in images.SAMPLE_PHOTOS)
    assert str(out / 'source_photos') in (out / f'{name}.yml').read_text()
    summary = json.loads((out / 'report.json').read_text())
    router, _ = load_model(summary['routed']['checkpoint'], summary['routed']['options'])
    assert router.qualities == [list(PILE_QFS), [], [10]]
    adapted, _ = load_model(latest_generator(name, str(out)), data['opt'])
    shipped_qf10, _ = load_model(*zoo.resolve_model('tiny', None))
    for path, expert in ((osp.join(data['pile'],
                                   'img000.jpg'), adapted), (osp.join(data['source'], 'qf10',
                                                                      'img000.jpg'), shipped_qf10.experts[1])):
        x = torch.from_numpy(cv2.imread(path, cv2.IMREAD_GRAYSCALE)).float().div(255)[None, None]
        with torch.no_grad():
            assert torch.allclose(router(x), expert(x), atol=1e-6), path
    rows = list(csv.DictReader(open(out / 'restore_report.csv', encoding='utf-8')))
    assert [row['status'] for row in rows] == ['restored'] * 4
    assert {row['restored_by'] for row in rows} == {'QF 30,50,70,90'}
    assert (restored / 'sub' / 'img001.png').is_file()

    # refused before any training: a routed model as the source, and restoring into the pile itself
    for extra, message in ((['--model', 'tiny'], '--model .* is a routed model'), (['--restore', data['pile']],
                                                                                   '--restore .* is the input folder')):
        argv = ['--target', data['pile'], '--name', name + '_refused', '--out', tmp_path / 'refused', *extra]
        assert re.search(message, refused(list(map(str, argv)), capfd))
    assert not (tmp_path / 'refused' / 'experiments').exists()
