from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from carn_da.data.image_pairs import (augment, check_color, check_root, check_same_size, choose_subset,
                                      make_file_client, paired_crop, paired_paths, read_image, to_tensor)


@DATASET_REGISTRY.register()
class JPEGPairedDataset(data.Dataset):
    """JPEG-compressed images (LQ) and their ground truth (GT), paired by stem: ``gt/a.png`` <-> ``qf10/a.jpg``.

    Folders are scanned recursively for png/jpg/jpeg/bmp/tif/tiff images; LMDBs (BasicSR format) pair by the keys
    of their ``meta_info.txt``. An image without a partner, or an LQ/GT pair of different sizes, raises ValueError.

    Args:
        opt (dict): Config for the dataset. It contains:
            dataroot_gt (str): GT folder or LMDB.
            dataroot_lq (str): LQ (JPEG) folder or LMDB.
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

    Items: {'lq', 'gt': (C, H, W) float32 tensors in [0, 1]; 'lq_path', 'gt_path': file paths or LMDB keys}.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.color = check_color(opt.get('color', 'gray'))
        self.gt_size = opt.get('gt_size', 64)
        self.use_hflip, self.use_rot = opt.get('use_hflip', False), opt.get('use_rot', False)
        self.io_backend_opt = opt.get('io_backend', {'type': 'disk'})
        self.gt_folder = check_root(opt, 'dataroot_gt')
        if opt.get('dataroot_lqs') is None:
            self.lq_folders = [check_root(opt, 'dataroot_lq')]
        else:
            self.lq_folders = [check_root({'dataroot_lqs': root}, 'dataroot_lqs') for root in opt['dataroot_lqs']]
        self.lq_folder = self.lq_folders[0]
        num_pairs = opt.get('num_pairs')
        num_pairs = num_pairs if isinstance(num_pairs, (list, tuple)) else [num_pairs] * len(self.lq_folders)
        if len(num_pairs) != len(self.lq_folders):
            raise ValueError(f'num_pairs has {len(num_pairs)} entries but there are {len(self.lq_folders)} LQ roots.')
        self.paths = []
        for i, (lq_folder, num) in enumerate(zip(self.lq_folders, num_pairs)):
            pairs = paired_paths(lq_folder, self.gt_folder, self.io_backend_opt['type'])
            if not pairs:
                raise ValueError(f'No images in {lq_folder} and {self.gt_folder}.')
            pairs = choose_subset(pairs, num, 'num_pairs', lq_folder, (opt.get('subset_seed', 0), 2 + i))
            self.paths += [dict(pair, lq_client=f'lq{i}') for pair in pairs]
        self.file_client = None

    def read_pair(self, index):
        """uint8 (H, W, C) LQ and GT images of pair ``index`` (cropped and augmented in training), and their paths."""
        if self.file_client is None:
            lq_clients = [f'lq{i}' for i in range(len(self.lq_folders))]
            self.file_client = make_file_client(self.io_backend_opt, self.lq_folders + [self.gt_folder],
                                                lq_clients + ['gt'])
        pair = self.paths[index]
        lq_path, gt_path = pair['lq_path'], pair['gt_path']
        img_lq = read_image(self.file_client, lq_path, pair['lq_client'], self.color)
        img_gt = read_image(self.file_client, gt_path, 'gt', self.color)
        check_same_size(img_lq, img_gt, lq_path, gt_path)
        if self.opt['phase'] == 'train':
            img_lq, img_gt = paired_crop(img_lq, img_gt, self.gt_size, gt_path)
            img_lq, img_gt = augment([img_lq, img_gt], self.use_hflip, self.use_rot)
        return img_lq, img_gt, lq_path, gt_path

    def __getitem__(self, index):
        img_lq, img_gt, lq_path, gt_path = self.read_pair(index)
        img_lq, img_gt = to_tensor([img_lq, img_gt])
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}

    def __len__(self):
        return len(self.paths)
