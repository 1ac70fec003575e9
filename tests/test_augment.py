import pytest
import torch

from vitgan_lite.augment import AUGMENTATIONS, cutout, diff_augment, translation


def test_empty_policy_is_the_identity():
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(diff_augment(x, policy=""), x)
    assert torch.equal(diff_augment(x, policy="color", p=0.0), x)


def test_unknown_policy_is_rejected():
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        diff_augment(torch.zeros(1, 3, 8, 8), policy="color,flip")


@pytest.mark.parametrize("policy", list(AUGMENTATIONS) + ["color,translation,cutout"])
def test_every_policy_passes_gradients_and_keeps_shape(policy):
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x, policy=policy)
    assert y.shape == x.shape
    y.pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_is_an_integer_shift_with_zero_fill():
    x = torch.arange(1.0, 1 + 8 * 8).view(1, 1, 8, 8).expand(200, 3, 8, 8)
    y = translation(x)
    for img in y[:, 0]:
        # find the shift that explains the output: a shifted copy with zeros entering from the edge
        matches = []
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                shifted = torch.zeros(8, 8)
                src = x[0, 0]
                rows = slice(max(0, -dy), 8 - max(0, dy))
                cols = slice(max(0, -dx), 8 - max(0, dx))
                srows = slice(max(0, dy), 8 - max(0, -dy))
                scols = slice(max(0, dx), 8 - max(0, -dx))
                shifted[rows, cols] = src[srows, scols]
                matches.append(torch.equal(img, shifted))
        assert sum(matches) == 1


def test_cutout_zeroes_one_square_of_half_the_size():
    x = torch.ones(300, 3, 8, 8)
    y = cutout(x)
    zero = (y[:, 0] == 0)
    counts = zero.sum(dim=(1, 2))
    assert counts.max() == 16 and counts.min() >= 4   # a 4x4 square, possibly clipped at the border
    assert torch.equal(y[:, 0], y[:, 1])


def test_probability_applies_ops_to_a_fraction_of_images():
    x = torch.zeros(4000, 3, 4, 4)
    y = diff_augment(x, policy="color", p=0.5)
    changed = (y != 0).flatten(1).any(1).float().mean().item()
    # 3 colour ops each applied with p=0.5 to a zero image: brightness is the only one that changes it
    assert abs(changed - 0.5) < 0.05
