"""Losses against their formulas written out naively (sigmoid/log, loops), and the bCR shape check."""
import math

import pytest
import torch

from vitgan_lite.losses import bcr_loss, consistency_loss, d_logistic_loss, g_logistic_loss, r1_penalty


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.fixture
def logits():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(7, generator=gen, dtype=torch.float64) * 3 for _ in range(4)]


def test_discriminator_loss_is_minus_log_likelihood(logits):
    real, fake = logits[:2]
    naive = sum(-math.log(sigmoid(r)) for r in real.tolist()) / 7 \
        + sum(-math.log(1 - sigmoid(f)) for f in fake.tolist()) / 7
    assert d_logistic_loss(real, fake).item() == pytest.approx(naive, rel=1e-12)


def test_generator_loss_is_non_saturating(logits):
    fake = logits[1].requires_grad_(True)
    loss = g_logistic_loss(fake)
    assert loss.item() == pytest.approx(sum(-math.log(sigmoid(f)) for f in fake.tolist()) / 7, rel=1e-12)
    loss.backward()
    # d/df -log sigmoid(f) = -(1 - sigmoid(f)): the gradient does not vanish when D rejects fakes
    expected = torch.tensor([-(1 - sigmoid(f)) / 7 for f in fake.tolist()], dtype=torch.float64)
    torch.testing.assert_close(fake.grad, expected)


def test_bcr_is_weighted_mean_of_squared_differences(logits):
    real, real_t, fake, fake_t = logits
    naive_real = sum((a - b) ** 2 for a, b in zip(real.tolist(), real_t.tolist())) / 7
    naive_fake = sum((a - b) ** 2 for a, b in zip(fake.tolist(), fake_t.tolist())) / 7
    got = bcr_loss(real, real_t, fake, fake_t, lambda_real=10.0, lambda_fake=3.0)
    assert got.item() == pytest.approx(10.0 * naive_real + 3.0 * naive_fake, rel=1e-12)
    assert bcr_loss(real, real, fake, fake).item() == 0.0


def test_bcr_refuses_to_broadcast(logits):
    real, real_t = logits[:2]
    with pytest.raises(ValueError, match=r"\(7,\) and \(7, 1\)"):
        consistency_loss(real, real_t.unsqueeze(1))       # would broadcast to a 7x7 matrix
    with pytest.raises(ValueError):
        bcr_loss(real, real_t, real, real_t.unsqueeze(1))


def test_r1_penalty_matches_closed_form():
    # D(x) = sum(a * x^2) per image: grad = 2 a x, so R1 = gamma/2 * mean_b sum (2 a x_b)^2
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(3, 4, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(5, 3, 4, 4, generator=gen, dtype=torch.float64).requires_grad_(True)
    logits = (a * x.pow(2)).flatten(1).sum(1)                 # (5,)
    got = r1_penalty(logits, x, gamma=0.3)
    expected = 0.15 * sum(((2 * a * xb) ** 2).sum().item() for xb in x.detach()) / 5
    assert got.item() == pytest.approx(expected, rel=1e-12)
    got.backward()                                            # differentiable (create_graph)
    assert x.grad is not None and torch.isfinite(x.grad).all()
