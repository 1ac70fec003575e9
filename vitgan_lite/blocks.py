"""Transformer blocks of the generator (with SLN) and the discriminator (pre-LN ViT).

Generator block:      h' = MSA(SLN(h, w)) + h,   h_out = MLP(SLN(h', w)) + h'
Discriminator block:  h' = MSA(LN(h)) + h,       h_out = MLP(LN(h')) + h'
Both outputs of every block are used (one port dropped the MLP branch, so it never trained).
MSA is dot-product or L2 attention (attention.py) in both; the generator's attention and MLP layers
can carry spectral normalization as the official code's do (spectral.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .attention import L2MultiHeadAttention, Linear, MultiHeadAttention
from .equalized import EqualLinear
from .sln import SelfModulatedLayerNorm
from .spectral import apply_spectral_norm

ATTENTION = {"l2": L2MultiHeadAttention, "dot": MultiHeadAttention}   # config.ATTENTION_KINDS


class FeedForward(nn.Module):
    """(B, N, dim) -> (B, N, dim): Linear, GELU, Linear."""

    def __init__(self, dim: int, hidden_dim: int, linear: Linear = nn.Linear):
        super().__init__()
        self.net = nn.Sequential(linear(dim, hidden_dim), nn.GELU(), linear(hidden_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GeneratorBlock(nn.Module):
    """h (B, N, dim), w (B, style_dim) -> (B, N, dim). Equalized-lr linear layers throughout.

    attention: "dot" (paper) or "l2" (official code). spectral_norm: "none" (paper), "isn" (official
    code) or "sn", on the attention and MLP layers, not on the SLN maps of w (as in the official code).
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, style_dim: int, attention: str = "dot",
                 spectral_norm: str = "none"):
        super().__init__()
        self.norm1 = SelfModulatedLayerNorm(dim, style_dim)
        self.attn = apply_spectral_norm(ATTENTION[attention](dim, heads, linear=EqualLinear), spectral_norm)
        self.norm2 = SelfModulatedLayerNorm(dim, style_dim)
        self.mlp = apply_spectral_norm(FeedForward(dim, mlp_dim, linear=EqualLinear), spectral_norm)

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h, w))
        return h + self.mlp(self.norm2(h, w))


class DiscriminatorBlock(nn.Module):
    """h (B, N, dim) -> (B, N, dim). `attention` is "l2" (paper) or "dot" (ablation)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, attention: str = "l2", fused: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ATTENTION[attention](dim, heads, fused=fused)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h))
        return h + self.mlp(self.norm2(h))
