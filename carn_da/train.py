"""Train with BasicSR: ``python carn_da/train.py -opt options/X.yml`` (``python -m carn_da.train``, ``carn-da train``).

BasicSR's ``basicsr/train.py`` cannot see the plugin (BasicSR loads no plugins; see the README). The experiment and
its TensorBoard log go under the current folder (``experiments/<name>``, ``tb_logger/<name>``), where the relative
paths of the option file are read from too.
"""
import os

from carn_da.pipelines import train_pipeline

if __name__ == '__main__':
    train_pipeline(os.getcwd())
