import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


@ARCH_REGISTRY.register()
class QualityDiscriminator(nn.Module):
    """Quality discriminator Q (Ham et al. 2021, sec. 3.2): which JPEG quality domain did F's features come from?

    F's feature map is pooled to a vector, then 3 fully connected layers, the first two followed by ReLU, give one
    logit per domain.

    Args:
        num_feat (int): Channels C of F's features.
        hidden (int): Width of the two hidden layers. Default: 256.
        num_domains (int): Number of domains (logits). Default: 2 (source, target).
        pooling (str): ``avg`` (global average pooling, C values) or ``avgstd`` (average and standard deviation
            per channel, 2C values; compression shows in feature statistics). Default: ``avg``.

    Shapes: (B, C, H, W) features -> (B, num_domains) logits.
    """

    def __init__(self, num_feat=64, hidden=256, num_domains=2, pooling='avg'):
        super().__init__()
        if pooling not in ('avg', 'avgstd'):
            raise ValueError(f"QualityDiscriminator: pooling must be 'avg' or 'avgstd', got {pooling!r}.")
        self.pooling = pooling
        in_dim = num_feat * (2 if pooling == 'avgstd' else 1)
        self.classifier = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_domains))

    def pool(self, feat):
        """(B, C, H, W) -> (B, C) or (B, 2C) statistics of each channel."""
        flat = feat.flatten(2)
        if self.pooling == 'avg':
            return flat.mean(2)
        std, mean = torch.std_mean(flat, dim=2)
        return torch.cat([mean, std], 1)

    def forward(self, feat):
        return self.classifier(self.pool(feat))
