from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as spectral_normalize


@ARCH_REGISTRY.register()
class PatchQualityDiscriminator(nn.Module):
    """Convolutional quality discriminator: which JPEG quality domain did each position of F's features come from?

    JPEG compresses 8x8 blocks independently, so the quality shows locally; instead of pooling the whole map like
    :class:`QualityDiscriminator`, ``num_layers`` 3x3 convs, each followed by LeakyReLU(0.2), and a final 1x1 conv
    give one logit per domain per position (a PatchGAN-style judge of every receptive field).

    Args:
        num_feat (int): Channels C of F's features. Default: 64.
        hidden (int): Channels of the hidden 3x3 convs. Default: 64.
        num_layers (int): Number of 3x3 convs before the 1x1 conv to the logits. Default: 3.
        num_domains (int): Number of domains (logit channels). Default: 2 (source, target).
        spectral_norm (bool): Wrap every conv with spectral normalisation (Lipschitz-bounded Q, steadier
            adversarial training). Default: False.
        stride (int): Stride of the first conv; the 3x3 convs pad by 1, so stride 1 keeps the size. Default: 1.

    Shapes: (B, C, H, W) features -> (B, num_domains, H', W') logits, H' = (H - 1) // stride + 1 (W' likewise).
    """

    def __init__(self, num_feat=64, hidden=64, num_layers=3, num_domains=2, spectral_norm=False, stride=1):
        super().__init__()
        for name, value, minimum in [('num_feat', num_feat, 1), ('hidden', hidden, 1), ('num_layers', num_layers, 1),
                                     ('num_domains', num_domains, 2), ('stride', stride, 1)]:
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f'PatchQualityDiscriminator: {name} must be an int >= {minimum}, got {value!r}.')
        wrap = spectral_normalize if spectral_norm else (lambda conv: conv)
        layers = []
        for i in range(num_layers):
            layers += [
                wrap(nn.Conv2d(num_feat if i == 0 else hidden, hidden, 3, stride if i == 0 else 1, 1)),
                nn.LeakyReLU(0.2, inplace=True)
            ]
        layers.append(wrap(nn.Conv2d(hidden, num_domains, 1)))
        self.body = nn.Sequential(*layers)

    def forward(self, feat):
        return self.body(feat)
