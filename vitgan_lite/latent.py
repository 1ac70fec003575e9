"""Exploring a trained generator's latent spaces: interpolation and principal directions of w.

- z is Gaussian, so paths between two latents should stay on the shell where z lives: `slerp`
  (spherical interpolation) rather than a straight line, whose midpoint has a too-small norm.
- w = Mapping(z) is the space SLN reads. Straight lines in w (`lerp`) are the usual choice there.
- `principal_directions` (GANSpace, Harkonen et al. 2020): PCA of w over many random z. Moving w
  along the top components changes the image along the directions the mapping network varies
  most -- the sliders of the latent-exploration notebook.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .generator import Generator


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a, b (D,), t (T,) -> (T, D): (1 - t) a + t b."""
    t = t[:, None]
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """a, b (D,), t (T,) -> (T, D): along the great circle between the directions of a and b,
    with the norm interpolated linearly. Falls back to `lerp` for (anti)parallel a, b."""
    na, nb = a.norm(), b.norm()
    cos = torch.dot(a / na, b / nb).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.sin().abs() < eps:
        return lerp(a, b, t)
    t = t[:, None]
    direction = (torch.sin((1 - t) * omega) * a / na + torch.sin(t * omega) * b / nb) / torch.sin(omega)
    return direction * ((1 - t) * na + t * nb)


@dataclass
class Principal:
    """PCA of w: mean (style_dim,), directions (k, style_dim) orthonormal rows, stds (k,)."""

    mean: torch.Tensor
    directions: torch.Tensor
    stds: torch.Tensor

    def edit(self, w: torch.Tensor, amounts: torch.Tensor) -> torch.Tensor:
        """w (B, style_dim), amounts (k,) in standard deviations -> w + sum_i a_i std_i d_i."""
        return w + (amounts * self.stds) @ self.directions


@torch.no_grad()
def principal_directions(G: Generator, k: int = 8, n: int = 10_000, seed: int = 0) -> Principal:
    """The top-k principal components of w = Mapping(z) over n latents drawn with a fixed seed."""
    if not 0 < k <= G.cfg.style_dim:
        raise ValueError(f"k must be in 1..{G.cfg.style_dim} (the size of w), got {k}")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    w = G.mapping(torch.randn(n, G.cfg.latent_dim, generator=gen).to(device))   # (n, style_dim)
    mean = w.mean(dim=0)
    _, s, vh = torch.linalg.svd(w - mean, full_matrices=False)                 # vh (r, style_dim)
    return Principal(mean=mean, directions=vh[:k], stds=s[:k] / (n - 1) ** 0.5)


@torch.no_grad()
def interpolate(G: Generator, z0: torch.Tensor, z1: torch.Tensor, steps: int = 8, space: str = "w") -> torch.Tensor:
    """Images along a path from z0 to z1 (each (latent_dim,)): slerp in z, or lerp in w.
    Returns (steps, C, H, W)."""
    t = torch.linspace(0, 1, steps, device=z0.device)
    if space == "z":
        return G(slerp(z0, z1, t))
    if space == "w":
        w0, w1 = G.mapping(torch.stack([z0, z1]))
        return G.synthesize(lerp(w0, w1, t))
    raise ValueError(f"space must be 'z' or 'w', got {space!r}")
