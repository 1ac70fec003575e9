"""Equalized learning rate and the mapping network z -> w (StyleGAN2, Karras et al. 2020).

Equalized lr: a weight is stored as N(0, 1) / lr_mul and scaled at run time by
lr_mul / sqrt(fan_in), so every layer learns at the same speed under Adam whatever its fan-in,
and `lr_mul` < 1 slows a layer down (the mapping network uses 0.01).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class EqualLinear(nn.Module):
    """y = x @ (W * lr_mul / sqrt(in))^T + b * lr_mul, with W ~ N(0, 1/lr_mul^2) at init.

    (..., in_features) -> (..., out_features).
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul

    def effective_weight(self) -> torch.Tensor:
        """The weight the layer actually applies, (out, in)."""
        return self.weight * self.weight_gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        return F.linear(x, self.effective_weight(), bias)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, lr_mul={self.lr_mul}"


class MappingNetwork(nn.Module):
    """w = MLP(normalize(z)): `depth` equalized-lr layers with LeakyReLU(0.2), lr_mul 0.01.

    z (B, latent_dim) -> w (B, style_dim). z is first normalised to unit RMS (StyleGAN2's pixel norm).
    """

    def __init__(self, latent_dim: int, style_dim: int, depth: int, lr_mul: float = 0.01):
        super().__init__()
        dims = [latent_dim] + [style_dim] * depth
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.pow(2).mean(dim=-1, keepdim=True) + 1e-8)  # (B, latent_dim)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2) * math.sqrt(2)  # gain sqrt(2) keeps unit variance
        return x  # (B, style_dim)
