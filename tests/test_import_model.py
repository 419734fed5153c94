"""carn-da import: MatConvNet simplenn files (MATLAB v7.3 / HDF5 and older MAT files) into DnCNN checkpoints."""
import h5py
import numpy as np
import os
import pytest
import scipy.io
import torch
from conftest import REPO
from os import path as osp

from carn_da.import_model import imported_once, main
from carn_da.utils.checkpoint import load_model

PUBLISHED = osp.join(REPO, os.pardir, 'shared', 'peers', 'DnCNN3.mat')
RNG = np.random.default_rng(0)


def conv(inputs, outputs, name):
    """A MatConvNet conv layer: filters (height, width, in, out) and biases, as MATLAB holds them."""
    filters = RNG.normal(0, 0.5, (3, 3, inputs, outputs)).astype(np.float32)
    return {'name': name, 'type': 'conv', 'weights': [filters, RNG.normal(0, 0.1, outputs)], 'pad': 1., 'stride': 1.}


def bnorm(channels, name):
    moments = np.stack([RNG.normal(0, 0.2, channels), RNG.uniform(0.5, 2, channels)], axis=1)  # [mean, sigma]
    weights = [RNG.uniform(0.5, 1.5, channels), RNG.normal(0, 0.1, channels), moments]
    return {'name': name, 'type': 'bnorm', 'weights': weights}


def relu(name):
    return {'name': name, 'type': 'relu', 'leak': 0.}


def tiny_network():
    """conv 1->2, relu, conv 2->2, bnorm, relu, conv 2->1: a DnCNN of 3 convs and width 2."""
    return [conv(1, 2, 'c1'), relu('r1'), conv(2, 2, 'c2'), bnorm(2, 'bn2'), relu('r2'), conv(2, 1, 'c3')]


def squeezed(value):
    """A MATLAB array as MATLAB saves it: trailing singleton dimensions (beyond 2) dropped."""
    value = np.asarray(value, dtype=np.float32)
    value = value.reshape(-1, 1) if value.ndim == 1 else value
    while value.ndim > 2 and value.shape[-1] == 1:
        value = value[..., 0]
    return value


def write_v73(path, layers):
    """``net.layers`` as MATLAB's -v7.3 writes it: HDF5, dimensions reversed, cells as references into #refs#."""
    with h5py.File(path, 'w') as f:
        refs = f.create_group('#refs#')

        def stored(name, value):
            if isinstance(value, str):
                data = np.array([[ord(c)] for c in value], dtype=np.uint16)
                dataset = refs.create_dataset(name, data=data)
                dataset.attrs['MATLAB_class'] = np.bytes_('char')
            else:
                dataset = refs.create_dataset(name, data=squeezed(value).T)
                dataset.attrs['MATLAB_class'] = np.bytes_('single')
            return dataset.ref

        layer_refs = []
        for k, layer in enumerate(layers):
            group = refs.create_group(f'layer{k}')
            for key, value in layer.items():
                if key == 'weights':
                    weight_refs = [stored(f'w{k}_{j}', w) for j, w in enumerate(value)]
                    group.create_dataset(key, data=np.array(weight_refs, dtype=h5py.ref_dtype).reshape(-1, 1))
                elif isinstance(value, str):
                    group[key] = np.array([[ord(c)] for c in value], dtype=np.uint16)
                    group[key].attrs['MATLAB_class'] = np.bytes_('char')
                else:
                    group[key] = np.array([[value]])
            layer_refs.append(group.ref)
        f.create_group('net').create_dataset('layers', data=np.array(layer_refs, dtype=h5py.ref_dtype).reshape(-1, 1))


def write_v5(path, layers):
    """``net.layers`` as an older MAT file (a cell of structs), written by scipy."""
    cell = np.empty((1, len(layers)), dtype=object)
    for k, layer in enumerate(layers):
        layer = dict(layer)
        if 'weights' in layer:
            weights = np.empty((1, len(layer['weights'])), dtype=object)
            for j, w in enumerate(layer['weights']):
                weights[0, j] = squeezed(w)
            layer['weights'] = weights
        cell[0, k] = layer
    scipy.io.savemat(path, {'net': {'layers': cell}})


def by_hand(image, layers):
    """The simplenn network on an (H, W) image in float64, with explicit loops: input - network(input)."""
    x = image[None].astype(np.float64)
    for layer in layers:
        if layer['type'] == 'conv':
            filters, biases = layer['weights']
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
            out = np.zeros((filters.shape[3], ) + x.shape[1:])
            for o in range(filters.shape[3]):
                for i in range(filters.shape[2]):
                    for u in range(3):
                        for v in range(3):
                            out[o] += filters[u, v, i, o] * padded[i, u:u + x.shape[1], v:v + x.shape[2]]
                out[o] += biases[o]
            x = out
        elif layer['type'] == 'bnorm':
            gain, shift, moments = layer['weights']
            x = gain[:, None, None] * (x - moments[:, 0, None, None]) / moments[:, 1, None, None] + shift[:, None, None]
        else:
            x = np.maximum(x, 0)
    return image - x[0]


@pytest.mark.parametrize('writer', [write_v73, write_v5])
def test_import_matches_a_hand_computation(tmp_path, writer, capsys):
    layers = tiny_network()
    writer(tmp_path / 'tiny.mat', layers)
    assert main([str(tmp_path / 'tiny.mat'), '--out', str(tmp_path / 'out')]) == 0
    assert 'DnCNN of 3 convs, 2 channels' in capsys.readouterr().out
    net, channels = load_model(str(tmp_path / 'out' / 'tiny.pth'), str(tmp_path / 'out' / 'tiny.yml'))
    assert channels == 1
    image = RNG.uniform(0, 1, (7, 10))  # not square: a transposed filter would show
    with torch.no_grad():
        restored = net(torch.from_numpy(image).float()[None, None])[0, 0].double().numpy()
    np.testing.assert_allclose(restored, by_hand(image, layers), atol=1e-5)


def test_imported_once_imports_only_what_is_not_there(tmp_path, capsys):
    write_v73(tmp_path / 'tiny.mat', tiny_network())
    files = imported_once(str(tmp_path / 'tiny.mat'), str(tmp_path / 'out'))
    assert files == (str(tmp_path / 'out' / 'tiny.pth'), str(tmp_path / 'out' / 'tiny.yml'))
    assert 'wrote' in capsys.readouterr().out
    os.remove(files[1])
    assert imported_once(str(tmp_path / 'tiny.mat'), str(tmp_path / 'out')) == files  # one file missing: again
    assert 'wrote' in capsys.readouterr().out and osp.isfile(files[1])
    assert imported_once(str(tmp_path / 'tiny.mat'), str(tmp_path / 'out')) == files
    assert capsys.readouterr().out == ''


@pytest.mark.parametrize(
    'change, message', [
        (lambda ls: ls.insert(2, dict(name='p1', type='pool')), 'layer 3 (p1, pool)'),
        (lambda ls: ls[2]['weights'].__setitem__(0, np.ones((5, 5, 2, 2))), 'layer 3 (c2, conv): filters of shape'),
        (lambda ls: ls[2].update(stride=2.), 'layer 3 (c2, conv): stride [2.0]'),
        (lambda ls: ls[1].update(leak=0.1), 'layer 2 (r1, relu): a leaky ReLU'),
        (lambda ls: ls.append(relu('r3')), 'must end with a conv layer'),
        (lambda ls: ls.pop(1), 'layer 2 (c2, conv): unexpected here'),
        (lambda ls: ls[3]['weights'].pop(), 'layer 4 (bn2, bnorm): expected multipliers, biases and moments'),
        (lambda ls: ls[5].update(weights=[np.ones((3, 3, 2, 3)), np.zeros(3)]), 'conv 3 maps 2 to 3 channels'),
    ],
    ids=['pool', '5x5', 'stride', 'leaky', 'trailing-relu', 'no-relu', 'bnorm-weights', 'widths'])
def test_import_refuses_what_it_does_not_understand(tmp_path, change, message, capsys):
    layers = tiny_network()
    change(layers)
    write_v73(tmp_path / 'bad.mat', layers)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / 'bad.mat'), '--out', str(tmp_path / 'out')])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error and 'bad.mat' in error
    assert not (tmp_path / 'out').exists()


def test_import_refuses_files_that_are_no_simplenn_network(tmp_path, capsys):
    scipy.io.savemat(tmp_path / 'dag.mat', {'net': {'layers': np.zeros((1, 1)), 'vars': np.zeros((1, 1))}})
    scipy.io.savemat(tmp_path / 'other.mat', {'weights': np.zeros((3, 3))})
    (tmp_path / 'text.mat').write_text('not a MAT file')
    for name, message in [('dag.mat', 'DagNN'), ('other.mat', 'no variable "net"'), ('text.mat', 'as a MAT file')]:
        with pytest.raises(SystemExit):
            main([str(tmp_path / name), '--out', str(tmp_path / 'out')])
        assert message in capsys.readouterr().err


@pytest.mark.skipif(not osp.isfile(PUBLISHED), reason=f'the published DnCNN-3 is not at {PUBLISHED}')
def test_import_of_the_published_dncnn3(tmp_path):
    """The shipped file's layout: 20 convs of 64 channels, 0.67 M parameters (its Classic5 table is checked by
    benchmarks/import_dncnn3.py)."""
    assert main([PUBLISHED, '--out', str(tmp_path)]) == 0
    net, channels = load_model(str(tmp_path / 'DnCNN3.pth'), str(tmp_path / 'DnCNN3.yml'))
    assert channels == 1 and sum(p.numel() for p in net.parameters()) == 665921
    flat = torch.full((1, 1, 32, 32), 0.5)
    with torch.no_grad():
        assert (net(flat) - flat).abs().max() < 0.05  # a flat image has no artifact to remove
