"""Numeric precision of a training run: fp32, bf16 or fp16 autocast, and fp16's gradient scaler.

    fp32  plain float32 (exact resume bit for bit; the CPU default)
    bf16  bfloat16 autocast: same exponent range as float32, so no loss scaling is needed; fast on
          GPUs with compute capability >= 8 (A100, H100, RTX 30xx+) and on CPUs with AVX512-BF16/AMX
    fp16  float16 autocast with a gradient scaler: the fast path on GPUs without bf16 tensor cores
          (Colab's T4, V100). float16 gradients underflow below 6e-8, so each loss is multiplied by
          a scale before backward and the gradients divided by it before the step; a step whose
          gradients overflowed is skipped and the scale halved (torch.amp.GradScaler)
    auto  bf16 on a CUDA GPU that supports it, fp16 on an older one, fp32 on the CPU

Each network gets its own scaler (D's and G's losses differ in size); their states are saved in
checkpoints, so an fp16 run resumes with the scales it had. Losses are always computed in float32.
"""
from __future__ import annotations

import contextlib

import torch

from .config import PRECISIONS
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> the fastest safe precision on `device`; other names are returned checked."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name != "auto":
        return name
    if device.type != "cuda":
        return "fp32"
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


class Precision:
    """Autocast and (for fp16) loss scaling for one run: `backward` (maybe several, micro_batch.py),
    then `step`."""

    def __init__(self, name: str, device: torch.device):
        self.device_type = torch.device(device).type
        self.name = resolve_precision(name, torch.device(device))
        self.dtype = DTYPES[self.name]
        fp16 = self.name == "fp16"
        self.scalers = {net: torch.amp.GradScaler(self.device_type, enabled=fp16) for net in ("D", "G")}

    def autocast(self):
        """Mixed precision for the forward passes (a no-op in fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, net: str, loss: torch.Tensor) -> None:
        """Adds the gradients of `loss` (scaled in fp16) to those of `net`'s parameters."""
        self.scalers[net].scale(loss).backward()

    def step(self, net: str, optimizer: torch.optim.Optimizer) -> None:
        """One step of `optimizer` with the gradients `backward` added (unscaled, and skipped on
        overflow, in fp16)."""
        scaler = self.scalers[net]
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict:
        return {net: scaler.state_dict() for net, scaler in self.scalers.items()}

    def load_state_dict(self, state: dict) -> None:
        for net, scaler_state in state.items():
            if scaler_state:                       # an empty dict: the scaler was disabled
                self.scalers[net].load_state_dict(scaler_state)
