from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from carn_da.archs.splittable import SplittableCARN, check_split_at


@ARCH_REGISTRY.register()
class DnCNN(SplittableCARN):
    """DnCNN (Zhang et al., Beyond a Gaussian denoiser: residual learning of deep CNN for image denoising,
    IEEE TIP 26(7), 2017).

    conv+ReLU, (num_conv - 2) x conv+BN+ReLU, conv, all 3x3 with ``num_feat`` channels. Residual learning: the
    network predicts the artifact and the output is the input minus it. 17 layers is DnCNN-S, 20 layers DnCNN-3
    (the blind model for Gaussian noise, super-resolution and JPEG deblocking). Every conv has a bias, as in
    KAIR's ``models/network_dncnn.py``. The published models ship with batch normalisation folded into the convs:
    ``batch_norm=False`` is their layout (``carn-da import``).

    Split: F is the first ``split_at`` layers (a layer being a conv with its BN and ReLU); the default, 1, puts the
    first conv+ReLU in F. ``extract`` returns one tensor, the output of layer ``split_at``.

    Args:
        num_in_ch (int): Input channels (1 for grayscale). Must equal ``num_out_ch``.
        num_out_ch (int): Output channels.
        num_feat (int): Channels of the hidden layers. Default: 64.
        num_conv (int): Conv layers, 17 (DnCNN-S) or 20 (DnCNN-3). Default: 17.
        split_at (int): Layers in F, 1 to ``num_conv - 1``. Default: 1.
        batch_norm (bool): BatchNorm after the hidden convs. Default: True.
    """

    def __init__(self, num_in_ch=1, num_out_ch=1, num_feat=64, num_conv=17, split_at=1, batch_norm=True):
        super().__init__()
        if num_in_ch != num_out_ch:
            raise ValueError(f'DnCNN subtracts its output from its input: num_in_ch ({num_in_ch}) must equal '
                             f'num_out_ch ({num_out_ch}).')
        self.split_at = check_split_at('DnCNN', split_at, list(range(1, num_conv)))
        layers = [nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.ReLU(inplace=True))]
        norm = nn.BatchNorm2d if batch_norm else lambda _: nn.Identity()
        layers += [
            nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), norm(num_feat), nn.ReLU(inplace=True))
            for _ in range(num_conv - 2)
        ]
        layers.append(nn.Conv2d(num_feat, num_out_ch, 3, 1, 1))
        self.layers = nn.Sequential(*layers)

    def extract(self, x):
        return self.layers[:self.split_at](x)

    def restore(self, features, x):
        return x - self.layers[self.split_at:](features)
