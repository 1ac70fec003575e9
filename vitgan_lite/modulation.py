"""Weight modulation (StyleGAN2) and the implicit patch decoder f_theta.

ModulatedLinear scales the input channels of its weight by a style s = Affine(style):
    W'_{oi} = W_{oi} * s_i,     optionally demodulated  W''_{oi} = W'_{oi} / sqrt(sum_i W'_{oi}^2 + eps).
It builds a weight per sample only where that is the smallest tensor (a port that always did needs
8 GB per step); the style goes into whichever factor is smallest, usually the input:
    x @ W'^T = (x * s) @ W^T,   and   sum_i W'^2_{oi} = (s^2) @ (W^2)^T.
`per_sample_weight` builds W' explicitly; it is the reference the fast path is tested against.

ImplicitPatchDecoder: every patch embedding y^i (from the generator's last SLN) is the style of a
small MLP that maps Fourier features of pixel coordinates to RGB: x^i = f_theta(E_fou, y^i).
Because the input is a coordinate, a patch can be rendered on any grid -- also a finer one than
the P x P it was trained on. Per-channel factors (demodulation, the activation gain) are kept as
small (B*N, channels) tensors and folded into the next layer's style, not applied to the big
(B*N, pixels, channels) activations; the output is the same up to float rounding.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from .equalized import EqualLinear
from .fourier import FourierFeatures, coordinate_grid


class ModulatedLinear(nn.Module):
    """x (B, N, in) -- or (N, in), one input shared by the batch -- and style (B, style_dim) -> (B, N, out)."""

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

    def demodulation(self, s: torch.Tensor) -> torch.Tensor | None:
        """d (B, out) = 1 / sqrt(sum_i W'^2_oi + eps) from s (B, in); None if the layer does not demodulate."""
        if not self.demodulate:
            return None
        return torch.rsqrt(s.pow(2) @ (self.weight * self.weight_gain).pow(2).t() + self.eps)

    def modulated_matmul(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """x @ W'^T per sample, W' = W * s, no bias: x (B, N, in) or (N, in), s (B, in) -> (B, N, out).

        The style can be multiplied into any factor of the product; it goes into the smallest, so W'
        is built only when it is the small one (same FLOPs every way, fewer passes over big tensors):
            x @ (W * s)^T           (B, out, in)    out < N: few output channels (to_rgb, out = 3)
            s @ (x_ni W_oi)^T       (N * out, in)   x shared by a batch B > out (E_fou, 1st layer)
            (x * s) @ W^T           (B, N, in)      otherwise
        """
        weight = self.weight * self.weight_gain                              # (out, in)
        n, c_out, batch = x.shape[-2], weight.shape[0], s.shape[0]
        if x.dim() == 3 and c_out < n:
            return x @ (weight * s[:, None, :]).transpose(1, 2)             # (B, N, in) @ (B, in, out)
        if x.dim() == 2 and c_out < batch:
            outer = (x[:, None, :] * weight).reshape(n * c_out, -1)          # (N*out, in)
            return (s @ outer.t()).view(batch, n, c_out)                     # (B, N, out)
        return (x * s[:, None, :]) @ weight.t()                              # (B, N, in) @ (in, out)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.affine(style)                                   # (B, in)
        y = self.modulated_matmul(x, s)                          # (B, N, out)
        d = self.demodulation(s)                                 # (B, out)
        return y + self.bias if d is None else torch.addcmul(self.bias, y, d[:, None, :])  # y * d + b, one pass

    def factored(self, x: torch.Tensor, style: torch.Tensor, x_scale: torch.Tensor | float | None = None):
        """The layer applied to x * x_scale, as u (B, N, out) and d (B, out): forward = d[:, None, :] * u.

        u = (x * x_scale) @ W'^T + bias / d, with x_scale (B, in) or a number folded into the style, not
        into x; returning d instead of multiplying it in lets the caller keep it off the big tensor too
        (ImplicitPatchDecoder does). d is None without demodulation (then u is the output).
        """
        s = self.affine(style)                                   # (B, in)
        d = self.demodulation(s)                                 # (B, out)
        bias = self.bias if d is None else self.bias / d         # (out,) or (B, out)
        u = self.modulated_matmul(x, s if x_scale is None else s * x_scale)
        return u + bias.unsqueeze(-2), d                         # (B, N, out)


def _activation(name: str):
    if name == "sine":
        return torch.sin
    return lambda x: F.leaky_relu(x, 0.2) * math.sqrt(2)


class ImplicitPatchDecoder(nn.Module):
    """y (B, N, dim) patch embeddings -> (B, N, r*r*channels) pixels, (p1 p2 c) order.

    Hidden layers are modulated (and demodulated if `demodulate`); the RGB layer is modulated but
    never demodulated (as in StyleGAN2's toRGB), so the output scale can be learned. `coordinates`
    is the kind of pixel grid E_fou is evaluated on (fourier.coordinate_axis).
    """

    def __init__(self, dim: int, hidden_dim: int, depth: int, patch_size: int, channels: int = 3,
                 activation: str = "leaky_relu", demodulate: bool = True, coordinates: str = "cell"):
        super().__init__()
        self.fourier = FourierFeatures(dim)  # E_fou
        widths = [dim] + [hidden_dim] * depth
        self.hidden = nn.ModuleList(
            ModulatedLinear(a, b, style_dim=dim, demodulate=demodulate) for a, b in zip(widths[:-1], widths[1:])
        )
        self.to_rgb = ModulatedLinear(hidden_dim, channels, style_dim=dim, demodulate=False)
        self.act, self.activation = _activation(activation), activation
        self.patch_size, self.coordinates = patch_size, coordinates

    def hidden_layer(self, layer: ModulatedLinear, h: torch.Tensor, style: torch.Tensor,
                     scale: torch.Tensor | float | None):
        """act(layer(h * scale, style)) as (h', scale'), in the same form: the activations are h' * scale'.

        h (B*N, M, in) or (M, in), scale (B*N, in), a number or None -> h' (B*N, M, out), scale'.
        sqrt(2) * leaky_relu is positively homogeneous and the demodulation d > 0, so
            act(d * u) = (sqrt(2) d) * leaky_relu(u):
        the factor sqrt(2) d stays a (B*N, out) tensor, multiplied into the next layer's style, instead
        of three passes (* d, + b, * sqrt 2) over the (B*N, M, out) activations. Sine is not homogeneous.
        """
        if self.activation == "sine":
            return self.act(layer(h, style)), None               # scale is None: only leaky layers leave one
        u, d = layer.factored(h, style, scale)                   # (B*N, M, out), (B*N, out)
        return F.leaky_relu(u, 0.2), math.sqrt(2) * (1.0 if d is None else d)

    def forward(self, y: torch.Tensor, resolution: int | None = None) -> torch.Tensor:
        r = resolution or self.patch_size
        b, n, _ = y.shape
        style = rearrange(y, "b n d -> (b n) d")                          # (B*N, dim): one style per patch
        grid = coordinate_grid(r, self.coordinates, device=y.device).to(y.dtype)   # (r*r, 2)
        h = self.fourier(grid)                                            # (r*r, dim): E_fou, shared by all
        scale = None                                                      # per-channel factor h still owes
        for layer in self.hidden:
            h, scale = self.hidden_layer(layer, h, style, scale)           # h * scale: (B*N, r*r, hidden)
        rgb, _ = self.to_rgb.factored(h, style, scale)                    # (B*N, r*r, C)
        return rearrange(rgb, "(b n) m c -> b n (m c)", b=b)              # (B, N, r*r*C)
