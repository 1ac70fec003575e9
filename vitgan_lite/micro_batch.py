"""A step's batch in slices, gradients summed: the same update in a fraction of the memory.

`TrainConfig.micro_batches = n` runs the D step and the G step each on n slices of the batch, one
slice after the other with its own backward, and steps the optimizer once. Every loss of the step is
a mean over the batch of per-image terms (softplus of a logit, bCR's squared differences, R1's
gradient norms), so for slices of b_i images with losses L_i (the same loss on slice i)

    L = sum_i (b_i / B) L_i,        grad L = sum_i (b_i / B) grad L_i:

the weighted backward passes add up to the whole batch's gradient, while only one slice's
activations are held at a time (the D step sees 4B images: with n = 2 its peak halves).
What differs from one pass: DiffAugment and bCR draw their random numbers slice by slice (the same
distribution, other numbers). What does not: the spectral-norm power iteration is refined by the
first slice only (the later ones see the same sigma), and under torchrun DDP averages the gradients
over the processes once, in the last slice's backward.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch


def slices(batch: int, n: int) -> list[slice]:
    """range(batch) in n consecutive slices whose sizes differ by at most one (the first are longer)."""
    if not 1 <= n <= batch:
        raise ValueError(f"cannot cut a batch of {batch} images into {n} slices; use 1 <= micro_batches <= "
                         f"the batch size per process")
    sizes = [batch // n + (i < batch % n) for i in range(n)]
    starts = [sum(sizes[:i]) for i in range(n)]
    return [slice(start, start + size) for start, size in zip(starts, sizes)]


def accumulate(losses_of: Callable[[slice], dict[str, torch.Tensor]], batch: int, n: int,
               backward: Callable[[torch.Tensor], None],
               later_slices: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
               before_last: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
               ) -> dict[str, torch.Tensor]:
    """Backward of the batch's loss, slice by slice. Returns the batch's terms (detached 0-dim tensors).

    losses_of(rows) -> the terms (0-dim tensors, means over the images `rows`) with the total to
    differentiate under "loss"; backward(loss) adds loss's gradients; `later_slices` is entered for
    every slice but the first (e.g. power iteration frozen), `before_last` for every slice but the
    last (e.g. DDP's no_sync). With n = 1: one call, weight 1, exactly the unsliced step.
    """
    parts = slices(batch, n)
    total: dict[str, torch.Tensor] = {}
    for i, rows in enumerate(parts):
        weight = (rows.stop - rows.start) / batch
        later = later_slices() if i > 0 else contextlib.nullcontext()
        sync = before_last() if i < len(parts) - 1 else contextlib.nullcontext()
        with later, sync:
            terms = losses_of(rows)
            backward(terms["loss"] * weight)
        for key, value in terms.items():
            total[key] = total[key] + weight * value.detach() if key in total else weight * value.detach()
    return total
