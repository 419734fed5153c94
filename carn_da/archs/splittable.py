"""The split of a CARN into a feature extractor F and a denoiser D (Ham et al. 2021, sec. 3.1)."""
import torch
from torch import nn


class SplittableCARN(nn.Module):
    """Base class of every CARN that domain adaptation can train.

    Subclasses implement:

    - ``extract(x)``: F. Returns the features, either one tensor or a tuple of tensors holding everything D needs
      from F (RDN's global residual, for instance, needs SFENet1's output beside SFENet2's).
    - ``restore(features, x)``: D. Returns the restored image from F's features and the input image ``x``
      (for the image-level residual).

    ``forward(x)`` is ``restore(extract(x), x)``, so a trained network is an ordinary BasicSR generator.
    """

    def extract(self, x):
        raise NotImplementedError

    def restore(self, features, x):
        raise NotImplementedError

    def forward(self, x):
        return self.restore(self.extract(x), x)

    @staticmethod
    def quality_feature(features):
        """The (B, C, H, W) map the quality discriminator Q reads: F's output, i.e. the last tensor F returns."""
        return features[-1] if isinstance(features, (tuple, list)) else features

    @staticmethod
    def split_batch(features, sizes):
        """Split F's features of a concatenated batch into one feature set per chunk of ``sizes`` samples."""
        if isinstance(features, torch.Tensor):
            return list(features.split(sizes))
        return list(zip(*(f.split(sizes) for f in features)))


def require_splittable(net, option='network_g'):
    """Raise a clear error unless ``net`` offers ``extract`` and ``restore``."""
    if not (callable(getattr(net, 'extract', None)) and callable(getattr(net, 'restore', None))):
        raise TypeError(f'{option}: {type(net).__name__} has no extract/restore split, which domain adaptation '
                        'needs. Use a SplittableCARN arch (RDN, ...) or wrap the arch so it offers extract and restore.')
    return net
