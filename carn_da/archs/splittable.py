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
    ``forward(x, x_target)`` is the domain-adaptation step's pass (see :meth:`forward_domains`); going through
    ``forward`` lets DistributedDataParallel synchronise F and D.
    """

    def extract(self, x):
        raise NotImplementedError

    def restore(self, features, x):
        raise NotImplementedError

    def forward(self, x, x_target=None):
        if x_target is not None:
            return self.forward_domains(x, x_target)
        return self.restore(self.extract(x), x)

    def forward_domains(self, x, x_target):
        """F over the source batch ``x`` and the target batch ``x_target`` in one pass, D over the source only.

        Returns:
            tuple: (restored source batch, Q's input for the source, Q's input for the target).
        """
        feat_source, feat_target = self.extract_domains(x, x_target)
        return self.restore(feat_source, x), self.quality_feature(feat_source), self.quality_feature(feat_target)

    def extract_domains(self, x, x_target):
        """F's features of the source batch ``x`` and of the target batch ``x_target``, from one pass of F."""
        return self.split_batch(self.extract(torch.cat([x, x_target])), [len(x), len(x_target)])

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
    """Raise a clear error unless ``net`` is a :class:`SplittableCARN` (offers ``extract`` and ``restore``)."""
    if not isinstance(net, SplittableCARN):
        raise TypeError(f'{option}: {type(net).__name__} has no extract/restore split, which domain adaptation '
                        'needs. Use a SplittableCARN arch (RDN, DnCNN, MemNet, ARCNN) or wrap any BasicSR arch '
                        'in SplitCARN.')
    return net


def check_split_at(arch, split_at, choices):
    """Return ``split_at`` if it is one of ``choices`` (of the same type: ``True`` is not ``1``); else raise a
    ValueError that names ``arch`` and lists the choices."""
    if not any(type(split_at) is type(choice) and split_at == choice for choice in choices):
        raise ValueError(f'{arch}: split_at must be one of {", ".join(map(repr, choices))}; got {split_at!r}.')
    return split_at
