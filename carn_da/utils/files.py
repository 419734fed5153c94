"""Writing outputs atomically (a reader never sees a partial file) and reading and writing option files."""
import json
import os
import stat
import tempfile
import torch
import yaml
from os import path as osp

from carn_da.utils.errors import UserError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# the permissions open() gives a new file (mkstemp's temporary files are private: 0o600)
NEW_FILE_MODE = 0o666 & ~_umask()


def write_atomic(path, data):
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path`` through a unique hidden
    temporary file in its folder, synced to disk, then renamed.

    ``path`` is the old file or the whole new one, even if the process is killed while writing; two runs writing
    into one folder never share a temporary file, and no file of the user's is touched but ``path``.
    """
    folder = osp.dirname(path) or '.'
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, NEW_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return path


def is_regular_file(path):
    """Whether ``path`` is a regular file (links followed), told without opening it: a FIFO, socket or device is
    never opened."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def file_id(path):
    """(device, inode) of the file at ``path`` (links followed), or None if there is none: two paths with one id
    are one file, whether through a symbolic or a hard link."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat.st_dev, stat.st_ino


def file_ids(paths):
    """{file id: path} of the ``paths`` that exist (see :func:`file_id`)."""
    ids = {file_id(path): path for path in paths}
    ids.pop(None, None)
    return ids


def check_output_folder(folder, option='-o'):
    """Make the output folder ``folder`` (of the option ``option``) if needed and check that a file can be written
    in it; UserError naming it if not. A probe file is written and removed again."""
    if osp.exists(folder) and not osp.isdir(folder):
        raise UserError(f'{option} {folder} is a file; expected a folder.')
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise UserError(f'{option} {folder}: cannot create the folder ({error.strerror}).') from error
    try:
        fd, probe = tempfile.mkstemp(prefix='.carn-da-probe.', dir=folder)
    except OSError as error:
        raise UserError(f'{option} {folder}: cannot write in the folder ({error.strerror}).') from error
    os.close(fd)
    os.remove(probe)
    return folder


def check_outputs_spare_inputs(outputs, inputs, option):
    """UserError if any of the ``outputs`` paths is (or links to) one of the ``inputs`` files, naming both."""
    ids = file_ids(inputs)
    for output in outputs:
        if file_id(output) in ids:
            raise UserError(f'{option}: the output {output} would replace the input {ids[file_id(output)]}; choose '
                            f'another {option}.')


def read_json(path):
    """The JSON file ``path`` (a cache or report of ours), or {} when there is none yet."""
    if not osp.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def save_torch_atomic(obj, path):
    """``torch.save(obj, path)`` through :func:`write_atomic` (network checkpoints, training states, routed models)."""
    return write_atomic(path, lambda f: torch.save(obj, f))


def load_options(path):
    """The options of a YAML option file."""
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def write_options(opt, path):
    """Write the options ``opt`` as a YAML option file (keys in order) at ``path``; returns ``path``."""
    return write_atomic(path, yaml.safe_dump(opt, sort_keys=False).encode('utf-8'))
