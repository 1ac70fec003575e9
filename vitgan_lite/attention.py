"""Multi-head self-attention: dot-product (the generator) and L2 (the discriminator).

Dot product (Vaswani et al.): logits_ij = q_i . k_j / sqrt(d_head).
L2 (Kim et al. 2021): logits_ij = -||q_i - k_j||^2 / sqrt(d_head) with W_q = W_k tied. Kim et al.
prove L2 attention Lipschitz when the value map is tied to W_q as well (A = W_q W_q^T / sqrt(D/H));
ViTGAN takes the tied distance logits but keeps a separate W_v, which that proof does not cover:
what it buys the discriminator is measured (notebooks 06 and 11), not proved. (The paper prints
d(q, k) without sign or square; the cited form is the negative squared distance: the nearest key
gets the most weight.)

Both modules have a reference path (logits built explicitly; used when `return_attention=True`)
and a fused path through `F.scaled_dot_product_attention` (SDPA). For L2 the fused path uses
    -||q - k||^2 = 2 q.k - ||q||^2 - ||k||^2,
where ||q_i||^2 is constant along a softmax row and cancels; so q' = [q, 1], k' = [2k, -||k||^2]
gives softmax(q'.k' / sqrt(d)) = softmax(-||q - k||^2 / sqrt(d)) exactly.
q' and k' have d+1 columns and v has d, but SDPA's fused kernels (flash and memory-efficient on
GPU, flash on CPU) need one head dim for q, k and v -- CUDA's flash a multiple of 8 -- and SDPA
silently falls back to its plain math kernel otherwise. So q', k' and v are zero-padded to d+1
rounded up to a multiple of 8: zero columns add nothing to q'.k', the zero columns of v give zero
outputs, which are sliced off. The scale stays 1/sqrt(d) of the unpadded d, passed explicitly.
`sdpa_kernel_name` tells which kernel SDPA really runs for given inputs.

One exception, measured (benchmarks/RESULTS.md): on the CPU under bfloat16 autocast, PyTorch's CPU
flash kernel -- its backward above all -- is about twice as slow as the explicit logits at these
sizes (65 tokens), so the fused path hands over to the reference path there (`flash_is_slow`).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch.nn.attention import SDPBackend, sdpa_kernel

Linear = Callable[[int, int], nn.Module]

_SDPA_ENABLED = {  # backend -> is it enabled right now (sdpa_kernel(...) switches them)
    SDPBackend.FLASH_ATTENTION: torch.backends.cuda.flash_sdp_enabled,
    SDPBackend.EFFICIENT_ATTENTION: torch.backends.cuda.mem_efficient_sdp_enabled,
    SDPBackend.CUDNN_ATTENTION: torch.backends.cuda.cudnn_sdp_enabled,
    SDPBackend.MATH: torch.backends.cuda.math_sdp_enabled,
}


def _enabled_sdpa_backends() -> list[SDPBackend]:
    """The SDPA backends enabled now, in the order PyTorch's dispatcher tries them.

    Only MATH inside `sdpa_kernel(SDPBackend.MATH)`. The order is FLASH, EFFICIENT, MATH, CUDNN unless
    `sdpa_kernel(..., set_priority=True)` changed it; torch < 2.6 cannot report it (nor change it).
    """
    order = getattr(torch._C, "_get_sdp_priority_order", lambda: [1, 2, 0, 3])()
    return [b for b in map(SDPBackend, order) if b in _SDPA_ENABLED and _SDPA_ENABLED[b]()]


def sdpa_kernel_name(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> str:
    """Which backend `F.scaled_dot_product_attention(q, k, v, scale=scale)` runs under the current settings.

    q, k (B, heads, N, d_qk), v (B, heads, N, d_v): pass them as the real call would (dtype, device,
    requires_grad). Returns the `SDPBackend` name: "FLASH_ATTENTION", "EFFICIENT_ATTENTION",
    "CUDNN_ATTENTION" or "MATH" (the unfused reference kernel). On CPU "FLASH_ATTENTION" is
    `_scaled_dot_product_flash_attention_for_cpu` and the only alternative is "MATH".
    PyTorch runs the first enabled backend, in its priority order, that accepts the inputs; this tries
    each alone in that order and returns the first that runs. It runs the attention up to four
    times: for benchmarks and tests, not for a training step. For the fused L2 path:
        q, k, v = attn.qkv(x)
        sdpa_kernel_name(*attn.l2_sdpa_inputs(q, k, v), scale=attn.scale)
    """
    for backend in _enabled_sdpa_backends():
        try:
            with sdpa_kernel(backend), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a backend that declines warns why
                F.scaled_dot_product_attention(q, k, v, scale=scale)
        except RuntimeError:  # "No available kernel": this backend declines these inputs
            continue
        return backend.name
    raise RuntimeError("no enabled SDPA backend accepts these inputs")


def flash_is_slow(x: torch.Tensor) -> bool:
    """True on the CPU under bfloat16 autocast, where the explicit logits beat SDPA's flash kernel."""
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)


class _Attention(nn.Module):
    """Shared frame: heads split/merge, output projection, reference vs fused dispatch."""

    def __init__(self, dim: int, heads: int, linear: Linear, fused: bool):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.heads, self.head_dim, self.fused = heads, dim // heads, fused
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.proj = linear(dim, dim)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        return rearrange(t, "b n (h d) -> b h n d", h=self.heads)  # (B, heads, N, d_head)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        q, k, v = self.qkv(x)                                   # each (B, heads, N, d_head)
        if return_attention or not self.fused or flash_is_slow(x):
            attn = torch.softmax(self.logits(q, k), dim=-1)      # (B, heads, N, N), rows sum to 1
            out = attn @ v
        else:
            out = self.fused_attention(q, k, v)
        y = self.proj(rearrange(out, "b h n d -> b n (h d)"))   # (B, N, dim)
        return (y, attn) if return_attention else y


class MultiHeadAttention(_Attention):
    """Dot-product attention. x (B, N, dim) -> (B, N, dim) [, attn (B, heads, N, N)].

    The key third of `to_qkv`'s bias adds q_i . b_k to a whole softmax row, which cancels: its true
    gradient is zero. It stays, so that saved generators (dot attention) keep loading.
    """

    def __init__(self, dim: int, heads: int, *, linear: Linear = nn.Linear, fused: bool = True):
        super().__init__(dim, heads, linear, fused)
        self.to_qkv = linear(dim, 3 * dim)

    def qkv(self, x):
        return map(self.split, self.to_qkv(x).chunk(3, dim=-1))

    def logits(self, q, k):
        return q @ k.transpose(-2, -1) * self.scale              # (B, heads, N, N)

    def fused_attention(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, scale=self.scale)


class L2MultiHeadAttention(_Attention):
    """L2 attention with tied W_q = W_k. x (B, N, dim) -> (B, N, dim) [, attn (B, heads, N, N)].

    The tied projection has no bias (as in the official code): q_i - k_j = W(x_i - x_j), a shared
    bias cancels in the difference, so its true gradient is zero and it would never learn.
    """

    def __init__(self, dim: int, heads: int, *, linear: Linear = nn.Linear, fused: bool = True):
        super().__init__(dim, heads, linear, fused)
        self.to_qk = linear(dim, dim, bias=False)   # one projection for queries and keys (tied), no bias
        self.to_v = linear(dim, dim)

    def qkv(self, x):
        qk = self.split(self.to_qk(x))
        return qk, qk, self.split(self.to_v(x))

    def logits(self, q, k):
        sq_dist = q.pow(2).sum(-1, keepdim=True) + k.pow(2).sum(-1).unsqueeze(-2) - 2 * q @ k.transpose(-2, -1)
        return -sq_dist * self.scale                              # (B, heads, N, N)

    @staticmethod
    def l2_sdpa_inputs(q, k, v):
        """The (q', k', v') that the fused path hands to SDPA, each (B, heads, N, d_pad).

        q, k, v (B, heads, N, d) -> q' = [q, 1, 0...], k' = [2k, -||k||^2, 0...], v' = [v, 0...],
        d_pad = d+1 rounded up to a multiple of 8, so SDPA's fused kernels accept them. Then
        `F.scaled_dot_product_attention(q', k', v', scale=1/sqrt(d))[..., :d]` is the L2 attention.
        """
        d = q.shape[-1]
        pad = 8 * math.ceil((d + 1) / 8) - d                             # columns appended, >= 1
        zeros = q.new_zeros(()).expand(*q.shape[:-1], pad - 1)           # (B, h, N, pad-1), no copy
        q_pad = torch.cat([q, torch.ones_like(q[..., :1]), zeros], dim=-1)           # (B, h, N, d_pad)
        k_pad = torch.cat([2 * k, -k.pow(2).sum(-1, keepdim=True), zeros], dim=-1)  # (B, h, N, d_pad)
        return q_pad, k_pad, F.pad(v, (0, pad))                                       # (B, h, N, d_pad)

    def fused_attention(self, q, k, v):
        out = F.scaled_dot_product_attention(*self.l2_sdpa_inputs(q, k, v), scale=self.scale)
        return out[..., :v.shape[-1]]                                    # (B, h, N, d): padding dropped
