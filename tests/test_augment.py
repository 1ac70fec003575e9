import pytest
import torch

from vitgan_lite.augment import AUGMENTATIONS, cutout, diff_augment, parse_ops, parse_policy, translation
from vitgan_lite.config import TrainConfig


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


def test_each_op_is_applied_with_its_own_probability():
    # on constant images both effects are visible separately: brightness (the one colour op that
    # changes a flat image) moves every pixel off 1, cutout sets a square to exactly 0
    n = 6000
    torch.manual_seed(3)
    y = diff_augment(torch.ones(n, 3, 8, 8), policy="color:0.2,cutout", p=0.7)
    cut = (y == 0).flatten(1).any(1).float().mean().item()
    outside = torch.where(y == 0, torch.ones_like(y), y)                 # the pixels cutout left alone
    colour = (outside != 1).flatten(1).any(1).float().mean().item()
    for freq, p in [(colour, 0.2), (cut, 0.7)]:
        assert abs(freq - p) < 4 * (p * (1 - p) / n) ** 0.5            # 4 binomial standard deviations


def test_op_probability_in_the_policy_matches_the_p_argument():
    x = torch.randn(64, 3, 8, 8)
    torch.manual_seed(0)
    a = diff_augment(x, "color,translation,cutout:0.3", p=0.8)
    torch.manual_seed(0)
    b = diff_augment(x, "color:0.8,translation:0.8,cutout:0.3")
    assert torch.equal(a, b)                                            # the same coins, in the same order
    torch.manual_seed(0)
    c = diff_augment(x, "cutout:1")
    torch.manual_seed(0)
    assert torch.equal(c, cutout(x))                                    # p = 1 draws no coin


def test_policy_probabilities_parse_and_bad_ones_are_rejected():
    assert parse_ops(" color , cutout:0.3 ", 0.8) == [("color", 0.8), ("cutout", 0.3)]
    assert parse_policy("color,cutout:0.3") == ["color", "cutout"]
    for bad in ("cutout:1.5", "cutout:often", "cutout:"):
        with pytest.raises(ValueError, match="probability after ':'"):
            diff_augment(torch.zeros(1, 3, 8, 8), policy=bad)


def test_paper_preset_uses_the_official_probabilities():
    cfg = TrainConfig.cifar10()
    assert dict(parse_ops(cfg.augment, cfg.augment_p)) == {"color": 0.8, "translation": 0.8, "cutout": 0.3,
                                                           "scale": 0.8}
