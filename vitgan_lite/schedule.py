"""The learning-rate schedule: a multiple of TrainConfig.lr for every step.

Three phases, each optional:

    warm-up   steps 0 .. warmup_steps-1     lr grows linearly, (step + 1) / warmup_steps  (official code)
    constant  the steps between             lr                                            (the paper)
    decay     the last lr_decay * steps     lr falls linearly and reaches 0 at `steps`    (ours)

The decay is for a run with a fixed budget: at a constant lr G and D keep moving each other around,
and lowering the lr at the end lets the generator settle (results/lr_decay and the README's "Does it
learn on a CPU?" measure what it buys). It ends the run: a step at or past `steps` would have lr 0 or
below, so it is refused.
"""
from __future__ import annotations


def lr_scale(tcfg, step: int) -> float:
    """The multiple of tcfg.lr for step `step` (0-based: the step about to be taken)."""
    scale = min(1.0, (step + 1) / tcfg.warmup_steps) if tcfg.warmup_steps else 1.0
    if tcfg.lr_decay:
        if step >= tcfg.steps:
            raise ValueError(f"step {step} is past TrainConfig.steps = {tcfg.steps}, where lr_decay = "
                             f"{tcfg.lr_decay} has brought the lr to 0; raise steps (--steps) to train on")
        scale *= min(1.0, (tcfg.steps - step) / (tcfg.lr_decay * tcfg.steps))
    return scale
