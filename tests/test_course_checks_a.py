"""The exercise checks of notebooks 01-05 (vitgan_lite.course.check_*): each accepts a right answer
and rejects a wrong one."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vitgan_lite import Generator, GeneratorConfig
from vitgan_lite.blocks import GeneratorBlock
from vitgan_lite.course import (check_adain, check_every_parameter_gets_gradient, check_lrelu_gain,
                                check_overlapping_unpatchify, check_spectral_norm_step)


class DroppedMLPBlock(GeneratorBlock):
    """The known port bug: the MLP branch is computed and then discarded."""

    def forward(self, h, w):
        h = h + self.attn(self.norm1(h, w))
        _ = h + self.mlp(self.norm2(h, w))
        return h


def _tiny_generator():
    cfg = GeneratorConfig.tiny().replace(depth=1, mapping_depth=1)
    return Generator(cfg), cfg


def test_gradient_check_accepts_the_package_generator(capsys):
    G, cfg = _tiny_generator()
    n = check_every_parameter_gets_gradient(G, G(torch.randn(2, cfg.latent_dim)).square().mean())
    assert n == len(list(G.parameters()))
    assert "passed" in capsys.readouterr().out


def test_gradient_check_names_the_parameters_of_a_dropped_branch():
    G, cfg = _tiny_generator()
    buggy = DroppedMLPBlock(cfg.dim, cfg.heads, cfg.mlp_dim, cfg.style_dim)
    buggy.load_state_dict(G.blocks[0].state_dict())
    G.blocks[0] = buggy
    with pytest.raises(AssertionError, match=r"blocks\.0\.mlp\.net\.0\.weight") as err:
        check_every_parameter_gets_gradient(G, G(torch.randn(2, cfg.latent_dim)).square().mean())
    assert "blocks.0.norm2.gamma.weight" in str(err.value) and "attn" not in str(err.value)


def test_gradient_check_catches_a_detached_weight_and_zero_gradients():
    lin = nn.Linear(3, 2)
    with pytest.raises(AssertionError, match="weight"):
        check_every_parameter_gets_gradient(lin, F.linear(torch.randn(4, 3), lin.weight.detach(), lin.bias).sum())
    with pytest.raises(AssertionError, match="1 of 2"):      # a gradient that is exactly zero does not count
        check_every_parameter_gets_gradient(lin, (lin(torch.zeros(4, 3)) * 0 + lin.bias).sum())
    with pytest.raises(ValueError, match="scalar"):
        check_every_parameter_gets_gradient(lin, lin(torch.randn(4, 3)))


def test_overlapping_unpatchify_check():
    def right(windows, p, size):
        channels = windows.shape[-1] // (2 * p) ** 2
        cols = windows.transpose(1, 2)
        kw = dict(output_size=(size, size), kernel_size=2 * p, stride=p, padding=p // 2)
        counts = F.fold(torch.ones(1, channels * 4 * p * p, cols.shape[-1]), **kw)
        return F.fold(cols, **kw) / counts

    def summed(windows, p, size):                    # forgets to divide by the overlap count
        cols = windows.transpose(1, 2)
        return F.fold(cols, output_size=(size, size), kernel_size=2 * p, stride=p, padding=p // 2)

    check_overlapping_unpatchify(right)
    with pytest.raises(AssertionError, match="max"):
        check_overlapping_unpatchify(summed)
    with pytest.raises(AssertionError, match="shape"):
        check_overlapping_unpatchify(lambda windows, p, size: windows)


def test_adain_check():
    def right(h, gamma, beta):
        mu, var = h.mean(1, keepdim=True), h.var(1, unbiased=False, keepdim=True)
        return gamma[:, None] * (h - mu) / torch.sqrt(var + 1e-5) + beta[:, None]

    def layer_norm_instead(h, gamma, beta):         # normalises each token over its channels (SLN's LN)
        return gamma[:, None] * F.layer_norm(h, h.shape[-1:]) + beta[:, None]

    check_adain(right)
    with pytest.raises(AssertionError):
        check_adain(layer_norm_instead)


def test_lrelu_gain_check():
    check_lrelu_gain(lambda slope: math.sqrt(2 / (1 + slope ** 2)))
    x = torch.randn(2_000_000, generator=torch.Generator().manual_seed(1))
    check_lrelu_gain(lambda slope: F.leaky_relu(x, slope).pow(2).mean().rsqrt().item())   # Monte Carlo
    with pytest.raises(AssertionError, match="slope 0.2"):
        check_lrelu_gain(lambda slope: math.sqrt(2))  # the ReLU value, used by StyleGAN for every slope


def test_spectral_norm_step_check():
    def right(W, u):
        u = F.normalize(W @ F.normalize(W.T @ u, dim=0), dim=0)
        v = F.normalize(W.T @ u, dim=0)
        return W / (u @ W @ v), u

    def stale_u(W, u):                               # sigma from the old u: no power step
        v = F.normalize(W.T @ u, dim=0)
        return W / (u @ W @ v), u

    check_spectral_norm_step(right)
    with pytest.raises(AssertionError):
        check_spectral_norm_step(stale_u)
    with pytest.raises(AssertionError):
        check_spectral_norm_step(lambda W, u: (W / torch.linalg.matrix_norm(W), u))   # Frobenius, not spectral


def test_stripe_period_check():
    from vitgan_lite.course import check_stripe_period

    check_stripe_period(lambda B, side: 2 * math.pi / B.norm(dim=1) * side / 2)
    with pytest.raises(AssertionError, match="side"):
        check_stripe_period(lambda B, side: 2 * math.pi / B.norm(dim=1) * (side - 1) / 2)   # linspace spacing
    with pytest.raises(AssertionError):
        check_stripe_period(lambda B, side: 2 * math.pi / B.abs().sum(dim=1) * side / 2)     # L1 norm of B_j
