"""Learned Fourier features: E(c) = sin(c @ B^T + b) for 2-D coordinates c in [-1, 1]^2.

The generator uses them twice: as the positional embedding E_pos of the patch
centres (its only input tokens), and as E_fou, the per-pixel input of the implicit patch decoder.
B and b are learned; B starts as Gaussian random frequencies of std `scale` (Tancik et al. 2020)
and b as random phases in [-pi, pi].
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .config import COORDINATE_KINDS


def coordinate_axis(side: int, kind: str = "cell", device=None) -> torch.Tensor:
    """(side,) pixel-centre coordinates along one axis of the square [-1, 1].

    "cell" (ours): the square is cut into `side` equal cells and each pixel sits at its cell's centre,
        (i + 0.5) / side * 2 - 1, so the pixels span +-(1 - 1/side): every side covers the same square,
        and the 2x2 centres of a grid twice as fine average to the centre of the cell they split.
    "linspace" (official code, and this package before "cell"): linspace(-1, 1, side), first and last
        pixel centres on the border, so a pixel reaches 1 / (side - 1) beyond it; a render with a larger
        side covers less of the square. Kept so that generators trained with it render as they did.
    """
    if kind == "cell":
        return (torch.arange(side, device=device) + 0.5) * (2.0 / side) - 1.0
    if kind == "linspace":
        return torch.linspace(-1.0, 1.0, side, device=device)
    raise ValueError(f"unknown coordinate kind {kind!r}; expected one of {COORDINATE_KINDS}")


def coordinate_grid(side: int, kind: str = "cell", device=None) -> torch.Tensor:
    """(side*side, 2) pixel-centre coordinates in [-1, 1], row-major, each row (y, x); `kind` as coordinate_axis."""
    axis = coordinate_axis(side, kind, device)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([yy, xx], dim=-1).reshape(side * side, 2)


class FourierFeatures(nn.Module):
    """coords (..., in_features) -> sin(coords @ B^T + b), (..., dim)."""

    def __init__(self, dim: int, in_features: int = 2, scale: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(in_features, dim)
        with torch.no_grad():
            self.linear.weight.normal_(0.0, scale)
            self.linear.bias.uniform_(-math.pi, math.pi)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.linear(coords))
