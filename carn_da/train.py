"""Train with BasicSR: ``python carn_da/train.py -opt options/X.yml`` (``python -m carn_da.train``, ``carn-da train``).

BasicSR's ``basicsr/train.py`` cannot see the plugin (BasicSR loads no plugins; see the README). The experiment and
its TensorBoard log go under the current folder (``experiments/<name>``, ``tb_logger/<name>``), where the relative
paths of the option file are read from too.
"""
import sys

from carn_da.pipelines import run_in_current_folder, train_pipeline

if __name__ == '__main__':
    sys.exit(run_in_current_folder(train_pipeline, 'carn_da.train'))
