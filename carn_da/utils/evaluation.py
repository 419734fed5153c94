"""Models' scores on test sets at several JPEG qualities, and their Markdown table, CSV / JSON files and figures
(``carn-da eval`` and scripts/reproduce.py; figures drawn with matplotlib's Agg renderer, without pyplot)."""
import csv
import cv2
import io
import json
import numpy as np
import sys
from matplotlib.figure import Figure
from os import path as osp
from tqdm import tqdm

from carn_da.data.image_pairs import images_by_stem
from carn_da.utils.errors import UserError
from carn_da.utils.files import is_regular_file, write_atomic
from carn_da.utils.inference import restore
from carn_da.utils.jpeg import jpeg_compress, to_gray
from carn_da.utils.scores import (METRIC_NAMES, METRICS, image_scores, load_pairs, markdown_table, mean_scores,
                                  unscorable)

JPEG = 'JPEG'
PANEL_INCHES = (4, 3)  # gain_vs_qf.png: width x height of one dataset's panel
CELL_INCHES = 3  # residuals.png: side of one residual map
DPI = 100


def read_gray(path):
    """The 8-bit grayscale image of the file ``path`` (:func:`to_gray_checked`); UserError naming it if it is not a
    regular file (unopened) or cannot be read."""
    if not is_regular_file(path):
        raise UserError(f'{path} is not a regular file.' if osp.exists(path) else f'Cannot read image {path}.')
    return scorable(to_gray_checked(cv2.imread(path, cv2.IMREAD_UNCHANGED), path), path)


def scorable(img, source):
    """``img``; UserError naming ``source`` if it is too small to score (:func:`carn_da.utils.scores.unscorable`)."""
    problem = unscorable(img.shape)
    if problem is not None:
        raise UserError(f'{source}: {problem}.')
    return img


def to_gray_checked(img, source):
    """``to_gray(img)``; UserError naming ``source`` if it is unreadable (None) or not an 8-bit image."""
    if img is None:
        raise UserError(f'Cannot read image {source}.')
    try:
        return to_gray(img)
    except ValueError as error:
        raise UserError(f'{source}: {error}') from error


class EvalSet:
    """The ground truths of one ``--test`` folder and their JPEGs at any QF, made on the fly or read from a folder.

    Args:
        name (str): Name of the set.
        gt_folder (str): Folder of ground-truth images (searched recursively).
        lq_template (str | None): Folder of the JPEGs of quality ``{qf}`` (replaced by the QF), paired with
            the ground truths by stem; None to compress the ground truths with OpenCV.
        qfs (list[int]): QFs whose JPEG folders must exist.
    """

    def __init__(self, name, gt_folder, lq_template=None, qfs=()):
        self.name, self.gt_folder, self.lq_template = name, gt_folder, lq_template
        if not osp.isdir(gt_folder):
            raise UserError(f'--test {name}: folder {gt_folder} does not exist.')
        try:
            paths = images_by_stem(gt_folder)
        except ValueError as error:
            raise UserError(f'--test {name}: {error}') from error
        if not paths:
            raise UserError(f'--test {name}: no images in {gt_folder}.')
        if lq_template is None:
            try:
                self.gts = [(stem, read_gray(path)) for stem, path in sorted(paths.items())]
            except UserError as error:
                raise UserError(f'--test {name}: {error}') from error
            self.stems = [stem for stem, _ in self.gts]
            return
        self.stems = [osp.splitext(osp.basename(path))[0] for path in paths.values()]  # as load_pairs names them
        for qf in qfs:
            if not osp.isdir(self.lq_folder(qf)):
                raise UserError(f'--lq-dir {name}: folder {self.lq_folder(qf)} (QF {qf}) does not exist.')

    def lq_folder(self, qf):
        """The folder of the JPEGs of quality ``qf``: ``lq_template`` with ``{qf}`` replaced (other braces kept)."""
        return self.lq_template.replace('{qf}', str(qf))

    def pairs(self, qf):
        """[(stem, lq, gt)] of uint8 grayscale images at JPEG quality ``qf``."""
        if self.lq_template is None:
            return [(stem, jpeg_compress(gt, qf), gt) for stem, gt in self.gts]
        lq_folder = self.lq_folder(qf)
        try:
            loaded = load_pairs(lq_folder, self.gt_folder, flag=cv2.IMREAD_UNCHANGED)
        except ValueError as error:
            raise UserError(f'--lq-dir {self.name}: {error}') from error
        pairs = []
        for stem, lq, gt in loaded:
            lq, gt = to_gray_checked(lq, f'{lq_folder}/{stem}'), to_gray_checked(gt, f'{self.gt_folder}/{stem}')
            try:
                scorable(gt, f'{self.gt_folder}/{stem}')
            except UserError as error:
                raise UserError(f'--test {self.name}: {error}') from error
            if lq.shape != gt.shape:
                raise UserError(f'--lq-dir {self.name}: {stem} is {lq.shape[0]}x{lq.shape[1]} in {lq_folder} but '
                                f'{gt.shape[0]}x{gt.shape[1]} in {self.gt_folder}.')
            pairs.append((stem, lq, gt))
        return pairs


def evaluate(nets, sets, qfs, residual=None, device=None, tile=None, tile_overlap=16, self_ensemble=False):
    """Score the JPEGs and every model's restorations of them, for every test set and QF.

    Returns:
        tuple[dict, dict]: ``{label: {set: {qf: [{'name', 'psnr', 'psnrb', 'ssim'}]}}}`` with ``JPEG`` first,
        and ``{(label, qf): (image, scores)}`` of the ``residual`` (set, stem) image.
    """
    results = {label: {name: {} for name in sets} for label in [JPEG] + [label for label, _ in nets]}
    residual_images = {}
    total = sum(len(test_set.stems) for test_set in sets.values()) * len(qfs) * (len(nets) + 1)
    with tqdm(total=total, desc='scoring', unit='img', file=sys.stderr) as bar:
        for name, test_set in sets.items():
            for qf in qfs:
                qf_pairs = test_set.pairs(qf)
                for label, net in [(JPEG, None)] + nets:
                    rows = results[label][name][qf] = []
                    for stem, lq, gt in qf_pairs:
                        out = lq if net is None else restore(net, lq, device, tile, tile_overlap, self_ensemble)
                        rows.append({'name': stem, **image_scores(out, gt)})
                        if (name, stem) == residual:
                            residual_images[label, qf] = (out, gt, rows[-1])
                        bar.update()
    return results, residual_images


def table_columns(datasets, qfs):
    return [(f'{name}_qf{qf}_{metric}', f'{name} QF {qf} {METRIC_NAMES[metric]}') for name in datasets for qf in qfs
            for metric in METRICS]


def table(results, qfs):
    """Markdown table: JPEG then each model; dataset x QF x metric columns; gains over JPEG in parentheses."""
    datasets = list(next(iter(results.values())))
    rows = []
    for label, by_name in results.items():
        means = {(name, qf): mean_scores(by_name[name][qf]) for name in datasets for qf in qfs}
        rows.append((label, {f'{name}_qf{qf}_{k}': v for (name, qf), mean in means.items() for k, v in mean.items()}))
    return markdown_table(table_columns(datasets, qfs), rows, reference=JPEG)


def write_scores(results, out_dir, meta):
    """Write every image's scores as ``scores.csv`` and, with their means and ``meta``, ``scores.json``."""
    text = io.StringIO(newline='')
    writer = csv.writer(text)
    writer.writerow(['model', 'dataset', 'qf', 'image', *METRICS])
    for label, by_name in results.items():
        for name, by_qf in by_name.items():
            for qf, rows in by_qf.items():
                writer.writerows([label, name, qf, row['name'], *(row[m] for m in METRICS)] for row in rows)
    write_atomic(osp.join(out_dir, 'scores.csv'), text.getvalue().encode('utf-8'))
    scores = {}
    for label, by_name in results.items():
        for name, by_qf in by_name.items():
            scores.setdefault(label, {})[name] = {
                str(qf): dict(images=v, mean=mean_scores(v))
                for qf, v in by_qf.items()
            }
    write_atomic(osp.join(out_dir, 'scores.json'), json.dumps({**meta, 'scores': scores}, indent=1).encode('utf-8'))


def save_figure(fig, path):
    """Write a matplotlib figure as a PNG through :func:`write_atomic`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png')
    write_atomic(path, buffer.getvalue())


def plot_gains(results, qfs, path):
    """Mean PSNR gain over JPEG against QF, one panel per dataset, one line per model."""
    datasets = list(results[JPEG])
    fig = Figure(figsize=(PANEL_INCHES[0] * len(datasets), PANEL_INCHES[1]), dpi=DPI, layout='constrained')
    axes = fig.subplots(1, len(datasets), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, datasets):
        jpeg = [mean_scores(results[JPEG][name][qf])['psnr'] for qf in qfs]
        for label, by_name in results.items():
            if label != JPEG:
                gains = [mean_scores(by_name[name][qf])['psnr'] - ref for qf, ref in zip(qfs, jpeg)]
                ax.plot(qfs, gains, marker='o', label=label)
        ax.axhline(0, color='gray', linewidth=0.8)
        ax.set(title=name, xlabel='JPEG quality factor')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('PSNR gain over JPEG (dB)')
    axes[-1].legend(fontsize='small')
    save_figure(fig, path)


def plot_residuals(residual_images, labels, qfs, title, path):
    """Grid of log(|restored - gt| + 1) maps: a row per QF, a column for JPEG and each model, PSNR in captions."""
    fig = Figure(figsize=(CELL_INCHES * len(labels), CELL_INCHES * len(qfs)), dpi=DPI, layout='constrained')
    axes = fig.subplots(len(qfs), len(labels), squeeze=False)
    for row, qf in zip(axes, qfs):
        for ax, label in zip(row, labels):
            out, gt, scores = residual_images[label, qf]
            residual = np.log(np.abs(out.astype(np.float64) - gt) + 1)
            image = ax.imshow(residual, cmap='magma', vmin=0, vmax=np.log(256))
            ax.set_title(f'{label}, QF {qf}: {scores["psnr"]:.2f} dB', fontsize='small')
            ax.set_axis_off()
    fig.colorbar(image, ax=axes, shrink=0.8)
    fig.suptitle(f'{title}: log(|restored - ground truth| + 1)', fontsize='medium')
    save_figure(fig, path)
