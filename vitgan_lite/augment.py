"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image D sees.

Because each transform is differentiable, the generator is trained through it too, and D never
sees un-augmented images that G could learn to imitate the augmentation of. A policy is a comma
separated list of groups; each group is a list of ops applied in order:

    color       brightness +U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5)
    translation integer shift up to 1/8 of the size, zero fill
    cutout      a zeroed square of half the size at a random position
    scale       isotropic zoom by U(0.75, 1.25), bilinear, zero fill (ViTGAN adds scaling; ours: range)

Each op is applied to each image independently with a probability: the one written after the
group's name ("cutout:0.3"), else `p` (each op of a group, e.g. the three colour ops, draws its own
coin). p = 1 is DiffAugment's default; the official ViTGAN code (mlpc-ucsd/ViTGAN,
third_party/diffaug.py) uses 0.8 for colour and translation and 0.3 for cutout, i.e.
"color,translation,cutout:0.3" with p = 0.8. (Its "translation" also mirrors each image with
p = 0.45; here flips belong to the real data only: TrainConfig.hflip.) Images are (B, C, H, W) in [-1, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _rand(x, *shape):
    return torch.rand(x.shape[0], *shape, dtype=x.dtype, device=x.device)


def brightness(x):
    return x + (_rand(x, 1, 1, 1) - 0.5)


def saturation(x):
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) * 2) + mean


def contrast(x):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) + 0.5) + mean


def translation(x, ratio: float = 0.125):
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy + 1   # (B, H, 1), index into padded
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx + 1   # (B, 1, W)
    rows, cols = rows.clamp(0, h + 1), cols.clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))                                   # (B, C, H+2, W+2), zero border
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x, ratio: float = 0.5):
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h, (b, 1, 1), device=x.device) - ch // 2    # square may leave the image
    left = torch.randint(0, w, (b, 1, 1), device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def scale(x, low: float = 0.75, high: float = 1.25):
    factor = low + (high - low) * _rand(x)                            # (B,)
    theta = torch.zeros(x.shape[0], 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / factor
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


AUGMENTATIONS = {
    "color": [brightness, saturation, contrast],
    "translation": [translation],
    "cutout": [cutout],
    "scale": [scale],
}


def _probability(item: str, text: str) -> float:
    """The probability written after ':' in a policy item: ("cutout:0.3", "0.3") -> 0.3."""
    try:
        prob = float(text)
    except ValueError:
        prob = float("nan")
    if not 0.0 <= prob <= 1.0:                                            # also false for nan
        raise ValueError(f"DiffAugment policy item {item!r}: the probability after ':' must be a number "
                         "in [0, 1], e.g. 'cutout:0.3'")
    return prob


def parse_ops(policy: str, p: float = 1.0) -> list[tuple[str, float]]:
    """'color, cutout:0.3' -> [('color', p), ('cutout', 0.3)]; ValueError on an unknown name or a bad probability."""
    items = [item.strip() for item in policy.split(",") if item.strip()]
    ops = []
    for item in items:
        name, colon, text = (part.strip() for part in item.partition(":"))
        ops.append((name, _probability(item, text) if colon else p))
    unknown = [name for name, _ in ops if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; known: {sorted(AUGMENTATIONS)}")
    return ops


def parse_policy(policy: str) -> list[str]:
    """'color, translation, cutout:0.3' -> ['color', 'translation', 'cutout']; ValueError as parse_ops."""
    return [name for name, _ in parse_ops(policy)]


def with_probability(op, x: torch.Tensor, p: float) -> torch.Tensor:
    """op(x) for each image with probability p: a keep coin per image, then a blend (p >= 1: no coin)."""
    if p >= 1.0:
        return op(x)
    keep = (_rand(x, 1, 1, 1) < p).to(x.dtype)                          # (B, 1, 1, 1)
    return keep * op(x) + (1 - keep) * x


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout", p: float = 1.0) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W). Each op of the policy is applied per image with its own probability
    ("cutout:0.3") or else p; "" is the identity."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"augmentation probability p must be in [0, 1], got {p}")
    for name, prob in parse_ops(policy, p):
        for op in AUGMENTATIONS[name]:
            x = with_probability(op, x, prob)
    return x
