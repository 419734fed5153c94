import math
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn


@LOSS_REGISTRY.register()
class PSNRLoss(nn.Module):
    """The negative PSNR of each image (peak 1), averaged over the batch: ``10 log10(MSE_i + eps)``.

    Where L1 weights every pixel alike, this weights each image by the inverse of its error, so a crop that is
    nearly clean (a high-quality JPEG) counts as much as a blocky one: the loss of a model that is to gain PSNR on
    every image, and above all never lose it on an easy one. ``eps`` is the MSE below which an image stops
    counting more (1e-5: 50 dB), so that never-compressed crops, whose ideal error is 0, do not take over the batch.

    Args:
        loss_weight (float): Weight of the loss. Default: 1.0.
        eps (float): Added to each image's MSE. Default: 1e-5.

    Call ``loss(pred, target)`` with (N, C, H, W) tensors in [0, 1]; returns the scalar loss (dB, negative).
    """

    def __init__(self, loss_weight=1.0, eps=1e-5):
        super().__init__()
        if eps <= 0:
            raise ValueError(f'PSNRLoss: eps must be > 0, got {eps}.')
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(self, pred, target):
        mse = (pred - target).pow(2).flatten(1).mean(1)
        return self.loss_weight * (10 / math.log(10)) * torch.log(mse + self.eps).mean()
