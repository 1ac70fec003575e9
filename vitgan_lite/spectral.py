"""Spectral normalization and ViTGAN's improved spectral normalization (ISN).

Plain SN (Miyato et al. 2018):  W_bar = W / sigma(W).
ISN:                            W_bar = sigma(W_init) * W / sigma(W).
Plain SN forces every layer of a Transformer discriminator to have spectral norm 1, which shrinks
attention logits and slows learning; ISN keeps each layer's Lipschitz bound at the value it had
at initialisation.

sigma(W) is estimated by power iteration: the left singular vector u is kept in a buffer and
refined by one step per forward pass in training mode (no gradient flows through u or v).
`power_iteration_frozen(model)` skips that refinement, so a trainer that calls D twice per step
(D step, then G step) refines u once per step. sigma is always computed in float32 or wider, also
under bf16/fp16 autocast: a 16-bit sigma would scale every weight by an error of up to 0.4 %.
sigma(W_init) is measured once, at construction, and kept in a buffer so that it survives
`state_dict` save/load and deep copies (a numpy attribute would not).

Both are torch parametrizations: after `improved_spectral_norm(layer)`, `layer.weight` is the
normalised weight and `layer.parametrizations.weight.original` the raw one.

Equalized-lr layers (`EqualLinear`, the generator's) apply gain * weight at run time. The
normalisation is meant for that effective weight (ours), and the parametrization wraps the stored
weight with `gain` = the layer's weight_gain, which keeps equalized lr intact: Adam still steps the
N(0, 1) weight it stores. W / sigma(W) does not change when W is scaled, so for ISN the gain makes
no difference (the effective weight is sigma(gain W_init) * W / sigma(W) either way; the official
code wraps the stored weight). Plain SN returns W / (gain sigma(W)), so that the effective weight has
spectral norm 1; wrapping the stored weight would leave it at gain = 1/sqrt(fan_in).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

from .equalized import EqualLinear


class SpectralNormParametrization(nn.Module):
    """W (out, ...) -> scale * W / sigma(W), scale = sigma(W_init) if `rescale` else 1 / gain.

    gain: the factor the layer multiplies the returned weight by (EqualLinear; 1 for nn.Linear).
    """

    def __init__(self, weight: torch.Tensor, rescale: bool = True, n_power_iterations: int = 1,
                 eps: float = 1e-12, init_iterations: int = 50, gain: float = 1.0):
        super().__init__()
        matrix = weight.detach().reshape(weight.shape[0], -1)            # (out, in)
        u = F.normalize(torch.randn(matrix.shape[0], dtype=matrix.dtype, device=matrix.device), dim=0, eps=eps)
        self.register_buffer("u", u)
        self.register_buffer("sigma_init", torch.linalg.matrix_norm(matrix, ord=2))
        self.rescale, self.n_power_iterations, self.eps, self.gain = rescale, n_power_iterations, eps, gain
        self.frozen = False                                          # see power_iteration_frozen
        self._power_iteration(matrix, init_iterations)

    @torch.no_grad()
    def _power_iteration(self, matrix: torch.Tensor, iterations: int) -> None:
        u = self.u.to(matrix.dtype)
        for _ in range(iterations):
            v = F.normalize(matrix.t() @ u, dim=0, eps=self.eps)     # (in,)
            u = F.normalize(matrix @ v, dim=0, eps=self.eps)         # (out,)
        self.u.copy_(u)

    def sigma(self, weight: torch.Tensor) -> torch.Tensor:
        """Power-iteration estimate of the largest singular value (differentiable in W).

        In float32 for 16-bit weights and under autocast; float64 weights keep float64 (gradient checks).
        """
        matrix = weight.reshape(weight.shape[0], -1)
        matrix = matrix.to(torch.promote_types(matrix.dtype, torch.float32))
        with torch.autocast(matrix.device.type, enabled=False):
            if self.training and not self.frozen:
                self._power_iteration(matrix.detach(), self.n_power_iterations)
            u = self.u.to(matrix.dtype, copy=True)                      # a copy: later in-place updates
            v = F.normalize(matrix.t().detach() @ u, dim=0, eps=self.eps)  # must not touch the graph
            return u @ matrix @ v

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        scale = self.sigma_init if self.rescale else 1.0 / self.gain
        return weight * (scale / self.sigma(weight))


def improved_spectral_norm(module: nn.Module, name: str = "weight", n_power_iterations: int = 1,
                           gain: float = 1.0) -> nn.Module:
    """ISN: `module.<name>` becomes sigma(W_init) * W / sigma(W). Returns the module."""
    weight = getattr(module, name)
    parametrize.register_parametrization(module, name, SpectralNormParametrization(
        weight, rescale=True, n_power_iterations=n_power_iterations, gain=gain))
    return module


def spectral_norm(module: nn.Module, name: str = "weight", n_power_iterations: int = 1,
                  gain: float = 1.0) -> nn.Module:
    """Plain SN (the ablation): `module.<name>` becomes W / (gain * sigma(W)). Returns the module."""
    weight = getattr(module, name)
    parametrize.register_parametrization(module, name, SpectralNormParametrization(
        weight, rescale=False, n_power_iterations=n_power_iterations, gain=gain))
    return module


@contextlib.contextmanager
def power_iteration_frozen(model: nn.Module):
    """Inside this block, forward passes of `model` use sigma from the current u without refining it.
    Nested blocks (the G step's slices, micro_batch.py) restore the state they found."""
    layers = [m for m in model.modules() if isinstance(m, SpectralNormParametrization)]
    previous = [layer.frozen for layer in layers]
    for layer in layers:
        layer.frozen = True
    try:
        yield
    finally:
        for layer, frozen in zip(layers, previous):
            layer.frozen = frozen


def apply_spectral_norm(model: nn.Module, kind: str) -> nn.Module:
    """Normalise the weight of every nn.Linear and EqualLinear in `model`: kind is "isn", "sn" or "none".

    An EqualLinear is normalised in its effective weight (gain = its weight_gain; see the module doc).
    """
    wrap = {"isn": improved_spectral_norm, "sn": spectral_norm}.get(kind)
    if kind != "none" and wrap is None:
        raise ValueError(f"unknown spectral norm kind {kind!r}; expected 'isn', 'sn' or 'none'")
    if wrap is not None:
        for layer in [m for m in model.modules() if isinstance(m, (nn.Linear, EqualLinear))]:
            wrap(layer, gain=layer.weight_gain if isinstance(layer, EqualLinear) else 1.0)
    return model
