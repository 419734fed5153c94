import carn_da.compat  # noqa: F401

import cv2
import numpy as np
import pytest
import random
import torch
from basicsr.data import build_dataset
from basicsr.utils import FileClient
from basicsr.utils.lmdb_util import LmdbMaker
from basicsr.utils.registry import DATASET_REGISTRY
from conftest import textured_image
from numpy.lib.stride_tricks import sliding_window_view
from os import path as osp
from PIL import Image

from carn_da.data.jpeg_paired_dataset import JPEGPairedDataset
from carn_da.data.two_domain_dataset import TwoDomainDataset
from carn_da.utils.jpeg import decode_luma, jpeg_compress, recompress


def noise(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def write_pairs(root, stems, h=80, w=96, lq_ext='.jpg'):
    """gt/<stem>.png and qf10/<stem><lq_ext> (JPEG quality 10, or lossless for other extensions); GT arrays."""
    (root / 'gt').mkdir(parents=True, exist_ok=True)
    (root / 'qf10').mkdir(exist_ok=True)
    gts = {}
    for i, stem in enumerate(stems):
        gts[stem] = noise(h, w, i)
        cv2.imwrite(str(root / 'gt' / f'{stem}.png'), gts[stem])
        cv2.imwrite(str(root / 'qf10' / f'{stem}{lq_ext}'), gts[stem], [cv2.IMWRITE_JPEG_QUALITY, 10])
    return gts


def write_jpegs(folder, names, h=80, w=96):
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), noise(h, w, 100 + i), [cv2.IMWRITE_JPEG_QUALITY, 50])


def paired_opt(root, phase='train', **kwargs):
    opt = dict(
        name='test',
        type='JPEGPairedDataset',
        dataroot_gt=str(root / 'gt'),
        dataroot_lq=str(root / 'qf10'),
        io_backend={'type': 'disk'},
        phase=phase,
        gt_size=64)
    return dict(opt, **kwargs)


def two_domain_opt(root, target, phase='train', **kwargs):
    return paired_opt(root, phase, type='TwoDomainDataset', dataroot_target=str(target), **kwargs)


@pytest.fixture
def requests(monkeypatch):
    """The (path, client key) of every file BasicSR's FileClient reads during the test."""
    seen = []
    real_get = FileClient.get

    def spy(self, filepath, client_key='default'):
        seen.append((str(filepath), client_key))
        return real_get(self, filepath, client_key)

    monkeypatch.setattr(FileClient, 'get', spy)
    return seen


def window_position(img, patch):
    """(top, left) of every place where ``patch`` (H, W) occurs in ``img`` (H, W)."""
    windows = sliding_window_view(img, patch.shape)
    return list(zip(*np.nonzero((windows == patch).all(axis=(2, 3)))))


def occurs(img, patch, flipped=False):
    """Whether ``patch``, or with ``flipped`` also its mirror image, is a window of ``img``."""
    return bool(window_position(img, patch) or flipped and window_position(img, np.fliplr(patch)))


def as_uint8(tensor):
    return (tensor.squeeze(0).numpy() * 255).round().astype(np.uint8)


def write_lmdb(path, items):
    """BasicSR LMDB at ``path`` of {key: (encoded bytes, (h, w, c))}."""
    maker = LmdbMaker(str(path))
    for key, (content, shape) in items.items():
        maker.put(content, key, shape)
    maker.close()


def test_train_items_are_float_patches_paired_by_stem(tmp_path):
    write_pairs(tmp_path, ['a', 'b', 'c'])
    dataset = JPEGPairedDataset(paired_opt(tmp_path, use_hflip=True, use_rot=True))
    assert len(dataset) == 3
    item = dataset[1]
    for key in ('lq', 'gt'):
        assert item[key].shape == (1, 64, 64) and item[key].dtype == torch.float32
        assert 0 <= item[key].min() and item[key].max() <= 1
    assert item['gt_path'] == str(tmp_path / 'gt' / 'b.png')
    assert item['lq_path'] == str(tmp_path / 'qf10' / 'b.jpg')
    assert (item['lq'] - item['gt']).abs().mean() < 0.25  # the JPEG of the same region, not of another one


def test_lq_and_gt_crops_are_the_same_region(tmp_path):
    gt = write_pairs(tmp_path, ['a'], lq_ext='.bmp')['a']  # lossless LQ: equal to GT wherever the crop is right
    dataset = JPEGPairedDataset(paired_opt(tmp_path))
    random.seed(0)
    positions = set()
    for _ in range(20):
        item = dataset[0]
        assert torch.equal(item['lq'], item['gt'])
        found = window_position(gt, as_uint8(item['gt']))
        assert len(found) == 1
        positions.add(found[0])
    assert len(positions) > 1


def dihedral(img):
    """The 8 rotations and mirrorings of an (H, W) image, as bytes."""
    variants = [np.rot90(img, k) for k in range(4)]
    return {v.tobytes() for v in variants + [np.fliplr(v) for v in variants]}


@pytest.mark.parametrize('use_hflip, use_rot, num_variants', [(False, False, 1), (True, False, 2), (True, True, 8)])
def test_augmentation_is_identical_for_lq_and_gt(tmp_path, use_hflip, use_rot, num_variants):
    gt = write_pairs(tmp_path, ['a'], h=64, w=64, lq_ext='.png')['a']  # patch = whole image, lq == gt
    dataset = JPEGPairedDataset(paired_opt(tmp_path, use_hflip=use_hflip, use_rot=use_rot))
    random.seed(0)
    seen = set()
    for _ in range(100):
        item = dataset[0]
        assert torch.equal(item['lq'], item['gt'])
        seen.add(as_uint8(item['gt']).tobytes())
    assert len(seen) == num_variants
    assert seen <= dihedral(gt)
    assert gt.tobytes() in seen
    if use_hflip:
        assert np.fliplr(gt).tobytes() in seen


def test_validation_returns_whole_images(tmp_path):
    gt = write_pairs(tmp_path, ['a'], h=70, w=50)['a']
    item = JPEGPairedDataset(paired_opt(tmp_path, phase='val', gt_size=32))[0]
    assert item['lq'].shape == item['gt'].shape == (1, 70, 50)
    np.testing.assert_array_equal(as_uint8(item['gt']), gt)


def test_rgb_color_gives_three_channels_in_rgb_order(tmp_path):
    write_pairs(tmp_path, ['a'], h=64, w=64)
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[..., 0] = 255  # BGR
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), blue)
    item = JPEGPairedDataset(paired_opt(tmp_path, phase='val', color='rgb'))[0]
    assert item['gt'].shape == item['lq'].shape == (3, 64, 64)
    assert item['gt'][2].min() == 1 and item['gt'][:2].max() == 0


def test_disk_and_lmdb_backends_give_identical_tensors(tmp_path):
    write_pairs(tmp_path, ['a', 'b'])
    for folder, ext in (('gt', '.png'), ('qf10', '.jpg')):
        write_lmdb(tmp_path / f'{folder}.lmdb',
                   {stem: ((tmp_path / folder / f'{stem}{ext}').read_bytes(), (80, 96, 1))
                    for stem in 'ab'})
    disk_opt = paired_opt(tmp_path, use_hflip=True, use_rot=True)
    lmdb_opt = dict(
        disk_opt,
        dataroot_gt=str(tmp_path / 'gt.lmdb'),
        dataroot_lq=str(tmp_path / 'qf10.lmdb'),
        io_backend={'type': 'lmdb'})
    for phase in ('train', 'val'):
        disk, lmdb = JPEGPairedDataset(dict(disk_opt, phase=phase)), JPEGPairedDataset(dict(lmdb_opt, phase=phase))
        for index in range(2):
            random.seed(index)
            from_disk = disk[index]
            random.seed(index)
            from_lmdb = lmdb[index]
            assert from_lmdb['lq_path'] == from_lmdb['gt_path'] == 'ab'[index]
            assert torch.equal(from_disk['lq'], from_lmdb['lq']) and torch.equal(from_disk['gt'], from_lmdb['gt'])


def test_unpaired_images_raise_naming_the_files(tmp_path):
    write_pairs(tmp_path, ['a', 'b', 'c'])
    (tmp_path / 'gt' / 'b.png').unlink()
    (tmp_path / 'qf10' / 'c.jpg').unlink()
    with pytest.raises(ValueError) as error:
        JPEGPairedDataset(paired_opt(tmp_path))
    message = str(error.value)
    assert str(tmp_path / 'qf10' / 'b.jpg') in message and str(tmp_path / 'gt' / 'c.png') in message
    assert f'in {tmp_path / "gt"}' in message and f'in {tmp_path / "qf10"}' in message


def test_size_mismatch_raises_naming_both_files(tmp_path):
    write_pairs(tmp_path, ['a'])
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), noise(80, 90, 0))
    for phase in ('train', 'val'):
        with pytest.raises(ValueError, match=r'qf10/a\.jpg is 80x96 but GT .*gt/a\.png is 80x90'):
            JPEGPairedDataset(paired_opt(tmp_path, phase=phase))[0]


def test_patch_larger_than_image_raises_naming_the_file(tmp_path):
    write_pairs(tmp_path, ['a'], h=40, w=96)
    with pytest.raises(ValueError, match=r'Patch 64x64 is larger than image .*gt/a\.png \(40x96\)'):
        JPEGPairedDataset(paired_opt(tmp_path))[0]


def test_undecodable_image_raises_naming_the_file(tmp_path):
    write_pairs(tmp_path, ['a'])
    (tmp_path / 'qf10' / 'a.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(ValueError, match=r'Cannot decode image .*qf10/a\.jpg'):
        JPEGPairedDataset(paired_opt(tmp_path))[0]


def test_missing_roots_and_meta_info_raise_naming_them(tmp_path):
    write_pairs(tmp_path, ['a'])
    with pytest.raises(FileNotFoundError, match=r'dataroot_lq: folder .*nowhere does not exist'):
        JPEGPairedDataset(dict(paired_opt(tmp_path), dataroot_lq=str(tmp_path / 'nowhere')))
    (tmp_path / 'gt.lmdb').mkdir()
    (tmp_path / 'qf10.lmdb').mkdir()
    opt = dict(
        paired_opt(tmp_path),
        dataroot_gt=str(tmp_path / 'gt.lmdb'),
        dataroot_lq=str(tmp_path / 'qf10.lmdb'),
        io_backend={'type': 'lmdb'})
    with pytest.raises(FileNotFoundError, match=r'qf10\.lmdb/meta_info\.txt'):
        JPEGPairedDataset(opt)


def test_registry_and_build_dataset(tmp_path):
    write_pairs(tmp_path, ['a'])
    write_jpegs(tmp_path / 'target', ['t.jpg'])
    assert DATASET_REGISTRY.get('JPEGPairedDataset') is JPEGPairedDataset
    assert DATASET_REGISTRY.get('TwoDomainDataset') is TwoDomainDataset
    opt = paired_opt(tmp_path)
    assert isinstance(build_dataset(opt), JPEGPairedDataset)
    item = build_dataset(two_domain_opt(tmp_path, tmp_path / 'target'))[0]
    assert item['lq_target'].shape == (1, 64, 64)
    assert opt['io_backend'] == {'type': 'disk'}  # options are not consumed


def test_two_domain_reads_target_jpegs_without_any_ground_truth(tmp_path, requests):
    source_gt = write_pairs(tmp_path / 'source', ['a', 'b'])
    target = tmp_path / 'elsewhere' / 'qf50'
    write_jpegs(target, ['x.jpg', 'sub/y.jpeg', 'sub/deeper/z.JPG'])
    (target / '.DS_Store').write_bytes(b'not an image')
    (target / 'notes.txt').write_text('not an image')
    dataset = TwoDomainDataset(two_domain_opt(tmp_path / 'source', target, use_hflip=True))
    assert len(dataset) == 2
    assert dataset.target_paths == [str(target / v) for v in ('sub/deeper/z.JPG', 'sub/y.jpeg', 'x.jpg')]
    random.seed(0)
    targets = set()
    for index in (0, 1) * 10:
        item = dataset[index]
        assert item['lq_target'].shape == (1, 64, 64) and item['lq_target'].dtype == torch.float32
        assert item['gt_path'] == str(tmp_path / 'source' / 'gt' / f'{"ab"[index]}.png')
        assert occurs(source_gt['ab'[index]], as_uint8(item['gt']), flipped=True)  # the source pair as usual
        assert occurs(cv2.imread(item['target_path'], cv2.IMREAD_GRAYSCALE), as_uint8(item['lq_target']), flipped=True)
        targets.add(item['target_path'])
    assert targets == set(dataset.target_paths)
    source = {(str(tmp_path / 'source' / folder / f'{s}{ext}'), key)
              for folder, ext, key in (('gt', '.png', 'gt'), ('qf10', '.jpg', 'lq0'))
              for s in 'ab'}
    assert set(requests) == source | {(path, 'target') for path in dataset.target_paths}
    assert len(requests) == 3 * 20  # per item: LQ, GT, one target image and nothing else


def test_two_domain_validation_and_lmdb_target(tmp_path):
    write_pairs(tmp_path, ['a', 'b', 'c'])
    write_jpegs(tmp_path / 'target', ['x.jpg', 'y.jpg'], h=72, w=56)
    write_lmdb(tmp_path / 'target.lmdb',
               {stem: ((tmp_path / 'target' / f'{stem}.jpg').read_bytes(), (72, 56, 1))
                for stem in 'xy'})
    on_disk = TwoDomainDataset(two_domain_opt(tmp_path, tmp_path / 'target', phase='val'))
    in_lmdb = TwoDomainDataset(
        two_domain_opt(tmp_path, tmp_path / 'target.lmdb', phase='val', io_backend_target={'type': 'lmdb'}))
    assert [in_lmdb[i]['target_path'] for i in range(3)] == ['x', 'y', 'x']
    for index in range(3):
        assert on_disk[index]['lq_target'].shape == (1, 72, 56)
        assert torch.equal(on_disk[index]['lq_target'], in_lmdb[index]['lq_target'])
        assert torch.equal(on_disk[index]['gt'], in_lmdb[index]['gt'])


def test_subsets_are_reproducible_and_checked(tmp_path):
    write_pairs(tmp_path, list('abcdef'), h=64, w=64)
    write_jpegs(tmp_path / 'target', [f'{i}.jpg' for i in range(5)], h=64, w=64)

    def subsets(seed):
        dataset = TwoDomainDataset(
            two_domain_opt(tmp_path, tmp_path / 'target', num_source=3, num_target=2, subset_seed=seed))
        assert len(dataset) == 3 and len(dataset.target_paths) == 2
        return [v['lq_path'] for v in dataset.paths], dataset.target_paths

    assert subsets(0) == subsets(0)
    assert subsets(1) == subsets(1)
    assert subsets(0)[0] != subsets(1)[0] and subsets(0)[1] != subsets(1)[1]
    full = TwoDomainDataset(two_domain_opt(tmp_path, tmp_path / 'target'))
    assert len(full) == 6 and len(full.target_paths) == 5
    with pytest.raises(ValueError, match=r'num_source=7, .* the 6 images found in .*qf10'):
        TwoDomainDataset(two_domain_opt(tmp_path, tmp_path / 'target', num_source=7))
    with pytest.raises(ValueError, match=r'num_target=6, .* the 5 images found in .*target'):
        TwoDomainDataset(two_domain_opt(tmp_path, tmp_path / 'target', num_target=6))


def test_several_lq_roots_pool_qualities_with_per_root_counts(tmp_path):
    """The BQ scenario: one ground truth, JPEGs of two qualities, N pairs drawn from each."""
    gts = write_pairs(tmp_path, ['a', 'b', 'c', 'd'])
    (tmp_path / 'qf70').mkdir()
    for stem, gt in gts.items():
        cv2.imwrite(str(tmp_path / 'qf70' / f'{stem}.jpg'), gt, [cv2.IMWRITE_JPEG_QUALITY, 70])
    roots = [str(tmp_path / 'qf10'), str(tmp_path / 'qf70')]
    dataset = JPEGPairedDataset(paired_opt(tmp_path, 'val', dataroot_lqs=roots, num_pairs=[1, 3]))
    lq_folders = [path['lq_path'].split('/')[-2] for path in dataset.paths]
    assert lq_folders == ['qf10', 'qf70', 'qf70', 'qf70']
    for index, pair in enumerate(dataset.paths):
        item = dataset[index]
        expected = cv2.imread(pair['lq_path'], cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(as_uint8(item['lq']), expected)
    assert len(JPEGPairedDataset(paired_opt(tmp_path, 'val', dataroot_lqs=roots))) == 8
    with pytest.raises(ValueError, match='num_pairs has 1 entries but there are 2 LQ roots'):
        JPEGPairedDataset(paired_opt(tmp_path, 'val', dataroot_lqs=roots, num_pairs=[1]))


def test_jpeg_range_compresses_the_ground_truth_when_read(tmp_path):
    gts = write_pairs(tmp_path, ['a', 'b'])
    dataset = JPEGPairedDataset(paired_opt(tmp_path, 'val', dataroot_lq=None, jpeg_range=[30, 30]))
    item = dataset[0]
    assert item['lq_path'] == item['gt_path'] == str(tmp_path / 'gt' / 'a.png')
    assert np.array_equal(as_uint8(item['lq']), jpeg_compress(gts['a'], 30))
    blind = JPEGPairedDataset(paired_opt(tmp_path, 'val', dataroot_lq=None, jpeg_range=[10, 90]))
    random.seed(0)
    assert len({as_uint8(blind[1]['lq']).tobytes() for _ in range(8)}) > 1  # a new quality at every read
    train = JPEGPairedDataset(paired_opt(tmp_path, dataroot_lq=None, jpeg_range=[10, 10]))
    patch = train[0]
    assert patch['lq'].shape == patch['gt'].shape == (1, 64, 64)
    assert occurs(jpeg_compress(gts['a'], 10), as_uint8(patch['lq']))  # compressed whole, then cropped


def test_degradations_resave_resize_or_leave_clean_as_configured(tmp_path):
    write_pairs(tmp_path, ['a'], h=96, w=128)
    gt = textured_image(np.random.default_rng(3), 96, 128)
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), gt)
    opt = paired_opt(tmp_path, 'val', dataroot_lq=None, jpeg_range=[30, 30])
    clean = JPEGPairedDataset(dict(opt, clean_prob=1))[0]
    assert np.array_equal(as_uint8(clean['lq']), gt) and np.array_equal(as_uint8(clean['gt']), gt)
    resaving = JPEGPairedDataset(dict(opt, jpeg_range=[10, 90], resave_prob=1))
    qualities = iter([30, 70])
    resaving.random_quality = lambda: next(qualities)
    resaved = as_uint8(resaving[0]['lq'])
    assert np.array_equal(resaved, jpeg_compress(jpeg_compress(gt, 30), 70))
    assert not any(np.array_equal(resaved, jpeg_compress(gt, q)) for q in (30, 70))
    random.seed(1)
    resized = JPEGPairedDataset(dict(opt, resize_prob=1, resize_range=[0.5, 0.5], gt_size=48))
    for _ in range(6):
        item = resized[0]
        lq, small_gt = as_uint8(item['lq']), as_uint8(item['gt'])
        assert lq.shape == small_gt.shape == (48, 64)
        resizes = [[cv2.resize(img, (64, 48), interpolation=interpolation) for img in (jpeg_compress(gt, 30), gt)]
                   for interpolation in (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)]
        assert any(np.array_equal(lq, a) and np.array_equal(small_gt, b) for a, b in resizes)
    too_small = JPEGPairedDataset(dict(opt, resize_prob=1, resize_range=[0.5, 0.5], gt_size=64, phase='train'))
    assert too_small[0]['lq'].shape == (1, 64, 64)  # 48x64 would not fit the patch: left at full size


def test_resized_jpegs_take_their_quality_from_resize_jpeg_range(tmp_path):
    write_pairs(tmp_path, ['a'], h=96, w=128)
    gt = textured_image(np.random.default_rng(3), 96, 128)
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), gt)
    opt = paired_opt(tmp_path, 'val', dataroot_lq=None, jpeg_range=[10, 10], resize_range=[0.5, 0.5], gt_size=48)
    ways = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)
    resized_at = {q: [cv2.resize(jpeg_compress(gt, q), (64, 48), interpolation=way) for way in ways] for q in (10, 90)}
    random.seed(2)
    always = JPEGPairedDataset(dict(opt, resize_prob=1, resave_prob=1, resize_jpeg_range=[90, 90]))
    for _ in range(4):
        lq = as_uint8(always[0]['lq'])
        assert any(np.array_equal(lq, r) for r in resized_at[90])  # from the ground truth at 90, not re-saved
        assert not any(np.array_equal(lq, r) for r in resized_at[10])
    sometimes = JPEGPairedDataset(dict(opt, resize_prob=0.5, resize_jpeg_range=[90, 90]))
    lqs = [as_uint8(sometimes[0]['lq']) for _ in range(16)]
    assert {lq.shape for lq in lqs} == {(48, 64), (96, 128)}
    for lq in lqs:
        assert np.array_equal(lq, jpeg_compress(gt, 10)) or any(np.array_equal(lq, r) for r in resized_at[90])


@pytest.mark.parametrize('options, message', [
    ({
        'resize_prob': 1.5
    }, r'resize_prob must be a probability'),
    ({
        'clean_prob': 0.1,
        'jpeg_range': None
    }, 'clean_prob .* needs jpeg_range'),
    ({
        'resize_range': [0.5, 2]
    }, 'resize_range must be'),
    ({
        'resize_jpeg_range': [80, 95]
    }, 'resize_jpeg_range .* needs resize_prob'),
    ({
        'resize_prob': 0.2,
        'resize_jpeg_range': [95, 80]
    }, 'resize_jpeg_range: min 95 is above max 80'),
    ({
        'resize_prob': 0.2,
        'resize_jpeg_range': 90
    }, r'resize_jpeg_range must be \[min, max\]'),
])
def test_bad_degradations_raise_naming_the_key(tmp_path, options, message):
    write_pairs(tmp_path, ['a'])
    opt = dict(paired_opt(tmp_path, dataroot_lq=None, jpeg_range=[10, 90]), **options)
    if opt['jpeg_range'] is None:
        opt['dataroot_lq'] = str(tmp_path / 'qf10')
    with pytest.raises(ValueError, match=message):
        JPEGPairedDataset(opt)


@pytest.mark.parametrize('jpeg_range, message', [([10], r'\[min, max\]'), ([50, 10], 'above max'), ([0, 10], '1..100'),
                                                 ([10, 20], 'remove dataroot_lq')])
def test_bad_jpeg_range_raises(tmp_path, jpeg_range, message):
    write_pairs(tmp_path, ['a'])
    opt = paired_opt(tmp_path, jpeg_range=jpeg_range)
    if message != 'remove dataroot_lq':
        opt['dataroot_lq'] = None
    with pytest.raises(ValueError, match=message):
        JPEGPairedDataset(opt)


def test_target_self_supervision_recompresses_on_a_shifted_grid(tmp_path):
    write_pairs(tmp_path / 'source', ['a'])
    target = tmp_path / 'target'
    write_jpegs(target, ['x.jpg'])  # QF 50
    dataset = TwoDomainDataset(
        two_domain_opt(tmp_path / 'source', target, 'val', target_quality='file', target_self_supervision=True))
    decoded = cv2.imread(str(target / 'x.jpg'), cv2.IMREAD_GRAYSCALE)
    shifted = {recompress(decoded, 50, (dy, dx)).tobytes() for dy in range(8) for dx in range(8) if dy or dx}
    random.seed(0)
    for _ in range(5):
        item = dataset[0]
        assert item['target_quality'] == 50
        assert np.array_equal(as_uint8(item['lq_target']), decoded)  # the goal: the decoded target JPEG itself
        assert as_uint8(item['lq_target_self']).tobytes() in shifted  # never the target's own grid (0, 0)
    train = TwoDomainDataset(
        two_domain_opt(tmp_path / 'source', target, target_quality=50, target_self_supervision=True, use_rot=True))
    item = train[0]
    assert item['lq_target_self'].shape == item['lq_target'].shape == (1, 64, 64)
    assert (item['lq_target_self'] - item['lq_target']).abs().mean() > 1 / 255


def test_target_quality_from_pixels_and_file_checks(tmp_path):
    write_pairs(tmp_path / 'source', ['a'])
    target = tmp_path / 'target'
    target.mkdir()
    img = textured_image(np.random.default_rng(0), 96, 128)
    cv2.imwrite(str(target / 'x.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, 50])
    dataset = TwoDomainDataset(two_domain_opt(tmp_path / 'source', target, 'val', target_quality='pixels'))
    assert dataset[0]['target_quality'] == 50
    # a decoded JPEG saved as PNG, cropped off its grid: file reads its pixels; a never-compressed PNG is refused
    cv2.imwrite(str(target / 'crop.png'), jpeg_compress(img, 30)[5:, 3:])
    dataset = TwoDomainDataset(two_domain_opt(tmp_path / 'source', target, target_quality='file'))
    assert {
        osp.basename(p): (r.quality, r.offset)
        for p, r in dataset.readings.items()
    } == {
        'crop.png': (30, (5, 3)),
        'x.jpg': (50, (0, 0))
    }
    # self-supervision never recompresses on the grid a crop of that target was coded on: (top + 5, left + 3) mod 8
    crop = dataset.readings[str(target / 'crop.png')]
    random.seed(0)
    for top, left in ((0, 0), (3, 5), (11, 2)):
        img_crop = jpeg_compress(img, 30)[5 + top:5 + top + 16, 3 + left:3 + left + 16]
        on_its_grid = recompress(img_crop, 30, ((top + 5) % 8, (left + 3) % 8))
        assert not any(
            np.array_equal(dataset.self_supervision_pair(img_crop, crop, top, left)[0], on_its_grid)
            for _ in range(100))
    cv2.imwrite(str(target / 'y.png'), noise(80, 96, 7))
    with pytest.raises(ValueError, match=r'quality of \S*y\.png is unknown \(no JPEG grid'):
        TwoDomainDataset(two_domain_opt(tmp_path / 'source', target, target_quality='file'))
    with pytest.raises(ValueError, match='need target_quality'):
        TwoDomainDataset(two_domain_opt(tmp_path / 'source', target, target_self_supervision=True))
    with pytest.raises(ValueError, match='1..100'):
        TwoDomainDataset(two_domain_opt(tmp_path / 'source', target, target_quality=101))


def test_source_synthesized_at_the_target_quality_reads_no_target_ground_truth(tmp_path, requests):
    gts = write_pairs(tmp_path / 'source', ['a'])
    target = tmp_path / 'target'  # JPEGs only: no ground truth exists for the target
    write_jpegs(target, ['x.jpg'])
    opt = two_domain_opt(
        tmp_path / 'source',
        target,
        'val',
        dataroot_lq=None,
        source_quality='target',
        target_quality='file',
        target_self_supervision=True)
    item = TwoDomainDataset(opt)[0]
    assert np.array_equal(as_uint8(item['lq']), jpeg_compress(gts['a'], 50))
    assert set(requests) == {(str(tmp_path / 'source' / 'gt' / 'a.png'), 'gt'), (str(target / 'x.jpg'), 'target')}
    with pytest.raises(ValueError, match='remove dataroot_lq'):
        TwoDomainDataset(dict(opt, dataroot_lq=str(tmp_path / 'source' / 'qf10')))
    with pytest.raises(ValueError, match="'target', 'both' or absent"):
        TwoDomainDataset(dict(opt, source_quality='source'))
    both = TwoDomainDataset(
        two_domain_opt(tmp_path / 'source', target, 'val', source_quality='both', target_quality='file'))
    stored = cv2.imread(str(tmp_path / 'source' / 'qf10' / 'a.jpg'), cv2.IMREAD_GRAYSCALE)
    random.seed(0)
    seen = [as_uint8(both[0]['lq']) for _ in range(12)]
    assert {0, 1} == {int(np.array_equal(lq, stored)) for lq in seen}  # the stored JPEG and ...
    assert all(np.array_equal(lq, stored) or np.array_equal(lq, jpeg_compress(gts['a'], 50)) for lq in seen)
    both_opt = two_domain_opt(tmp_path / 'source', target, 'val', source_quality='both', target_quality='file')
    for probability, expected in ((0.0, stored), (1.0, jpeg_compress(gts['a'], 50))):
        always = TwoDomainDataset(dict(both_opt, synth_probability=probability))
        assert all(np.array_equal(as_uint8(always[0]['lq']), expected) for _ in range(6))
    with pytest.raises(ValueError, match='synth_probability needs source_quality: both'):
        TwoDomainDataset(dict(opt, synth_probability=0.5))
    with pytest.raises(ValueError, match='in \\[0, 1\\], got 1.5'):
        TwoDomainDataset(dict(both_opt, synth_probability=1.5))


@pytest.mark.parametrize('aligned', [False, True])
def test_grid_aligned_crops_start_on_the_jpeg_grid(tmp_path, aligned):
    """grid_aligned: source and target crops start at multiples of 8, where the JPEG blocks of a whole file start
    (BasicSR's random crop: anywhere)."""
    gts = write_pairs(tmp_path, ['a', 'b'])
    (tmp_path / 'target').mkdir()
    target = noise(80, 96, 7)
    cv2.imwrite(str(tmp_path / 'target' / 't.png'), target)  # lossless: crops are found in it exactly
    dataset = TwoDomainDataset(two_domain_opt(tmp_path, tmp_path / 'target', gt_size=32, grid_aligned=aligned))
    random.seed(0)
    positions = {'source': set(), 'target': set()}
    for i in range(40):
        item = dataset[i % 2]
        stem = item['gt_path'].rsplit('/', 1)[-1][:-len('.png')]
        positions['source'] |= set(window_position(gts[stem], as_uint8(item['gt'])))
        positions['target'] |= set(window_position(target, as_uint8(item['lq_target'])))
    for found in positions.values():
        assert len(found) > 5 and all(top % 8 == 0 and left % 8 == 0 for top, left in found) == aligned
    with pytest.raises(ValueError, match='gt_size .36. must be a multiple of 8'):
        TwoDomainDataset(two_domain_opt(tmp_path, tmp_path / 'target', gt_size=36, grid_aligned=True))


def test_grid_aligned_target_crops_follow_the_grid_their_reading_found(tmp_path):
    """A target cropped 3 rows and 5 columns off its JPEG grid (saved losslessly): its aligned crops start where
    its blocks do, at rows 5 + 8i and columns 3 + 8j, not at multiples of 8."""
    write_pairs(tmp_path, ['a'])
    (tmp_path / 'target').mkdir()
    coded = jpeg_compress(textured_image(np.random.default_rng(4), 96, 112), 30)
    crop = coded[3:, 5:]
    cv2.imwrite(str(tmp_path / 'target' / 'crop.png'), crop)
    dataset = TwoDomainDataset(
        two_domain_opt(tmp_path, tmp_path / 'target', gt_size=32, grid_aligned=True, target_quality='pixels'))
    random.seed(0)
    found = set()
    for i in range(30):
        found |= set(window_position(crop, as_uint8(dataset[0]['lq_target'])))
    assert len(found) > 5 and all(top % 8 == 5 and left % 8 == 3 for top, left in found)


def test_targets_are_decoded_as_stored_whatever_their_exif_orientation(tmp_path):
    """A target JPEG with an EXIF rotation is read in the orientation its blocks were coded in, that of its quality
    reading: self-supervision then shifts against the grid the file was coded on, not a rotated one."""
    write_pairs(tmp_path, ['a'])
    (tmp_path / 'target').mkdir()
    stored = textured_image(np.random.default_rng(6), 40, 56)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned by 90 degrees
    Image.fromarray(stored).save(tmp_path / 'target' / 'r.jpg', 'JPEG', quality=30, exif=exif)
    assert cv2.imread(str(tmp_path / 'target' / 'r.jpg'), cv2.IMREAD_GRAYSCALE).shape == (56, 40)  # OpenCV turns it
    dataset = TwoDomainDataset(two_domain_opt(tmp_path, tmp_path / 'target', 'val', target_quality='file'))
    target = as_uint8(dataset[0]['lq_target'])
    assert target.shape == (40, 56)
    assert np.array_equal(target, decode_luma(str(tmp_path / 'target' / 'r.jpg')))
