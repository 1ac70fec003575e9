import math

import torch

from vitgan_lite.fourier import FourierFeatures, coordinate_grid


def test_coordinate_grid_is_row_major_in_minus_one_to_one():
    grid = coordinate_grid(3)
    expected = torch.tensor([[y, x] for y in (-1.0, 0.0, 1.0) for x in (-1.0, 0.0, 1.0)])
    assert torch.equal(grid, expected)


def test_fourier_features_are_sine_of_a_learned_linear_map():
    ff = FourierFeatures(dim=6)
    coords = torch.rand(5, 2) * 2 - 1
    B, b = ff.linear.weight.tolist(), ff.linear.bias.tolist()
    expected = torch.tensor([[math.sin(c[0] * B[k][0] + c[1] * B[k][1] + b[k]) for k in range(6)]
                             for c in coords.tolist()])                        # scalar loop
    torch.testing.assert_close(ff(coords), expected, atol=1e-6, rtol=1e-5)
    assert ff(coords.expand(3, 5, 2)).shape == (3, 5, 6)                    # any leading dims


def test_fourier_weights_receive_gradients():
    ff = FourierFeatures(dim=4)
    ff(coordinate_grid(4)).sum().backward()
    assert ff.linear.weight.grad.abs().sum() > 0 and ff.linear.bias.grad.abs().sum() > 0
