"""Feature alignment parts: the patch quality discriminator, the MMD and the CORAL losses."""
import carn_da.compat  # noqa: F401

import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from conftest import textured_image
from scipy.fft import dctn
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

import carn_da  # noqa: F401
from carn_da.archs.block_dct_discriminator_arch import BlockDCTQualityDiscriminator
from carn_da.archs.patch_discriminator_arch import PatchQualityDiscriminator
from carn_da.losses.coral_loss import CORALLoss
from carn_da.losses.domain_adversarial_loss import DomainAdversarialLoss
from carn_da.losses.mmd_loss import MMDLoss
from carn_da.utils.jpeg import jpeg_compress


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """The nets here are tiny: intra-op threads only contend."""
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


def convs(net):
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize('spectral_norm', [False, True])
@pytest.mark.parametrize('stride, out_size', [(1, (11, 8)), (2, (6, 4))])
def test_patch_discriminator_shapes(stride, out_size, spectral_norm):
    q = PatchQualityDiscriminator(
        num_feat=6, hidden=10, num_layers=4, num_domains=3, spectral_norm=spectral_norm, stride=stride)
    layers = convs(q)
    expected = [(6, 10, (3, 3), (stride, stride)), *[(10, 10, (3, 3), (1, 1))] * 3, (10, 3, (1, 1), (1, 1))]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in layers] == expected
    assert sum(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in q.modules()) == 4
    assert all(parametrize.is_parametrized(m, 'weight') == spectral_norm for m in layers)
    assert q(torch.randn(2, 6, 11, 8)).shape == (2, 3, *out_size)


def test_patch_discriminator_spectral_norm_bounds_every_conv():
    torch.manual_seed(0)
    q = PatchQualityDiscriminator(num_feat=4, hidden=8, num_layers=2, spectral_norm=True).train()
    with torch.no_grad():
        for conv in convs(q):
            conv.parametrizations.weight.original.normal_(0, 3)  # new singular vectors, sigma far above 1
    for _ in range(20):
        q(torch.randn(2, 4, 6, 6))
    for conv in convs(q):
        raw = conv.parametrizations.weight.original
        assert torch.linalg.matrix_norm(raw.reshape(conv.out_channels, -1), ord=2) > 2
        sigma = torch.linalg.matrix_norm(conv.weight.detach().reshape(conv.out_channels, -1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize('option, value', [('num_layers', 0), ('stride', 0), ('num_domains', 1), ('hidden', 2.5)])
def test_patch_discriminator_rejects_bad_options(option, value):
    with pytest.raises(ValueError, match=option):
        PatchQualityDiscriminator(**{option: value})


def test_domain_loss_with_patch_discriminator_reverses_feature_gradients():
    """Per-position logits: F gets -lambda times the plain cross-entropy gradient, Q gets +lambda times it."""
    torch.manual_seed(0)
    q = PatchQualityDiscriminator(num_feat=4, hidden=8, num_layers=2, stride=2)
    feat_source = torch.randn(3, 4, 6, 6, requires_grad=True)
    feat_target = torch.randn(2, 4, 6, 6, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1, 1])[:, None, None].expand(5, 3, 3)

    plain = F.cross_entropy(q(torch.cat([feat_source, feat_target])), labels)
    plain_grads = torch.autograd.grad(plain, [feat_source, feat_target, *q.parameters()])

    loss = DomainAdversarialLoss(loss_weight=0.5)(q, feat_source, feat_target)
    assert loss.dim() == 0 and torch.allclose(loss, 0.5 * plain)
    loss.backward()
    assert torch.allclose(feat_source.grad, -0.5 * plain_grads[0])
    assert torch.allclose(feat_target.grad, -0.5 * plain_grads[1])
    for param, expected in zip(q.parameters(), plain_grads[2:]):
        assert param.grad is not None and param.grad.abs().sum() > 0
        assert torch.allclose(param.grad, 0.5 * expected)


def test_mmd_is_zero_for_identical_sets_and_grows_with_the_shift():
    torch.manual_seed(0)
    mmd = MMDLoss(num_samples=256)
    source = torch.randn(4, 8, 6, 6)  # 144 positions, all used
    assert mmd(source, source).abs().item() < 1e-6
    assert mmd(source, source[torch.randperm(4)].flip(2)).abs().item() < 1e-6  # the same set, reordered

    same = mmd(torch.randn(400, 8), torch.randn(400, 8)).item()
    shifted = mmd(torch.randn(400, 8), torch.randn(400, 8) + 1.5).item()
    assert shifted > 0.05 and shifted > 5 * same


def test_mmd_matches_a_direct_multi_kernel_computation():
    torch.manual_seed(0)
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64) + 0.5
    z = np.concatenate([x.numpy(), y.numpy()])
    dist = ((z[:, None] - z[None])**2).sum(-1)
    sigma2 = dist.sum() / (len(z) * (len(z) - 1))
    expected = np.mean([
        k[:5, :5].mean() + k[5:, 5:].mean() - 2 * k[:5, 5:].mean()
        for k in [np.exp(-dist / (2 * s * sigma2)) for s in (0.25, 0.5, 1, 2, 4)]
    ])
    assert MMDLoss(loss_weight=2.0)(x, y).item() == pytest.approx(2 * expected, rel=1e-9)


def test_mmd_samples_num_samples_positions_per_domain():
    """Too many positions: a fresh draw per call, so two calls on the same large sets differ."""
    torch.manual_seed(0)
    mmd = MMDLoss(num_samples=16)
    source, target = torch.randn(2, 4, 8, 8), torch.randn(3, 4, 8, 8)
    assert mmd(source, target).item() != mmd(source, target).item()
    torch.manual_seed(1)
    first = mmd(source, target)
    torch.manual_seed(1)
    assert torch.equal(mmd(source, target), first)


def test_coral_is_zero_for_shifted_copies_and_matches_numpy():
    torch.manual_seed(0)
    coral = CORALLoss(loss_weight=3.0)
    source = torch.randn(3, 5, 4, 4)
    assert coral(source, source + 2.5).item() < 1e-6

    target = torch.randn(2, 5, 6, 6) * torch.tensor([0.5, 1, 2, 1, 3])[None, :, None, None]
    cov_s = np.cov(source.permute(0, 2, 3, 1).reshape(-1, 5).numpy().astype(np.float64), rowvar=False)
    cov_t = np.cov(target.permute(0, 2, 3, 1).reshape(-1, 5).numpy().astype(np.float64), rowvar=False)
    expected = 3.0 * ((cov_s - cov_t)**2).sum() / (4 * 5**2)
    assert expected > 0.01
    assert coral(source, target).item() == pytest.approx(expected, rel=1e-4)
    vectors = torch.randn(40, 5)
    assert coral(vectors, 2 * vectors).item() == pytest.approx(
        3.0 * ((3 * np.cov(vectors.numpy().astype(np.float64), rowvar=False))**2).sum() / 100, rel=1e-4)


@pytest.mark.parametrize('loss', [MMDLoss(), CORALLoss()], ids=['mmd', 'coral'])
def test_alignment_losses_send_gradients_to_both_inputs(loss):
    torch.manual_seed(0)
    feat_source = torch.randn(2, 4, 5, 5, requires_grad=True)
    feat_target = (torch.randn(3, 4, 5, 5) * 2 + 1).requires_grad_()
    loss(feat_source, feat_target).backward()
    for feat in (feat_source, feat_target):
        assert feat.grad is not None and torch.isfinite(feat.grad).all() and feat.grad.abs().sum() > 0


@pytest.mark.parametrize('loss', [MMDLoss(), CORALLoss()], ids=['mmd', 'coral'])
def test_alignment_losses_reject_mismatched_channels(loss):
    with pytest.raises(ValueError, match='channels'):
        loss(torch.randn(2, 4, 3, 3), torch.randn(2, 5, 3, 3))


def test_parts_build_through_basicsr_registries():
    mmd = build_loss({'type': 'MMDLoss', 'loss_weight': 0.5, 'num_samples': 64, 'kernel_scales': [1, 2]})
    assert isinstance(mmd, MMDLoss) and (mmd.loss_weight, mmd.num_samples, mmd.kernel_scales) == (0.5, 64, [1, 2])
    coral = build_loss({'type': 'CORALLoss', 'loss_weight': 2.0})
    assert isinstance(coral, CORALLoss) and coral.loss_weight == 2.0
    q = build_network({'type': 'PatchQualityDiscriminator', 'num_feat': 8, 'hidden': 16, 'spectral_norm': True})
    assert isinstance(q, PatchQualityDiscriminator)
    assert q(torch.randn(1, 8, 5, 5)).shape == (1, 2, 5, 5)
    q = build_network({'type': 'BlockDCTQualityDiscriminator', 'num_feat': 8, 'hidden': 16})
    assert isinstance(q, BlockDCTQualityDiscriminator) and q(torch.randn(3, 8, 16, 16)).shape == (3, 2)


def test_block_dct_discriminator_reads_each_blocks_dct_energy():
    rng = np.random.default_rng(0)
    feat = torch.from_numpy(rng.normal(size=(2, 3, 17, 24))).float()
    q = BlockDCTQualityDiscriminator(num_feat=3, hidden=8)
    energy = q.block_energy(feat)
    blocks = feat[:, :, :16, :].reshape(2, 3, 2, 8, 3, 8).permute(0, 1, 2, 4, 3, 5).numpy().astype(np.float64)
    coefficients = dctn(blocks, axes=(-2, -1), norm='ortho')
    expected = np.log((coefficients**2).mean((2, 3)).reshape(2, 3, 64)[:, :, 1:] + 1e-8)
    assert energy.shape == (2, 3, 63) and np.allclose(energy.numpy(), expected, atol=1e-4)
    assert q(feat).shape == (2, 2)
    with pytest.raises(ValueError, match='features of 7x24 hold no 8x8 block'):
        q(feat[:, :, :7])
    with pytest.raises(ValueError, match='num_feat must be an integer >= 1'):
        BlockDCTQualityDiscriminator(num_feat=0)


def test_block_dct_energy_falls_at_high_frequencies_when_jpeg_quantises_harder():
    gt = textured_image(np.random.default_rng(1), 64, 64)
    q = BlockDCTQualityDiscriminator(num_feat=1, hidden=8)
    energy = {
        qf: q.block_energy(torch.from_numpy(jpeg_compress(gt, qf)).float()[None, None] / 255)[0, 0]
        for qf in (10, 70)
    }
    high = torch.tensor([u + v >= 6 for u in range(8) for v in range(8)][1:])
    assert (energy[10][high].mean() + 2 < energy[70][high].mean())  # e^2: over 7 times less high-frequency energy


def test_block_dct_discriminator_relative_spectrum_ignores_the_features_scale():
    torch.manual_seed(0)
    feat = torch.randn(2, 3, 16, 16)
    relative, absolute = BlockDCTQualityDiscriminator(3, 8), BlockDCTQualityDiscriminator(3, 8, relative=False)
    absolute.load_state_dict(relative.state_dict())
    assert torch.allclose(relative(feat), relative(feat * 5), atol=1e-5)
    assert not torch.allclose(absolute(feat), absolute(feat * 5), atol=1e-3)
