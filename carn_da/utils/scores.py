"""Scores of restored JPEG images (PSNR, PSNR-B, SSIM) and Markdown tables of them."""
import cv2
import numpy as np
from basicsr.metrics import calculate_psnr, calculate_ssim
from os import path as osp

from carn_da.data.image_pairs import paired_paths
from carn_da.metrics.psnrb_metric import calculate_psnrb
from carn_da.utils.files import is_regular_file
from carn_da.utils.inference import restore

METRICS = ('psnr', 'psnrb', 'ssim')
METRIC_NAMES = {'psnr': 'PSNR', 'psnrb': 'PSNR-B', 'ssim': 'SSIM'}
DECIMALS = {'psnr': 2, 'psnrb': 2, 'ssim': 4}


def load_pairs(lq_folder, gt_folder, flag=cv2.IMREAD_GRAYSCALE):
    """(name, lq, gt) uint8 images of two folders, paired by file stem (``qf10/a.jpg`` with ``gt/a.png``); an image
    OpenCV cannot read is None. ValueError naming a file that is not a regular one (it is not opened)."""
    pairs = []
    for pair in paired_paths(lq_folder, gt_folder, 'disk'):
        for key in ('lq_path', 'gt_path'):
            if osp.exists(pair[key]) and not is_regular_file(pair[key]):
                raise ValueError(f'{pair[key]} is not a regular file.')
        lq, gt = (cv2.imread(pair[key], flag) for key in ('lq_path', 'gt_path'))
        pairs.append((osp.splitext(osp.basename(pair['gt_path']))[0], lq, gt))
    return pairs


MIN_SIDE, MIN_LONG_SIDE = 11, 16  # SSIM's 11x11 window; PSNR-B's 8x8 blocks need a boundary (16 along one side)


def unscorable(shape):
    """Why an image of ``shape`` (H, W, ...) cannot be scored by :func:`image_scores`, or None if it can."""
    height, width = shape[:2]
    if min(height, width) < MIN_SIDE or max(height, width) < MIN_LONG_SIDE:
        return (f'{height}x{width} is too small to score: SSIM needs sides of at least {MIN_SIDE} and PSNR-B one '
                f'of at least {MIN_LONG_SIDE}')
    return None


def image_scores(restored, gt):
    """PSNR, PSNR-B and SSIM of a uint8 ``restored`` image against ``gt`` (all channels, no border crop)."""
    return {
        'psnr': calculate_psnr(restored, gt, crop_border=0),
        'psnrb': calculate_psnrb(restored, gt, crop_border=0),
        'ssim': calculate_ssim(restored, gt, crop_border=0)
    }


def evaluate_pairs(pairs, net=None, device=None):
    """Score each (name, lq, gt) uint8 pair: ``net``'s restoration of lq, or lq itself when ``net`` is None.

    Returns:
        list[dict]: One {'name', 'psnr', 'psnrb', 'ssim'} per pair, in order.
    """
    rows = []
    for name, lq, gt in pairs:
        restored = lq if net is None else restore(net, lq, device)
        rows.append({'name': name, **image_scores(restored, gt)})
    return rows


def mean_scores(rows):
    """Mean of each metric over the per-image rows of :func:`evaluate_pairs`."""
    return {metric: float(np.mean([row[metric] for row in rows])) for metric in METRICS}


def _format(value, key, reference=None):
    decimals = DECIMALS.get(key.rsplit('_', 1)[-1], 2)
    text = f'{value:.{decimals}f}'
    if reference is not None:
        text += f' ({value - reference:+.{decimals}f})'
    return text


def markdown_table(columns, rows, reference=None):
    """GitHub Markdown table of scores.

    Args:
        columns (list[tuple[str, str]]): (key, header) per column. A key is a metric name ('psnr', 'psnrb',
            'ssim') or ends with '_<metric>' (e.g. 'LIVE1_psnrb'); that metric sets the decimals (2 for PSNR and
            PSNR-B, 4 for SSIM; 2 for other keys).
        rows (list[tuple[str, dict]]): (label, {key: value}) per row; a missing key leaves the cell empty.
        reference (str | None): Label of a row whose values the other rows show their gain over, as
            ``28.14 (+1.18)``.

    Returns:
        str: The table, one line per row, ending with a newline.
    """
    ref_values = dict(rows)[reference] if reference is not None else {}
    lines = ['| | ' + ' | '.join(header for _, header in columns) + ' |', '|---' + '|---:' * len(columns) + '|']
    for label, values in rows:
        cells = []
        for key, _ in columns:
            if key not in values:
                cells.append('')
                continue
            gain_over = ref_values.get(key) if label != reference else None
            cells.append(_format(values[key], key, gain_over))
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'
