"""Compatibility shim that lets basicsr 1.4.2 import beside torchvision >= 0.17.

basicsr 1.4.2 (``basicsr/data/degradations.py``) imports ``rgb_to_grayscale`` from
``torchvision.transforms.functional_tensor``, a module torchvision 0.17 renamed to ``_functional_tensor``.
BasicSR's master branch already imports from the new place. Where the old module still exists this shim does
nothing; otherwise it registers the new module under the old name. It must run before ``basicsr`` is first
imported, which ``carn_da/__init__.py`` guarantees by importing it first.
"""
import importlib
import importlib.util
import sys

_LEGACY = 'torchvision.transforms.functional_tensor'


def install():
    """Alias the removed torchvision module if (and only if) it is missing."""
    if _LEGACY in sys.modules or importlib.util.find_spec(_LEGACY) is not None:
        return
    sys.modules[_LEGACY] = importlib.import_module('torchvision.transforms._functional_tensor')


install()
