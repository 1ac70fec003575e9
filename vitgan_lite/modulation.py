"""Weight modulation (StyleGAN2) and the implicit patch decoder f_theta.

ModulatedLinear scales the input channels of its weight by a style s = Affine(style):
    W'_{oi} = W_{oi} * s_i,     optionally demodulated  W''_{oi} = W'_{oi} / sqrt(sum_i W'_{oi}^2 + eps).
It never builds a weight per sample or per token (a port that did so needs 8 GB per step):
    x @ W'^T = (x * s) @ W^T,   and   sum_i W'^2_{oi} = (s^2) @ (W^2)^T.
`per_sample_weight` builds W' explicitly; it is the reference the fast path is tested against.

ImplicitPatchDecoder: every patch embedding y^i (from the generator's last SLN) is the style of a
small MLP that maps Fourier features of pixel coordinates to RGB: x^i = f_theta(E_fou, y^i).
Because the input is a coordinate, a patch can be rendered on any grid -- also a finer one than
the P x P it was trained on.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange, repeat

from .equalized import EqualLinear
from .fourier import FourierFeatures, coordinate_grid


class ModulatedLinear(nn.Module):
    """x (B, N, in_features), style (B, style_dim) -> (B, N, out_features)."""

    def __init__(self, in_features: int, out_features: int, style_dim: int, demodulate: bool = True,
                 eps: float = 1e-8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))  # equalized lr
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.affine = EqualLinear(style_dim, in_features, bias_init=1.0)     # s = Affine(style), ~1 at init
        self.weight_gain = 1.0 / math.sqrt(in_features)
        self.demodulate, self.eps = demodulate, eps

    def per_sample_weight(self, style: torch.Tensor) -> torch.Tensor:
        """Reference path: the explicit modulated (and demodulated) weight, (B, out, in)."""
        s = self.affine(style)                                   # (B, in)
        w = self.weight * self.weight_gain * s[:, None, :]       # (B, out, in)
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum(dim=2, keepdim=True) + self.eps)
        return w

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.affine(style)                                   # (B, in)
        weight = self.weight * self.weight_gain                  # (out, in), shared by the batch
        y = (x * s[:, None, :]) @ weight.t()                     # (B, N, out)
        if self.demodulate:
            d = torch.rsqrt(s.pow(2) @ weight.pow(2).t() + self.eps)  # (B, out)
            y = y * d[:, None, :]
        return y + self.bias


def _activation(name: str):
    if name == "sine":
        return torch.sin
    return lambda x: F.leaky_relu(x, 0.2) * math.sqrt(2)


class ImplicitPatchDecoder(nn.Module):
    """y (B, N, dim) patch embeddings -> (B, N, r*r*channels) pixels, (p1 p2 c) order.

    Hidden layers are modulated (and demodulated if `demodulate`); the RGB layer is modulated but
    never demodulated (as in StyleGAN2's toRGB), so the output scale can be learned.
    """

    def __init__(self, dim: int, hidden_dim: int, depth: int, patch_size: int, channels: int = 3,
                 activation: str = "leaky_relu", demodulate: bool = True):
        super().__init__()
        self.fourier = FourierFeatures(dim)  # E_fou
        widths = [dim] + [hidden_dim] * depth
        self.hidden = nn.ModuleList(
            ModulatedLinear(a, b, style_dim=dim, demodulate=demodulate) for a, b in zip(widths[:-1], widths[1:])
        )
        self.to_rgb = ModulatedLinear(hidden_dim, channels, style_dim=dim, demodulate=False)
        self.act = _activation(activation)
        self.patch_size = patch_size

    def forward(self, y: torch.Tensor, resolution: int | None = None) -> torch.Tensor:
        r = resolution or self.patch_size
        b, n, _ = y.shape
        style = rearrange(y, "b n d -> (b n) d")                          # (B*N, dim): one style per patch
        e_fou = self.fourier(coordinate_grid(r, device=y.device).to(y.dtype))  # (r*r, dim)
        h = repeat(e_fou, "m d -> bn m d", bn=b * n)                      # (B*N, r*r, dim)
        for layer in self.hidden:
            h = self.act(layer(h, style))                                 # (B*N, r*r, hidden)
        rgb = self.to_rgb(h, style)                                       # (B*N, r*r, C)
        return rearrange(rgb, "(b n) m c -> b n (m c)", b=b)              # (B, N, r*r*C)
