"""Helpers for the course notebooks: compare a hand build with the package's version.

In the spirit of Karpathy's `cmp` (nn-zero-to-hero): a reader should see *how* close two results
are, not a literal "True" printed after an assert.

    cmp("patchify", mine, package_out)            # prints: patchify  exact: True  approx: True  max|Δ|: 0
    cmp("decoder", mine, ref, atol=1e-5)          # raises AssertionError if not allclose
"""
from __future__ import annotations

import math

import torch


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| over all elements, in float64 (0.0 for empty tensors)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.numel() == 0:
        return 0.0
    return (a.detach().double() - b.detach().double()).abs().max().item()


def cmp(name: str, mine, reference, *, atol: float = 1e-6, rtol: float = 1e-5) -> float:
    """Print whether `mine` equals `reference` exactly, approximately (allclose) and by how much.

    Raises AssertionError (with the numbers) when shapes differ or the values are not allclose,
    so a notebook cell fails loudly under `pytest --nbval`. Returns max |Δ|.
    """
    mine, reference = torch.as_tensor(mine), torch.as_tensor(reference)
    if mine.shape != reference.shape:
        raise AssertionError(f"{name}: shape {tuple(mine.shape)} != reference {tuple(reference.shape)}")
    exact = torch.equal(mine.detach(), reference.detach())
    approx = torch.allclose(mine.detach().double(), reference.detach().double(), atol=atol, rtol=rtol)
    delta = max_abs_diff(mine, reference)
    print(f"{name:<32s} exact: {str(exact):<5s}  approx: {str(approx):<5s}  max|Δ|: {delta:.1e}")
    if not approx:
        raise AssertionError(f"{name}: max |Δ| = {delta:.3e} exceeds atol={atol}, rtol={rtol}")
    return delta


# ---- Exercise checks of notebooks 06-09 -------------------------------------------------------------
# Each takes the reader's function, compares it with the package (or the math) on a few fixed cases,
# raises AssertionError with the first disagreement, and prints one line when everything agrees.
# None of them changes the global random state.


def _agree(name: str, got, want, *, atol: float, rtol: float = 0.0) -> None:
    got, want = torch.as_tensor(got), torch.as_tensor(want)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if not torch.allclose(got.detach().double(), want.detach().double(), atol=atol, rtol=rtol):
        raise AssertionError(f"{name}: max |Δ| = {max_abs_diff(got, want):.3g} (tolerance atol {atol:g}, rtol {rtol:g})")


def check_l2_logits(fn) -> None:
    """Notebook 06: `fn(q, k)`, q (..., N, d) and k (..., M, d), not necessarily equal (untied), returns
    logits (..., N, M) whose softmax over the last dimension is softmax_j(-||q_i - k_j||^2 / sqrt(d)).
    A constant added to a whole row is allowed: softmax does not see it."""
    gen = torch.Generator().manual_seed(0)
    shapes = [((2, 3, 5, 4), (2, 3, 5, 4)), ((1, 1, 3, 8), (1, 1, 7, 8)), ((4, 6, 16), (4, 9, 16))]
    for case, (q_shape, k_shape) in enumerate(shapes):
        q = 2 * torch.randn(q_shape, generator=gen, dtype=torch.float64)
        k = 2 * torch.randn(k_shape, generator=gen, dtype=torch.float64)
        want = -(q.unsqueeze(-2) - k.unsqueeze(-3)).pow(2).sum(-1) / q.shape[-1] ** 0.5   # (..., N, M)
        got = torch.as_tensor(fn(q.clone(), k.clone()))
        _agree(f"check_l2_logits, case {case} (q {q_shape}, k {k_shape}): softmax of the logits",
               got.softmax(-1), want.softmax(-1), atol=1e-6)
    print(f"check_l2_logits: passed ({len(shapes)} cases, untied q and k)")


def check_translation_mask(fn) -> None:
    """Notebook 07: `fn(dy, dx, h, w)` returns the (h, w) bool mask of the INPUT pixels that
    `vitgan_lite.augment.translation` keeps in the frame when it shifts by (dy, dx), i.e. where
    d translation(x).sum() / dx is 1 (out[y, x] = in[y + dy, x + dx], zeros shifted in)."""
    from .augment import translation

    cases = 0
    with torch.random.fork_rng(devices=[]):
        for seed in range(40):
            h, w = (32, 32) if seed % 2 else (16, 24)
            torch.manual_seed(seed)                                    # the draws translation will make
            sy, sx = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
            dy = int(torch.randint(-sy, sy + 1, (1, 1, 1)))
            dx = int(torch.randint(-sx, sx + 1, (1, 1, 1)))
            x = torch.randn(1, 1, h, w).requires_grad_(True)
            torch.manual_seed(seed)
            translation(x).sum().backward()
            want = x.grad[0, 0] != 0                                    # (h, w)
            got = torch.as_tensor(fn(dy, dx, h, w)).bool()
            if got.shape != want.shape or not torch.equal(got, want):
                raise AssertionError(f"check_translation_mask: wrong mask for (dy, dx) = ({dy}, {dx}) on a "
                                     f"{h}x{w} image ({int((got != want).sum()) if got.shape == want.shape else 'shape'} "
                                     f"pixels differ)")
            cases += 1
    print(f"check_translation_mask: passed ({cases} shifts)")


def check_flip(fn) -> None:
    """Notebook 07: `fn(x)`, x (B, C, H, W), mirrors each image left-right with probability 1/2,
    independently per image, and lets gradients through (each output pixel is one input pixel)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x = torch.randn(400, 3, 8, 8).requires_grad_(True)
        out = fn(x)
        if tuple(out.shape) != tuple(x.shape):
            raise AssertionError(f"check_flip: output shape {tuple(out.shape)}, expected {tuple(x.shape)}")
        same = (out == x).flatten(1).all(1)
        mirrored = (out == x.flip(3)).flatten(1).all(1)
        if not bool((same | mirrored).all()):
            raise AssertionError("check_flip: some images are neither unchanged nor mirrored left-right "
                                 "(flip the width axis, dim 3, of whole images)")
        share = mirrored.float().mean().item()
        if not 0.4 < share < 0.6:
            raise AssertionError(f"check_flip: {share:.0%} of 400 images mirrored; expected about half, "
                                 "drawn per image")
        if not out.requires_grad:
            raise AssertionError("check_flip: the output has no gradient (detached?)")
        out.sum().backward()
        if not torch.equal(x.grad, torch.ones_like(x)):
            raise AssertionError("check_flip: d fn(x).sum() / dx is not 1 everywhere; a flip moves pixels, "
                                 "it must neither drop nor scale them")
    print(f"check_flip: passed (400 images, {share:.0%} mirrored, gradient 1 everywhere)")


def check_adam_steps(fn) -> None:
    """Notebook 08: `fn(grads, lr, betas, eps)` returns the total change of a weight (a tensor) after
    one Adam step per gradient in `grads` (a list of tensors of one shape), starting from zero moments,
    compared with `torch.optim.Adam` (no weight decay, no amsgrad)."""
    gen = torch.Generator().manual_seed(0)
    cases = 0
    for betas in [(0.0, 0.99), (0.9, 0.999), (0.5, 0.9)]:
        for n_steps in (1, 2, 3):
            grads = [torch.randn(6, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(-4, 2, (6,), generator=gen)
                     for _ in range(n_steps)]
            w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
            opt = torch.optim.Adam([w], lr=0.01, betas=betas, eps=1e-8)
            for g in grads:
                w.grad = g.clone()
                opt.step()
            got = torch.as_tensor(fn([g.clone() for g in grads], 0.01, betas, 1e-8))
            _agree(f"check_adam_steps, betas {betas}, {n_steps} step(s): weight change", got, w.detach(), atol=1e-12,
                   rtol=1e-9)
            cases += 1
    print(f"check_adam_steps: passed ({cases} cases, betas (0, 0.99), (0.9, 0.999), (0.5, 0.9), 1-3 steps)")


def check_ema_decay(fn) -> None:
    """Notebook 09: `fn(batch_size, half_life_images)` returns the per-step EMA decay beta such that
    after `half_life_images` images an old weight counts half (`TrainConfig.ema_decay`)."""
    from .config import TrainConfig

    cases = [(128, 1_000_000), (32, 5_000), (64, 10_000), (8, 8), (1, 3)]
    for batch, half_life in cases:
        want = TrainConfig(batch_size=batch, ema_half_life_images=half_life).ema_decay
        _agree(f"check_ema_decay, batch {batch}, half-life {half_life:,} images", fn(batch, half_life), want,
               atol=1e-12)
    print(f"check_ema_decay: passed ({len(cases)} batch sizes and half-lives)")


def check_lr_scale(fn) -> None:
    """Notebook 09: `fn(step, steps, warmup_steps, lr_decay)` returns the multiple of the lr at 0-based
    `step`: linear warm-up, constant, then a linear fall over the last lr_decay * steps that reaches 0 at
    `steps` (`schedule.lr_scale`), at the first and the last 12 steps of five schedules."""
    from .config import TrainConfig
    from .schedule import lr_scale

    cases = [(10, 0, 0.5), (10, 4, 0.5), (12, 3, 0.0), (40_000, 0, 0.125), (7, 7, 1.0)]
    for steps, warmup, decay in cases:
        cfg = TrainConfig(steps=steps, warmup_steps=warmup, lr_decay=decay)
        for step in sorted({*range(min(steps, 12)), *range(max(0, steps - 12), steps)}):
            _agree(f"check_lr_scale, step {step} of {steps}, warm-up {warmup}, lr_decay {decay}",
                   float(fn(step, steps, warmup, decay)), lr_scale(cfg, step), atol=1e-12)
    print(f"check_lr_scale: passed ({len(cases)} schedules)")

# ----------------------------------------------------------------------------------------------
# Exercise checks for notebooks 01-05: call one on your own code. It raises AssertionError saying
# what is wrong, or prints one line when your answer passes. The checks draw their test inputs
# from their own seeded generator, so calling one does not change a notebook's random stream.
# ----------------------------------------------------------------------------------------------

def check_every_parameter_gets_gradient(model: torch.nn.Module, loss: torch.Tensor) -> int:
    """Backpropagate `loss` (a scalar computed with `model`) and assert every parameter gets a gradient.

    A branch that is computed and then dropped, or a weight used through `.detach()`, gets no gradient
    (or an all-zero one) and would never train; shapes and outputs look fine. Old gradients are cleared
    first. Raises AssertionError naming every parameter without a gradient; returns the tensor count.
    """
    if loss.ndim != 0:
        raise ValueError(f"loss must be a scalar, got shape {tuple(loss.shape)}; reduce it, e.g. .square().mean()")
    model.zero_grad(set_to_none=True)
    loss.backward()
    named = list(model.named_parameters())
    missing = [name for name, p in named if p.grad is None or not bool(p.grad.ne(0).any())]
    if missing:
        raise AssertionError(f"{len(missing)} of {len(named)} parameter tensors get no gradient: {', '.join(missing)}")
    print(f"check_every_parameter_gets_gradient: passed (all {len(named)} parameter tensors get a gradient)")
    return len(named)


def check_overlapping_unpatchify(fn) -> None:
    """Notebook 01: `fn(windows, patch_size, image_size) -> images` must invert `overlapping_patches`.

    windows (B, L, C*2P*2P) as `vitgan_lite.patches.overlapping_patches` returns them, (c p1 p2) inside;
    images (B, C, H, W) with H = W = image_size. Tried on 3 sizes with 1 to 3 channels.
    """
    from .patches import overlapping_patches

    gen = torch.Generator().manual_seed(0)
    for batch, channels, size, p in ((2, 3, 32, 4), (1, 1, 16, 2), (3, 2, 24, 8)):
        x = torch.randn(batch, channels, size, size, generator=gen)
        _agree(f"image {size}x{size}, P={p}, C={channels}", fn(overlapping_patches(x, p), p, size), x, atol=1e-5, rtol=1e-5)
    print("check_overlapping_unpatchify: passed (3 image and patch sizes, 1 to 3 channels)")


def check_adain(fn) -> None:
    """Notebook 02: `fn(h, gamma, beta)` must be AdaIN on tokens: every channel normalised over the tokens.

    h (B, L, D), gamma and beta (B, D) -> (B, L, D): gamma * (h - mean_L h) / sqrt(var_L h + 1e-5) + beta,
    mean and (biased) variance taken over the L tokens of each sample and channel.
    """
    gen = torch.Generator().manual_seed(0)
    for batch, tokens, dim in ((2, 64, 48), (3, 16, 5)):
        h = 3 * torch.randn(batch, tokens, dim, generator=gen) + 1
        gamma, beta = torch.randn(batch, dim, generator=gen), torch.randn(batch, dim, generator=gen)
        normed = torch.nn.functional.instance_norm(h.transpose(1, 2), eps=1e-5).transpose(1, 2)  # (B, L, D)
        _agree(f"h {tuple(h.shape)}", fn(h, gamma, beta), gamma[:, None] * normed + beta[:, None], atol=1e-4, rtol=1e-5)
    print("check_adain: passed (2 shapes)")


def check_stripe_period(fn) -> None:
    """Notebook 03: `fn(B, side) -> periods` must give the stripe period of every Fourier channel, in pixels.

    B (D, 2): the frequencies of sin(c @ B^T + b). periods (D,): how many pixels of a side x side
    `coordinate_grid` (pixel centres 2 / side apart in [-1, 1]) one period of channel j spans.
    """
    gen = torch.Generator().manual_seed(0)
    for dim, side, scale in ((16, 32, 3.0), (8, 4, 1.0), (5, 128, 10.0)):
        B = scale * torch.randn(dim, 2, generator=gen)
        want = (2 * math.pi / B.norm(dim=1)) / (2 / side)               # coordinate units / pixel size
        _agree(f"B {tuple(B.shape)}, side {side}", fn(B.clone(), side), want, atol=1e-4, rtol=1e-4)
    print("check_stripe_period: passed (3 grids and frequency scales)")


def check_lrelu_gain(fn) -> None:
    """Notebook 04: `fn(slope)` must return the gain g with E[(g * leaky_relu(x, slope))^2] = 1 for x ~ N(0, 1).

    Accepts a closed form or a Monte Carlo estimate (relative tolerance 0.5 %).
    """
    for slope in (0.0, 0.2, 0.5, 1.0):
        want = math.sqrt(2.0 / (1.0 + slope ** 2))
        got = float(fn(slope))
        if not math.isclose(got, want, rel_tol=5e-3):
            raise AssertionError(f"slope {slope}: gain {got:.4f}, expected {want:.4f}")
    print("check_lrelu_gain: passed (slopes 0, 0.2, 0.5, 1)")


def check_spectral_norm_step(fn) -> None:
    """Notebook 05: `fn(W, u) -> (W_bar, u_new)` must be one training-mode step of plain spectral normalization.

    W (out, in), u (out,) a unit vector. One power step from u gives u_new; then v = normalize(W^T u_new),
    sigma = u_new^T W v and W_bar = W / sigma. Compared with `vitgan_lite.spectral.spectral_norm`'s own step.
    """
    from .spectral import SpectralNormParametrization

    gen = torch.Generator().manual_seed(0)
    for n_out, n_in in ((128, 64), (64, 192), (10, 10)):
        W = torch.randn(n_out, n_in, generator=gen) / math.sqrt(n_in)
        u = torch.nn.functional.normalize(torch.randn(n_out, generator=gen), dim=0)
        reference = SpectralNormParametrization(W, rescale=False, init_iterations=0).train()
        reference.u.copy_(u)
        with torch.no_grad():
            want_w = reference(W)
        got_w, got_u = fn(W.clone(), u.clone())
        _agree(f"W_bar for W {n_out}x{n_in}", got_w, want_w, atol=1e-5, rtol=1e-5)
        _agree(f"u_new for W {n_out}x{n_in}", got_u, reference.u, atol=1e-5, rtol=1e-5)
    print("check_spectral_norm_step: passed (3 weight shapes)")
