"""carn-da: compression-artifact reduction with domain adaptation across JPEG quality, as a BasicSR plugin.

Importing the package fills BasicSR's registries (ARCH, DATASET, LOSS, METRIC, MODEL) with the plugin's parts.
"""
from carn_da import compat  # noqa: F401  (must precede the first basicsr import)
from carn_da import archs, data, losses, metrics, models  # noqa: F401, E402

__version__ = '0.1.0'
