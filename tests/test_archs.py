"""The CARN archs: published sizes, the F/D split (restore(extract(x), x) == forward(x)) and the split options."""
import carn_da.compat  # noqa: F401

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from carn_da.archs.arcnn_arch import ARCNN
from carn_da.archs.dncnn_arch import DnCNN
from carn_da.archs.memnet_arch import MemNet
from carn_da.archs.rdn_arch import RDN
from carn_da.archs.split_carn_arch import SplitCARN
from carn_da.archs.splittable import SplittableCARN


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """The nets here are tiny: intra-op threads only contend (10x slower on a loaded 2-core machine)."""
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


def conv(in_ch, out_ch, kernel_size):
    """Parameters of a conv with bias."""
    return in_ch * out_ch * kernel_size**2 + out_ch


def bn_relu_conv(in_ch, out_ch, kernel_size):
    """Parameters of BN (weight and bias per input channel), ReLU and a conv with bias."""
    return 2 * in_ch + conv(in_ch, out_ch, kernel_size)


def num_params(net):
    return sum(p.numel() for p in net.parameters())


def rdn_params(ch, num_feat, num_block, num_layer, growth):
    block = sum(conv(num_feat + i * growth, growth, 3) for i in range(num_layer))
    block += conv(num_feat + num_layer * growth, num_feat, 1)  # local feature fusion
    return (conv(ch, num_feat, 3) + conv(num_feat, num_feat, 3) + num_block * block +
            conv(num_block * num_feat, num_feat, 1) + conv(num_feat, num_feat, 3) + conv(num_feat, ch, 3))


@pytest.mark.parametrize('num_feat, num_block, num_layer, growth', [(64, 16, 8, 64), (8, 2, 3, 4)])
def test_rdn_param_count(num_feat, num_block, num_layer, growth):
    net = RDN(1, 1, num_feat, num_block, num_layer, growth)
    assert num_params(net) == rdn_params(1, num_feat, num_block, num_layer, growth)


def test_rdn_inference_without_gradients_equals_the_training_path():
    """Without autograd the dense blocks write into one tensor instead of concatenating; the output is the same."""
    torch.manual_seed(0)
    net = RDN(1, 1, num_feat=8, num_block=2, num_layer=3, growth=4).eval()
    x = torch.rand(2, 1, 13, 10)
    with torch.no_grad():
        inplace = net(x)
    concatenated = net(x)
    assert concatenated.requires_grad and not inplace.requires_grad
    assert torch.allclose(inplace, concatenated, atol=1e-6)
    assert not torch.allclose(inplace, x, atol=1e-3)  # the blocks did change the input


@pytest.mark.parametrize('num_conv', [17, 20])
def test_dncnn_param_count(num_conv):
    expected = conv(1, 64, 3) + (num_conv - 2) * (conv(64, 64, 3) + 2 * 64) + conv(64, 1, 3)
    assert num_params(DnCNN(num_conv=num_conv)) == expected
    if num_conv == 17:
        assert round(expected / 1e6, 2) == 0.56  # DnCNN-S, about 0.56 M


def test_memnet_param_count():
    num_feat, num_memblock, num_recursion = 64, 6, 6
    blocks = sum(2 * bn_relu_conv(num_feat, num_feat, 3) + bn_relu_conv((num_recursion + m) * num_feat, num_feat, 1)
                 for m in range(1, num_memblock + 1))  # one shared residual unit and a gate unit per block
    expected = bn_relu_conv(1, num_feat, 3) + blocks + bn_relu_conv(num_feat, 1, 3) + num_memblock
    net = MemNet()
    assert num_params(net) == expected
    # the paper's 677K counts the conv weights: FENet, R recursions x 2 shared convs and a gate per block, recon
    gates = sum((num_recursion + m) * num_feat**2 for m in range(1, num_memblock + 1))
    conv_weights = 9 * num_feat + num_memblock * 2 * 9 * num_feat**2 + gates + 9 * num_feat
    assert sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d)) == conv_weights
    assert round(conv_weights / 1e3) == 677


def test_arcnn_param_count():
    expected = conv(1, 64, 9) + conv(64, 32, 7) + conv(32, 16, 1) + conv(16, 1, 5)
    assert num_params(ARCNN()) == expected
    assert round(expected / 1e6, 2) == 0.11


def edsr(ch):
    return dict(type='EDSR', num_in_ch=ch, num_out_ch=ch, num_feat=8, num_block=2, upscale=1, img_range=1.)


def rrdbnet(ch):
    return dict(type='RRDBNet', num_in_ch=ch, num_out_ch=ch, scale=1, num_feat=8, num_block=2, num_grow_ch=4)


def module_ending_f(net):
    """The module whose output is F's output (and Q's input)."""
    if isinstance(net, SplitCARN):
        return net.arch.get_submodule(net.split_at)
    if isinstance(net, (DnCNN, ARCNN)):
        return net.layers[net.split_at - 1]
    return getattr(net, net.split_at) if isinstance(net.split_at, str) else net.blocks[net.split_at - 1]


# (name, builder of a small net from channels and split_at, split_at choices, channels)
CASES = [
    ('DnCNN', lambda ch, s: DnCNN(ch, ch, num_feat=8, num_conv=5, split_at=s), [1, 2, 3, 4], (1, 3)),
    ('MemNet', lambda ch, s: MemNet(ch, ch, 8, num_memblock=3, num_resblock=2, split_at=s), ['fenet', 1, 2, 3], (1, 3)),
    ('ARCNN', lambda ch, s: ARCNN(ch, ch, split_at=s), [1, 2, 3], (1, 3)),
    ('RDN', lambda ch, s: RDN(ch, ch, num_feat=8, num_block=3, num_layer=2, growth=4, split_at=s),
     ['sfe1', 'sfe2', 1, 2, 3], (1, 3)),
    # EDSR's mean shift needs 3 channels; RRDBNet at scale 1 pixel-unshuffles its input before conv_first and runs
    # an in-place LeakyReLU on conv3's output
    ('EDSR', lambda ch, s: SplitCARN(edsr(ch), s), ['conv_first', 'body.1'], (3, )),
    ('RRDBNet', lambda ch, s: SplitCARN(rrdbnet(ch), s), ['conv_first', 'body.1.rdb2.conv3'], (1, 3)),
]
SPLITS = [
    pytest.param(build, split_at, ch, id=f'{name}-{split_at}-{ch}ch') for name, build, choices, channels in CASES
    for split_at in choices for ch in channels
]


def make(build, split_at, ch):
    """A small net in eval mode whose BN layers hold running statistics, and an input (odd size if it may be)."""
    torch.manual_seed(0)
    net = build(ch, split_at)
    x = torch.rand(2, ch, 12, 8) if isinstance(net, SplitCARN) else torch.rand(2, ch, 11, 9)
    with torch.no_grad():
        net.train()(x)
    return net.eval(), x


@pytest.mark.parametrize('build, split_at, ch', SPLITS)
def test_split(build, split_at, ch):
    net, x = make(build, split_at, ch)
    recorded = []
    handle = module_ending_f(net).register_forward_hook(lambda module, inputs, output: recorded.append(output.clone()))
    with torch.no_grad():
        out = net(x)  # recorded[0]
    handle.remove()
    assert out.shape == x.shape
    features = net.extract(x)
    restored = net.restore(features, x)
    assert torch.allclose(restored, out, atol=1e-6)
    # Q reads the output of the split point
    assert torch.equal(net.quality_feature(features), recorded[0])

    # the gradient reaches F's parameters, and only through the features (chain rule)
    f_params = list(module_ending_f(net).parameters())
    features = [features] if isinstance(features, torch.Tensor) else list(features)
    loss = restored.square().mean()
    total = torch.autograd.grad(loss, f_params, retain_graph=True)
    via_features = torch.autograd.grad(features, f_params, torch.autograd.grad(loss, features, retain_graph=True))
    assert any(g.abs().sum() > 0 for g in total)
    for g_total, g_via in zip(total, via_features):
        assert torch.allclose(g_total, g_via, atol=1e-7)


def test_memnet_predictions():
    net, x = make(lambda ch, s: MemNet(ch, ch, num_feat=8, num_memblock=3, num_resblock=2, split_at=s), 2, 1)
    with torch.no_grad():
        net.prediction_weight.copy_(torch.tensor([0.2, 0.3, 0.5]))
        net.keep_predictions = True
        output = net.restore(net.extract(x), x)
        predictions = net.predictions
        assert len(predictions) == 3 and all(y.shape == x.shape for y in predictions)
        assert torch.allclose(output, 0.2 * predictions[0] + 0.3 * predictions[1] + 0.5 * predictions[2])
        assert torch.allclose(output, net(x), atol=1e-6)
        # each prediction is the shared reconstruction of a memory block's output plus the input
        memories = net.extract(x)
        assert torch.allclose(predictions[1], net.reconstruction(memories[2]) + x, atol=1e-6)


def test_split_carn_errors():
    with pytest.raises(ValueError, match=r'split_at must name a child module of EDSR.*conv_first, body, '):
        SplitCARN(edsr(3), 'conv_frist')
    # RRDBNet calls its lrelu several times per forward
    net = SplitCARN(rrdbnet(1), 'lrelu')
    x = torch.rand(1, 1, 8, 8)
    features = net.extract(x)
    with pytest.raises(RuntimeError, match='lrelu more than once'):
        net.restore(features, x)
    assert not net.arch.lrelu._forward_hooks  # removed despite the error
    assert net(x).shape == x.shape


def test_split_carn_does_not_alter_the_option_dict():
    option = edsr(3)
    SplitCARN(option, 'conv_first')
    assert option == edsr(3)


@pytest.mark.parametrize('name', ['DnCNN', 'MemNet', 'ARCNN', 'RDN', 'SplitCARN'])
def test_registered(name):
    assert issubclass(ARCH_REGISTRY.get(name), SplittableCARN)


@pytest.mark.parametrize('build, bad, choices', [
    (lambda s: DnCNN(num_conv=4, split_at=s), [0, 4, True, '1'], '1, 2, 3'),
    (lambda s: ARCNN(split_at=s), [0, 4, 1.0], '1, 2, 3'),
    (lambda s: MemNet(num_memblock=2, split_at=s), ['FENet', 0, 3], "'fenet', 1, 2"),
    (lambda s: RDN(num_block=2, split_at=s), ['sfe3', 0, 3, None], "'sfe1', 'sfe2', 1, 2"),
])
def test_invalid_split_at_lists_the_choices(build, bad, choices):
    for split_at in bad:
        with pytest.raises(ValueError, match=f'split_at must be one of {choices}; got {split_at!r}'):
            build(split_at)
