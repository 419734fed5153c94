"""Test with BasicSR: ``python carn_da/test.py -opt options/X.yml`` (or ``python -m carn_da.test -opt ...``)."""
from os import path as osp

from carn_da.pipelines import test_pipeline

if __name__ == '__main__':
    test_pipeline(osp.abspath(osp.join(__file__, osp.pardir, osp.pardir)))
