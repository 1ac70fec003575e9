"""The ViTGAN generator, as the paper describes it.

    w    = Mapping(z)                        (B, style_dim)
    h_0  = E_pos                             (B, L, D)   Fourier features of the patch centres
    h_l  = GeneratorBlock_l(h_{l-1}, w)      l = 1..depth
    y    = SLN(h_L, w)                       (B, L, D)   one embedding per patch
    x^i  = f_theta(E_fou, y^i)               (B, L, P*P*3)
    img  = unpatchify(x)                     (B, 3, H, W)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import GeneratorBlock
from .config import GeneratorConfig
from .equalized import MappingNetwork
from .fourier import FourierFeatures, coordinate_grid
from .modulation import ImplicitPatchDecoder
from .patches import unpatchify
from .sln import SelfModulatedLayerNorm


class Generator(nn.Module):
    """z (B, latent_dim) -> images (B, channels, H, W), roughly in [-1, 1] (no output squashing)."""

    def __init__(self, cfg: GeneratorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or GeneratorConfig()
        self.mapping = MappingNetwork(cfg.latent_dim, cfg.style_dim, cfg.mapping_depth, cfg.mapping_lr_mul)
        self.pos_embedding = FourierFeatures(cfg.dim)  # E_pos
        self.blocks = nn.ModuleList(
            GeneratorBlock(cfg.dim, cfg.heads, cfg.mlp_dim, cfg.style_dim, cfg.attention, cfg.spectral_norm)
            for _ in range(cfg.depth))
        self.norm_out = SelfModulatedLayerNorm(cfg.dim, cfg.style_dim)
        self.decoder = ImplicitPatchDecoder(cfg.dim, cfg.decoder_dim, cfg.decoder_depth, cfg.patch_size,
                                            cfg.channels, cfg.decoder_activation, cfg.demodulate, cfg.coordinates)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesize(self.style(z))

    def style(self, z: torch.Tensor, truncation_psi: float = 1.0,
                        w_avg: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> w (B, style_dim); with truncation, w_avg + psi * (w - w_avg)."""
        if z.ndim != 2 or z.shape[1] != self.cfg.latent_dim:
            raise ValueError(f"Generator expects z of shape (B, {self.cfg.latent_dim}), got {tuple(z.shape)}")
        w = self.mapping(z)
        if truncation_psi != 1.0:
            if w_avg is None:
                raise ValueError("truncation needs w_avg; compute it with Generator.mean_style()")
            w = w_avg + truncation_psi * (w - w_avg)
        return w

    @torch.no_grad()
    def mean_style(self, n: int = 10_000, seed: int = 0) -> torch.Tensor:
        """w_avg (style_dim,): the mean of w over n latents drawn with a fixed seed (for truncation)."""
        device = next(self.parameters()).device
        gen = torch.Generator(device="cpu").manual_seed(seed)
        z = torch.randn(n, self.cfg.latent_dim, generator=gen).to(device)
        return self.mapping(z).mean(dim=0)

    def synthesize(self, w: torch.Tensor, patch_resolution: int | None = None) -> torch.Tensor:
        """w (B, style_dim) -> (B, C, H', W'), H' = (H / P) * patch_resolution (default P).

        A patch_resolution above P renders every patch on a finer pixel grid: the implicit
        decoder is a function of continuous coordinates. With cfg.coordinates "cell" every
        resolution covers the same square of each patch; "linspace" (older generators) covers less
        of it at a higher resolution (fourier.coordinate_axis).
        """
        side = self.cfg.image_size // self.cfg.patch_size
        coords = coordinate_grid(side, self.cfg.coordinates, device=w.device).to(w.dtype)  # (L, 2) patch centres
        h = self.pos_embedding(coords).unsqueeze(0).expand(w.shape[0], -1, -1)  # (B, L, D)
        for block in self.blocks:
            h = block(h, w)                                                # (B, L, D)
        y = self.norm_out(h, w)                                            # (B, L, D)
        pixels = self.decoder(y, patch_resolution)                         # (B, L, r*r*C)
        return unpatchify(pixels, patch_resolution or self.cfg.patch_size, self.cfg.channels)
