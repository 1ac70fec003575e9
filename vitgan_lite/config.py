"""One place for every architecture setting: `GeneratorConfig` and `DiscriminatorConfig`.

Presets:
- `cifar10()`: the paper's 32x32 CIFAR-10 model. Each value carries a comment with its source;
  "paper" means the ViTGAN paper states it, "official" means the authors' code
  (github mlpc-ucsd/ViTGAN), "ours" means neither states it and we chose.
- `tiny()`: the same code path at a size that trains for a few seconds on a CPU (tests, fast mode).

Invalid settings raise `ValueError` naming the value and what was expected.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ATTENTION_KINDS = ("l2", "dot")
SPECTRAL_NORM_KINDS = ("isn", "sn", "none")
DECODER_ACTIVATIONS = ("leaky_relu", "sine")


def _check_positive(cfg, names):
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{type(cfg).__name__}.{name} must be a positive integer, got {value!r}")


def _check_choice(cfg, name, choices):
    value = getattr(cfg, name)
    if value not in choices:
        raise ValueError(f"{type(cfg).__name__}.{name} must be one of {choices}, got {value!r}")


def _check_patches(cfg):
    if cfg.image_size % cfg.patch_size:
        raise ValueError(
            f"{type(cfg).__name__}: image_size={cfg.image_size} is not divisible by patch_size="
            f"{cfg.patch_size}; choose a patch size that divides the image size (e.g. 4 for 32x32)"
        )
    if cfg.dim % cfg.heads:
        raise ValueError(
            f"{type(cfg).__name__}: dim={cfg.dim} is not divisible by heads={cfg.heads}; "
            "each head gets dim // heads channels"
        )


@dataclass(frozen=True)
class GeneratorConfig:
    """Settings of the ViTGAN generator (paper Sec. 3.2, Fig. 2 left)."""

    image_size: int = 32           # paper: CIFAR-10 32x32
    channels: int = 3              # RGB
    patch_size: int = 4            # paper: 4x4 patches at 32x32 -> 64 tokens
    latent_dim: int = 384          # official code (paper does not state z's size)
    style_dim: int = 384           # official code (size of w; paper does not state it)
    mapping_depth: int = 8         # official code (StyleGAN2's 8-layer mapping MLP)
    mapping_lr_mul: float = 0.01   # StyleGAN2 / official code
    dim: int = 384                 # paper: hidden size D = 384
    depth: int = 4                 # paper: 4 Transformer blocks
    heads: int = 6                 # paper: 6 heads
    mlp_dim: int = 1536            # paper: MLP hidden 1536 (4 x D)
    decoder_dim: int = 384         # ours: hidden width of the implicit decoder f_theta (paper: "2-layer MLP")
    decoder_depth: int = 2         # paper: 2-layer MLP f_theta (2 modulated hidden layers + modulated RGB layer)
    decoder_activation: str = "leaky_relu"  # official code; paper cites SIREN (sine) -- unverified, so an option
    demodulate: bool = True        # official code demodulates hidden decoder layers; paper unverified

    def __post_init__(self):
        _check_positive(self, ("image_size", "channels", "patch_size", "latent_dim", "style_dim",
                               "mapping_depth", "dim", "depth", "heads", "mlp_dim",
                               "decoder_dim", "decoder_depth"))
        if not self.mapping_lr_mul > 0:
            raise ValueError(f"GeneratorConfig.mapping_lr_mul must be > 0, got {self.mapping_lr_mul!r}")
        _check_choice(self, "decoder_activation", DECODER_ACTIVATIONS)
        _check_patches(self)

    @property
    def num_patches(self) -> int:
        """L = (H / P)^2 tokens."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def cifar10(cls) -> "GeneratorConfig":
        """The paper's CIFAR-10 generator (the field defaults)."""
        return cls()

    @classmethod
    def tiny(cls) -> "GeneratorConfig":
        """Same architecture, CPU-sized: trains for a few seconds in tests."""
        return cls(latent_dim=64, style_dim=64, mapping_depth=2, dim=64, depth=2, heads=4,
                   mlp_dim=128, decoder_dim=32)

    def replace(self, **changes) -> "GeneratorConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Settings of the ViTGAN discriminator (paper Sec. 3.1, Fig. 2 right)."""

    image_size: int = 32           # paper: CIFAR-10 32x32
    channels: int = 3              # RGB
    patch_size: int = 4            # paper: 4x4 patches -> 64 tokens
    dim: int = 384                 # paper: D = 384
    depth: int = 4                 # paper: 4 blocks at 32x32
    heads: int = 6                 # paper: 6 heads
    mlp_dim: int = 1536            # paper: MLP hidden 1536
    overlapping_patches: bool = True  # paper: overlapping patches (kernel 2P, stride P; padding P/2 is ours)
    attention: str = "l2"          # paper: L2 attention with tied W_q = W_k ("dot" for the ablation)
    spectral_norm: str = "isn"     # paper: improved spectral norm ("sn" plain, "none" for ablations)
    fused_attention: bool = True   # ours: use scaled_dot_product_attention (same math as the reference path)

    def __post_init__(self):
        _check_positive(self, ("image_size", "channels", "patch_size", "dim", "depth", "heads", "mlp_dim"))
        _check_choice(self, "attention", ATTENTION_KINDS)
        _check_choice(self, "spectral_norm", SPECTRAL_NORM_KINDS)
        _check_patches(self)
        if self.overlapping_patches and self.patch_size % 2:
            raise ValueError(
                f"DiscriminatorConfig: overlapping patches pad by patch_size/2, so patch_size must be "
                f"even, got {self.patch_size}; use an even patch size or overlapping_patches=False"
            )

    @property
    def num_patches(self) -> int:
        """L = (H / P)^2 tokens (the class token is extra)."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def cifar10(cls) -> "DiscriminatorConfig":
        """The paper's CIFAR-10 ViT discriminator (the field defaults)."""
        return cls()

    @classmethod
    def tiny(cls) -> "DiscriminatorConfig":
        """Same architecture, CPU-sized."""
        return cls(dim=64, depth=2, heads=4, mlp_dim=128)

    def replace(self, **changes) -> "DiscriminatorConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
