import torch

from vitgan_lite.sln import SelfModulatedLayerNorm


def test_sln_is_gamma_of_w_times_layernorm_plus_beta_of_w():
    sln = SelfModulatedLayerNorm(dim=12, style_dim=5)
    with torch.no_grad():  # move gamma/beta away from their init so the check is not trivial
        for p in sln.parameters():
            p.add_(torch.randn_like(p))
    h, w = torch.randn(3, 7, 12), torch.randn(3, 5)
    mean = h.mean(-1, keepdim=True)
    var = ((h - mean) ** 2).mean(-1, keepdim=True)
    ln = (h - mean) / torch.sqrt(var + 1e-5)                        # LN without affine
    gamma = w @ sln.gamma.effective_weight().t() + sln.gamma.bias   # lr_mul 1: bias is used as stored
    beta = w @ sln.beta.effective_weight().t() + sln.beta.bias
    torch.testing.assert_close(sln(h, w), gamma[:, None] * ln + beta[:, None], atol=1e-5, rtol=1e-5)


def test_sln_starts_close_to_layernorm_and_depends_on_w():
    sln = SelfModulatedLayerNorm(dim=16, style_dim=16)
    h = torch.randn(2, 5, 16)
    w = torch.randn(2, 16) * 0.01
    torch.testing.assert_close(sln(h, w), torch.nn.functional.layer_norm(h, (16,)), atol=0.05, rtol=0)
    w1, w2 = torch.randn(1, 16), torch.randn(1, 16)
    assert not torch.allclose(sln(h[:1], w1), sln(h[:1], w2))


def test_each_sln_has_its_own_gamma_and_beta():
    a, b = SelfModulatedLayerNorm(8, 4), SelfModulatedLayerNorm(8, 4)
    assert a.gamma.weight.data_ptr() != b.gamma.weight.data_ptr()
