"""Images <-> sequences of patches (a ViT sees an image as L = (H/P)^2 tokens).

- `patchify` / `unpatchify`: non-overlapping P x P patches, the generator's layout. Patches are
  numbered row-major over the (H/P) x (W/P) grid; inside a patch the order is (p1 p2 c).
- `overlapping_patches`: the discriminator's patches (the paper's "overlapping image
  patches"): each P x P patch grown by o = P/2 on every side, i.e. a 2P x 2P window with stride P.
  Padding by P/2 keeps L = (H/P)^2 tokens; the padding is our reading (the paper does not state it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def _check_image(x: torch.Tensor, patch_size: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"image size {h}x{w} is not divisible by patch_size={patch_size}; "
            "resize the images or choose a patch size that divides them"
        )


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, P*P*C) with N = (H/P)(W/P), row-major patches, (p1 p2 c) inside."""
    _check_image(x, patch_size)
    return rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """(B, N, P*P*C) -> (B, C, H, W): the exact inverse of `patchify` for square images."""
    if patches.ndim != 3 or patches.shape[-1] != patch_size * patch_size * channels:
        raise ValueError(
            f"expected patches of shape (B, N, {patch_size * patch_size * channels}) for "
            f"patch_size={patch_size}, channels={channels}; got {tuple(patches.shape)}"
        )
    side = int(round(patches.shape[1] ** 0.5))
    if side * side != patches.shape[1]:
        raise ValueError(f"unpatchify needs a square grid of patches, got N={patches.shape[1]}")
    return rearrange(patches, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=side, p1=patch_size, p2=patch_size)


def overlapping_patches(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, 2P*2P*C): 2P x 2P windows at stride P, zero padding P/2.

    Token i is centred on the i-th non-overlapping patch (same row-major order as `patchify`)
    and also sees P/2 pixels of each neighbour. Inside a window the order is (c p1 p2), the
    layout of `F.unfold`.
    """
    _check_image(x, patch_size)
    if patch_size % 2:
        raise ValueError(f"overlapping patches pad by patch_size/2: patch_size must be even, got {patch_size}")
    cols = F.unfold(x, kernel_size=2 * patch_size, stride=patch_size, padding=patch_size // 2)  # (B, C*4P*P, N)
    return cols.transpose(1, 2)  # (B, N, C*2P*2P)
