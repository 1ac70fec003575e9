"""The exercise checks of notebooks 06-09 (vitgan_lite.course.check_*): each accepts a right answer
and rejects a wrong one."""
import math

import pytest
import torch

from vitgan_lite.course import (check_adam_steps, check_ema_decay, check_flip, check_l2_logits, check_lr_scale,
                                check_translation_mask)


def test_check_l2_logits():
    expanded = lambda q, k: (2 * q @ k.transpose(-2, -1) - k.pow(2).sum(-1).unsqueeze(-2)) / math.sqrt(q.shape[-1])
    check_l2_logits(expanded)                                          # drops the row constant ||q_i||^2: fine
    check_l2_logits(lambda q, k: -torch.cdist(q, k) ** 2 / math.sqrt(q.shape[-1]))
    with pytest.raises(AssertionError, match="softmax"):
        check_l2_logits(lambda q, k: torch.cdist(q, k) ** 2 / math.sqrt(q.shape[-1]))          # no minus sign
    with pytest.raises(AssertionError, match="softmax"):
        check_l2_logits(lambda q, k: 2 * q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))     # ||k||^2 dropped
    with pytest.raises(AssertionError, match="softmax"):
        check_l2_logits(lambda q, k: -torch.cdist(q, k) ** 2)                                   # no temperature
    with pytest.raises(AssertionError, match="shape"):
        check_l2_logits(lambda q, k: (-torch.cdist(q, k) ** 2 / math.sqrt(q.shape[-1])).unsqueeze(0))


def kept(dy, dx, h, w):
    rows, cols = torch.arange(h).view(h, 1), torch.arange(w).view(1, w)
    return (rows - dy >= 0) & (rows - dy < h) & (cols - dx >= 0) & (cols - dx < w)


def test_check_translation_mask_keeps_the_random_state():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    check_translation_mask(kept)
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(AssertionError, match="wrong mask"):
        check_translation_mask(lambda dy, dx, h, w: kept(-dy, -dx, h, w))                       # shifted the wrong way
    with pytest.raises(AssertionError, match="wrong mask"):
        check_translation_mask(lambda dy, dx, h, w: torch.ones(h, w, dtype=torch.bool))


def test_check_flip():
    def flip(x):
        mirror = torch.rand(x.shape[0], 1, 1, 1) < 0.5
        return torch.where(mirror, x.flip(3), x)

    check_flip(flip)
    with pytest.raises(AssertionError, match="neither unchanged nor mirrored"):
        check_flip(lambda x: torch.where(torch.rand(x.shape[0], 1, 1, 1) < 0.5, x.flip(2), x))   # upside down
    with pytest.raises(AssertionError, match="about half"):
        check_flip(lambda x: x.flip(3) if torch.rand(()) < 2 else x)                           # the whole batch
    with pytest.raises(AssertionError, match="no gradient"):
        check_flip(lambda x: flip(x).detach())
    with pytest.raises(AssertionError, match="not 1 everywhere"):
        check_flip(lambda x: torch.where(torch.rand(x.shape[0], 1, 1, 1) < 0.5, x.flip(3).detach(), x))
    with pytest.raises(AssertionError, match="not 1 everywhere"):
        check_flip(lambda x: flip(x).detach() + 0 * x)                                          # gradient 0


def test_check_adam_steps():
    def adam(grads, lr, betas, eps):
        m = v = change = 0
        for t, g in enumerate(grads, start=1):
            m = betas[0] * m + (1 - betas[0]) * g
            v = betas[1] * v + (1 - betas[1]) * g * g
            change = change - lr * (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps)
        return change

    def no_bias_correction(grads, lr, betas, eps):
        m = v = change = 0
        for g in grads:
            m = betas[0] * m + (1 - betas[0]) * g
            v = betas[1] * v + (1 - betas[1]) * g * g
            change = change - lr * m / (v.sqrt() + eps)
        return change

    check_adam_steps(adam)
    with pytest.raises(AssertionError, match="weight change"):
        check_adam_steps(no_bias_correction)
    with pytest.raises(AssertionError, match="weight change"):
        check_adam_steps(lambda grads, lr, betas, eps: -lr * sum(torch.sign(g) for g in grads))   # right at step 1 only


def lr_scale_by_hand(step, steps, warmup, decay):
    scale = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return scale * min(1.0, (steps - step) / (decay * steps)) if decay else scale


def test_check_lr_scale():
    check_lr_scale(lr_scale_by_hand)
    with pytest.raises(AssertionError, match="lr_decay 0.5"):                       # falls to 0 one step late
        check_lr_scale(lambda step, steps, warmup, decay: lr_scale_by_hand(step - 1, steps, warmup, decay))
    with pytest.raises(AssertionError, match="warm-up 4"):                         # warm-up from 0, not 1/warmup
        check_lr_scale(lambda step, steps, warmup, decay: lr_scale_by_hand(step, steps, warmup, decay)
                       * (step / (step + 1) if step < warmup else 1.0))


def test_check_ema_decay():
    check_ema_decay(lambda batch, half_life: 0.5 ** (batch / half_life))
    with pytest.raises(AssertionError, match="half-life"):
        check_ema_decay(lambda batch, half_life: 1 - batch / half_life)
    with pytest.raises(AssertionError, match="half-life"):
        check_ema_decay(lambda batch, half_life: 0.5 ** (half_life / batch))
