"""Train with BasicSR: ``python carn_da/train.py -opt options/X.yml`` (or ``python -m carn_da.train -opt ...``)."""
from os import path as osp

from carn_da.pipelines import train_pipeline

if __name__ == '__main__':
    train_pipeline(osp.abspath(osp.join(__file__, osp.pardir, osp.pardir)))
