import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from carn_da.archs.splittable import SplittableCARN, check_split_at


class BNReLUConv(nn.Sequential):
    """Pre-activation conv: BN, ReLU, then a ``kernel_size`` conv with 'same' padding."""

    def __init__(self, in_ch, out_ch, kernel_size=3):
        super().__init__(
            nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), nn.Conv2d(in_ch, out_ch, kernel_size, 1, kernel_size // 2))


class MemoryBlock(nn.Module):
    """MemNet's memory block: a recursive unit applied ``num_recursion`` times, then a 1x1 gate unit.

    The recursive unit is one pre-activation residual unit (two BN-ReLU-conv) whose weights every recursion shares.
    The gate unit reads the short-term memories (the recursion outputs) and the long-term memories (FENet's output
    and the earlier blocks' outputs), ``num_recursion + num_memory`` maps in all.
    """

    def __init__(self, num_feat, num_recursion, num_memory):
        super().__init__()
        self.num_recursion = num_recursion
        self.recursive_unit = nn.Sequential(BNReLUConv(num_feat, num_feat), BNReLUConv(num_feat, num_feat))
        self.gate_unit = BNReLUConv((num_recursion + num_memory) * num_feat, num_feat, 1)

    def forward(self, x, long_term):
        short_term = []
        for _ in range(self.num_recursion):
            x = x + self.recursive_unit(x)
            short_term.append(x)
        return self.gate_unit(torch.cat(short_term + list(long_term), 1))


@ARCH_REGISTRY.register()
class MemNet(SplittableCARN):
    """MemNet (Tai et al., MemNet: a persistent memory network for image restoration, ICCV 2017), multi-supervised.

    Feature extraction net FENet (BN-ReLU-conv) -> M memory blocks (:class:`MemoryBlock`, R recursions each; block
    m's gate unit reads FENet's output and blocks 1 to m - 1 besides its own R recursions) -> a reconstruction net
    (BN-ReLU-conv) shared by all blocks. Each block m gives a prediction y_m = reconstruction(B_m) + input; the
    output is sum_m w_m y_m with learned weights w_m, initialised to 1 / M. Every conv is 3x3 but the gate units'
    1x1 and has a bias. M6R6 (the paper's 80-layer MemNet) has 676,992 conv weights, the paper's 677K.

    Multi-supervision: with ``keep_predictions = True`` every ``restore`` (also inside ``forward``, so through
    DistributedDataParallel) keeps ``[y_1, ..., y_M]`` in ``predictions`` for a loss on each of them
    (``train.intermediate_opt`` of :class:`CARNModel` and :class:`CARNDAModel` sets this).

    Split: by default (``split_at='fenet'``) F is FENet and ``extract`` returns its output. An int k: F runs up to
    the k-th memory block and ``extract`` returns ``(B_0, B_1, ..., B_k)``, FENet's and blocks 1 to k's outputs,
    since the later gate units (and the predictions y_1 to y_k) need them all. The quality discriminator reads the
    split point's output, the last tensor (``quality_feature``).

    Args:
        num_in_ch (int): Input channels (1 for grayscale). Must equal ``num_out_ch``.
        num_out_ch (int): Output channels.
        num_feat (int): Channels of the features. Default: 64.
        num_memblock (int): M, memory blocks. Default: 6.
        num_resblock (int): R, recursions of the residual unit in each block. Default: 6.
        split_at (str | int): End of F: ``'fenet'`` or a memory block index 1 to M. Default: ``'fenet'``.
    """

    def __init__(self, num_in_ch=1, num_out_ch=1, num_feat=64, num_memblock=6, num_resblock=6, split_at='fenet'):
        super().__init__()
        if num_in_ch != num_out_ch:
            raise ValueError(f'MemNet adds its input to its predictions: num_in_ch ({num_in_ch}) must equal '
                             f'num_out_ch ({num_out_ch}).')
        self.split_at = check_split_at('MemNet', split_at, ['fenet', *range(1, num_memblock + 1)])
        self.fenet = BNReLUConv(num_in_ch, num_feat)
        self.blocks = nn.ModuleList(MemoryBlock(num_feat, num_resblock, m) for m in range(1, num_memblock + 1))
        self.reconstruction = BNReLUConv(num_feat, num_out_ch)
        self.prediction_weight = nn.Parameter(torch.full((num_memblock, ), 1 / num_memblock))
        self.keep_predictions = False
        self.predictions = []

    def extract(self, x):
        memories = [self.fenet(x)]
        if self.split_at == 'fenet':
            return memories[0]
        for block in self.blocks[:self.split_at]:
            memories.append(block(memories[-1], memories))
        return tuple(memories)

    def restore(self, features, x):
        memories = [features] if isinstance(features, torch.Tensor) else list(features)
        for block in self.blocks[len(memories) - 1:]:
            memories.append(block(memories[-1], memories))
        predictions = [self.reconstruction(memory) + x for memory in memories[1:]]
        if self.keep_predictions:
            self.predictions = predictions
        return sum(w * y for w, y in zip(self.prediction_weight, predictions))
