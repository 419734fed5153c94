"""Values that BasicSR's message logger wrote in the training logs of an experiment."""
import os
import re
from os import path as osp


def logged_values(experiment_dir, key):
    """{iteration: value} of ``key`` (e.g. 'acc_q', 'l_pix', 'time (data)') in the ``train_*.log`` files of
    ``experiment_dir``, in order of iteration; a later log (a resumed run) wins."""
    pattern = re.compile(rf'iter:\s*([\d,]+),.*?\b{re.escape(key)}: ([-+\d.eE]+|nan|inf)')
    logs = sorted(f for f in os.listdir(experiment_dir) if f.startswith('train_') and f.endswith('.log'))
    values = {}
    for log in logs:
        with open(osp.join(experiment_dir, log), encoding='utf-8') as f:
            values.update((int(it.replace(',', '')), float(value)) for it, value in pattern.findall(f.read()))
    return dict(sorted(values.items()))
