"""DistributedDataParallel on CPU (gloo, 2 processes): ranks stay identical, data is sharded, one step of two ranks
with batch B is one single-process step with batch 2B."""
import carn_da.compat  # noqa: F401

import copy
import os
import pytest
import socket
import sys
import torch
from basicsr import train as basicsr_train
from os import path as osp
from tiny import REPO, model_options, train_options
from torch import distributed as dist
from torch import multiprocessing

from carn_da.models.carn_da_model import CARNDAModel
from carn_da.models.carn_model import CARNModel
from carn_da.pipelines import train_pipeline
from carn_da.runs import experiment_dir
from carn_da.utils.files import write_options

MODELS = {'CARNModel': CARNModel, 'CARNDAModel': CARNDAModel}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_two_ranks(fn, *args):
    """``fn(rank, port, *args)`` in 2 forked processes (they inherit the imports, so start at once)."""
    multiprocessing.start_processes(fn, (free_port(), *args), nprocs=2, start_method='fork')


def bare_state(model, net):
    return {k: v.detach().clone() for k, v in model.get_bare_model(getattr(model, net)).state_dict().items()}


def train_rank(rank, port, opt_path, out_dir):
    """Rank ``rank`` of ``torchrun --nproc_per_node=2 carn_da/train.py -opt opt_path --launcher pytorch``: torchrun's
    environment, then the pipeline; saves its final networks and the paths of its batches to ``out_dir``."""
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE='2',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        CARN_DA_DIST_BACKEND='gloo')
    sys.argv = ['carn_da/train.py', '-opt', opt_path, '--launcher', 'pytorch']
    models, batches = [], []
    build_model = basicsr_train.build_model

    def build(opt):
        models.append(build_model(opt))
        feed_data = models[0].feed_data

        def recorded_feed_data(data):
            if 'target_path' in data:  # training batches (validation batches have no target)
                batches.append((data['lq_path'], data['target_path']))
            feed_data(data)

        models[0].feed_data = recorded_feed_data
        return models[0]

    basicsr_train.build_model = build
    train_pipeline(REPO)
    torch.save({
        'net_g': bare_state(models[0], 'net_g'),
        'net_q': bare_state(models[0], 'net_q'),
        'batches': batches
    }, osp.join(out_dir, f'rank{rank}.pth'))


def test_two_gloo_ranks_train_identical_networks_on_disjoint_shards(jpeg_dataset, experiment_name, tmp_path):
    name = experiment_name('ddp')
    train = jpeg_dataset['train']
    opt = train_options(name, jpeg_dataset, total_iter=6, milestone=4, checkpoint=3, batch_size=1, val_freq=6)
    start_two_ranks(train_rank, str(write_options(opt, tmp_path / 'ddp.yml')), str(tmp_path))
    ranks = [torch.load(tmp_path / f'rank{rank}.pth', weights_only=True) for rank in range(2)]
    saved = {
        net: torch.load(osp.join(experiment_dir(name, REPO), 'models', f'{net}_latest.pth'), weights_only=True)
        for net in ('net_g', 'net_q')
    }
    for net in ('net_g', 'net_q'):
        assert ranks[0][net].keys() == ranks[1][net].keys() == saved[net]['params'].keys()
        for key, value in ranks[0][net].items():
            assert torch.equal(value, ranks[1][net][key]) and torch.equal(value, saved[net]['params'][key]), key

    # 6 source pairs, 2 ranks, batch 1: each epoch of 3 iterations shows every pair once, on one rank
    sources = [[osp.basename(paths[0]) for paths, _ in rank['batches']] for rank in ranks]
    assert len(sources[0]) == len(sources[1]) == 6
    for epoch in (slice(0, 3), slice(3, 6)):
        assert sorted(sources[0][epoch] + sources[1][epoch]) == sorted(os.listdir(osp.join(train, 'qf10')))
    targets = [[paths[0] for _, paths in rank['batches']] for rank in ranks]
    assert targets[0] != targets[1]  # python's random is seeded per rank

    state = torch.load(osp.join(experiment_dir(name, REPO), 'training_states', '3.state'), weights_only=True)
    assert len(state['rng']) == 2 and state['rng'][0]['python'] != state['rng'][1]['python']


def batch(rank=None):
    """A fixed batch of 4 source pairs and 4 target images; ``rank`` 0 or 1 takes half of each."""
    gen = torch.Generator().manual_seed(1)
    gt = torch.rand(4, 1, 16, 16, generator=gen)
    data = {
        'lq': (gt + 0.1 * torch.randn(gt.shape, generator=gen)).clamp(0, 1),
        'gt': gt,
        'lq_target': torch.rand(4, 1, 16, 16, generator=gen)
    }
    return data if rank is None else {k: v[2 * rank:2 * rank + 2] for k, v in data.items()}


def one_step(model_type, rank=None):
    """Networks and log after one step from the same initial weights, of one process or of rank ``rank`` of 2."""
    opt = copy.deepcopy(model_options(model_type))
    if rank is not None:
        opt.update(dist=True, rank=rank, world_size=2)
    torch.manual_seed(0)
    model = MODELS[model_type](opt)
    model.feed_data(batch(rank))
    model.optimize_parameters(1)
    nets = ['net_g', 'net_q'] if model_type == 'CARNDAModel' else ['net_g']
    return {'log': model.get_current_log(), **{net: bare_state(model, net) for net in nets}}


def step_rank(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    torch.save({model_type: one_step(model_type, rank) for model_type in MODELS}, osp.join(out_dir, f'{rank}.pth'))


def test_one_step_of_two_ranks_equals_one_step_with_their_batches_together(tmp_path):
    start_two_ranks(step_rank, str(tmp_path))
    ranks = [torch.load(tmp_path / f'{rank}.pth', weights_only=True) for rank in range(2)]
    for model_type in MODELS:
        single = one_step(model_type)
        torch.manual_seed(0)
        initial = MODELS[model_type](copy.deepcopy(model_options(model_type))).net_g.state_dict()
        assert not torch.allclose(single['net_g']['sfe1.weight'], initial['sfe1.weight'])
        for net in single.keys() - {'log'}:
            for key, value in single[net].items():
                assert torch.equal(ranks[0][model_type][net][key], ranks[1][model_type][net][key]), key
                torch.testing.assert_close(ranks[0][model_type][net][key], value, rtol=0, atol=1e-5)
        log = ranks[0][model_type]['log']  # rank 0's log holds the losses averaged over the ranks
        assert log.keys() == single['log'].keys()
        for key, value in single['log'].items():
            assert log[key] == pytest.approx(value, abs=1e-5), key
        if model_type == 'CARNDAModel':
            assert log.keys() == {'l_pix', 'l_domain', 'acc_q', 'lambda'} and type(log['lambda']) is float
