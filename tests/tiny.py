"""Tiny networks and the options of the tests' models and trainings: they build and train in moments on a CPU."""
from os import path as osp

from carn_da.recipes import VALIDATION_METRICS

# the checkout the tests run in: its experiments/, tb_logger/, options/ and scripts/
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

TINY_RDN = {'type': 'RDN', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 8}
TINY_Q = {'type': 'QualityDiscriminator', 'num_feat': 8, 'hidden': 16, 'pooling': 'avgstd'}


def model_options(model_type='CARNDAModel', network_g=TINY_RDN, pixel_weight=1.0):
    """Options of a model built in the test's process (those BasicSR's pipeline would add included)."""
    return {
        'name': 'unit',
        'model_type': model_type,
        'is_train': True,
        'dist': False,
        'num_gpu': 0,
        'rank': 0,
        'world_size': 1,
        'network_g': dict(network_g),
        'network_q': dict(TINY_Q),
        'path': {},
        'train': {
            'optim_g': {
                'type': 'Adam',
                'lr': 1e-3
            },
            'optim_q': {
                'type': 'Adam',
                'lr': 1e-3
            },
            'scheduler': {
                'type': 'MultiStepLR',
                'milestones': [100],
                'gamma': 0.5
            },
            'total_iter': 10,
            'pixel_opt': {
                'type': 'L1Loss',
                'loss_weight': pixel_weight
            },
            'domain_opt': {
                'type': 'DomainAdversarialLoss',
                'loss_weight': 0.5
            }
        }
    }


def train_options(name,
                  data,
                  model_type='CARNDAModel',
                  network_g=TINY_RDN,
                  total_iter=16,
                  milestone=10,
                  checkpoint=8,
                  batch_size=2,
                  patch_size=24,
                  print_freq=1,
                  tb_logger=False,
                  val_freq=None):
    """Options of carn_da/train.py for a training on ``data`` (conftest's jpeg_dataset): its 6 pairs of QF 10 (so 3
    iterations an epoch in batches of 2), with its QF 70 images as the target domain of CARNDAModel; validated every
    ``val_freq`` iterations at the QF of the target domain, or not at all."""
    train_set = {
        'name': 'train',
        'type': 'JPEGPairedDataset',
        'dataroot_gt': osp.join(data['train'], 'gt'),
        'dataroot_lq': osp.join(data['train'], 'qf10'),
        'io_backend': {
            'type': 'disk'
        },
        'gt_size': patch_size,
        'use_hflip': True,
        'use_rot': True,
        'num_worker_per_gpu': 0,
        'batch_size_per_gpu': batch_size
    }
    opt = {
        'name': name,
        'model_type': model_type,
        'num_gpu': 0,
        'manual_seed': 0,
        'network_g': dict(network_g),
        'path': {
            'resume_state': None
        },
        'datasets': {
            'train': train_set
        },
        'train': {
            'optim_g': {
                'type': 'Adam',
                'lr': 1e-3
            },
            'scheduler': {
                'type': 'MultiStepLR',
                'milestones': [milestone],
                'gamma': 0.5
            },
            'total_iter': total_iter,
            'warmup_iter': -1,
            'pixel_opt': {
                'type': 'L1Loss'
            }
        },
        'logger': {
            'print_freq': print_freq,
            'save_checkpoint_freq': checkpoint,
            'use_tb_logger': tb_logger
        }
    }
    val_qf = 10
    if model_type == 'CARNDAModel':
        train_set.update(type='TwoDomainDataset', dataroot_target=osp.join(data['train'], 'qf70'))
        opt['network_q'] = dict(TINY_Q)
        opt['train']['optim_q'] = {'type': 'Adam', 'lr': 1e-3}
        opt['train']['domain_opt'] = {'type': 'DomainAdversarialLoss', 'loss_weight': 0.1, 'schedule': 'ganin'}
        val_qf = 70
    if val_freq:
        opt['datasets']['val'] = {
            'name': 'val',
            'type': 'JPEGPairedDataset',
            'dataroot_gt': osp.join(data['val'], 'gt'),
            'dataroot_lq': osp.join(data['val'], f'qf{val_qf}'),
            'io_backend': {
                'type': 'disk'
            }
        }
        opt['val'] = {'val_freq': val_freq, 'save_img': False, 'metrics': VALIDATION_METRICS}
    return opt
