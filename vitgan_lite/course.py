"""Helpers for the course notebooks: compare a hand build with the package's version.

In the spirit of Karpathy's `cmp` (nn-zero-to-hero): a reader should see *how* close two results
are, not a literal "True" printed after an assert.

    cmp("patchify", mine, package_out)            # prints: patchify  exact: True  approx: True  max|Δ|: 0
    cmp("decoder", mine, ref, atol=1e-5)          # raises AssertionError if not allclose
"""
from __future__ import annotations

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
