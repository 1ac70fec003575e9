import pytest
import torch
import torch.nn as nn

from vitgan_lite.equalized import EqualLinear
from vitgan_lite.spectral import apply_spectral_norm, improved_spectral_norm, power_iteration_frozen, spectral_norm


def sigma(w):
    return torch.linalg.svdvals(w.detach())[0].item()


def test_isn_keeps_effective_spectral_norm_at_sigma_init_while_raw_weight_is_scaled():
    layer = nn.Linear(20, 12)
    sigma_init = sigma(layer.weight)
    improved_spectral_norm(layer)
    raw = layer.parametrizations.weight.original
    assert abs(sigma(layer.weight) - sigma_init) < 1e-4 * sigma_init
    with torch.no_grad():
        raw.mul_(7.0)
        raw.add_(0.05 * torch.randn_like(raw))
    layer.train()
    for _ in range(20):  # power iteration: one step per forward
        layer(torch.randn(2, 20))
    assert sigma(raw) > 5 * sigma_init
    assert abs(sigma(layer.weight) - sigma_init) < 1e-3 * sigma_init
    assert abs(layer.parametrizations.weight[0].sigma_init.item() - sigma_init) < 1e-6


def test_plain_sn_normalises_to_one_and_isn_is_sigma_init_times_sn():
    a, b = nn.Linear(9, 6), nn.Linear(9, 6)
    b.load_state_dict(a.state_dict())
    sigma_init = sigma(a.weight)
    spectral_norm(a), improved_spectral_norm(b)
    assert abs(sigma(a.weight) - 1.0) < 1e-4
    torch.testing.assert_close(b.weight, a.weight * sigma_init, atol=1e-5, rtol=1e-4)


def test_u_is_updated_in_training_only_and_gets_no_gradient():
    layer = improved_spectral_norm(nn.Linear(8, 8))
    param = layer.parametrizations.weight[0]
    with torch.no_grad():
        layer.parametrizations.weight.original.add_(torch.randn(8, 8))
    layer.eval()
    u0 = param.u.clone()
    layer(torch.randn(1, 8))
    assert torch.equal(param.u, u0)
    layer.train()
    layer(torch.randn(1, 8)).sum().backward()
    assert not torch.equal(param.u, u0) and not param.u.requires_grad
    assert layer.parametrizations.weight.original.grad.abs().sum() > 0


def test_sigma_init_survives_state_dict_round_trip_into_a_fresh_module():
    a = improved_spectral_norm(nn.Linear(10, 10))
    b = improved_spectral_norm(nn.Linear(10, 10))    # different init, different sigma_init
    sa = a.parametrizations.weight[0].sigma_init.clone()
    assert not torch.allclose(sa, b.parametrizations.weight[0].sigma_init)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.parametrizations.weight[0].sigma_init, sa)
    a.eval(), b.eval()
    x = torch.randn(3, 10)
    torch.testing.assert_close(a(x), b(x))


def test_two_forwards_before_backward_are_allowed():
    layer = improved_spectral_norm(nn.Linear(6, 6))
    (layer(torch.randn(2, 6)).sum() + layer(torch.randn(2, 6)).sum()).backward()


def test_apply_spectral_norm_wraps_every_linear():
    net = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Sequential(nn.Linear(4, 2)))
    apply_spectral_norm(net, "isn")
    assert all(hasattr(m, "parametrizations") for m in net.modules() if isinstance(m, nn.Linear))


def test_power_iteration_frozen_keeps_u_and_gives_the_same_weight():
    layer = improved_spectral_norm(nn.Linear(8, 8))
    param = layer.parametrizations.weight[0]
    u = param.u.clone()
    with power_iteration_frozen(layer):
        frozen_weight = layer.weight
        assert torch.equal(param.u, u)                      # no refinement inside the block
    layer.weight
    assert not torch.equal(param.u, u)                      # refined again outside it
    torch.testing.assert_close(frozen_weight, layer.parametrizations.weight.original * (
        param.sigma_init / (u @ layer.parametrizations.weight.original @ nn.functional.normalize(
            layer.parametrizations.weight.original.t() @ u, dim=0))))


def test_nested_power_iteration_frozen_blocks_restore_what_they_found():
    """The G step freezes D, and its later micro-batch slices freeze it again: leaving the inner block
    must not unfreeze the outer one."""
    layer = improved_spectral_norm(nn.Linear(8, 8))
    param = layer.parametrizations.weight[0]
    with power_iteration_frozen(layer):
        with power_iteration_frozen(layer):
            pass
        u = param.u.clone()
        layer.weight
        assert torch.equal(param.u, u)                      # still frozen in the outer block
    assert not param.frozen


def test_sigma_is_float32_under_bf16_autocast():
    layer = improved_spectral_norm(nn.Linear(16, 8)).eval()  # eval: no u refinement, same u twice
    param = layer.parametrizations.weight[0]
    raw = layer.parametrizations.weight.original
    reference = param.sigma(raw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = param.sigma(raw)
    assert under_autocast.dtype == torch.float32
    assert torch.equal(under_autocast, reference)            # a bf16 matmul would differ by ~1e-3


@pytest.mark.parametrize("lr_mul", [1.0, 0.01])
def test_spectral_norm_of_an_equalized_layer_acts_on_its_effective_weight(lr_mul):
    """SN gives the applied weight gain * W_bar spectral norm 1; ISN keeps it at its initial value."""
    sn, isn = EqualLinear(24, 16, lr_mul=lr_mul), EqualLinear(24, 16, lr_mul=lr_mul)
    effective_init = sigma(isn.effective_weight())
    apply_spectral_norm(sn, "sn"), apply_spectral_norm(isn, "isn")
    for layer in (sn, isn):
        with torch.no_grad():
            layer.parametrizations.weight.original.mul_(7.0).add_(0.05 * torch.randn(16, 24))   # training moved it
        layer.train()
        for _ in range(30):
            layer(torch.randn(2, 24))                       # power iteration: one step per forward
    assert abs(sigma(sn.effective_weight()) - 1.0) < 1e-3
    assert abs(sigma(isn.effective_weight()) - effective_init) < 1e-3 * effective_init
    # ISN is blind to the gain: on a plain Linear that holds the effective weight it gives the same
    plain = nn.Linear(24, 16, bias=False)
    with torch.no_grad():
        plain.weight.copy_(isn.parametrizations.weight.original * isn.weight_gain)
    improved_spectral_norm(plain).parametrizations.weight[0].sigma_init.fill_(effective_init)
    torch.testing.assert_close(plain.weight, isn.effective_weight(), atol=1e-4, rtol=1e-3)
    assert isn.parametrizations.weight.original.requires_grad   # Adam still steps the stored N(0, 1) weight


def test_sigma_keeps_float64_for_float64_weights():
    layer = improved_spectral_norm(nn.Linear(8, 6)).double()
    param = layer.parametrizations.weight[0]
    raw = layer.parametrizations.weight.original
    assert param.sigma(raw).dtype == torch.float64 and layer(torch.randn(2, 8, dtype=torch.float64)).dtype == torch.float64
    assert abs(param.sigma(raw).item() - sigma(raw)) < 1e-10 * sigma(raw)   # init: 50 power iterations
