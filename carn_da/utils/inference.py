"""Running a network on images: whole or in overlapping tiles, uint8 images in and out."""
import cv2
import numpy as np
import torch
from basicsr.utils.img_util import img2tensor, tensor2img

from carn_da.utils.images import decode_ycbcr


def _resolve_device(net, device):
    if device is not None:
        return device
    param = next(net.parameters(), None)
    return param.device if param is not None else torch.device('cpu')


def tile_spans(length, tile, overlap):
    """Tiles along one axis of ``length`` pixels: (start, stop, keep_start, keep_stop) per tile.

    An axis of at most ``tile`` pixels is one tile. A longer one is cut into tiles ``tile`` long that start every
    ``tile - overlap`` pixels, the last one ending at the border. Each pixel is kept from the tile in which it lies
    farthest from a tile edge inside the image, so the seams lie in the middle of each overlap: a pixel is kept at
    least ``overlap // 2`` pixels from such an edge.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f'Tile overlap must be in [0, tile), got tile {tile}, overlap {overlap}.')
    if length <= tile:
        return [(0, length, 0, length)]
    starts = list(range(0, length - tile, tile - overlap)) + [length - tile]
    seams = [0] + [(start + tile + next_start) // 2 for start, next_start in zip(starts, starts[1:])] + [length]
    return [(start, start + tile, seams[i], seams[i + 1]) for i, start in enumerate(starts)]


def dihedral(x, k):
    """The ``k``-th (0-7) of the eight symmetries of the square applied to (..., H, W) ``x``: ``k // 2`` quarter turns,
    then a left-right flip if ``k`` is odd (0 is the identity)."""
    x = torch.rot90(x, k // 2, (-2, -1))
    return x.flip(-1) if k % 2 else x


def undo_dihedral(x, k):
    """The inverse of :func:`dihedral`: ``undo_dihedral(dihedral(x, k), k)`` is ``x``."""
    x = x.flip(-1) if k % 2 else x
    return torch.rot90(x, -(k // 2), (-2, -1))


def _infer_tiles(net, lq, device, tile, tile_overlap):
    """``net`` on ``lq`` in overlapping tiles (see :func:`infer`)."""
    height, width = lq.shape[-2:]
    output = None
    for top, bottom, keep_top, keep_bottom in tile_spans(height, tile, tile_overlap):
        for left, right, keep_left, keep_right in tile_spans(width, tile, tile_overlap):
            out = net(lq[..., top:bottom, left:right].to(device))
            if out.shape[-2:] != (bottom - top, right - left):
                raise ValueError(f'Tiling needs an output of the input size; a {bottom - top}x{right - left} '
                                 f'tile gave {out.shape[-2]}x{out.shape[-1]}.')
            if output is None:
                output = lq.new_empty(1, out.shape[1], height, width)
            kept = out[..., keep_top - top:keep_bottom - top, keep_left - left:keep_right - left]
            output[..., keep_top:keep_bottom, keep_left:keep_right] = kept
    return output


def infer(net, lq, device=None, tile=None, tile_overlap=16, self_ensemble=False):
    """Run ``net`` on a (1, C, H, W) float tensor without gradients, on the whole tensor or in tiles.

    With ``tile``, ``lq`` is cut into overlapping ``tile`` x ``tile`` tiles (see :func:`tile_spans`), each tile is
    moved to ``device`` and restored alone, and every output pixel is taken from the tile in which it lies farthest
    from a tile edge (no averaging). The result equals whole-image inference (up to float rounding) when the
    network's receptive field radius is at most ``tile_overlap // 2``, and the network's memory is that of one tile.
    With ``self_ensemble``, ``lq`` is restored in each of its eight rotations and mirrorings (:func:`dihedral`) and
    the eight outputs, turned back, are averaged in float32 (the x8 self-ensemble of EDSR's "+" models and KAIR's
    test mode 3): eight times the time, for the average of eight views a network treats a little differently.
    A network with a ``select`` method (``QualityRoutedCARN``) is asked once, on the whole image as given, which
    expert restores the tiles or the views.

    Returns:
        Tensor: (1, C_out, H, W); on ``device`` (whole image) or on ``lq``'s device (tiles).
    """
    device = _resolve_device(net, device)
    with torch.no_grad():
        if tile is None:
            lq = lq.to(device)  # once, not once per view; tiles move one at a time
        if hasattr(net, 'select') and (tile is not None or self_ensemble):
            net = net.select(lq.to(device))  # the reading needs the image's own 8x8 grid, whole and unturned

        def run(x):
            return net(x) if tile is None else _infer_tiles(net, x, device, tile, tile_overlap)

        if not self_ensemble:
            return run(lq)
        return sum(undo_dihedral(run(dihedral(lq, k)), k).float() for k in range(8)) / 8


def restore(net, img, device=None, tile=None, tile_overlap=16, self_ensemble=False):
    """Restore one uint8 image with ``net`` (in eval mode).

    Like BasicSR's datasets and validation, a 3-channel ``img`` is taken as BGR and fed to the network as RGB.

    Args:
        net (nn.Module): Maps a (1, C, H, W) float tensor in [0, 1] to the restored tensor.
        img (ndarray): uint8 image, (H, W) or (H, W, C).
        device (torch.device | str | None): Where to run; None for the device of ``net``'s parameters (CPU if
            it has none).
        tile (int | None): Restore in overlapping tiles of this size (see :func:`infer`); None for the whole image.
        tile_overlap (int): Overlap of neighbouring tiles in pixels. Default: 16.
        self_ensemble (bool): Average the outputs of the eight rotations and mirrorings (see :func:`infer`).

    Returns:
        ndarray: uint8 restored image of the shape of ``img``.
    """
    lq = img2tensor(img.reshape(img.shape[0], img.shape[1], -1).astype(np.float32) / 255., bgr2rgb=True)
    output = infer(net, lq.unsqueeze(0), device, tile, tile_overlap, self_ensemble)
    return tensor2img(output, rgb2bgr=True).reshape(img.shape)


def jfif_to_bgr(luma, ycbcr):
    """BGR float in [0, 1] of the float luma ``luma`` (in [0, 1]) and the uint8 Cb, Cr planes of ``ycbcr``, with
    JPEG's (JFIF's) own coefficients, as libjpeg converts: OpenCV's differ in the third decimal, which moves the
    rounding of a colour JPEG's chroma."""
    cb, cr = (ycbcr[..., k].astype(np.float32) / 255. - 128 / 255. for k in (1, 2))
    return np.stack([luma + 1.772 * cb, luma - 0.344136 * cb - 0.714136 * cr, luma + 1.402 * cr], axis=2)


class Restorer:
    """Restores uint8 images (H, W), (H, W, 3) BGR or (H, W, 4) BGRA with a CARN of 1 or 3 channels.

    Colour through a 1-channel network: the Y of YCbCr is restored, Cb and Cr are kept; for a colour JPEG whose bytes
    are given, the planes libjpeg decodes (:func:`carn_da.utils.images.decode_ycbcr`: the Y the JPEG quantised), else
    OpenCV's BT.601 ``COLOR_BGR2YCrCb`` in float. Gray through a 3-channel network: replicated to RGB, restored,
    converted back to gray. Alpha is kept. ``dtype`` is the network's (float32, or float16 / bfloat16 with
    ``--half``); ``tile``, ``tile_overlap`` and ``self_ensemble`` are those of :func:`infer`. A router
    (``QualityRoutedCARN``) restores each image with the expert :meth:`choose` names for the image's quality reading.
    """

    def __init__(self, net, channels, device, dtype=torch.float32, tile=None, tile_overlap=16, self_ensemble=False):
        self.net, self.channels, self.device, self.dtype = net.to(dtype), channels, device, dtype
        self.tile, self.tile_overlap, self.self_ensemble = tile, tile_overlap, self_ensemble

    @property
    def routes(self):
        """Whether the network is a router, which needs each image's quality reading."""
        return hasattr(self.net, 'route')

    def choose(self, reading):
        """(network, what it is) for an image of ``reading`` (``QualityReading``): the router's expert for its
        quality ('QF 30', 'fallback' or 'unchanged'), or the network itself."""
        if not self.routes:
            return self.net, type(self.net).__name__
        route = self.net.route_reading(reading)
        return self.net.expert(route), self.net.describe(route)

    def run(self, x, net=None):
        """``net`` (default: the network) on a float32 (H, W, C) array in [0, 1] (its channel order); float32 (H, W,
        C) in [0, 1]."""
        lq = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.dtype)
        out = infer(self.net if net is None else net, lq, self.device, self.tile, self.tile_overlap, self.self_ensemble)
        return out[0].float().clamp_(0, 1).permute(1, 2, 0).cpu().numpy()

    def __call__(self, img, data=None, net=None):
        """The restored ``img``; ``data``: the bytes of its file (a colour JPEG's own planes are then used); ``net``:
        the network to run instead of the whole one (:meth:`choose`)."""
        gray = img.ndim == 2
        x = (img if gray else img[..., :3]).astype(np.float32) / 255.
        if not gray and self.channels == 1:
            ycbcr = None if data is None else decode_ycbcr(data)
            if ycbcr is None:
                ycrcb = cv2.cvtColor(x, cv2.COLOR_BGR2YCrCb)
                ycrcb[..., :1] = self.run(ycrcb[..., :1], net)
                out = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)
            else:
                out = jfif_to_bgr(self.run(ycbcr[..., :1].astype(np.float32) / 255., net)[..., 0], ycbcr)
        elif not gray:
            out = self.run(x[..., ::-1], net)[..., ::-1]
        elif self.channels == 3:
            out = cv2.cvtColor(self.run(cv2.cvtColor(x, cv2.COLOR_GRAY2RGB), net), cv2.COLOR_RGB2GRAY)
        else:
            out = self.run(x[..., None], net)[..., 0]
        out = np.clip(np.round(out * 255.), 0, 255).astype(np.uint8)
        return np.concatenate([out, img[..., 3:]], axis=2) if not gray and img.shape[2] == 4 else out
