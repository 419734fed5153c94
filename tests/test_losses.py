"""Pixel losses of carn_da/losses beyond BasicSR's."""
import carn_da.compat  # noqa: F401

import math
import pytest
import torch
from basicsr.losses import build_loss

import carn_da.losses  # noqa: F401  (registers the losses)


def test_psnr_loss_is_the_negative_psnr_of_each_image_averaged():
    target = torch.zeros(2, 1, 4, 4)
    pred = target.clone()
    pred[0] += 0.1  # MSE 1e-2: 20 dB
    pred[1, 0, 0, :2] = 0.2  # MSE 2 * 0.04 / 16 = 5e-3: 23.01 dB
    loss = build_loss({'type': 'PSNRLoss', 'loss_weight': 2.0, 'eps': 1e-12})
    expected = 2.0 * (10 * math.log10(1e-2) + 10 * math.log10(5e-3)) / 2
    assert loss(pred, target).item() == pytest.approx(expected, abs=1e-4)


def test_psnr_loss_weights_a_nearly_clean_image_by_its_small_error():
    target = torch.zeros(2, 1, 4, 4)
    pred = target.clone().requires_grad_()
    with torch.no_grad():
        pred[0] += 0.1  # a blocky crop
        pred[1] += 0.01  # a nearly clean one: a step in pixels lowers its loss far more
    build_loss({'type': 'PSNRLoss'})(pred, target).backward()
    assert pred.grad[1].abs().mean() > 5 * pred.grad[0].abs().mean()
    l1 = torch.nn.functional.l1_loss  # where L1 gives both the same weight
    pred.grad = None
    l1(pred, target).backward()
    assert torch.allclose(pred.grad[1], pred.grad[0])


def test_psnr_loss_floor_is_positive():
    with pytest.raises(ValueError, match='eps must be > 0'):
        build_loss({'type': 'PSNRLoss', 'eps': 0})
