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


def coordinate_grid(side: int, device=None) -> torch.Tensor:
    """(side*side, 2) pixel-centre coordinates in [-1, 1], row-major, each row (y, x)."""
    axis = torch.linspace(-1.0, 1.0, side, device=device)
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
