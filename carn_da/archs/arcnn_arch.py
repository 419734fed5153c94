from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from carn_da.archs.splittable import SplittableCARN, check_split_at


@ARCH_REGISTRY.register()
class ARCNN(SplittableCARN):
    """AR-CNN (Dong et al., Compression artifacts reduction by a deep convolutional network, ICCV 2015).

    Feature extraction (9x9, 64), feature enhancement (7x7, 32), mapping (1x1, 16), each followed by ReLU, and
    reconstruction (5x5, ``num_out_ch``). Zero 'same' padding keeps the image size. As in the paper, the network
    predicts the restored image directly, not a residual.

    Split: F is the first ``split_at`` layers (conv+ReLU); the default, 1, puts feature extraction in F.
    ``extract`` returns one tensor, the output of layer ``split_at``.

    Args:
        num_in_ch (int): Input channels (1 for grayscale).
        num_out_ch (int): Output channels.
        split_at (int): Layers in F: 1, 2 or 3. Default: 1.
    """

    def __init__(self, num_in_ch=1, num_out_ch=1, split_at=1):
        super().__init__()
        self.split_at = check_split_at('ARCNN', split_at, [1, 2, 3])
        self.layers = nn.Sequential(
            nn.Sequential(nn.Conv2d(num_in_ch, 64, 9, 1, 4), nn.ReLU(inplace=True)),
            nn.Sequential(nn.Conv2d(64, 32, 7, 1, 3), nn.ReLU(inplace=True)),
            nn.Sequential(nn.Conv2d(32, 16, 1), nn.ReLU(inplace=True)), nn.Conv2d(16, num_out_ch, 5, 1, 2))

    def extract(self, x):
        return self.layers[:self.split_at](x)

    def restore(self, features, x):
        return self.layers[self.split_at:](features)
