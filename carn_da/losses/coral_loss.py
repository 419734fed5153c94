import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from carn_da.losses.mmd_loss import feature_vectors


@LOSS_REGISTRY.register()
class CORALLoss(nn.Module):
    """Deep CORAL (Sun & Saenko 2016): align the second-order statistics of source and target features.

    ``||Cov_s - Cov_t||_F^2 / (4 C^2)`` with Cov the unbiased (C, C) covariance of the C-dim vectors at all
    positions of all images of a domain.

    Args:
        loss_weight (float): Weight of the loss. Default: 1.0.

    Call ``loss(feat_source, feat_target)``:
        feat_source: (B_s, C, H, W) feature maps or (B_s, C) vectors of the source domain.
        feat_target: (B_t, C, H, W) feature maps or (B_t, C) vectors of the target domain.
    Returns the scalar ``loss_weight * CORAL``; gradients flow to both inputs.
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, feat_source, feat_target):
        source, target = feature_vectors(feat_source, feat_target, 'CORALLoss')
        if min(source.shape[0], target.shape[0]) < 2:
            raise ValueError('CORALLoss: each domain needs at least 2 feature vectors for a covariance.')
        diff = torch.cov(source.t()) - torch.cov(target.t())
        return self.loss_weight * diff.pow(2).sum() / (4 * source.shape[1]**2)
