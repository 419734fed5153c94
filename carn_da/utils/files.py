"""Writing outputs atomically (a reader never sees a partial file) and reading and writing option files."""
import io
import os
import tempfile
import torch
import yaml
from os import path as osp


def write_atomic(path, data):
    """Write the bytes ``data`` to ``path`` through a unique hidden temporary file in its folder, then rename it.

    An interrupted run leaves no partial output, two runs writing into one folder never share a temporary file, and
    no file of the user's is touched but ``path``.
    """
    folder = osp.dirname(path) or '.'
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return path


def save_torch_atomic(obj, path):
    """``torch.save(obj, path)`` through :func:`write_atomic`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_atomic(path, buffer.getvalue())


def load_options(path):
    """The options of a YAML option file."""
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def write_options(opt, path):
    """Write the options ``opt`` as a YAML option file (keys in order) at ``path``; returns ``path``."""
    return write_atomic(path, yaml.safe_dump(opt, sort_keys=False).encode('utf-8'))
