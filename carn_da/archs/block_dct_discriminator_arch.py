import math
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

BLOCK = 8  # JPEG's block side


def dct_matrix(n=BLOCK):
    """The orthonormal DCT-II matrix of size ``n`` (row k: frequency k), as JPEG's 8x8 transform uses."""
    k, i = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing='ij')
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    matrix[0] /= math.sqrt(2)
    return matrix.float()


@ARCH_REGISTRY.register()
class BlockDCTQualityDiscriminator(nn.Module):
    """Quality discriminator that reads F's features as JPEG coded them: 8x8 blocks in the DCT domain.

    JPEG quantises each 8x8 block's DCT coefficients, coarser at a lower quality, so the quality shows in how much
    energy each of the 64 frequencies keeps (a single such statistic, the share of high-frequency AC energy of the
    pixels, tells QF 10 from QF 70 crops apart 85 % of the time). Each channel of F's features is cut into the blocks
    of the JPEG grid (feed crops aligned to it: ``grid_aligned``; F's first convs smear the block edges only by their
    small receptive field), transformed by the orthonormal 2-D DCT-II, and the log of its mean squared coefficient
    per frequency over the blocks (the 63 AC frequencies of each of the C channels), less its mean over the
    frequencies (``relative``: the spectrum's shape, whatever the crop's contrast), is read by 3 fully connected
    layers, the first two followed by ReLU, as in :class:`QualityDiscriminator`.

    Args:
        num_feat (int): Channels C of F's features. Default: 64.
        hidden (int): Width of the two hidden layers. Default: 256.
        num_domains (int): Number of domains (logits). Default: 2 (source, target).
        relative (bool): Subtract each channel's mean log energy over its 63 frequencies. Default: True (Q alone,
            QF 10 vs 70 on the study's RDN: 0.95 held-out accuracy after 200 steps, against 0.84 without;
            benchmarks/q_alone.py).

    Shapes: (B, C, H, W) features, H and W at least 8 (rows and columns past the last whole block are left out)
    -> (B, num_domains) logits.
    """

    def __init__(self, num_feat=64, hidden=256, num_domains=2, relative=True):
        super().__init__()
        for name, value, minimum in [('num_feat', num_feat, 1), ('hidden', hidden, 1), ('num_domains', num_domains, 2)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(
                    f'BlockDCTQualityDiscriminator: {name} must be an integer >= {minimum}, got {value!r}.')
        self.relative = bool(relative)
        self.register_buffer('dct', dct_matrix(), persistent=False)
        self.classifier = nn.Sequential(
            nn.Linear(num_feat * (BLOCK * BLOCK - 1), hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True), nn.Linear(hidden, num_domains))

    def block_energy(self, feat):
        """(B, C, H, W) -> (B, C, 63): log mean squared DCT coefficient of each channel's 8x8 blocks, AC only."""
        b, c, h, w = feat.shape
        if h < BLOCK or w < BLOCK:
            raise ValueError(f'BlockDCTQualityDiscriminator: features of {h}x{w} hold no 8x8 block.')
        rows, cols = h // BLOCK, w // BLOCK
        blocks = feat[:, :, :rows * BLOCK, :cols * BLOCK].reshape(b, c, rows, BLOCK, cols, BLOCK)
        coefficients = torch.einsum('ki,bcritj,lj->bcrtkl', self.dct, blocks, self.dct)
        energy = coefficients.square().mean((2, 3)).flatten(2)[:, :, 1:]
        return torch.log(energy + 1e-8)

    def forward(self, feat):
        energy = self.block_energy(feat)
        if self.relative:
            energy = energy - energy.mean(2, keepdim=True)
        return self.classifier(energy.flatten(1))
