import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from carn_da.archs.splittable import SplittableCARN, check_split_at


class ResidualDenseBlock(nn.Module):
    """C densely connected conv+ReLU layers of growth G, 1x1 local feature fusion and a local residual."""

    def __init__(self, num_feat, growth, num_layer):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_feat + i * growth, growth, 3, 1, 1), nn.ReLU(inplace=True))
            for i in range(num_layer))
        self.fusion = nn.Conv2d(num_feat + num_layer * growth, num_feat, 1)

    def forward(self, x):
        if not torch.is_grad_enabled():  # inference: every layer writes its output into one preallocated tensor
            return x + self.fusion(self._dense_features_inplace(x))
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return x + self.fusion(torch.cat(features, 1))

    def _dense_features_inplace(self, x):
        """The dense features ``cat([x, layer_1, ..., layer_C], 1)`` without re-concatenating them for each layer
        (the same values; about 20 % faster on a 321x481 image on one CPU core). Each layer reads a channel prefix of
        the tensor, which is contiguous; autograd cannot save such views of a tensor written in place afterwards,
        hence only without gradients."""
        growth, channels = self.layers[0][0].out_channels, x.shape[1]
        features = x.new_empty(x.shape[0], channels + len(self.layers) * growth, *x.shape[2:])
        features[:, :channels] = x
        for i, layer in enumerate(self.layers):
            start = channels + i * growth
            features[:, start:start + growth] = layer(features[:, :start])
        return features


@ARCH_REGISTRY.register()
class RDN(SplittableCARN):
    """Residual dense network for image restoration (Zhang et al., TPAMI 43(7), 2021), without upsampler.

    SFENet1 -> SFENet2 -> D residual dense blocks -> global feature fusion (1x1 over all block outputs, then
    3x3) + SFENet1's output (global residual) -> reconstruction conv; the output is the input plus that residual.

    Split (Ham et al. 2021): by default (``split_at='sfe2'``) F is SFENet1 and SFENet2 and ``extract`` returns
    ``(sfe1, sfe2)``, since D's global residual needs SFENet1's output. ``'sfe1'``: F is SFENet1 alone and
    ``extract`` returns its output. An int k: F runs up to the k-th residual dense block and ``extract`` returns
    ``(sfe1, block_1, ..., block_k)``, since D's global feature fusion needs every block output. The quality
    discriminator reads the split point's output, the last tensor (``quality_feature``).

    Args:
        num_in_ch (int): Input channels (1 for grayscale).
        num_out_ch (int): Output channels.
        num_feat (int): G0, channels between blocks. Default: 64.
        num_block (int): D, residual dense blocks. Default: 16.
        num_layer (int): C, conv layers per block. Default: 8.
        growth (int): G, growth rate inside a block. Default: 64.
        split_at (str | int): End of F: ``'sfe1'``, ``'sfe2'`` or a block index 1 to D. Default: ``'sfe2'``.
    """

    def __init__(self, num_in_ch=1, num_out_ch=1, num_feat=64, num_block=16, num_layer=8, growth=64, split_at='sfe2'):
        super().__init__()
        if num_in_ch != num_out_ch:
            raise ValueError(f'RDN adds its input to its output: num_in_ch ({num_in_ch}) must equal '
                             f'num_out_ch ({num_out_ch}).')
        self.split_at = check_split_at('RDN', split_at, ['sfe1', 'sfe2', *range(1, num_block + 1)])
        self.sfe1 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.sfe2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.blocks = nn.ModuleList(ResidualDenseBlock(num_feat, growth, num_layer) for _ in range(num_block))
        self.global_fusion = nn.Sequential(
            nn.Conv2d(num_block * num_feat, num_feat, 1), nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.reconstruction = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def extract(self, x):
        sfe1 = self.sfe1(x)
        if self.split_at == 'sfe1':
            return sfe1
        out = self.sfe2(sfe1)
        if self.split_at == 'sfe2':
            return sfe1, out
        block_outputs = []
        for block in self.blocks[:self.split_at]:
            out = block(out)
            block_outputs.append(out)
        return (sfe1, *block_outputs)

    def restore(self, features, x):
        if self.split_at == 'sfe1':
            sfe1, out, block_outputs = features, self.sfe2(features), []
        elif self.split_at == 'sfe2':
            (sfe1, out), block_outputs = features, []
        else:
            sfe1, *block_outputs = features
            out = block_outputs[-1]
        for block in self.blocks[len(block_outputs):]:
            out = block(out)
            block_outputs.append(out)
        out = self.global_fusion(torch.cat(block_outputs, 1)) + sfe1
        return x + self.reconstruction(out)
