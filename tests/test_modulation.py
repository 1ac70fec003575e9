import torch

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


def test_modulated_linear_matches_per_sample_weights():
    for demodulate in (True, False):
        layer = _perturbed(ModulatedLinear(10, 7, style_dim=5, demodulate=demodulate))
        x, style = torch.randn(3, 11, 10), torch.randn(3, 5)
        expected = explicit_modulated_linear(layer, x, style, demodulate)
        torch.testing.assert_close(layer(x, style), expected, atol=1e-5, rtol=1e-5)
        reference = torch.einsum("bni,boi->bno", x, layer.per_sample_weight(style)) + layer.bias
        torch.testing.assert_close(layer(x, style), reference, atol=1e-5, rtol=1e-5)


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
    # rendering on an 8x8 grid keeps the corner pixels (same coordinates, +-1)
    fine = dec(y, resolution=7).reshape(2, 5, 7, 7, 3)
    coarse = out.reshape(2, 5, 4, 4, 3)
    torch.testing.assert_close(fine[:, :, 0, 0], coarse[:, :, 0, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fine[:, :, 6, 6], coarse[:, :, 3, 3], atol=1e-5, rtol=1e-5)
