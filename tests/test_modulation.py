import math

import pytest
import torch
import torch.nn.functional as F

from vitgan_lite.fourier import coordinate_grid
from vitgan_lite.modulation import ImplicitPatchDecoder, ModulatedLinear


def explicit_modulated_linear(layer, x, style, demodulate):
    """The equation with an explicit per-sample weight, one sample at a time."""
    out = []
    for b in range(x.shape[0]):
        s = style[b] @ layer.affine.effective_weight().t() + layer.affine.bias       # (in,)
        w = layer.weight * layer.weight_gain * s[None, :]                            # W'_oi = W_oi s_i
        if demodulate:
            w = w / torch.sqrt((w ** 2).sum(dim=1, keepdim=True) + 1e-8)             # W''
        out.append(x[b] @ w.t() + layer.bias)
    return torch.stack(out)


def _perturbed(layer):
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


def naive_decoder(dec, y, resolution, activation):
    """The decoder's equations with per-sample weights, E_fou repeated for every patch, and act explicit."""
    act = torch.sin if activation == "sine" else (lambda t: F.leaky_relu(t, 0.2) * math.sqrt(2))
    style = y.reshape(-1, y.shape[-1])                                             # (B*N, dim)
    e_fou = dec.fourier(coordinate_grid(resolution).to(y.dtype))                   # (r*r, dim)
    h = e_fou.repeat(style.shape[0], 1, 1)                                         # (B*N, r*r, dim)
    for layer in dec.hidden:
        h = act(torch.einsum("bmi,boi->bmo", h, layer.per_sample_weight(style)) + layer.bias)
    rgb = torch.einsum("bmi,boi->bmo", h, dec.to_rgb.per_sample_weight(style)) + dec.to_rgb.bias
    return rgb.reshape(y.shape[0], y.shape[1], -1)                                 # (B, N, r*r*C)


def test_modulated_linear_matches_per_sample_weights():
    for demodulate in (True, False):
        layer = _perturbed(ModulatedLinear(10, 7, style_dim=5, demodulate=demodulate))
        x, style = torch.randn(3, 11, 10), torch.randn(3, 5)
        expected = explicit_modulated_linear(layer, x, style, demodulate)
        torch.testing.assert_close(layer(x, style), expected, atol=1e-5, rtol=1e-5)
        reference = torch.einsum("bni,boi->bno", x, layer.per_sample_weight(style)) + layer.bias
        torch.testing.assert_close(layer(x, style), reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("x_shape, out", [
    ((6, 4, 5), 7),   # (B, N, in), out >= N: the input is modulated
    ((6, 4, 5), 3),   # out < N: the per-sample weight is the smaller tensor
    ((4, 5), 3),      # x shared by the batch, out < B: one GEMM against x_ni W_oi
    ((4, 5), 7),      # x shared, out >= B: x broadcasts against the style
])
def test_every_grouping_of_the_modulated_matmul_is_x_times_per_sample_weight(x_shape, out):
    layer = _perturbed(ModulatedLinear(5, out, style_dim=2, demodulate=False)).double()
    x, style = torch.randn(x_shape, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    expected = torch.einsum("bni,boi->bno", x.expand(6, 4, 5), layer.per_sample_weight(style))
    torch.testing.assert_close(layer.modulated_matmul(x, layer.affine(style)), expected)


@pytest.mark.parametrize("demodulate", [True, False])
def test_factored_output_times_d_is_forward_of_the_scaled_input(demodulate):
    layer = _perturbed(ModulatedLinear(10, 7, style_dim=5, demodulate=demodulate)).double()
    x, style = torch.randn(3, 11, 10, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    x_scale = torch.rand(3, 10, dtype=torch.float64) + 0.5
    u, d = layer.factored(x, style, x_scale)
    expected = layer(x * x_scale[:, None, :], style)
    torch.testing.assert_close(u if d is None else u * d[:, None, :], expected)


@pytest.mark.parametrize("activation", ["leaky_relu", "sine"])
@pytest.mark.parametrize("demodulate", [True, False])
def test_decoder_equals_naive_per_sample_reference_forward_and_gradients(activation, demodulate):
    torch.manual_seed(0)
    dec = _perturbed(ImplicitPatchDecoder(8, 16, 2, patch_size=4, activation=activation, demodulate=demodulate))
    dec = dec.double()
    # 16 pixels, 20 patches: E_fou x W for layer 1, x * s for layer 2, per-sample RGB weight;
    # 1 pixel, 3 patches: x * s everywhere (E_fou broadcast in layer 1)
    for y_shape, resolution in [((2, 10, 8), 4), ((1, 3, 8), 1)]:
        y = torch.randn(y_shape, dtype=torch.float64, requires_grad=True)
        out, expected = dec(y, resolution), naive_decoder(dec, y, resolution, activation)
        torch.testing.assert_close(out, expected)
        wrt = [y, *dec.parameters()]
        for g, g_expected in zip(torch.autograd.grad(out.pow(2).sum(), wrt),
                                 torch.autograd.grad(expected.pow(2).sum(), wrt)):
            torch.testing.assert_close(g, g_expected)


def test_demodulated_rows_have_unit_norm():
    layer = _perturbed(ModulatedLinear(10, 7, style_dim=5))
    w = layer.per_sample_weight(torch.randn(4, 5))
    torch.testing.assert_close(w.pow(2).sum(-1), torch.ones(4, 7), atol=1e-5, rtol=0)


def test_decoder_pixels_follow_p1_p2_c_order_and_render_at_any_resolution():
    dec = ImplicitPatchDecoder(dim=8, hidden_dim=6, depth=2, patch_size=4)
    y = torch.randn(2, 5, 8)
    out = dec(y)
    assert out.shape == (2, 5, 4 * 4 * 3)
    # pixel (p1, p2) of patch n depends only on the coordinate and y^n: decode patch 3 alone
    alone = dec(y[:, 3:4])
    torch.testing.assert_close(out[:, 3:4], alone)
    # a 12x12 render (cells split 3x3) has the 4x4 pixel centres at rows/columns 1, 4, 7, 10
    fine = dec(y, resolution=12).reshape(2, 5, 12, 12, 3)
    coarse = out.reshape(2, 5, 4, 4, 3)
    torch.testing.assert_close(fine[:, :, 1::3, 1::3], coarse, atol=1e-5, rtol=1e-5)
    # a linspace decoder (older generators) shares the corner pixels (+-1) of every grid instead
    dec.coordinates = "linspace"
    fine, coarse = dec(y, resolution=7).reshape(2, 5, 7, 7, 3), dec(y).reshape(2, 5, 4, 4, 3)
    torch.testing.assert_close(fine[:, :, ::6, ::6], coarse[:, :, ::3, ::3], atol=1e-5, rtol=1e-5)
