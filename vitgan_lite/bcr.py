"""Which two views of each image balanced consistency regularization (bCR) compares.

The bCR paper (Zhao et al. 2021) and ViTGAN write, for a D that sees clean images,
    L_bCR = lambda_real (D(x) - D(T(x)))^2 + lambda_fake (D(G(z)) - D(T(G(z))))^2.
With DiffAugment A, D's adversarial loss sees A(x), never x, and implementations differ in what
they put on each side (`TrainConfig.bcr_mode`):

    mode        compares              extra D inputs            source
    augmented   D(A(x)) vs D(T(x))    T(x), T(G(z))             ours: reuses the adversarial logits
    official    D(A(x)) vs D(A'(x))   A'(x), A'(G(z))           mlpc-ucsd/ViTGAN penalty.py (balanced_consistency)
    paper       D(x)    vs D(T(x))    x, G(z), T(x), T(G(z))    the paper's formula, on clean images

A' is a second, independent DiffAugment draw (same policy and probabilities as A); T is
`TrainConfig.bcr_policy` applied with probability 1. Each view is of cat[x, G(z)], (2B, C, H, W);
the trainer puts A(.) and these views into its one D pass: 4B images, 6B for "paper".
"""
from __future__ import annotations

from typing import Callable

import torch

from .augment import diff_augment
from .losses import bcr_loss


def bcr_views(images: torch.Tensor, mode: str, augment: Callable, policy: str) -> list[torch.Tensor]:
    """images cat[x, G(z)] (2B, C, H, W) -> the views bCR needs besides A(images), each (2B, C, H, W).

    Draws its random numbers after A's (the trainer augments first), in the order listed.
    """
    if mode == "augmented":
        return [diff_augment(images, policy)]                    # T(.)
    if mode == "official":
        return [augment(images)]                                 # A'(.)
    if mode == "paper":
        return [images, diff_augment(images, policy)]            # clean, T(.)
    raise ValueError(f"unknown bcr_mode {mode!r}; expected 'augmented', 'official' or 'paper'")


def balanced_consistency(adversarial: torch.Tensor, extra: list[torch.Tensor], mode: str,
                         lambda_real: float, lambda_fake: float) -> torch.Tensor:
    """L_bCR, a scalar, from D(A(images)) (2B,) and the logits of `bcr_views` (each (2B,), same order)."""
    anchor, moved = (extra[0], extra[1]) if mode == "paper" else (adversarial, extra[0])
    (anchor_real, anchor_fake), (moved_real, moved_fake) = anchor.chunk(2), moved.chunk(2)   # each (B,)
    return bcr_loss(anchor_real, moved_real, anchor_fake, moved_fake, lambda_real, lambda_fake)
