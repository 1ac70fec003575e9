import math

import torch

from vitgan_lite.equalized import EqualLinear, MappingNetwork


def test_equal_linear_scales_weight_by_lr_mul_over_sqrt_fan_in():
    layer = EqualLinear(16, 8, bias_init=0.5, lr_mul=0.01)
    x = torch.randn(4, 16)
    expected = x @ (layer.weight * 0.01 / math.sqrt(16)).t() + layer.bias * 0.01
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer.bias * 0.01, torch.full((8,), 0.5))   # bias_init is the effective bias
    assert 0.9 < layer.effective_weight().std().item() * math.sqrt(16) < 1.1  # unit-variance effective init


def test_mapping_network_by_hand():
    net = MappingNetwork(8, 6, depth=2, lr_mul=0.01)
    z = torch.randn(3, 8)
    x = z / z.pow(2).mean(1, keepdim=True).add(1e-8).sqrt()
    for layer in net.layers:
        x = torch.nn.functional.leaky_relu(x @ layer.effective_weight().t() + layer.bias * 0.01, 0.2) * math.sqrt(2)
    torch.testing.assert_close(net(z), x)
    assert net(z).shape == (3, 6)
