"""Restoring files: which inputs, which expert, the outputs written atomically and the per-image report (what
``carn-da restore`` and ``carn-da adapt --restore`` do; see carn_da/restore.py for the rules)."""
import csv
import fnmatch
import io
import numpy as np
import os
import sys
import torch
from os import path as osp
from PIL import UnidentifiedImageError
from tqdm import tqdm

from carn_da.data.image_pairs import scan_images
from carn_da.utils.errors import BadInput, UserError
from carn_da.utils.files import file_id, file_ids, write_atomic
from carn_da.utils.images import ORIENT, STDIN, decode, encode, read_input
from carn_da.utils.jpeg import read_jpeg_quality, read_pixel_quality


def list_inputs(source, pattern, out_dir, option='-o'):
    """[(input path or ``-``, output path without extension, relative to the output folder)] of INPUT.

    A folder is searched recursively (hidden entries, and ``out_dir`` if it lies inside, are left out) for the
    images of :func:`carn_da.data.image_pairs.scan_images` or, with ``pattern``, the files whose relative path
    matches it (fnmatch, case-insensitive, ``*`` also matches ``/``). Any other INPUT is one input (a file that is
    not a regular one fails when it is read). UserError if INPUT does not exist or is ``out_dir`` (named as the
    command's ``option``).
    """
    if source == STDIN:
        return [(STDIN, 'stdin')]
    if not osp.exists(source):
        raise UserError(f'Input {source} does not exist.')
    if not osp.isdir(source):
        return [(source, osp.splitext(osp.basename(source))[0])]
    real_source, real_out = osp.realpath(source) + os.sep, osp.realpath(out_dir) + os.sep
    if real_out == real_source:
        raise UserError(
            f'{option} {out_dir} is the input folder {source}: the outputs would lie among its images; {option} must '
            'differ from INPUT.')
    if pattern is None:
        rels = scan_images(source)
    else:
        rels = []
        for root, dirs, files in os.walk(source):
            dirs[:] = [v for v in dirs if not v.startswith('.')]
            rels += [osp.relpath(osp.join(root, v), source) for v in files if not v.startswith('.')]
        rels = sorted(v for v in rels if fnmatch.fnmatchcase(v.lower(), pattern.lower()))
    inputs = [(osp.join(source, rel), osp.splitext(rel)[0]) for rel in rels]
    if real_source.startswith(real_out):  # INPUT lies in the output folder: nothing in it is an earlier output
        return inputs
    kept = [(path, rel) for path, rel in inputs if not osp.realpath(path).startswith(real_out)]
    if inputs and not kept:
        raise UserError(
            f'The images of {source} all lie in the output folder {out_dir}; {option} must be another folder.')
    return kept


REPORT_COLUMNS = ('input', 'output', 'status', 'quality', 'source', 'header_quality', 'pixel_quality', 'grid_offset',
                  'restored_by', 'note')


def quality_reading(data, img):
    """Which JPEG quality and grid shaped an input's artifacts (``read_jpeg_quality`` of its bytes: a JPEG's header
    checked against its luma plane as stored), from the luma of its decoded pixels if Pillow cannot open it."""
    try:
        return read_jpeg_quality(data)
    except (UnidentifiedImageError, OSError, ValueError):
        return read_pixel_quality(img)


def restore_file(restorer, path, out_path, ext, reading_needed):
    """Restore one input into ``out_path``; returns the report's fields of the reading and the network used."""
    data = read_input(path)
    img, orientation = decode(data)
    reading = quality_reading(data, img) if reading_needed or restorer.routes else None
    net, restored_by = restorer.choose(reading)
    if restorer.routes:
        tqdm.write(f'{path}: {reading} -> {restored_by}', file=sys.stderr)
    out = restorer(img, data, net)
    data = encode(np.ascontiguousarray(ORIENT.get(orientation, np.asarray)(out)), ext)
    try:
        write_atomic(out_path, data)
    except OSError as error:
        raise BadInput(f'cannot write {out_path} ({error.strerror})') from error
    if reading is None:
        return {'restored_by': restored_by}
    return {
        'quality': reading.quality,
        'source': reading.source,
        'header_quality': reading.header_quality,
        'pixel_quality': reading.pixel_quality,
        'grid_offset': reading.offset and '{},{}'.format(*reading.offset),
        'restored_by': restored_by,
        'note': reading.reason
    }


def restore_files(restorer, inputs, out_dir, ext='png', overwrite=False, report=None, option='-o'):
    """Restore every input and write it under ``out_dir``; failures are reported on stderr as they happen. With a
    router, each image's quality reading and expert are printed too.

    An input whose output is (or links to) an input file fails, whatever ``overwrite``: no input is written to (the
    message names the output folder as the command's ``option``).

    Returns:
        dict: {'restored', 'skipped', 'failed'}: lists of input paths; with ``report`` (a list), a row (dict of
        ``REPORT_COLUMNS``) per input is appended to it.
    """
    done = {'restored': [], 'skipped': [], 'failed': []}
    outputs = {}
    input_ids = file_ids(path for path, _ in inputs if path != STDIN)
    for path, rel in tqdm(inputs, desc='restoring', unit='img', file=sys.stderr):
        out_path = osp.join(out_dir, f'{rel}.{ext}')
        row = {'input': path, 'output': out_path}
        try:
            if out_path in outputs:
                raise BadInput(f'its output {out_path} is also that of {outputs[out_path]}')
            outputs[out_path] = path
            replaced = input_ids.get(file_id(out_path))
            if replaced is not None:
                which = '' if replaced == path else f' {replaced}'
                raise BadInput(f'its output {out_path} would replace the input{which}; choose another {option}')
            if osp.lexists(out_path) and not overwrite:
                status = 'skipped'
            else:
                row.update(restore_file(restorer, path, out_path, ext, report is not None))
                status = 'restored'
        except BadInput as error:
            tqdm.write(f'failed: {path}: {error}', file=sys.stderr)
            status, row['note'] = 'failed', str(error)
        except torch.OutOfMemoryError:
            tqdm.write(f'failed: {path}: out of memory; restore it in tiles (--tile 512)', file=sys.stderr)
            status, row['note'] = 'failed', 'out of memory'
        done[status].append(path)
        if report is not None:
            report.append(dict(row, status=status))
    return done


def write_report(rows, path):
    """Write the report rows (:func:`restore_files`) as a CSV file."""
    text = io.StringIO()
    writer = csv.DictWriter(text, REPORT_COLUMNS, lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue().encode('utf-8'))
