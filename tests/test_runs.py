import os
import pytest
import torch
from os import path as osp
from tiny import REPO, train_options

from carn_da.runs import changed_options, experiment_dir, latest_generator, train, train_unless_done
from carn_da.utils.files import write_options


def test_changed_options_names_the_dotted_keys_that_differ():
    old = {'train': {'optim_g': {'lr': 1e-4}, 'total_iter': 300}, 'name': 'a'}
    new = {'train': {'optim_g': {'lr': 5e-4}, 'total_iter': 300, 'q_steps': 5}, 'name': 'a'}
    assert changed_options(old, new) == ['train.optim_g.lr', 'train.q_steps']
    assert changed_options(old, old) == []


def test_a_finished_experiment_is_reused_only_with_the_options_it_recorded(experiment_name, tmp_path):
    name = experiment_name('reuse')
    opt = {'name': name, 'datasets': {'train': {'batch_size_per_gpu': 8}}, 'logger': {'print_freq': 10}}
    os.makedirs(osp.dirname(latest_generator(name, REPO)))
    open(latest_generator(name, REPO), 'wb').close()
    recorded = write_options(opt, osp.join(experiment_dir(name, REPO), f'{name}.yml'))  # what BasicSR copies there

    assert train_unless_done(dict(opt, logger={'print_freq': 1}), str(tmp_path), REPO) == 0.0  # the logger may differ
    with pytest.raises(ValueError, match=rf'datasets\.train\.batch_size_per_gpu in {recorded}'):
        train_unless_done(dict(opt, datasets={'train': {'batch_size_per_gpu': 4}}), str(tmp_path), REPO)


def test_an_unfinished_experiment_is_resumed_only_with_the_options_it_recorded(experiment_name, tmp_path):
    name = experiment_name('unfinished')
    opt = {'name': name, 'train': {'total_iter': 300}, 'logger': {'print_freq': 10}}
    recorded = write_options(opt, osp.join(experiment_dir(name, REPO), f'{name}.yml'))  # no checkpoint: killed early

    with pytest.raises(ValueError, match=rf'train\.total_iter in {recorded}'):
        train_unless_done(dict(opt, train={'total_iter': 600}), str(tmp_path), REPO, resume=True)


def test_preloaded_trainings_train_what_a_new_interpreter_trains(jpeg_dataset, experiment_name, tmp_path):
    names = [experiment_name('preloaded1'), experiment_name('preloaded2'), experiment_name('interpreter')]
    for name, preloaded in zip(names, (True, True, False)):
        train(
            write_options(train_options(name, jpeg_dataset), tmp_path / f'{name}.yml'),
            root=REPO,
            quiet=True,
            preloaded=preloaded)
    weights = [torch.load(latest_generator(name, REPO), weights_only=True)['params'] for name in names]
    for other in weights[1:]:
        assert other.keys() == weights[0].keys()
        assert all(torch.equal(other[k], weights[0][k]) for k in weights[0])
    for name in names[:2]:  # each its own log: the second does not log into the first's file
        log = next(f.path for f in os.scandir(experiment_dir(name, REPO)) if f.name.startswith('train_'))
        with open(log, encoding='utf-8') as f:
            assert f'name: {name}' in f.read()


def test_a_failed_preloaded_training_raises_naming_its_options(jpeg_dataset, experiment_name, tmp_path):
    opt = train_options(experiment_name('broken'), jpeg_dataset)
    opt['datasets']['train']['dataroot_lq'] = str(tmp_path / 'missing')
    path = write_options(opt, tmp_path / 'broken.yml')
    with pytest.raises(RuntimeError, match=rf'training failed \(exit 1\): .*{path}'):
        train(path, root=REPO, quiet=True, preloaded=True)


def test_an_interrupted_training_resumes_from_its_last_state(jpeg_dataset, experiment_name, tmp_path):
    """resume=True: a training killed after its state at iteration 8 continues from there (BasicSR's auto_resume)
    and ends with the weights of an uninterrupted run."""
    name = experiment_name('resumed')
    opt = train_options(name, jpeg_dataset, model_type='CARNModel')
    train_unless_done(opt, str(tmp_path), REPO, resume=True)
    whole = torch.load(latest_generator(name, REPO), weights_only=True)['params']
    folder = experiment_dir(name, REPO)
    for path in (latest_generator(name, REPO), osp.join(folder, 'models',
                                                        'net_g_16.pth'), osp.join(folder, 'training_states',
                                                                                  '16.state')):
        os.remove(path)  # as if killed between the states of iterations 8 and 16
    assert train_unless_done(opt, str(tmp_path), REPO, resume=True) > 0
    resumed = torch.load(latest_generator(name, REPO), weights_only=True)['params']
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    logs = sorted(f.path for f in os.scandir(folder) if f.name.startswith('train_'))
    with open(logs[-1], encoding='utf-8') as f:  # the same folder (none archived), a run that resumed
        assert 'Resuming training from epoch' in f.read()
    assert not [f for f in os.listdir(osp.dirname(folder)) if f.startswith(f'{name}_archived')]
