import os
import pytest
from os import path as osp

from carn_da.runs import changed_options, experiment_dir, latest_generator, train_unless_done, write_options


def test_changed_options_names_the_dotted_keys_that_differ():
    old = {'train': {'optim_g': {'lr': 1e-4}, 'total_iter': 300}, 'name': 'a'}
    new = {'train': {'optim_g': {'lr': 5e-4}, 'total_iter': 300, 'q_steps': 5}, 'name': 'a'}
    assert changed_options(old, new) == ['train.optim_g.lr', 'train.q_steps']
    assert changed_options(old, old) == []


def test_a_finished_experiment_is_reused_only_with_the_options_it_recorded(experiment_name, tmp_path):
    name = experiment_name('reuse')
    opt = {'name': name, 'datasets': {'train': {'batch_size_per_gpu': 8}}, 'logger': {'print_freq': 10}}
    os.makedirs(osp.dirname(latest_generator(name)))
    open(latest_generator(name), 'wb').close()
    recorded = write_options(opt, osp.join(experiment_dir(name), f'{name}.yml'))  # what BasicSR copies there

    assert train_unless_done(dict(opt, logger={'print_freq': 1}), str(tmp_path)) == 0.0  # the logger may differ
    with pytest.raises(ValueError, match=rf'datasets\.train\.batch_size_per_gpu in {recorded}'):
        train_unless_done(dict(opt, datasets={'train': {'batch_size_per_gpu': 4}}), str(tmp_path))
