"""Multi-head self-attention: dot-product (the generator) and L2 (the discriminator).

Dot product (Vaswani et al.): logits_ij = q_i . k_j / sqrt(d_head).
L2 (Kim et al. 2021): logits_ij = -||q_i - k_j||^2 / sqrt(d_head) with W_q = W_k tied. Unlike the
dot product, L2 attention is Lipschitz -- but only with tied weights -- which keeps the ViT
discriminator's gradients bounded. (The paper prints d(q, k) without sign or square; the cited
form is the negative squared distance: the nearest key gets the most weight.)

Both modules have a reference path (logits built explicitly; used when `return_attention=True`)
and a fused path through `F.scaled_dot_product_attention`. For L2 the fused path uses
    -||q - k||^2 = 2 q.k - ||q||^2 - ||k||^2,
where ||q_i||^2 is constant along a softmax row and cancels; so q' = [q, 1], k' = [2k, -||k||^2]
gives softmax(q'.k' / sqrt(d)) = softmax(-||q - k||^2 / sqrt(d)) exactly.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

Linear = Callable[[int, int], nn.Module]


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
        if return_attention or not self.fused:
            attn = torch.softmax(self.logits(q, k), dim=-1)      # (B, heads, N, N), rows sum to 1
            out = attn @ v
        else:
            out = self.fused_attention(q, k, v)
        y = self.proj(rearrange(out, "b h n d -> b n (h d)"))   # (B, N, dim)
        return (y, attn) if return_attention else y


class MultiHeadAttention(_Attention):
    """Dot-product attention. x (B, N, dim) -> (B, N, dim) [, attn (B, heads, N, N)]."""

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
    """L2 attention with tied W_q = W_k. x (B, N, dim) -> (B, N, dim) [, attn (B, heads, N, N)]."""

    def __init__(self, dim: int, heads: int, *, linear: Linear = nn.Linear, fused: bool = True):
        super().__init__(dim, heads, linear, fused)
        self.to_qk = linear(dim, dim)   # one projection for queries and keys (tied)
        self.to_v = linear(dim, dim)

    def qkv(self, x):
        qk = self.split(self.to_qk(x))
        return qk, qk, self.split(self.to_v(x))

    def logits(self, q, k):
        sq_dist = q.pow(2).sum(-1, keepdim=True) + k.pow(2).sum(-1).unsqueeze(-2) - 2 * q @ k.transpose(-2, -1)
        return -sq_dist * self.scale                              # (B, heads, N, N)

    def fused_attention(self, q, k, v):
        q_aug = torch.cat([q, torch.ones_like(q[..., :1])], dim=-1)            # (B, h, N, d+1)
        k_aug = torch.cat([2 * k, -k.pow(2).sum(-1, keepdim=True)], dim=-1)   # (B, h, N, d+1)
        return F.scaled_dot_product_attention(q_aug, k_aug, v, scale=self.scale)
