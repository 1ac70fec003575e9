import math

import pytest
import torch

from vitgan_lite.fourier import FourierFeatures, coordinate_axis, coordinate_grid


def test_coordinate_grid_is_row_major_cell_centred_by_default():
    third = 2 / 3                                            # cells of width 2/3, centres at -2/3, 0, 2/3
    expected = torch.tensor([[y, x] for y in (-third, 0.0, third) for x in (-third, 0.0, third)])
    torch.testing.assert_close(coordinate_grid(3), expected)


def test_linspace_grid_puts_the_outer_pixel_centres_on_the_border():
    expected = torch.tensor([[y, x] for y in (-1.0, 0.0, 1.0) for x in (-1.0, 0.0, 1.0)])
    assert torch.equal(coordinate_grid(3, "linspace"), expected)
    with pytest.raises(ValueError, match="unknown coordinate kind 'centre'"):
        coordinate_grid(3, "centre")


@pytest.mark.parametrize("side", [1, 4, 8, 16])
def test_cell_centred_grid_covers_the_same_square_at_every_side(side):
    axis = coordinate_axis(side)
    torch.testing.assert_close(axis.min(), torch.tensor(-(1 - 1 / side)))
    torch.testing.assert_close(axis.max(), torch.tensor(1 - 1 / side))
    # the pixels, each 2/side wide around its centre, tile [-1, 1] exactly
    torch.testing.assert_close(axis[0] - 1 / side, torch.tensor(-1.0))
    torch.testing.assert_close(axis[1:] - axis[:-1], torch.full((side - 1,), 2 / side))
    # linspace pixels reach 1/(side-1) beyond the border: a finer render covers less of the square
    if side > 1:
        assert coordinate_axis(side, "linspace").max() + 1 / (side - 1) > 1


def test_the_finer_cell_grid_subdivides_the_coarser_cells():
    coarse, fine = coordinate_grid(4).reshape(4, 4, 2), coordinate_grid(8).reshape(8, 8, 2)
    blocks = fine.reshape(4, 2, 4, 2, 2)                     # (cell row, 2, cell col, 2, (y, x))
    torch.testing.assert_close(blocks.mean(dim=(1, 3)), coarse)   # 2x2 fine centres average to a coarse one
    half_cell = 2 / 4 / 2
    offsets = blocks - coarse[:, None, :, None, :]           # every fine pixel lies inside its coarse cell
    assert offsets.abs().max() < half_cell
    # the linspace grids do not: the r=8 pixels span less than the r=4 ones
    assert coordinate_axis(8, "linspace").max() + 1 / 7 < coordinate_axis(4, "linspace").max() + 1 / 3


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
