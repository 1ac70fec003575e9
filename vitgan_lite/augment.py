"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image D sees.

Because each transform is differentiable, the generator is trained through it too, and D never
sees un-augmented images that G could learn to imitate the augmentation of. A policy is a comma
separated list of groups; each group is a list of ops applied in order:

    color       brightness +U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5)
    translation integer shift up to 1/8 of the size, zero fill
    cutout      a zeroed square of half the size at a random position
    scale       isotropic zoom by U(0.75, 1.25), bilinear, zero fill (ViTGAN adds scaling; ours: range)

Each op is applied to each image independently with probability `p` (1.0 is DiffAugment's
default; the paper uses 0.8 -- unverified). Images are (B, C, H, W) in [-1, 1].
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


def parse_policy(policy: str) -> list[str]:
    """'color, translation' -> ['color', 'translation']; ValueError on an unknown name."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; known: {sorted(AUGMENTATIONS)}")
    return names


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout", p: float = 1.0) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W), each op applied per image with probability p; "" is the identity."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"augmentation probability p must be in [0, 1], got {p}")
    for name in parse_policy(policy):
        for op in AUGMENTATIONS[name]:
            if p >= 1.0:
                x = op(x)
            else:
                keep = (_rand(x, 1, 1, 1) < p).to(x.dtype)             # (B, 1, 1, 1)
                x = keep * op(x) + (1 - keep) * x
    return x
