import cv2
import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from carn_da.utils.jpeg import check_quality, estimate_grid_and_quality


@ARCH_REGISTRY.register()
class QualityRoutedCARN(nn.Module):
    """CARNs for different JPEG qualities behind one network: each image goes to the expert made for the quality
    that shaped its artifacts, as one model per QF was used before blind models.

    An adapted model is a model for its target; routing keeps the source model for the source quality, so
    adaptation forgets nothing there (docs/RESULTS.md), at the price of the experts' parameters and a QF reading.

    Args:
        experts (list[dict]): ``{'network': network_g options, 'qualities': [QF, ...]}`` each, and at most one
            ``{'network': ..., 'fallback': True}``, the model for every other image (a blind model, such as the
            blind source of an adaptation). An image goes to the expert with a quality nearest to its own (the first
            such expert on ties) if that quality is within ``reach`` of it. An image of a quality no expert reaches
            goes to the fallback, or, without one, passes through unchanged: no expert made for another quality is
            trusted with it.
        reach (int): How far (in QF) from its qualities an expert still serves an image. Default: 2 (readings are
            exact for libjpeg's tables; a file's header and its pixels may differ by a tie of the IJG tables).
        unknown (str): Where an image whose pixels show no JPEG grid goes, neither an 8x8 one nor the blocking of a
            resized JPEG (never compressed, rotated, or resized from a quality high enough to leave no trace; see
            ``QualityReading.no_grid``): ``unchanged`` (default: blind models restore resized JPEGs of high quality
            below the JPEG itself, docs/RESULTS.md) or ``fallback`` (for a fallback measured to help such images). An
            image of unknown quality that is or may well be a JPEG (the blocking of a resized JPEG shows; too few
            textured blocks to find a grid, as in a small or colour-saturated crop; a grid whose blocks fit no IJG
            table) goes to the fallback, or passes unchanged without one.

    The state dict is the experts' (``experts.<k>.<name>``); ``carn-da route`` (carn_da/route.py) writes one from
    the experts' checkpoints. On a tensor, the quality is read from each image's pixels (its luma, recomputed from
    RGB: a JPEG file's own luma plane reads better, which is what ``carn-da restore`` routes on, through ``route``
    and ``expert``). ``select(x)`` is the expert of one image; tiled inference routes on the whole image with it,
    since the reading needs the image's own 8x8 grid.
    """

    def __init__(self, experts, reach=2, unknown='unchanged'):
        super().__init__()
        if not experts or not all(
                isinstance(e, dict) and 'network' in e and ('qualities' in e) != bool(e.get('fallback'))
                for e in experts):
            raise ValueError("QualityRoutedCARN: experts must be a non-empty list of {'network': ..., 'qualities': "
                             "[...]} dicts and at most one {'network': ..., 'fallback': True}, got "
                             f'{experts!r}.')
        fallbacks = [k for k, expert in enumerate(experts) if expert.get('fallback')]
        if len(fallbacks) > 1 or len(fallbacks) == len(experts):
            raise ValueError('QualityRoutedCARN: at most one fallback expert, beside at least one with qualities.')
        self.fallback = fallbacks[0] if fallbacks else None
        self.qualities = [list(expert.get('qualities', [])) for expert in experts]
        if not all(self.qualities[k] for k in range(len(experts)) if k != self.fallback):
            raise ValueError('QualityRoutedCARN: every expert but the fallback needs at least one quality.')
        for quality in sum(self.qualities, []):
            check_quality(quality)
        if isinstance(reach, bool) or not isinstance(reach, int) or reach < 0:
            raise ValueError(f'QualityRoutedCARN: reach must be an integer >= 0, got {reach!r}.')
        self.reach = reach
        if unknown not in ('unchanged', 'fallback') or unknown == 'fallback' and self.fallback is None:
            raise ValueError("QualityRoutedCARN: unknown must be 'unchanged' or, with a fallback expert, 'fallback'; "
                             f'got {unknown!r}.')
        self.unknown = unknown
        self.experts = nn.ModuleList(build_network(dict(expert['network'])) for expert in experts)

    def read(self, x):
        """The ``QualityReading`` of each image of ``x`` ((B, C, H, W) in [0, 1], RGB if C is 3), from its luma."""
        readings = []
        for img in x.detach().clamp(0, 1).mul(255).round().to('cpu', torch.uint8).permute(0, 2, 3, 1).numpy():
            luma = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.shape[2] == 3 else img
            readings.append(estimate_grid_and_quality(luma))
        return readings

    def route(self, quality, no_grid=True):
        """Index of the expert for an image of JPEG ``quality`` (None: unknown; then ``no_grid``: its pixels show no
        JPEG grid, ``QualityReading.no_grid``); None when it passes unchanged."""
        if quality is None:
            return self.fallback if self.unknown == 'fallback' or not no_grid else None
        distance = {
            k: min(abs(quality - q) for q in qualities)
            for k, qualities in enumerate(self.qualities) if qualities
        }
        nearest = min(distance, key=distance.get)
        return nearest if distance[nearest] <= self.reach else self.fallback

    def route_reading(self, reading):
        """:meth:`route` of a ``QualityReading`` (its quality and whether its pixels show no JPEG grid)."""
        return self.route(reading.quality, reading.no_grid)

    def expert(self, route):
        """The module of a ``route``: an expert, or the identity (None: the image passes unchanged)."""
        return nn.Identity() if route is None else self.experts[route]

    def describe(self, route):
        """What a ``route`` is, for reports: 'QF 10,30', 'fallback' or 'unchanged'."""
        if route is None:
            return 'unchanged'
        return 'fallback' if route == self.fallback else 'QF ' + ','.join(map(str, self.qualities[route]))

    def select(self, x):
        """The expert for the single image ``x`` (1, C, H, W)."""
        reading = self.read(x)[0]
        return self.expert(self.route_reading(reading))

    def forward(self, x):
        routes = [self.route_reading(reading) for reading in self.read(x)]
        out = None
        for route in set(routes):
            chosen = torch.tensor([r == route for r in routes], device=x.device)
            restored = self.expert(route)(x[chosen])
            if out is None:
                out = restored.new_empty((x.shape[0], ) + restored.shape[1:])
            out[chosen] = restored
        return out
