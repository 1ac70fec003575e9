"""Self-modulated LayerNorm (the paper's SLN): SLN(h, w) = gamma(w) * LN(h) + beta(w).

The style w enters the generator only here (its input tokens are just positional embeddings).
LN has no affine parameters of its own; gamma and beta are learned affine maps of w, separate for
every SLN. gamma's bias starts at 1, so gamma(w) = 1 + (a linear map of w): the form the official
code writes as LN(h) * (1 + gamma') + beta. The map itself starts at full strength: with w of unit
scale, gamma(w) has a per-channel spread of about 1 at init, so w modulates from the first step.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .equalized import EqualLinear


class SelfModulatedLayerNorm(nn.Module):
    """h (B, N, dim), w (B, style_dim) -> (B, N, dim)."""

    def __init__(self, dim: int, style_dim: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = EqualLinear(style_dim, dim, bias_init=1.0)  # gamma(w), (B, dim)
        self.beta = EqualLinear(style_dim, dim, bias_init=0.0)   # beta(w),  (B, dim)
        self.dim, self.eps = dim, eps

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(h, (self.dim,), eps=self.eps)    # (B, N, dim), no affine
        gamma = self.gamma(w).unsqueeze(1)                     # (B, 1, dim)
        beta = self.beta(w).unsqueeze(1)                       # (B, 1, dim)
        return gamma * normed + beta
