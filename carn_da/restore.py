"""Restore JPEG images (or any 8-bit images) with a trained CARN and write them losslessly.

    carn-da restore photos/ -o restored/ --model net_g_latest.pth --opt options/train_rdn_sq_qf10.yml
    carn-da restore photo.jpg -o restored/ --model ... --opt ... --tile 512 --half
    cat photo.jpg | carn-da restore - -o restored/ --model ... --opt ...      (writes restored/stdin.png)

(also ``python -m carn_da.restore ...``). The option file's ``network_g`` builds the network (a training option
file works as is); the checkpoint is BasicSR's (``params_ema`` if present, else ``params``) or a bare state dict,
loaded with ``torch.load(weights_only=True)``: a checkpoint holding pickled Python objects is refused.

Grayscale and colour: a 1-channel model restores a colour image on the Y channel of YCbCr (BT.601 full range, the
YCbCr of JPEG, converted with OpenCV) and keeps Cb and Cr; a 3-channel model restores colour as it was trained
(BGR files as RGB) and a gray image as gray replicated to RGB, then converted back. An alpha channel is kept.
Pixels are restored in the order the file stores them (where JPEG's 8x8 blocks lie); an EXIF orientation is then
applied, so outputs look as viewers show the inputs.

Outputs: OUTDIR/<relative folder>/<stem>.png (``--ext``), mirroring a folder INPUT. Existing outputs are skipped
unless ``--overwrite``. A file that cannot be read or decoded (corrupt, truncated, not an image) is reported by
name and skipped. Exit code: 0, 1 if any image failed, 2 for a usage error (nothing is restored).
"""
import carn_da.compat  # noqa: F401

import argparse
import copy
import cv2
import fnmatch
import io
import numpy as np
import os
import pickle
import re
import sys
import torch
from basicsr.archs import build_network
from os import path as osp
from PIL import Image, UnidentifiedImageError
from torch import nn
from tqdm import tqdm

from carn_da.data.image_pairs import scan_images
from carn_da.evaluate import UserError, choose_device, network_options
from carn_da.evaluation import add_inference_arguments, check_inference_arguments, infer

STDIN = '-'
EXIF_ORIENTATION = 0x0112
HALF_DTYPES = {'cuda': torch.float16, 'cpu': torch.bfloat16}
# EXIF orientation -> the transform that shows the stored pixels upright (as PIL's ImageOps.exif_transpose)
ORIENT = {
    2: lambda img: img[:, ::-1],
    3: lambda img: img[::-1, ::-1],
    4: lambda img: img[::-1],
    5: lambda img: img.swapaxes(0, 1),
    6: lambda img: np.rot90(img, -1),
    7: lambda img: img[::-1, ::-1].swapaxes(0, 1),
    8: lambda img: np.rot90(img, 1),
}


class BadInput(ValueError):
    """An input file that cannot be read or decoded; the run reports it and goes on."""


def load_checkpoint(checkpoint):
    """(key, state dict) of a checkpoint file, loaded with ``torch.load(weights_only=True)``; UserError if unsafe.

    The key is BasicSR's ``params_ema`` if present (the EMA weights BasicSR validates with), else ``params``, or
    None for a bare state dict. A ``module.`` prefix (DataParallel) is removed.
    """
    if not osp.isfile(checkpoint):
        raise UserError(f'Checkpoint {checkpoint} does not exist.')
    try:
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r'Unsupported global: GLOBAL (\S+)', str(error))
        what = f'a pickled {found[1]} object' if found else 'pickled Python objects'
        raise UserError(f'Refusing checkpoint {checkpoint}: it contains {what}, and checkpoints are only loaded '
                        'with torch.load(weights_only=True), which runs no code from the file. Save the weights '
                        'alone, e.g. torch.save({"params": net.state_dict()}, path).') from error
    except (RuntimeError, KeyError, EOFError, OSError) as error:
        raise UserError(f'Cannot read checkpoint {checkpoint} (not a PyTorch file, or truncated): '
                        f'{type(error).__name__}: {error}') from error
    key = next((key for key in ('params_ema', 'params') if isinstance(state, dict) and key in state), None)
    state = state if key is None else state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f'Checkpoint {checkpoint} holds no state dict (expected {{"params": state_dict}}).')
    return key, {k.removeprefix('module.'): v for k, v in state.items()}


def input_channels(net):
    """Input channels of ``net``: those of its first convolution."""
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise UserError(f'{type(net).__name__} has no convolution to tell its input channels from.')
    return conv.in_channels


def load_model(checkpoint, options, device='cpu'):
    """(net in eval mode on ``device``, its channels) of a checkpoint and the ``network_g`` of an option file.

    The network is run once on a small input to check it maps C channels to C (1 or 3). UserError names any
    missing, unsafe or unfitting file.
    """
    network_opt = network_options(options)
    try:
        net = build_network(copy.deepcopy(network_opt))
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f'Cannot build the network_g of {options}: {type(error).__name__}: {error}') from error
    try:
        net.load_state_dict(load_checkpoint(checkpoint)[1])
    except RuntimeError as error:
        raise UserError(f'Checkpoint {checkpoint} does not fit the network_g of {options}: {error}') from error
    channels = input_channels(net)
    net = net.to(device).eval()
    try:
        with torch.no_grad():
            out_channels = net(torch.rand(1, channels, 32, 32, device=device)).shape[1]
    except RuntimeError as error:
        raise UserError(f'The network_g of {options} fails on a 32x32 input: {error}') from error
    if channels not in (1, 3) or out_channels != channels:
        raise UserError(f'The network_g of {options} maps {channels} channel(s) to {out_channels}; restoring needs '
                        '1 to 1 (gray) or 3 to 3 (colour).')
    return net, channels


class Restorer:
    """Restores uint8 images (H, W), (H, W, 3) BGR or (H, W, 4) BGRA with a CARN of 1 or 3 channels.

    Colour through a 1-channel network: Y of YCbCr (OpenCV's BT.601 ``COLOR_BGR2YCrCb`` in float) is restored, Cb
    and Cr are kept. Gray through a 3-channel network: replicated to RGB, restored, converted back to gray. Alpha
    is kept. ``dtype`` is the network's (float32, or float16 / bfloat16 with ``--half``); ``tile`` and
    ``tile_overlap`` are those of :func:`carn_da.evaluation.infer`.
    """

    def __init__(self, net, channels, device, dtype=torch.float32, tile=None, tile_overlap=16):
        self.net, self.channels, self.device, self.dtype = net.to(dtype), channels, device, dtype
        self.tile, self.tile_overlap = tile, tile_overlap

    def run(self, x):
        """The network on a float32 (H, W, C) array in [0, 1] (its channel order); float32 (H, W, C) in [0, 1]."""
        lq = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.dtype)
        out = infer(self.net, lq, self.device, self.tile, self.tile_overlap)
        return out[0].float().clamp_(0, 1).permute(1, 2, 0).cpu().numpy()

    def __call__(self, img):
        gray = img.ndim == 2
        x = (img if gray else img[..., :3]).astype(np.float32) / 255.
        if not gray and self.channels == 1:
            ycrcb = cv2.cvtColor(x, cv2.COLOR_BGR2YCrCb)
            ycrcb[..., :1] = self.run(ycrcb[..., :1])
            out = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)
        elif not gray:
            out = self.run(x[..., ::-1])[..., ::-1]
        elif self.channels == 3:
            out = cv2.cvtColor(self.run(cv2.cvtColor(x, cv2.COLOR_GRAY2RGB)), cv2.COLOR_RGB2GRAY)
        else:
            out = self.run(x[..., None])[..., 0]
        out = np.clip(np.round(out * 255.), 0, 255).astype(np.uint8)
        return np.concatenate([out, img[..., 3:]], axis=2) if not gray and img.shape[2] == 4 else out


def decode(data):
    """(uint8 image as OpenCV reads it unchanged, EXIF orientation) of a file's bytes; BadInput if unusable.

    JPEGs are also decoded by Pillow, which raises on truncated or broken data where OpenCV only warns.
    """
    orientation = 1
    try:
        with Image.open(io.BytesIO(data)) as pil_img:
            orientation = pil_img.getexif().get(EXIF_ORIENTATION, 1)
            if pil_img.format == 'JPEG':
                pil_img.load()
    except UnidentifiedImageError:
        pass  # not an image Pillow knows: OpenCV decides
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadInput(f'corrupt or truncated image ({error})') from error
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if img is None:
        raise BadInput('not an image, or corrupt (cannot be decoded)')
    if img.dtype != np.uint8:
        raise BadInput(f'{img.dtype} pixels; only 8-bit images are restored')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        raise BadInput(f'{img.shape[2]} channels; gray, BGR and BGRA images are restored')
    return img, orientation


def encode(img, ext):
    ok, buf = cv2.imencode(f'.{ext}', img)
    if not ok:
        raise BadInput(f'OpenCV cannot encode a {img.shape} image as {ext}')
    return buf.tobytes()


def write_atomic(path, data):
    """Write ``data`` to ``path`` through a temporary file, so an interrupted run leaves no partial output."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(f'{path}.tmp', 'wb') as f:
        f.write(data)
    os.replace(f'{path}.tmp', path)


def list_inputs(source, pattern, out_dir):
    """[(input path or ``-``, output path without extension, relative to the output folder)] of INPUT.

    A folder is searched recursively (hidden entries and ``out_dir`` are left out) for the images of
    :func:`carn_da.data.image_pairs.scan_images` or, with ``pattern``, the files whose relative path matches it
    (fnmatch, case-insensitive, ``*`` also matches ``/``).
    """
    if source == STDIN:
        return [(STDIN, 'stdin')]
    if osp.isfile(source):
        return [(source, osp.splitext(osp.basename(source))[0])]
    if not osp.isdir(source):
        raise UserError(f'Input {source} does not exist.')
    if pattern is None:
        rels = scan_images(source)
    else:
        rels = []
        for root, dirs, files in os.walk(source):
            dirs[:] = [v for v in dirs if not v.startswith('.')]
            rels += [osp.relpath(osp.join(root, v), source) for v in files if not v.startswith('.')]
        rels = sorted(v for v in rels if fnmatch.fnmatchcase(v.lower(), pattern.lower()))
    out_dir = osp.realpath(out_dir) + os.sep
    inputs = [(osp.join(source, rel), osp.splitext(rel)[0]) for rel in rels]
    return [(path, rel) for path, rel in inputs if not osp.realpath(path).startswith(out_dir)]


def read_input(path):
    if path == STDIN:
        return sys.stdin.buffer.read()
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as error:
        raise BadInput(f'cannot be read ({error.strerror})') from error


def restore_files(restorer, inputs, out_dir, ext='png', overwrite=False):
    """Restore every input and write it under ``out_dir``; failures are reported on stderr as they happen.

    Returns:
        dict: {'restored', 'skipped', 'failed'}: lists of input paths.
    """
    done = {'restored': [], 'skipped': [], 'failed': []}
    outputs = {}
    for path, rel in tqdm(inputs, desc='restoring', unit='img', file=sys.stderr):
        out_path = osp.join(out_dir, f'{rel}.{ext}')
        try:
            if out_path in outputs:
                raise BadInput(f'its output {out_path} is also that of {outputs[out_path]}')
            outputs[out_path] = path
            if osp.exists(out_path) and not overwrite:
                done['skipped'].append(path)
                continue
            img, orientation = decode(read_input(path))
            out = restorer(img)
            write_atomic(out_path, encode(np.ascontiguousarray(ORIENT.get(orientation, np.asarray)(out)), ext))
        except BadInput as error:
            tqdm.write(f'failed: {path}: {error}', file=sys.stderr)
            done['failed'].append(path)
        except torch.OutOfMemoryError:
            tqdm.write(f'failed: {path}: out of memory; restore it in tiles (--tile 512)', file=sys.stderr)
            done['failed'].append(path)
        else:
            done['restored'].append(path)
    return done


def choose_dtype(half, device):
    return HALF_DTYPES[device.type] if half else torch.float32


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='carn-da restore', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', metavar='INPUT', help='An image file, a folder (searched recursively) or - (stdin).')
    parser.add_argument('-o', '--out', required=True, metavar='OUTDIR', help='Output folder.')
    parser.add_argument('--model', required=True, metavar='CHECKPOINT', help='BasicSR checkpoint of network_g.')
    parser.add_argument('--opt', required=True, metavar='OPTIONS.yml', help='Option file with network_g.')
    parser.add_argument(
        '--glob',
        metavar='PATTERN',
        help='Only the files of a folder INPUT whose relative path matches PATTERN (case-insensitive; e.g. "*.jpg"). '
        'Default: all images (png, jpg, jpeg, bmp, tif, tiff).')
    parser.add_argument('--ext', choices=['png', 'tif', 'bmp'], default='png', help='Output format (lossless).')
    parser.add_argument('--overwrite', action='store_true', help='Restore again images whose output exists.')
    parser.add_argument(
        '--half',
        action='store_true',
        help='Half precision: float16 on CUDA, bfloat16 on CPU (less memory; faster only on CPUs with bfloat16 '
        'instructions). Outputs may differ from float32 by a gray level or so.')
    add_inference_arguments(parser)
    args = parser.parse_args(argv)
    check_inference_arguments(parser, args)
    if args.glob is not None and not osp.isdir(args.input):
        parser.error('--glob needs a folder INPUT')
    return parser, args


def run(args):
    device = choose_device(args.device)
    dtype = choose_dtype(args.half, device)
    net, channels = load_model(args.model, args.opt, device)
    inputs = list_inputs(args.input, args.glob, args.out)
    if not inputs:
        raise UserError(f'No images in {args.input}' + (f' matching {args.glob}.' if args.glob else '.'))
    restorer = Restorer(net, channels, device, dtype, args.tile, args.tile_overlap)
    if dtype != torch.float32:
        try:
            restorer.run(np.zeros((32, 32, channels), np.float32))
        except RuntimeError as error:
            raise UserError(f'--half: this torch cannot run the network in {dtype} on {device}: {error}') from error
    print(
        f'carn-da restore: {len(inputs)} image(s), {type(net).__name__} with {channels} channel(s) on {device} in '
        f'{str(dtype).replace("torch.", "")}' + (f', tiles of {args.tile}' if args.tile else ''),
        file=sys.stderr)
    done = restore_files(restorer, inputs, args.out, args.ext, args.overwrite)
    note = ' (outputs exist; --overwrite restores them again)' if done['skipped'] else ''
    print(f'{len(done["restored"])} restored, {len(done["skipped"])} skipped{note}, {len(done["failed"])} failed '
          f'-> {args.out}')
    return 1 if done['failed'] else 0


def main(argv=None):
    parser, args = parse_args(argv)
    try:
        return run(args)
    except UserError as error:
        parser.exit(2, f'{parser.prog}: error: {error}\n')


if __name__ == '__main__':
    sys.exit(main())
