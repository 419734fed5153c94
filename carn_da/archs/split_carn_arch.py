import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from contextlib import contextmanager
from copy import deepcopy

from carn_da.archs.splittable import SplittableCARN

_MAX_LISTED = 40  # split_at choices an error message lists


class _SplitReached(Exception):
    """Raised by ``extract``'s hook to stop the wrapped forward once F's output is recorded."""


@ARCH_REGISTRY.register()
class SplitCARN(SplittableCARN):
    """Any BasicSR arch split into F and D (Ham et al. 2021) at the output of one of its child modules.

    F is everything the arch's forward computes up to and including the child ``split_at``, D the rest. The
    arch's own forward code is run, so whatever it does before the child (EDSR's mean shift, RRDBNet's pixel
    unshuffle) stays in F:

    - ``extract(x)`` runs the forward with a hook on the child that records the child's output and stops the
      forward there; the features are that output, a tensor that carries F's gradient.
    - ``restore(features, x)`` runs the forward with a hook that replaces the child's output by a copy of
      ``features`` (so in-place ops after the child leave ``features`` intact).
    - ``forward(x)`` is the arch's forward, equal to ``restore(extract(x), x)`` but run once (``forward(x,
      x_target)`` is the domain-adaptation pass of :class:`SplittableCARN`).

    Limits: the child must return one tensor and be called exactly once per forward; an error says otherwise
    (``extract`` stops at the first call, so a second call shows in ``restore``). ``restore`` recomputes the work
    before the child and the child itself (the results are discarded; no gradient reaches F's parameters that way),
    so modules there run twice per training step: BatchNorm there updates its running statistics twice, and random
    ops (dropout) there must not matter. Parameter names gain the prefix ``arch.``.

    Args:
        arch (dict): The wrapped arch's options, with its ``type`` (e.g. ``{type: EDSR, num_in_ch: 3, ...}``).
        split_at (str): Dotted name of the child module ending F (e.g. ``conv_first``, ``body.3``).
    """

    def __init__(self, arch, split_at):
        super().__init__()
        self.arch = build_network(deepcopy(arch))
        names = [name for name, _ in self.arch.named_modules() if name]
        if split_at not in names:
            names.sort(key=lambda name: name.count('.'))  # top-level first
            listed = ', '.join(names[:_MAX_LISTED])
            if len(names) > _MAX_LISTED:
                listed += f', ... ({len(names) - _MAX_LISTED} more)'
            raise ValueError(f'SplitCARN: split_at must name a child module of {type(self.arch).__name__}; '
                             f'got {split_at!r}. Child modules: {listed}.')
        self.split_at = split_at

    @contextmanager
    def _hook(self, hook):
        """Hook ``hook`` on the child ``split_at`` while the block runs; removed even on error."""
        handle = self.arch.get_submodule(self.split_at).register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def _not_once(self, how_often):
        return RuntimeError(f'SplitCARN: {type(self.arch).__name__}.forward called {self.split_at} {how_often}; '
                            'the split child must be called exactly once per forward.')

    def extract(self, x):
        outputs = []

        def record(module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(f'SplitCARN: the split child {self.split_at} returned a {type(output).__name__}, '
                                'not a tensor.')
            outputs.append(output)
            raise _SplitReached

        with self._hook(record):
            try:
                self.arch(x)
            except _SplitReached:
                pass
        if not outputs:
            raise self._not_once('never')
        return outputs[0]

    def restore(self, features, x):
        calls = 0

        def replace(module, inputs, output):
            nonlocal calls
            calls += 1
            if calls > 1:
                raise self._not_once('more than once')
            return features.clone()

        with self._hook(replace):
            output = self.arch(x)
        if not calls:
            raise self._not_once('never')
        return output

    def forward(self, x, x_target=None):
        if x_target is not None:
            return self.forward_domains(x, x_target)
        return self.arch(x)
