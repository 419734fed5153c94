import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn


def feature_vectors(feat_source, feat_target, loss_name):
    """(B_s, C, H, W) and (B_t, C, H, W) feature maps -> (B_s*H*W, C) and (B_t*H*W, C) vectors, one per position.

    2-D (B, C) inputs are vectors already and pass unchanged.
    """
    vectors = []
    for feat in (feat_source, feat_target):
        if feat.dim() not in (2, 4):
            raise ValueError(f'{loss_name}: features must be (B, C) or (B, C, H, W), got shape {tuple(feat.shape)}.')
        vectors.append(feat if feat.dim() == 2 else feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1]))
    if vectors[0].shape[1] != vectors[1].shape[1]:
        raise ValueError(f'{loss_name}: source and target features differ in channels, '
                         f'{vectors[0].shape[1]} != {vectors[1].shape[1]}.')
    return vectors


@LOSS_REGISTRY.register()
class MMDLoss(nn.Module):
    """Multi-kernel maximum mean discrepancy between source and target features (Long et al. 2015, DAN).

    Each domain's features are ``num_samples`` C-dim vectors drawn (torch's global RNG, without replacement) from
    all its B*H*W positions, or all of them if fewer. With sigma2 the mean squared distance between distinct
    vectors of the joint sample (detached, median-heuristic style), the Gaussian kernels
    ``k_s(x, y) = exp(-|x - y|^2 / (2 * s * sigma2))`` for s in ``kernel_scales`` each give the biased estimate
    ``MMD_s^2 = mean K_xx + mean K_yy - 2 mean K_xy``; the loss is their average over the kernels (DAN's convex
    combination with equal weights).

    Args:
        loss_weight (float): Weight of the loss. Default: 1.0.
        num_samples (int): Vectors sampled per domain. Default: 256.
        kernel_scales (list[float]): Bandwidth multipliers s of sigma2. Default: [0.25, 0.5, 1, 2, 4].

    Call ``loss(feat_source, feat_target)``:
        feat_source: (B_s, C, H, W) feature maps or (B_s, C) vectors of the source domain.
        feat_target: (B_t, C, H, W) feature maps or (B_t, C) vectors of the target domain.
    Returns the scalar ``loss_weight * MMD^2``; gradients flow to both inputs.
    """

    def __init__(self, loss_weight=1.0, num_samples=256, kernel_scales=(0.25, 0.5, 1, 2, 4)):
        super().__init__()
        if not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(f'MMDLoss: num_samples must be an int >= 2, got {num_samples!r}.')
        if len(kernel_scales) == 0 or min(kernel_scales) <= 0:
            raise ValueError(f'MMDLoss: kernel_scales must be non-empty and positive, got {kernel_scales!r}.')
        self.loss_weight = loss_weight
        self.num_samples = num_samples
        self.kernel_scales = [float(s) for s in kernel_scales]

    def sample(self, vectors):
        """At most ``num_samples`` rows of (N, C) ``vectors``, drawn without replacement."""
        if vectors.shape[0] <= self.num_samples:
            return vectors
        return vectors[torch.randperm(vectors.shape[0], device=vectors.device)[:self.num_samples]]

    def forward(self, feat_source, feat_target):
        source, target = (self.sample(v) for v in feature_vectors(feat_source, feat_target, 'MMDLoss'))
        joint = torch.cat([source, target])
        sq_norm = joint.pow(2).sum(1)
        dist = (sq_norm[:, None] + sq_norm[None, :] - 2 * joint @ joint.t()).clamp_min(0)
        n = joint.shape[0]
        sigma2 = (dist.detach().sum() / (n * (n - 1))).clamp_min(torch.finfo(dist.dtype).eps)
        n_s = source.shape[0]
        mmd2 = 0
        for scale in self.kernel_scales:
            kernel = torch.exp(-dist / (2 * scale * sigma2))
            mmd2 = mmd2 + kernel[:n_s, :n_s].mean() + kernel[n_s:, n_s:].mean() - 2 * kernel[:n_s, n_s:].mean()
        return self.loss_weight * mmd2 / len(self.kernel_scales)
