"""The exponential moving average (EMA) of the generator's weights, and the decay of each update.

After every G step:  shadow <- beta * shadow + (1 - beta) * theta.
Samples and FID come from the shadow weights. The decay comes from a half-life in images,
beta = 0.5 ** (B / half_life) per step of B images (B: the global batch), `TrainConfig.ema_decay`.
How the first steps are treated (`TrainConfig.ema_warmup`):

  "official"   (mlpc-ucsd/ViTGAN train_stylegan2.py) beta = 0, i.e. the shadow is a copy of G,
               while at most `ema_start_images` images have been seen, then the constant beta. The
               official start (and ours when ema_start_images is None) is one half-life
               (ema_start_k = halflife_k): the average never mixes in the random initial weights.
  "torch_ema"  torch-ema's warm-up, min(beta, (1 + n) / (10 + n)) at update n = 1, 2, ...: the
               configured beta only from n = (10 beta - 1) / (1 - beta), about 100k steps for the
               paper's beta at batch 128. Runs saved before the `ema_warmup` field trained so, and
               resume so (TrainConfig.from_dict).
"""
from __future__ import annotations

from typing import Iterable

import torch


def ema_start(tcfg) -> int:
    """Images seen before the EMA averages: ema_start_images, or one half-life if None (official)."""
    return tcfg.ema_half_life_images if tcfg.ema_start_images is None else tcfg.ema_start_images


def ema_decay_at(tcfg, step: int) -> float:
    """The decay beta of the EMA update after step `step` (1, 2, ...): step * batch_size images seen."""
    if tcfg.ema_warmup == "torch_ema":
        return min(tcfg.ema_decay, (1 + step) / (10 + step))
    return 0.0 if step * tcfg.batch_size <= ema_start(tcfg) else tcfg.ema_decay


@torch.no_grad()
def update_ema(shadow: Iterable[torch.Tensor], params: Iterable[torch.Tensor], decay: float) -> None:
    """shadow <- decay * shadow + (1 - decay) * theta, in place, weight by weight (decay 0: an exact copy)."""
    for average, weight in zip(shadow, params, strict=True):
        average.lerp_(weight, 1.0 - decay)          # lerp(a, b, w) = a + w (b - a); w = 1 returns b exactly
