"""Benchmarks: each fast path against its naive reference, in the same run (CPU by default).

    python scripts/benchmark.py [--device cpu] [--threads 2]

Prints medians (torch.utils.benchmark) and the ratio reference / fast. Timing lives here, not in tests.
"""
from __future__ import annotations

import argparse

import torch
from torch.utils import benchmark

from vitgan_lite import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from vitgan_lite.attention import L2MultiHeadAttention
from vitgan_lite.modulation import ModulatedLinear


def median_ms(fn, threads: int) -> float:
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=2.0).median * 1e3


def modulation_cases(device):
    """The decoder's first layer at paper size: 32 images x 64 patches, 16 pixels, 384 -> 384."""
    layer = ModulatedLinear(384, 384, style_dim=384).to(device)
    x = torch.randn(32 * 64, 16, 384, device=device)       # (B*N, P*P, D): one style per patch
    style = torch.randn(32 * 64, 384, device=device)
    fast = lambda: layer(x, style)
    per_token = lambda: torch.einsum("bni,boi->bno", x, layer.per_sample_weight(style)) + layer.bias
    return "modulated linear, per-token weights vs fused", per_token, fast


def attention_cases(device):
    """L2 attention at paper size: batch 32, 65 tokens, D = 384, 6 heads."""
    attn = L2MultiHeadAttention(384, 6).to(device)
    x = torch.randn(32, 65, 384, device=device)
    reference = lambda: attn(x, return_attention=True)[0]
    fast = lambda: attn(x)
    return "L2 attention, explicit logits vs fused SDPA", reference, fast


def model_cases(device):
    """One forward+backward of G and D at paper size, batch 32 (for scale, no reference)."""
    G = Generator(GeneratorConfig.cifar10()).to(device)
    D = Discriminator(DiscriminatorConfig.cifar10()).to(device)
    z = torch.randn(32, 384, device=device)

    def step():
        D(G(z)).sum().backward()
    return "G+D forward+backward, paper config, batch 32", None, step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} threads")
    for case in (modulation_cases, attention_cases, model_cases):
        name, reference, fast = case(args.device)
        with torch.no_grad() if reference is not None else torch.enable_grad():
            fast_ms = median_ms(fast, args.threads)
            if reference is None:
                print(f"{name}: {fast_ms:.1f} ms (median)")
                continue
            ref_ms = median_ms(reference, args.threads)
        print(f"{name}: reference {ref_ms:.1f} ms, fast {fast_ms:.1f} ms (medians), {ref_ms / fast_ms:.1f}x")


if __name__ == "__main__":
    main()
