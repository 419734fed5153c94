import random
from basicsr.utils.registry import DATASET_REGISTRY

from carn_da.data.image_pairs import (BadImageError, augment, check_patch_fits, check_root, choose_subset, image_paths,
                                      make_file_client, random_crop, read_image, size_reader, to_tensor)
from carn_da.data.jpeg_paired_dataset import JPEGPairedDataset


@DATASET_REGISTRY.register()
class TwoDomainDataset(JPEGPairedDataset):
    """Labelled source pairs plus unlabelled target JPEGs, for domain adaptation across JPEG quality.

    Each item is a source pair exactly as in ``JPEGPairedDataset`` plus one target image drawn independently of it:
    in training a random target image (python's ``random``, which BasicSR seeds per worker), cropped at its own
    random place to ``gt_size`` and augmented on its own; in other phases target ``index % num_target``, whole.
    The target root is only listed and read: it needs no ground truth, and none is ever paired or read for it.
    Target images are checked like the source when the dataset is built (readable header; in training, at least
    ``gt_size``); with ``skip_bad_images`` a target that cannot be read is dropped from the list with a warning.

    Args:
        opt (dict): Config for the dataset. It contains the options of ``JPEGPairedDataset`` (the source) and:
            dataroot_target (str): Target JPEGs: a folder (png/jpg/jpeg/bmp/tif/tiff, recursive) or an LMDB.
            io_backend_target (dict): IO backend of the target root. Default: ``io_backend``.
            num_source (int): Use only this many source pairs. Default: None (all).
            num_target (int): Use only this many target images. Default: None (all).
            subset_seed (int): Seed of those reproducible subsets, drawn with numpy's ``default_rng((seed, 0))``
                (source) and ``default_rng((seed, 1))`` (target). Default: 0.

    Items: {'lq', 'gt', 'lq_path', 'gt_path'} of the source pair, 'lq_target': (C, H, W) float32 tensor in [0, 1],
    'target_path': its file path or LMDB key. The length is the number of source pairs.
    """

    def __init__(self, opt):
        super().__init__(opt)
        seed = opt.get('subset_seed', 0)
        self.paths = choose_subset(self.paths, opt.get('num_source'), 'num_source', self.lq_folder, (seed, 0))
        self.io_backend_target_opt = opt.get('io_backend_target', self.io_backend_opt)
        self.target_folder = check_root(opt, 'dataroot_target')
        target_paths = image_paths(self.target_folder, self.io_backend_target_opt['type'])
        if not target_paths:
            raise ValueError(f'dataroot_target: no images in {self.target_folder}.')
        target_paths = choose_subset(target_paths, opt.get('num_target'), 'num_target', self.target_folder, (seed, 1))
        self.target_paths = self.check_targets(target_paths)
        self.target_client = None

    def check_targets(self, paths):
        """``paths`` of the target images whose headers can be read (see ``bad_image``), each fitting ``gt_size``."""
        read_size = size_reader(self.target_folder, self.io_backend_target_opt['type'])
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
            raise BadImageError(f'dataroot_target: no readable images in {self.target_folder}.')
        return checked

    def read_target(self, index):
        """Path and uint8 image of a target (see the class); with ``skip_bad_images``, unreadable ones are dropped."""
        while True:
            num_target = len(self.target_paths)
            path = self.target_paths[random.randrange(num_target) if self.opt['phase'] == 'train' else index %
                                     num_target]
            try:
                return path, read_image(self.target_client, path, 'target', self.color)
            except BadImageError as error:
                self.bad_image(error)
                self.target_paths.remove(path)
                if not self.target_paths:
                    raise BadImageError(f'dataroot_target: no readable images in {self.target_folder}.') from error

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if self.target_client is None:
            self.target_client = make_file_client(self.io_backend_target_opt, [self.target_folder], ['target'])
        target_path, img = self.read_target(index)
        if self.opt['phase'] == 'train':
            img = augment([random_crop(img, self.gt_size, target_path)], self.use_hflip, self.use_rot)[0]
        item['lq_target'], = to_tensor([img])
        item['target_path'] = target_path
        return item
