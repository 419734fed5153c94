"""Published MatConvNet models (``simplenn``: ``net.layers``, a list of conv / bnorm / relu layers) as DnCNN state
dicts: the reader of ``carn-da import``.

Two file layouts: MATLAB v7.3 (an HDF5 file, read with h5py; arrays are stored with their dimensions reversed, cells
and structs as object references) and older MAT files (read with scipy). A layer is read as a dict: ``name``,
``type``, ``weights`` (a list of arrays in MATLAB's order: filters (height, width, in, out), biases (out,)) and the
numeric options (``pad``, ``stride``, ``dilate``, ``leak``).

MatConvNet's ``vl_nnconv`` is a cross-correlation over (height, width), like ``torch.nn.Conv2d``: a filter bank
becomes a torch weight by moving its axes to (out, in, height, width). A ``bnorm`` layer (``vl_nnbnorm`` at test
time: ``multipliers * (x - mean) / sigma + biases``, ``moments`` = [mean, sigma]) is folded into the conv before it.
"""
import h5py
import numpy as np
import scipy.io
import torch

from carn_da.utils.errors import UserError

LAYER_TYPES = ('conv', 'bnorm', 'relu')
NUMERIC_OPTIONS = ('pad', 'stride', 'dilate', 'leak')


def _h5_value(file, item):
    """A v7.3 item as Python: char arrays as str, cells as lists, numeric arrays in MATLAB's dimension order."""
    if isinstance(item, h5py.Group):
        return {key: _h5_value(file, item[key]) for key in item.keys()}
    kind = item.attrs.get('MATLAB_class', b'').decode()
    if item.attrs.get('MATLAB_empty', 0):
        return '' if kind == 'char' else np.zeros(0)
    value = item[()]
    if item.dtype == h5py.ref_dtype or value.dtype == object:
        return [_h5_value(file, file[ref]) for ref in value.T.ravel()]
    if kind == 'char':
        return ''.join(map(chr, value.ravel()))
    return np.asarray(value).T


def _mat_value(value):
    """An item of scipy's ``loadmat(struct_as_record=False, squeeze_me=False)`` as Python, like :func:`_h5_value`."""
    if isinstance(value, scipy.io.matlab.mat_struct):
        return {key: _mat_value(getattr(value, key)) for key in value._fieldnames}
    if isinstance(value, np.ndarray) and value.dtype.kind == 'U':
        return ''.join(value.ravel())
    if isinstance(value, np.ndarray) and value.dtype == object:
        if value.size == 1 and isinstance(value.flat[0], scipy.io.matlab.mat_struct):
            return _mat_value(value.flat[0])
        return [_mat_value(v) for v in value.T.ravel()]
    return value


def _layers_of(net, path):
    if not isinstance(net, dict) or 'layers' not in net:
        raise UserError(f'{path}: no net.layers: not a MatConvNet simplenn network.')
    if 'vars' in net or 'params' in net:
        raise UserError(f'{path}: a MatConvNet DagNN network; carn-da import reads simplenn networks (net.layers).')
    layers = net['layers']
    return [layers] if isinstance(layers, dict) else list(layers)


def read_simplenn(path):
    """The layers (dicts, see the module docstring) of the MatConvNet simplenn network in the MAT file ``path``."""
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, 'r') as file:
                if 'net' not in file:
                    raise UserError(f'{path}: no variable "net" (a MatConvNet model saves its network as net).')
                net = _h5_value(file, file['net'])
        else:
            mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=False)
            if 'net' not in mat:
                raise UserError(f'{path}: no variable "net" (a MatConvNet model saves its network as net).')
            net = _mat_value(mat['net'])
    except (OSError, ValueError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        raise UserError(f'Cannot read {path} as a MAT file: {error}') from error
    return [_layer(layer, k, path) for k, layer in enumerate(_layers_of(net, path), 1)]


def _layer(layer, number, path):
    if not isinstance(layer, dict) or not isinstance(layer.get('type'), str):
        raise UserError(f'{path}: layer {number} has no type: not a MatConvNet simplenn layer.')
    read = {'name': layer.get('name') or f'layer{number}', 'type': layer['type'], 'number': number}
    weights = layer.get('weights', [])
    read['weights'] = [np.asarray(w, dtype=np.float64) for w in (weights if isinstance(weights, list) else [weights])]
    for option in NUMERIC_OPTIONS:
        if option in layer:
            read[option] = np.asarray(layer[option], dtype=np.float64).ravel()
    return read


def _where(layer, path):
    return f'{path}: layer {layer["number"]} ({layer["name"]}, {layer["type"]})'


def _check_conv(layer, path):
    """(torch weight (out, in, 3, 3), bias (out,)) of a 3x3 conv layer of stride 1, padding 1, no dilation."""
    where = _where(layer, path)
    if len(layer['weights']) not in (1, 2):
        raise UserError(f'{where}: expected filters and biases, found {len(layer["weights"])} weight arrays.')
    filters = layer['weights'][0]
    filters = filters.reshape(filters.shape + (1, ) * (4 - filters.ndim))  # MATLAB drops trailing singletons
    if filters.ndim != 4 or filters.shape[:2] != (3, 3):
        raise UserError(f'{where}: filters of shape {filters.shape}; carn-da import converts 3x3 convs only.')
    for option, expected in (('pad', 1), ('stride', 1), ('dilate', 1)):
        if option in layer and not np.all(layer[option] == expected):
            raise UserError(f'{where}: {option} {layer[option].tolist()}; expected {expected} (a DnCNN layer).')
    out = filters.shape[3]
    bias = layer['weights'][1].ravel() if len(layer['weights']) == 2 else np.zeros(0)
    bias = np.zeros(out) if bias.size == 0 else bias
    if bias.shape != (out, ):
        raise UserError(f'{where}: {bias.size} biases for {out} filters.')
    return filters.transpose(3, 2, 0, 1), bias


def _fold_bnorm(conv, layer, path):
    """The conv (weight, bias) followed by the bnorm ``layer``, as one conv."""
    weight, bias = conv
    out = weight.shape[0]
    if len(layer['weights']) != 3:
        raise UserError(f'{_where(layer, path)}: expected multipliers, biases and moments, found '
                        f'{len(layer["weights"])} weight arrays.')
    gain, shift, moments = layer['weights']
    if gain.size != out or shift.size != out or moments.shape != (out, 2):
        raise UserError(f'{_where(layer, path)}: weights of shapes {[w.shape for w in layer["weights"]]} do not '
                        f'match the {out} channels of the conv before it.')
    scale = gain.ravel() / moments[:, 1]
    return weight * scale[:, None, None, None], (bias - moments[:, 0]) * scale + shift.ravel()


def _convs(layers, path):
    """The (weight, bias) of each conv of a conv [bnorm] relu ... conv network, bnorms folded."""
    convs, expect_conv = [], True
    for layer in layers:
        kind = layer['type']
        if kind not in LAYER_TYPES:
            raise UserError(f'{_where(layer, path)}: carn-da import understands {", ".join(LAYER_TYPES)} layers '
                            '(a DnCNN: conv, [bnorm], relu, ..., conv).')
        if (kind == 'conv') != expect_conv:
            raise UserError(f'{_where(layer, path)}: unexpected here; expected conv, [bnorm], relu, ..., conv.')
        if kind == 'conv':
            convs.append(_check_conv(layer, path))
        elif kind == 'bnorm':
            convs[-1] = _fold_bnorm(convs[-1], layer, path)
        elif 'leak' in layer and np.any(layer['leak'] != 0):
            raise UserError(f'{_where(layer, path)}: a leaky ReLU (leak {layer["leak"].tolist()}); DnCNN has ReLUs.')
        expect_conv = kind == 'relu'
    if not layers or layers[-1]['type'] != 'conv':
        raise UserError(f'{path}: the network must end with a conv layer (the residual), '
                        f'found {layers[-1]["type"] if layers else "no layers"}.')
    return convs


def _check_widths(convs, path):
    """(channels of the image, hidden width) of a chain of convs; UserError naming the conv that breaks it."""
    channels, width = convs[0][0].shape[1], convs[0][0].shape[0]
    for k, (weight, _) in enumerate(convs, 1):
        expected_in = channels if k == 1 else width
        expected_out = channels if k == len(convs) else width
        if weight.shape[:2] != (expected_out, expected_in):
            raise UserError(f'{path}: conv {k} maps {weight.shape[1]} to {weight.shape[0]} channels; a DnCNN of '
                            f'{channels}-channel images and width {width} needs {expected_in} to {expected_out}.')
    if len(convs) < 2 or channels not in (1, 3):
        raise UserError(f'{path}: {len(convs)} convs on {channels}-channel images; expected at least 2 convs on '
                        'grayscale (1) or RGB (3) images.')
    return channels, width


def simplenn_to_dncnn(layers, path):
    """(network_g options, state dict) of the project's DnCNN (``batch_norm: False``) equal to the simplenn
    ``layers`` read from ``path``, a residual network (restored = input - net(input)) of 3x3 convs and ReLUs."""
    convs = _convs(layers, path)
    channels, width = _check_widths(convs, path)
    network_g = {
        'type': 'DnCNN',
        'num_in_ch': channels,
        'num_out_ch': channels,
        'num_feat': width,
        'num_conv': len(convs),
        'batch_norm': False
    }
    state = {}
    for k, (weight, bias) in enumerate(convs):
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise UserError(f'{path}: conv {k + 1} has non-finite weights (after folding its bnorm, if any).')
        prefix = f'layers.{k}' if k == len(convs) - 1 else f'layers.{k}.0'
        state[f'{prefix}.weight'] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        state[f'{prefix}.bias'] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    return network_g, state
