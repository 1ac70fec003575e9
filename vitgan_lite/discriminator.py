"""The ViTGAN discriminator: a ViT made Lipschitz-friendly.

    tokens = Linear(overlapping_patches(x))  (B, L, D)      kernel 2P, stride P, padding P/2
    h_0    = [cls; tokens] + E_pos           (B, L+1, D)
    h_l    = DiscriminatorBlock_l(h_{l-1})   L2 attention with tied W_q = W_k
    logit  = Linear(LN(h_L)[:, 0])           (B,)          a raw logit: any sign

Every linear layer (patch embedding, q/k, v, projections, MLPs, head) carries improved spectral
normalization (or plain SN / none, for ablations). The head is linear: a port that ended with GELU
could never output a logit below -0.17.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import DiscriminatorBlock
from .config import DiscriminatorConfig
from .patches import overlapping_patches, patchify
from .spectral import apply_spectral_norm


class Discriminator(nn.Module):
    """images (B, channels, H, W), roughly in [-1, 1] -> logits (B,)."""

    def __init__(self, cfg: DiscriminatorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DiscriminatorConfig()
        window = 2 * cfg.patch_size if cfg.overlapping_patches else cfg.patch_size
        self.patch_embedding = nn.Linear(window * window * cfg.channels, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, cfg.num_patches + 1, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(cfg.dim, cfg.heads, cfg.mlp_dim, cfg.attention, cfg.fused_attention)
            for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, 1)
        apply_spectral_norm(self, cfg.spectral_norm)

    def check_input(self, x: torch.Tensor) -> None:
        cfg = self.cfg
        expected = (cfg.channels, cfg.image_size, cfg.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Discriminator expects images of shape (B, {', '.join(map(str, expected))}), got "
                f"{tuple(x.shape)}; resize the data to {cfg.image_size}x{cfg.image_size} or build the "
                f"discriminator with DiscriminatorConfig(image_size=...)"
            )

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> patch tokens (B, L, D)."""
        cut = overlapping_patches if self.cfg.overlapping_patches else patchify
        return self.patch_embedding(cut(x, self.cfg.patch_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        tokens = self.tokens(x)                                             # (B, L, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)                     # (B, 1, D)
        h = torch.cat([cls, tokens], dim=1) + self.pos_embedding            # (B, L+1, D)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h[:, 0])).squeeze(-1)                    # (B,)
