"""Tiny networks and the options of the tests' models and trainings: they build and train in moments on a CPU."""
from os import path as osp

from carn_da import recipes

# the checkout the tests run in: its experiments/, tb_logger/, options/ and scripts/
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

TINY_RDN = {'type': 'RDN', 'num_in_ch': 1, 'num_out_ch': 1, 'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 8}
TINY_Q = {'type': 'QualityDiscriminator', 'num_feat': 8, 'hidden': 16, 'pooling': 'avgstd'}


def model_options(model_type='CARNDAModel', network_g=TINY_RDN, pixel_weight=1.0):
    """Options of a model built in the test's process (those BasicSR's pipeline would add included): the paper's DA
    (recipes.with_discriminator, TINY_Q at lambda 0.5) of ``network_g`` whatever ``model_type``, no data or logger."""
    train = dict(recipes.schedule(10, 1e-3, [100]), pixel_opt=dict(recipes.L1, loss_weight=pixel_weight))
    opt = recipes.supervised('unit', dict(network_g), None, train, None, num_gpu=0)
    del opt['datasets'], opt['logger']
    opt.update(model_type=model_type, is_train=True, dist=False, rank=0, world_size=1)
    return recipes.with_discriminator(opt, dict(TINY_Q), lambda_=0.5)


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
    iterations an epoch in batches of 2), with its QF 70 images as the target domain of CARNDAModel (the paper's DA,
    recipes.paper_da, with TINY_Q on Ganin's schedule; CARNModel: recipes.sq); validated every ``val_freq``
    iterations at the QF of the target domain, or not at all."""
    pairs = recipes.prepared_pairs('train', data['train'], 10, patch_size, batch_size, enlarge=1)
    train = recipes.schedule(total_iter, 1e-3, [milestone])
    log = recipes.logger(print_freq, checkpoint, tb_logger)
    val_qf = 70 if model_type == 'CARNDAModel' else 10
    val = None
    if val_freq:
        val_set = recipes.test_pairs('val', osp.join(data['val'], 'gt'), osp.join(data['val'], f'qf{val_qf}'))
        val = ({'val': val_set}, val_freq, False)
    common = dict(num_gpu=0, val=val)
    if model_type != 'CARNDAModel':
        return dict(recipes.sq(name, dict(network_g), pairs, train, log, **common), model_type=model_type)
    train_set = recipes.two_domains(pairs, osp.join(data['train'], 'qf70'))
    return recipes.paper_da(
        name, dict(network_g), train_set, train, log, None, dict(TINY_Q), domain={'schedule': 'ganin'}, **common)
