import carn_da.compat  # noqa: F401

import cv2
import math
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric, calculate_psnr, calculate_ssim
from basicsr.utils.registry import METRIC_REGISTRY
from torch import nn

from carn_da.metrics.psnrb_metric import blocking_effect_factor, calculate_psnrb
from carn_da.utils import inference, scores


def _psnr(mse):
    return 10 * math.log10(255**2 / mse)


def _ramp_16():
    """16x16 ground truth: x (column index) in every row."""
    return np.tile(np.arange(16, dtype=np.uint8), (16, 1))


def _stepped_16():
    """The ramp plus a step of 8 at column 8 and of 4 at row 8: smooth except at the block edges."""
    y, x = np.mgrid[:16, :16]
    return (x + 8 * (x >= 8) + 4 * (y >= 8)).astype(np.uint8)


def test_constant_image_has_no_blocking():
    assert blocking_effect_factor(np.full((16, 24), 77, np.uint8)) == 0


def test_bef_of_block_steps_by_hand():
    # Boundary pairs: column pair (7, 8) in 16 rows, each diff 1 + 8 -> 16 * 81; row pair (7, 8) in 16 columns,
    # diff 4 -> 16 * 16. Count 16 * (16 // 8 - 1) * 2 = 32, so D_B = (1296 + 256) / 32 = 48.5.
    # Non-boundary pairs: 16 rows x 14 column pairs of diff 1, vertical ones 0, over 2 * 16 * 15 - 32 = 448,
    # so D_Bc = 224 / 448 = 0.5. eta = log2(8) / log2(16) = 0.75, BEF = 0.75 * 48 = 36.
    assert blocking_effect_factor(_stepped_16()) == pytest.approx(36, abs=1e-12)
    # the smooth ramp has D_B = 16 / 32 = D_Bc = 224 / 448: no blocking
    assert blocking_effect_factor(_ramp_16()) == 0


def test_psnrb_of_block_steps_by_hand():
    # error 0 / 8 / 4 / 12 in the four quadrants: MSE = (0 + 64 + 16 + 144) / 4 = 56; BEF = 36
    restored, gt = _stepped_16(), _ramp_16()
    assert calculate_psnrb(restored, gt, crop_border=0) == pytest.approx(_psnr(56 + 36), abs=1e-12)
    assert calculate_psnr(restored, gt, crop_border=0) == pytest.approx(_psnr(56), abs=1e-12)
    # the BEF is that of the restored image, not of the ground truth
    assert calculate_psnrb(gt, restored, crop_border=0) == pytest.approx(_psnr(56), abs=1e-12)


def test_psnrb_equals_psnr_without_blocking():
    # a checkerboard has the same squared difference (100) across every pair of neighbours: BEF = 0
    y, x = np.mgrid[:16, :16]
    checker = (10 * ((x + y) % 2)).astype(np.uint8)
    gt = np.full_like(checker, 5)
    assert blocking_effect_factor(checker) == 0
    assert calculate_psnrb(checker, gt, crop_border=0) == pytest.approx(_psnr(25), abs=1e-12)
    assert calculate_psnrb(checker, gt, crop_border=0) == pytest.approx(calculate_psnr(checker, gt, crop_border=0))
    assert calculate_psnrb(gt, gt, crop_border=0) == float('inf')


def test_psnrb_not_above_psnr_for_jpeg():
    rng = np.random.default_rng(0)
    gt = cv2.GaussianBlur(rng.integers(0, 256, (48, 40)).astype(np.uint8), (7, 7), 2)
    jpeg = cv2.imdecode(cv2.imencode('.jpg', gt, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], cv2.IMREAD_GRAYSCALE)
    assert blocking_effect_factor(jpeg) > 0
    assert calculate_psnrb(jpeg, gt, crop_border=0) < calculate_psnr(jpeg, gt, crop_border=0)


def test_non_multiple_of_8_follows_published_counts():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (21, 19)).astype(np.float64)
    h, w = img.shape
    sums = {True: 0., False: 0.}  # keyed by "is a block boundary pair"
    for y in range(h):
        for x in range(w - 1):
            sums[x % 8 == 7] += (img[y, x] - img[y, x + 1])**2
    for y in range(h - 1):
        for x in range(w):
            sums[y % 8 == 7] += (img[y, x] - img[y + 1, x])**2
    # pairs at x = 7, 15 and y = 7, 15 (80 of them) are summed, but counted as 21 * (19 // 8 - 1) + 19 * (21 // 8 - 1)
    n_boundary = 21 * 1 + 19 * 1
    n_nonboundary = 21 * 18 + 19 * 20 - n_boundary
    d_b, d_bc = sums[True] / n_boundary, sums[False] / n_nonboundary
    assert d_b > d_bc
    expected = math.log2(8) / math.log2(19) * (d_b - d_bc)
    assert blocking_effect_factor(img) == pytest.approx(expected, rel=1e-12)

    gt = np.full((h, w), 128, np.uint8)
    mse = np.mean((img - 128)**2)
    assert calculate_psnrb(img.astype(np.uint8), gt, crop_border=0) == pytest.approx(_psnr(mse + expected), rel=1e-12)


def test_too_small_image_is_rejected():
    with pytest.raises(ValueError):
        blocking_effect_factor(np.zeros((8, 8)))


def test_color_psnrb_averages_channels():
    stepped, ramp = _stepped_16(), _ramp_16()
    restored = np.stack([stepped, ramp + 3, stepped], axis=2)
    gt = np.stack([ramp] * 3, axis=2)
    expected = (_psnr(56 + 36) + _psnr(9) + _psnr(56 + 36)) / 3
    assert calculate_psnrb(restored, gt, crop_border=0) == pytest.approx(expected, abs=1e-12)
    chw = calculate_psnrb(restored.transpose(2, 0, 1), gt.transpose(2, 0, 1), 0, input_order='CHW')
    assert chw == pytest.approx(expected, abs=1e-12)
    # 2-D input is one channel
    assert calculate_psnrb(stepped, ramp, 0) == calculate_psnrb(stepped[..., None], ramp[..., None], 0)


def test_registry():
    assert METRIC_REGISTRY.get('calculate_psnrb') is calculate_psnrb
    value = calculate_metric({'img': _stepped_16(), 'img2': _ramp_16()}, {'type': 'calculate_psnrb', 'crop_border': 0})
    assert value == pytest.approx(_psnr(92), abs=1e-12)


class _ZeroFirstChannel(nn.Module):

    def forward(self, x):
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:]], 1)


def test_restore_identity_and_channel_order():
    rng = np.random.default_rng(2)
    for shape in [(12, 10, 3), (12, 10), (12, 10, 1)]:
        img = rng.integers(0, 256, shape).astype(np.uint8)
        out = inference.restore(nn.Identity(), img)
        assert out.dtype == np.uint8 and out.shape == shape
        np.testing.assert_array_equal(out, img)
    # the network sees RGB: zeroing its first channel zeroes the R (last) channel of a BGR image
    img = rng.integers(1, 256, (12, 10, 3)).astype(np.uint8)
    out = inference.restore(_ZeroFirstChannel(), img)
    np.testing.assert_array_equal(out[..., :2], img[..., :2])
    assert not out[..., 2].any()


def test_restore_clamps():

    class AddOne(nn.Module):

        def forward(self, x):
            return x + 1

    img = np.zeros((8, 8, 3), np.uint8)
    assert (inference.restore(AddOne(), img) == 255).all()


def _jpeg_pairs():
    rng = np.random.default_rng(3)
    pairs = []
    for i in range(2):
        gt = cv2.GaussianBlur(rng.integers(0, 256, (32, 24, 3)).astype(np.uint8), (5, 5), 1.5)
        lq = cv2.imdecode(cv2.imencode('.jpg', gt, [cv2.IMWRITE_JPEG_QUALITY, 20])[1], cv2.IMREAD_COLOR)
        pairs.append((f'img{i}', lq, gt))
    return pairs


def test_evaluate_pairs_without_net_scores_the_jpeg():
    pairs = _jpeg_pairs()
    rows = scores.evaluate_pairs(pairs)
    assert [row['name'] for row in rows] == ['img0', 'img1']
    for row, (_, lq, gt) in zip(rows, pairs):
        assert row['psnr'] == calculate_psnr(lq, gt, crop_border=0)
        assert row['ssim'] == calculate_ssim(lq, gt, crop_border=0)
        assert row['psnrb'] == calculate_psnrb(lq, gt, crop_border=0)
    assert scores.evaluate_pairs(pairs, net=nn.Identity()) == rows
    mean = scores.mean_scores(rows)
    assert mean['psnr'] == pytest.approx((rows[0]['psnr'] + rows[1]['psnr']) / 2)
    assert mean['ssim'] == pytest.approx((rows[0]['ssim'] + rows[1]['ssim']) / 2)


def test_markdown_table():
    columns = [('LIVE1_psnr', 'LIVE1 PSNR'), ('LIVE1_ssim', 'LIVE1 SSIM'), ('BSDS_psnrb', 'BSDS PSNR-B')]
    jpeg = {'LIVE1_psnr': 26.96, 'LIVE1_ssim': 0.7, 'BSDS_psnrb': 25.5}
    rdn = {'LIVE1_psnr': 28.14, 'LIVE1_ssim': 0.81234}
    expected = ('| | LIVE1 PSNR | LIVE1 SSIM | BSDS PSNR-B |\n'
                '|---|---:|---:|---:|\n'
                '| JPEG | 26.96 | 0.7000 | 25.50 |\n'
                '| RDN | 28.14 (+1.18) | 0.8123 (+0.1123) |  |\n')
    assert scores.markdown_table(columns, [('JPEG', jpeg), ('RDN', rdn)], reference='JPEG') == expected

    expected = '| | PSNR |\n|---|---:|\n| A | 30.13 |\n'
    assert scores.markdown_table([('psnr', 'PSNR')], [('A', {'psnr': 30.126})]) == expected
