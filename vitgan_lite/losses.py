"""The losses of ViTGAN's training recipe.

Non-saturating logistic GAN loss (Goodfellow et al. 2014), written with softplus for stability:
    L_D = softplus(D(G(z))) + softplus(-D(x))        (= -log(1 - sigmoid(D(G(z)))) - log sigmoid(D(x)))
    L_G = softplus(-D(G(z)))                         (= -log sigmoid(D(G(z))))
bCR (Zhao et al. 2021), balanced consistency regularization of D under an augmentation T:
    L_bCR = lambda_real * mean (D(x) - D(T(x)))^2 + lambda_fake * mean (D(G(z)) - D(T(G(z))))^2
    (which two logits stand for D(x) and D(T(x)) under DiffAugment: TrainConfig.bcr_mode, bcr.py)
R1 (Mescheder et al. 2018), optional and off by default (the paper finds it hurts a ViT D):
    L_R1 = gamma / 2 * mean ||grad_x D(x)||^2

Every logit tensor is (B,). The bCR terms compare logits element-wise and refuse tensors of
different shapes: (B,) against (B, 1) would broadcast to a (B, B) matrix of every pair, a bug
one port shipped.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss, a scalar: mean softplus(-D(x)) + mean softplus(D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_logistic_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss, a scalar: mean softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def consistency_loss(logits: torch.Tensor, augmented_logits: torch.Tensor) -> torch.Tensor:
    """mean (D(x) - D(T(x)))^2 over the batch; both (B,), a shape mismatch raises ValueError."""
    if logits.shape != augmented_logits.shape:
        raise ValueError(
            f"bCR compares logits element-wise but got shapes {tuple(logits.shape)} and "
            f"{tuple(augmented_logits.shape)}; both must be (B,) (squeeze a trailing 1)")
    return (logits - augmented_logits).pow(2).mean()


def bcr_loss(real_logits: torch.Tensor, real_augmented_logits: torch.Tensor,
             fake_logits: torch.Tensor, fake_augmented_logits: torch.Tensor,
             lambda_real: float = 10.0, lambda_fake: float = 10.0) -> torch.Tensor:
    """Balanced consistency regularization, a scalar (paper: lambda_real = lambda_fake = 10)."""
    return (lambda_real * consistency_loss(real_logits, real_augmented_logits)
            + lambda_fake * consistency_loss(fake_logits, fake_augmented_logits))


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor, gamma: float) -> torch.Tensor:
    """gamma / 2 * mean_b ||d D(x_b) / d x_b||^2; real_images must require grad. A scalar."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)  # (B, C, H, W)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(dim=1).mean()
