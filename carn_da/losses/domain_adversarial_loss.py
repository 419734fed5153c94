import math
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F

from carn_da.losses.gradient_reversal import reverse_gradient

SOURCE, TARGET = 0, 1


@LOSS_REGISTRY.register()
class DomainAdversarialLoss(nn.Module):
    """lambda * L_Q, the quality-discrimination loss of Ham et al. 2021 (eq. 3), trained adversarially (eqs. 4-7).

    Both feature sets pass a gradient reversal layer before the discriminator, so a single backward pass makes
    the discriminator Q *minimise* the cross-entropy of the domain labels (source 0, target 1) while the feature
    extractor F *maximises* it: the min over F, D and max over Q of ``L1_source - lambda * L_Q``.

    Args:
        loss_weight (float): lambda. Default: 0.1.
        schedule (str): ``constant`` (the paper) or ``ganin`` (warm-up of Ganin et al. 2016,
            ``lambda_p = lambda * (2 / (1 + exp(-10 p)) - 1)`` with p the training progress in [0, 1]).

    Call ``loss(discriminator, feat_source, feat_target, progress)``:
        discriminator: maps (B, C, H, W) features to (B, num_domains) logits, or (B, num_domains, h, w) logits for
            a discriminator that judges every position.
        feat_source: (B_s, C, H, W) features F gives the source batch.
        feat_target: (B_t, C, H, W) features F gives the target batch.
        progress (float): current_iter / total_iter, used by the ``ganin`` schedule.
    Returns the scalar lambda * cross-entropy. Afterwards ``accuracy`` holds the fraction of correct domain
    predictions (0.5 is chance for two balanced domains) and ``weight`` the lambda that was used.
    """

    def __init__(self, loss_weight=0.1, schedule='constant'):
        super().__init__()
        if schedule not in ('constant', 'ganin'):
            raise ValueError(f"DomainAdversarialLoss: schedule must be 'constant' or 'ganin', got {schedule!r}.")
        self.loss_weight = loss_weight
        self.schedule = schedule
        self.accuracy = float('nan')
        self.weight = loss_weight

    def lambda_at(self, progress):
        if self.schedule == 'constant':
            return self.loss_weight
        return self.loss_weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)

    def forward(self, discriminator, feat_source, feat_target, progress=1.0):
        cross_entropy = self.cross_entropy(discriminator, reverse_gradient(torch.cat([feat_source, feat_target])),
                                           len(feat_source))
        self.weight = self.lambda_at(progress)
        return self.weight * cross_entropy

    def discriminator_loss(self, discriminator, feat_source, feat_target):
        """L_Q alone, unweighted and without gradient reversal: Q's loss when it trains on its own (the warm-up of
        ``CARNDAModel``, on features computed without gradients). Sets ``accuracy`` like a call."""
        return self.cross_entropy(discriminator, torch.cat([feat_source, feat_target]), len(feat_source))

    def cross_entropy(self, discriminator, features, num_source):
        """Cross-entropy of Q's domain predictions for ``features`` (the first ``num_source`` from the source)."""
        logits = discriminator(features)
        labels = torch.full((logits.shape[0], *logits.shape[2:]), SOURCE, dtype=torch.long, device=logits.device)
        labels[num_source:] = TARGET
        with torch.no_grad():
            self.accuracy = (logits.argmax(1) == labels).float().mean().item()
        return F.cross_entropy(logits, labels)
