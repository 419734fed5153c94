import cv2
import random
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from carn_da.data.image_pairs import (BadImageError, augment, check_color, check_patch_fits, check_root,
                                      check_same_size, choose_subset, image_paths, make_file_client, paired_crop,
                                      paired_paths, read_image, size_error, size_reader, to_tensor)
from carn_da.utils.jpeg import jpeg_compress, quality_range


@DATASET_REGISTRY.register()
class JPEGPairedDataset(data.Dataset):
    """JPEG-compressed images (LQ) and their ground truth (GT), paired by stem: ``gt/a.png`` <-> ``qf10/a.jpg``, or
    compressed on the fly from the ground truth (``jpeg_range``).

    Folders are scanned recursively for png/jpg/jpeg/bmp/tif/tiff images; LMDBs (BasicSR format) pair by the keys
    of their ``meta_info.txt``. When the dataset is built, before any image is decoded, an image without a partner,
    an LQ/GT pair of different sizes or, in training, an image smaller than ``gt_size`` raises ValueError, and an
    image whose header cannot be read raises BadImageError, each naming the files (sizes come from the file headers,
    about 0.1 ms per image, or from the LMDB's ``meta_info.txt``). Decoding checks the sizes again.

    Args:
        opt (dict): Config for the dataset. It contains:
            dataroot_gt (str): GT folder or LMDB.
            dataroot_lq (str): LQ (JPEG) folder or LMDB.
            jpeg_range (list[int]): Instead of LQ roots, JPEG-compress each whole ground-truth image (OpenCV's
                libjpeg) at a quality drawn uniformly from ``[min, max]`` (inclusive) every time it is read, before
                cropping: a blind model's training set (DnCNN-3, FBCNN: ``[10, 90]``), or ``[q, q]`` for one QF.
            resave_prob (float): With ``jpeg_range``, the share of images saved twice: compressed again at a second
                quality drawn from ``jpeg_range`` (a re-saved photo). Default: 0.
            resize_prob (float): With ``jpeg_range``, the share of JPEGs then resized, with their ground truth, by a
                factor drawn from ``resize_range`` (default ``[0.5, 0.9]``) with area, bilinear or bicubic
                interpolation (a resized photo: its blocks no longer on an 8x8 grid). Kept only where the result
                still fits ``gt_size``. Default: 0.
            resize_jpeg_range (list[int]): With ``resize_prob``, the qualities ``[min, max]`` of the JPEGs that are
                resized, instead of ``jpeg_range`` (photos are mostly saved at QF 75 or more before anyone resizes
                them; a re-save is then dropped). Default: None (``jpeg_range``).
            clean_prob (float): With ``jpeg_range``, the share of images left uncompressed (LQ = GT): a blind model
                that sees them learns to leave a clean image alone. Default: 0.
            dataroot_lqs (list[str]): Instead of ``dataroot_lq``, several LQ roots of the same ground truth, pooled
                (the paper's BQ scenario: ``[qf10.lmdb, qf70.lmdb]``). A separate key, since BasicSR's option
                parser treats ``dataroot_lq`` as one path.
            num_pairs (int | list[int]): Use only this many pairs of each LQ root, drawn reproducibly from
                ``subset_seed`` (default 0). Default: None (all).
            io_backend (dict): ``{type: disk}`` (default) or ``{type: lmdb}``.
            phase (str): ``train`` crops and augments; other phases return whole images.
            gt_size (int): Side of the square training patches. Default: 64.
            use_hflip (bool): Random horizontal flips in training. Default: False.
            use_rot (bool): Random vertical flips and 90-degree rotations in training. Default: False.
            color (str): ``gray`` (1 channel, default) or ``rgb`` (3 channels).
            grid_aligned (bool): Crop at multiples of 8 from the top-left corner, on the 8x8 block grid of the JPEGs
                (of whole files as coded, and of JPEGs made on the fly), so that every crop's blocks sit where
                the network sees them at test time on a whole JPEG; ``gt_size`` must be a multiple of 8 (flips and
                rotations keep the crop on the grid). Default: False (BasicSR's random crop, at any offset).
            skip_bad_images (bool): Skip an image that cannot be read or decoded (when the dataset is built, or later
                when it is read: then the next pair is used) with a warning naming it, instead of raising
                BadImageError. Default: False.

    Items: {'lq', 'gt': (C, H, W) float32 tensors in [0, 1]; 'lq_path', 'gt_path': file paths or LMDB keys (a
    synthesized LQ image has its ground truth's path)}.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.color = check_color(opt.get('color', 'gray'))
        self.gt_size = opt.get('gt_size', 64)
        self.grid = 8 if opt.get('grid_aligned', False) else 1
        if self.gt_size % self.grid:
            raise ValueError(f'grid_aligned: gt_size ({self.gt_size}) must be a multiple of 8, so that flips and '
                             'rotations keep the crops on the JPEG grid.')
        self.use_hflip, self.use_rot = opt.get('use_hflip', False), opt.get('use_rot', False)
        self.skip_bad_images = opt.get('skip_bad_images', False)
        self.io_backend_opt = opt.get('io_backend', {'type': 'disk'})
        self.gt_folder = check_root(opt, 'dataroot_gt')
        self.jpeg_range = self.check_jpeg_range(opt)
        self.degradations = self.check_degradations(opt)
        self.lq_folders = [] if self.synthesizes_lq(opt) else self.lq_roots(opt)
        self.lq_folder = (self.lq_folders or [self.gt_folder])[0]
        self.paths = self.gt_only_paths(opt) if self.synthesizes_lq(opt) else self.pairs_of_roots(opt)
        self.bad_indices = set()
        self.file_client = None

    @staticmethod
    def lq_roots(opt):
        """The LQ roots of ``dataroot_lq`` or ``dataroot_lqs``, each checked to exist."""
        if opt.get('dataroot_lqs') is None:
            return [check_root(opt, 'dataroot_lq')]
        return [check_root({'dataroot_lqs': root}, 'dataroot_lqs') for root in opt['dataroot_lqs']]

    def pairs_of_roots(self, opt):
        """Checked (see ``check_pairs``) LQ/GT pairs of every LQ root, ``num_pairs`` of each."""
        num_pairs = opt.get('num_pairs')
        num_pairs = num_pairs if isinstance(num_pairs, (list, tuple)) else [num_pairs] * len(self.lq_folders)
        if len(num_pairs) != len(self.lq_folders):
            raise ValueError(f'num_pairs has {len(num_pairs)} entries but there are {len(self.lq_folders)} LQ roots.')
        paths = []
        for i, (lq_folder, num) in enumerate(zip(self.lq_folders, num_pairs)):
            pairs = paired_paths(lq_folder, self.gt_folder, self.io_backend_opt['type'])
            if not pairs:
                raise ValueError(f'No images in {lq_folder} and {self.gt_folder}.')
            pairs = choose_subset(pairs, num, 'num_pairs', lq_folder, (opt.get('subset_seed', 0), 2 + i))
            paths += [dict(pair, lq_client=f'lq{i}') for pair in self.check_pairs(pairs, lq_folder)]
        if not paths:
            raise BadImageError(f'No readable image pairs in {", ".join(self.lq_folders)} and {self.gt_folder}.')
        return paths

    @staticmethod
    def check_jpeg_range(opt):
        """The option ``jpeg_range`` as a (min, max) tuple of qualities, or None; ValueError if it is malformed or
        given beside LQ roots."""
        jpeg_range = opt.get('jpeg_range')
        if jpeg_range is None:
            return None
        jpeg_range = quality_range(jpeg_range, 'jpeg_range')
        if opt.get('dataroot_lq') is not None or opt.get('dataroot_lqs') is not None:
            raise ValueError('jpeg_range compresses the ground truth on the fly: remove dataroot_lq / dataroot_lqs.')
        return jpeg_range

    def check_degradations(self, opt):
        """{'resave_prob', 'resize_prob', 'clean_prob', 'resize_range', 'resize_jpeg_range'} of the options;
        ValueError naming a key that is out of range or given without what it needs."""
        found = {key: opt.get(key, 0) for key in ('resave_prob', 'resize_prob', 'clean_prob')}
        for key, value in found.items():
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f'{key} must be a probability in [0, 1], got {value!r}.')
            if value and self.jpeg_range is None:
                raise ValueError(f'{key} degrades JPEGs made on the fly: it needs jpeg_range.')
        scales = opt.get('resize_range', [0.5, 0.9])
        if not (isinstance(scales, (list, tuple)) and len(scales) == 2 and 0 < scales[0] <= scales[1] <= 1):
            raise ValueError(f'resize_range must be [min, max] scales with 0 < min <= max <= 1, got {scales!r}.')
        qualities = opt.get('resize_jpeg_range')
        if qualities is not None and not found['resize_prob']:
            raise ValueError('resize_jpeg_range sets the qualities of resized JPEGs: it needs resize_prob > 0.')
        qualities = None if qualities is None else quality_range(qualities, 'resize_jpeg_range')
        return dict(found, resize_range=tuple(scales), resize_jpeg_range=qualities)

    def synthesize(self, img_gt, quality):
        """(LQ, GT) made from a ground truth: JPEG at ``quality`` (or a random one), then, with their
        probabilities, saved again, resized (GT too) or left clean instead (see the class)."""
        chance = self.degradations
        if random.random() < chance['clean_prob']:
            return img_gt.copy(), img_gt
        img_lq = jpeg_compress(img_gt, quality or self.random_quality())
        if random.random() < chance['resave_prob']:
            img_lq = jpeg_compress(img_lq, self.random_quality())
        if random.random() < chance['resize_prob']:
            scale = random.uniform(*chance['resize_range'])
            size = tuple(round(side * scale) for side in img_gt.shape[1::-1])
            if min(size) >= self.gt_size:
                if chance['resize_jpeg_range']:  # drawn here, so that without it the draws are those of before
                    img_lq = jpeg_compress(img_gt, random.randint(*chance['resize_jpeg_range']))
                interpolation = random.choice([cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC])
                img_lq, img_gt = (
                    cv2.resize(img, size, interpolation=interpolation).reshape(size[::-1] + img.shape[2:])
                    for img in (img_lq, img_gt))
        return img_lq, img_gt

    def synthesizes_lq(self, opt):
        """Whether LQ images are JPEG-compressed from the ground truth when read (no LQ roots)."""
        return self.jpeg_range is not None

    def gt_only_paths(self, opt):
        """Pairs of ground-truth paths alone (``lq_path`` None: synthesized), checked like ``check_pairs``."""
        backend = self.io_backend_opt['type']
        paths = image_paths(self.gt_folder, backend)
        if not paths:
            raise ValueError(f'dataroot_gt: no images in {self.gt_folder}.')
        paths = choose_subset(paths, opt.get('num_pairs'), 'num_pairs', self.gt_folder, (opt.get('subset_seed', 0), 2))
        paths = self.readable_images(paths, self.gt_folder, backend, 'dataroot_gt')
        return [{'lq_path': None, 'gt_path': path, 'lq_client': None} for path in paths]

    def readable_images(self, paths, root, backend, option):
        """``paths`` of ``root`` whose headers can be read (see ``bad_image``), each fitting ``gt_size`` in training;
        BadImageError naming ``option`` and ``root`` if none is left."""
        read_size = size_reader(root, backend)
        checked = []
        for path in paths:
            try:
                size = read_size(path)
            except BadImageError as error:
                self.bad_image(error)
                continue
            if size is not None and self.opt['phase'] == 'train':
                check_patch_fits(size, self.gt_size, path)
            checked.append(path)
        if not checked:
            raise BadImageError(f'{option}: no readable images in {root}.')
        return checked

    def random_quality(self):
        """A JPEG quality drawn from ``jpeg_range`` (python's ``random``, seeded per worker by BasicSR)."""
        return random.randint(*self.jpeg_range)

    def bad_image(self, error):
        """Raise ``error`` (a BadImageError) or, with ``skip_bad_images``, log it as a warning."""
        if not self.skip_bad_images:
            raise error
        get_root_logger().warning(f'{error} Skipping it (skip_bad_images).')

    def check_pairs(self, pairs, lq_folder):
        """``pairs`` of ``lq_folder`` whose images have readable headers of matching sizes, fitting ``gt_size``."""
        backend = self.io_backend_opt['type']
        lq_size, gt_size = size_reader(lq_folder, backend), size_reader(self.gt_folder, backend)
        checked = []
        for pair in pairs:
            try:
                sizes = lq_size(pair['lq_path']), gt_size(pair['gt_path'])
            except BadImageError as error:
                self.bad_image(error)
                continue
            if None not in sizes:
                if sorted(sizes[0]) != sorted(sizes[1]):  # headers ignore EXIF rotations: compare the sides
                    raise size_error(*sizes, pair['lq_path'], pair['gt_path'])
                if self.opt['phase'] == 'train':
                    check_patch_fits(sizes[1], self.gt_size, pair['gt_path'])
            checked.append(pair)
        return checked

    def read_pair(self, index, quality=None):
        """uint8 (H, W, C) LQ and GT images of pair ``index`` (cropped and augmented in training), and their paths.
        With a ``quality``, or for a pair without LQ file, the LQ image is compressed from the ground truth at
        ``quality`` (or ``random_quality()``) and its path is None."""
        if self.file_client is None:
            lq_clients = [f'lq{i}' for i in range(len(self.lq_folders))]
            self.file_client = make_file_client(self.io_backend_opt, self.lq_folders + [self.gt_folder],
                                                lq_clients + ['gt'])
        pair = self.paths[index]
        lq_path, gt_path = pair['lq_path'], pair['gt_path']
        img_gt = read_image(self.file_client, gt_path, 'gt', self.color)
        if quality is not None or lq_path is None:
            (img_lq, img_gt), lq_path = self.synthesize(img_gt, quality), None
        else:
            img_lq = read_image(self.file_client, lq_path, pair['lq_client'], self.color)
            check_same_size(img_lq, img_gt, lq_path, gt_path)
        if self.opt['phase'] == 'train':
            img_lq, img_gt = paired_crop(img_lq, img_gt, self.gt_size, gt_path, self.grid)
            img_lq, img_gt = augment([img_lq, img_gt], self.use_hflip, self.use_rot)
        return img_lq, img_gt, lq_path, gt_path

    def read_good_pair(self, index, quality=None):
        """``read_pair`` of ``index`` or, with ``skip_bad_images``, of the next pair that can be read."""
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            if candidate not in self.bad_indices:
                try:
                    return self.read_pair(candidate, quality)
                except BadImageError as error:
                    self.bad_image(error)
                    self.bad_indices.add(candidate)
        raise BadImageError(f'No readable image pairs in {", ".join(self.lq_folders + [self.gt_folder])}.')

    def pair_item(self, index, quality=None):
        """The item of pair ``index`` (see the class), a synthesized LQ image at ``quality`` (see ``read_pair``)."""
        img_lq, img_gt, lq_path, gt_path = self.read_good_pair(index, quality)
        img_lq, img_gt = to_tensor([img_lq, img_gt])
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path or gt_path, 'gt_path': gt_path}

    def __getitem__(self, index):
        return self.pair_item(index)

    def __len__(self):
        return len(self.paths)
