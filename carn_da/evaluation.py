"""Scoring of restored JPEG images (PSNR, PSNR-B, SSIM) and Markdown result tables."""
import cv2
import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.img_util import img2tensor, tensor2img
from os import path as osp

from carn_da.data.image_pairs import paired_paths
from carn_da.metrics.psnrb_metric import calculate_psnrb

METRICS = ('psnr', 'psnrb', 'ssim')
DECIMALS = {'psnr': 2, 'psnrb': 2, 'ssim': 4}


def load_pairs(lq_folder, gt_folder, flag=cv2.IMREAD_GRAYSCALE):
    """(name, lq, gt) uint8 images of two folders, paired by file stem (``qf10/a.jpg`` with ``gt/a.png``)."""
    pairs = []
    for pair in paired_paths(lq_folder, gt_folder, 'disk'):
        lq, gt = (cv2.imread(pair[key], flag) for key in ('lq_path', 'gt_path'))
        pairs.append((osp.splitext(osp.basename(pair['gt_path']))[0], lq, gt))
    return pairs


def _resolve_device(net, device):
    if device is not None:
        return device
    param = next(net.parameters(), None)
    return param.device if param is not None else torch.device('cpu')


def tile_spans(length, tile, overlap):
    """Tiles along one axis of ``length`` pixels: (start, stop, keep_start, keep_stop) per tile.

    Tiles are ``tile`` long (the whole axis if shorter), start every ``tile - overlap`` pixels and the last one
    ends at the border. Each pixel is kept from the tile in which it lies farthest from a tile edge inside the image,
    so the seams lie in the middle of each overlap: a pixel is kept at least ``overlap // 2`` pixels from such an
    edge.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f'Tile overlap must be in [0, tile), got tile {tile}, overlap {overlap}.')
    tile = min(tile, length)
    starts = list(range(0, length - tile, tile - overlap)) + [length - tile]
    seams = [0] + [(start + tile + next_start) // 2 for start, next_start in zip(starts, starts[1:])] + [length]
    return [(start, start + tile, seams[i], seams[i + 1]) for i, start in enumerate(starts)]


def infer(net, lq, device=None, tile=None, tile_overlap=16):
    """Run ``net`` on a (1, C, H, W) float tensor without gradients, on the whole tensor or in tiles.

    With ``tile``, ``lq`` is cut into overlapping ``tile`` x ``tile`` tiles (see :func:`tile_spans`), each tile is
    moved to ``device`` and restored alone, and every output pixel is taken from the tile in which it lies farthest
    from a tile edge (no averaging). The result equals whole-image inference (up to float rounding) when the
    network's receptive field radius is at most ``tile_overlap // 2``, and the network's memory is that of one tile.
    A network with a ``select`` method (``QualityRoutedCARN``) is asked once, on the whole image, which expert
    restores the tiles.

    Returns:
        Tensor: (1, C_out, H, W); on ``device`` (whole image) or on ``lq``'s device (tiles).
    """
    device = _resolve_device(net, device)
    with torch.no_grad():
        if tile is None:
            return net(lq.to(device))
        if hasattr(net, 'select'):  # a router (QualityRoutedCARN) chooses its expert on the whole image
            net = net.select(lq.to(device))
        height, width = lq.shape[-2:]
        output = None
        for top, bottom, keep_top, keep_bottom in tile_spans(height, tile, tile_overlap):
            for left, right, keep_left, keep_right in tile_spans(width, tile, tile_overlap):
                out = net(lq[..., top:bottom, left:right].to(device))
                if out.shape[-2:] != (bottom - top, right - left):
                    raise ValueError(f'Tiling needs an output of the input size; a {bottom - top}x{right - left} '
                                     f'tile gave {out.shape[-2]}x{out.shape[-1]}.')
                if output is None:
                    output = lq.new_empty(1, out.shape[1], height, width)
                kept = out[..., keep_top - top:keep_bottom - top, keep_left - left:keep_right - left]
                output[..., keep_top:keep_bottom, keep_left:keep_right] = kept
        return output


def restore(net, img, device=None, tile=None, tile_overlap=16):
    """Restore one uint8 image with ``net`` (in eval mode).

    Like BasicSR's datasets and validation, a 3-channel ``img`` is taken as BGR and fed to the network as RGB.

    Args:
        net (nn.Module): Maps a (1, C, H, W) float tensor in [0, 1] to the restored tensor.
        img (ndarray): uint8 image, (H, W) or (H, W, C).
        device (torch.device | str | None): Where to run; None for the device of ``net``'s parameters (CPU if
            it has none).
        tile (int | None): Restore in overlapping tiles of this size (see :func:`infer`); None for the whole image.
        tile_overlap (int): Overlap of neighbouring tiles in pixels. Default: 16.

    Returns:
        ndarray: uint8 restored image of the shape of ``img``.
    """
    lq = img2tensor(img.reshape(img.shape[0], img.shape[1], -1).astype(np.float32) / 255., bgr2rgb=True)
    output = infer(net, lq.unsqueeze(0), device, tile, tile_overlap)
    return tensor2img(output, rgb2bgr=True).reshape(img.shape)


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


def add_inference_arguments(parser):
    """``--device``, ``--tile`` and ``--tile-overlap`` of the command-line tools that restore images."""
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto', help='Default: CUDA if present.')
    parser.add_argument('--tile', type=int, help='Restore in tiles of this size (default: whole images).')
    parser.add_argument(
        '--tile-overlap',
        type=int,
        default=16,
        help='Overlap of neighbouring tiles; tiling matches whole-image inference when the receptive field radius '
        'is at most half of it. Default: 16.')


def check_inference_arguments(parser, args):
    if args.tile is not None and not 0 <= args.tile_overlap < args.tile:
        parser.error(f'--tile-overlap must be in [0, --tile), got {args.tile_overlap} and {args.tile}')
