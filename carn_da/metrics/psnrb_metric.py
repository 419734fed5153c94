"""PSNR-B: PSNR with a blocking-effect penalty (Yim & Bovik, "Quality assessment of deblocked images", IEEE TIP
20(1), 2011).

The counting follows the code that JPEG artifact-reduction papers report PSNR-B with: KAIR's
``utils/utils_image.py`` (``_blocking_effect_factor``, ``calculate_psnrb``), itself taken from
gitlab.com/Queuecumber/quantization-guided-ac ``metrics/psnrb.py``. Their conventions, kept here on purpose:

- boundary pixel pairs are (i, i + 1) for i in ``range(7, n - 1, 8)``, along rows and along columns;
- the boundary pair count is ``h * (w // 8 - 1) + w * (h // 8 - 1)`` even where ``w`` or ``h`` is not a multiple
  of 8, although ``range(7, n - 1, 8)`` then holds one position more (e.g. n = 21 gives 7 and 15 but counts 1);
  the non-boundary count is the rest of the ``h * (w - 1) + w * (h - 1)`` neighbouring pairs;
- eta = log2(8) / log2(min(h, w)); BEF = eta * (D_B - D_Bc) if D_B > D_Bc, else 0;
- PSNR-B is computed per channel from the restored image's BEF and the channel MSE, then averaged over channels.
"""
import numpy as np
from basicsr.metrics.metric_util import reorder_image, to_y_channel
from basicsr.utils.registry import METRIC_REGISTRY

BLOCK_SIZE = 8


def blocking_effect_factor(img):
    """Blocking effect factor (BEF) of one channel, in squared units of the image's range (255^2 for uint8).

    Args:
        img (ndarray): 2-D image (h, w), with h, w >= 8 and max(h, w) >= 16 (smaller sizes make the published
            boundary count zero or negative).

    Returns:
        float: BEF, 0 when boundaries are not rougher than the rest.
    """
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f'BEF expects a 2-D image, got shape {img.shape}.')
    h, w = img.shape
    if min(h, w) < BLOCK_SIZE or max(h, w) < 2 * BLOCK_SIZE:
        raise ValueError(f'BEF needs h, w >= {BLOCK_SIZE} and max(h, w) >= {2 * BLOCK_SIZE}, got {h}x{w}.')

    diff_h = (img[:, :-1] - img[:, 1:])**2  # pairs (x, x + 1) within rows, (h, w - 1)
    diff_v = (img[:-1, :] - img[1:, :])**2  # pairs (y, y + 1) within columns, (h - 1, w)
    edge_h = np.zeros(w - 1, dtype=bool)
    edge_h[BLOCK_SIZE - 1::BLOCK_SIZE] = True
    edge_v = np.zeros(h - 1, dtype=bool)
    edge_v[BLOCK_SIZE - 1::BLOCK_SIZE] = True

    n_boundary = h * (w // BLOCK_SIZE - 1) + w * (h // BLOCK_SIZE - 1)
    n_nonboundary = h * (w - 1) + w * (h - 1) - n_boundary
    d_b = (diff_h[:, edge_h].sum() + diff_v[edge_v, :].sum()) / n_boundary
    d_bc = (diff_h[:, ~edge_h].sum() + diff_v[~edge_v, :].sum()) / n_nonboundary
    if d_b <= d_bc:
        return 0.
    eta = np.log2(BLOCK_SIZE) / np.log2(min(h, w))
    return float(eta * (d_b - d_bc))


@METRIC_REGISTRY.register()
def calculate_psnrb(img, img2, crop_border, input_order='HWC', test_y_channel=False, **kwargs):
    """Calculate PSNR-B = 10 * log10(255^2 / (MSE + BEF)), averaged over channels.

    Args:
        img (ndarray): Restored image with range [0, 255]; its BEF is taken.
        img2 (ndarray): Ground-truth image with range [0, 255].
        crop_border (int): Cropped pixels in each edge of an image. These pixels are not involved in the calculation.
        input_order (str): Whether the input order is 'HWC' or 'CHW'. Default: 'HWC'.
        test_y_channel (bool): Test on Y channel of YCbCr. Default: False.

    Returns:
        float: PSNR-B result.
    """
    assert img.shape == img2.shape, (f'Image shapes are different: {img.shape}, {img2.shape}.')
    img = reorder_image(img, input_order=input_order)
    img2 = reorder_image(img2, input_order=input_order)

    if crop_border != 0:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]

    if test_y_channel:
        img = to_y_channel(img)
        img2 = to_y_channel(img2)

    img = img.astype(np.float64)
    img2 = img2.astype(np.float64)

    psnrbs = []
    for c in range(img.shape[2]):
        penalty = np.mean((img[..., c] - img2[..., c])**2) + blocking_effect_factor(img[..., c])
        psnrbs.append(float('inf') if penalty == 0 else 10. * np.log10(255. * 255. / penalty))
    return float(np.mean(psnrbs))
