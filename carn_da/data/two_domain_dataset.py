import random
from basicsr.utils.registry import DATASET_REGISTRY

from carn_da.data.image_pairs import (BadImageError, augment, check_root, choose_subset, image_paths, make_file_client,
                                      random_window, read_image, to_tensor)
from carn_da.data.jpeg_paired_dataset import JPEGPairedDataset
from carn_da.utils.jpeg import (QualityReading, check_quality, decode_luma, estimate_grid_and_quality,
                                read_jpeg_quality, recompress)

TARGET_QUALITY_SOURCES = ('file', 'pixels')


@DATASET_REGISTRY.register()
class TwoDomainDataset(JPEGPairedDataset):
    """Labelled source pairs plus unlabelled target JPEGs, for domain adaptation across JPEG quality.

    Each item is a source pair exactly as in ``JPEGPairedDataset`` plus one target image drawn independently of it:
    in training a random target image (python's ``random``, which BasicSR seeds per worker), cropped at its own
    random place to ``gt_size`` (on its 8x8 grid with ``grid_aligned``, like the source: for a target whose grid
    was read, a crop off its grid included, on the grid the reading found) and augmented on its own;
    in other phases target ``index % num_target``, whole. The target root is only listed and read: it needs no
    ground truth, and none is ever paired or read for it.
    Target images are checked like the source when the dataset is built (readable header; in training, at least
    ``gt_size``); with ``skip_bad_images`` a target that cannot be read is dropped from the list with a warning.

    Beyond the paper, two uses of the target's JPEG quality, which needs no ground truth:

    - target self-supervision (``target_self_supervision``): the target crop, recompressed at its own quality on an
      8x8 grid shifted against the one it was coded on (so that recompression is not idempotent), becomes an input
      whose restoration target is the target crop itself;
    - QF-matched synthesis (``source_quality``): a source LQ image is compressed on the fly from its ground truth
      at the quality of the target image drawn with it.

    The quality comes from ``target_quality``: ``file`` reads each target file when the dataset is built
    (``read_jpeg_quality``: a JPEG's quantisation table checked against its luma plane as stored, the coarser quality
    winning; the pixels of any other image, crops off the 8x8 grid included), ``pixels`` reads the decoded luma of
    the whole image (``estimate_grid_and_quality``: the paper's setting, where only decoded images are known; cached
    per image), an int gives it for all. A gray target is the Y plane the JPEG stores (OpenCV decodes a colour JPEG's
    Y without a colour round trip). A target whose quality cannot be read (resized, never compressed) is refused,
    naming it. The grid the reading finds sets the grid that self-supervision must shift against.

    Args:
        opt (dict): Config for the dataset. It contains the options of ``JPEGPairedDataset`` (the source) and:
            dataroot_target (str): Target JPEGs: a folder (png/jpg/jpeg/bmp/tif/tiff, recursive) or an LMDB.
            io_backend_target (dict): IO backend of the target root. Default: ``io_backend``.
            num_source (int): Use only this many source pairs. Default: None (all).
            num_target (int): Use only this many target images. Default: None (all).
            subset_seed (int): Seed of those reproducible subsets, drawn with numpy's ``default_rng((seed, 0))``
                (source) and ``default_rng((seed, 1))`` (target). Default: 0.
            target_quality (str | int): ``file``, ``pixels`` or a quality 1..100 (see above). Default: None (needed
                only by the two options below).
            target_self_supervision (bool): Add ``lq_target_self``, the recompressed target. Default: False.
            source_quality (str): ``target`` for QF-matched synthesis (then no ``dataroot_lq``), ``both`` for the
                source JPEG of ``dataroot_lq`` or, with probability ``synth_probability``, one synthesized at the
                target's quality (so that the source quality is not forgotten). Default: None (the source JPEGs of
                ``dataroot_lq``).
            synth_probability (float): With ``source_quality: both``, the chance that a source item is synthesized
                at the target's quality. Default: 0.5.

    Items: {'lq', 'gt', 'lq_path', 'gt_path'} of the source pair, 'lq_target': (C, H, W) float32 tensor in [0, 1],
    'target_path': its file path or LMDB key, 'target_quality' (int, -1 if not needed), and with
    ``target_self_supervision`` 'lq_target_self' (like 'lq_target'). The length is the number of source pairs.
    """

    def __init__(self, opt):
        self.self_supervision = bool(opt.get('target_self_supervision', False))
        self.source_quality = opt.get('source_quality')
        if self.source_quality not in (None, 'target', 'both'):
            raise ValueError(f"source_quality must be 'target', 'both' or absent, got {self.source_quality!r}.")
        if self.source_quality == 'target' and (opt.get('dataroot_lq') or opt.get('dataroot_lqs')):
            raise ValueError('source_quality: target compresses the source ground truth on the fly: remove '
                             "dataroot_lq / dataroot_lqs (or use 'both').")
        self.synth_probability = opt.get('synth_probability', 0.5)
        if not 0 <= self.synth_probability <= 1 or (self.source_quality != 'both' and 'synth_probability' in opt):
            raise ValueError('synth_probability needs source_quality: both and a value in [0, 1], got '
                             f'{self.synth_probability!r} with source_quality {self.source_quality!r}.')
        self.target_quality = opt.get('target_quality')
        if self.target_quality not in TARGET_QUALITY_SOURCES:
            if self.target_quality is not None:
                check_quality(self.target_quality)
            elif self.self_supervision or self.source_quality is not None:
                raise ValueError("target_self_supervision and source_quality need target_quality: 'file', 'pixels' "
                                 'or a JPEG quality.')
        super().__init__(opt)
        seed = opt.get('subset_seed', 0)
        self.paths = choose_subset(self.paths, opt.get('num_source'), 'num_source', self.lq_folder, (seed, 0))
        self.io_backend_target_opt = opt.get('io_backend_target', self.io_backend_opt)
        self.target_folder = check_root(opt, 'dataroot_target')
        target_paths = image_paths(self.target_folder, self.io_backend_target_opt['type'])
        if not target_paths:
            raise ValueError(f'dataroot_target: no images in {self.target_folder}.')
        target_paths = choose_subset(target_paths, opt.get('num_target'), 'num_target', self.target_folder, (seed, 1))
        self.target_paths = self.readable_images(target_paths, self.target_folder, self.io_backend_target_opt['type'],
                                                 'dataroot_target')
        self.readings = {}
        if self.target_quality == 'file':
            self.readings = {path: self.read_file_quality(path) for path in self.target_paths}
        self.target_client = None

    def synthesizes_lq(self, opt):
        return super().synthesizes_lq(opt) or opt.get('source_quality') == 'target'

    def read_file_quality(self, path):
        """The ``QualityReading`` of target file ``path`` (``read_jpeg_quality``); ValueError naming it if unknown."""
        if self.io_backend_target_opt['type'] != 'disk':
            raise ValueError("target_quality: file reads the target files of a folder (io_backend_target disk); use "
                             "'pixels' for an LMDB.")
        return known_reading(read_jpeg_quality(path), path, 'file')

    def reading_of(self, path, img):
        """The ``QualityReading`` of target ``path`` (uint8 ``img``, whole) as ``target_quality`` says (None if
        unused)."""
        if self.target_quality is None:
            return None
        if isinstance(self.target_quality, int):
            return QualityReading(self.target_quality, (0, 0), 'option')
        if path not in self.readings:  # pixels: read once per image (and worker)
            luma = img[..., 0] if img.shape[2] == 1 else decode_luma(self.target_client.get(path, 'target'))
            self.readings[path] = known_reading(estimate_grid_and_quality(luma), path, 'pixels')
        return self.readings[path]

    def read_target(self, index):
        """Path and uint8 image of a target (see the class); with ``skip_bad_images``, unreadable ones are dropped."""
        while True:
            num_target = len(self.target_paths)
            path = self.target_paths[random.randrange(num_target) if self.opt['phase'] == 'train' else index %
                                     num_target]
            try:
                return path, read_image(self.target_client, path, 'target', self.color, as_stored=True)
            except BadImageError as error:
                self.bad_image(error)
                self.target_paths.remove(path)
                if not self.target_paths:
                    raise BadImageError(f'dataroot_target: no readable images in {self.target_folder}.') from error

    def grid_start(self, reading):
        """(row, column) of a target's first whole 8x8 block by its ``reading`` (a crop's grid is off the top-left
        corner), where ``grid_aligned`` crops start; (0, 0) without a reading."""
        if self.grid == 1 or reading is None:
            return 0, 0
        return tuple((8 - offset) % 8 for offset in reading.offset)

    def self_supervision_pair(self, img, reading, top, left):
        """(recompressed, img): ``img`` (a crop at ``top``, ``left`` of a decoded target of ``reading``) recompressed
        at its quality on a grid shifted by a random (dy, dx) other than the one the target was coded on."""
        coded = ((top + reading.offset[0]) % 8, (left + reading.offset[1]) % 8)
        phases = [(dy, dx) for dy in range(8) for dx in range(8) if (dy, dx) != coded]
        return recompress(img, reading.quality, random.choice(phases)), img

    def __getitem__(self, index):
        if self.target_client is None:
            self.target_client = make_file_client(self.io_backend_target_opt, [self.target_folder], ['target'])
        target_path, img = self.read_target(index)
        reading = self.reading_of(target_path, img)
        quality = -1 if reading is None else reading.quality
        mixed = self.source_quality == 'both'
        synthesize = self.source_quality == 'target' or mixed and random.random() < self.synth_probability
        item = self.pair_item(index, quality if synthesize else None)
        top = left = 0
        if self.opt['phase'] == 'train':
            top, left = random_window(img.shape, self.gt_size, target_path, self.grid, self.grid_start(reading))
            img = img[top:top + self.gt_size, left:left + self.gt_size]
        imgs = list(self.self_supervision_pair(img, reading, top, left)) if self.self_supervision else [img]
        if self.opt['phase'] == 'train':
            imgs = augment(imgs, self.use_hflip, self.use_rot)
        item['lq_target'] = to_tensor(imgs[-1:])[0]
        if self.self_supervision:
            item['lq_target_self'] = to_tensor(imgs[:1])[0]
        item.update(target_path=target_path, target_quality=quality)
        return item


def known_reading(reading, path, source):
    """``reading``, or ValueError naming the target ``path`` whose quality is unknown (``target_quality: source``)."""
    if not reading.known:
        raise ValueError(f'target_quality: {source}, but the JPEG quality of {path} is unknown ({reading.reason}); '
                         'leave it out, or give target_quality a number.')
    return reading
