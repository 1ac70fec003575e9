"""The order in which a run visits its data: deterministic, so a resumed run sees the same batches.

Epoch e visits the dataset in a permutation seeded by (seed, e); the position inside the epoch is
all a checkpoint needs to continue with exactly the next batch. Under torchrun every process
walks the same global order and takes its own disjoint slice of each global batch (rank r of N:
images [r B/N, (r+1) B/N) of the batch), so together they see what one process would.
"""
from __future__ import annotations

import torch

from .data import TensorImages, to_signed


class DataOrder:
    """Batches of indices: epoch e visits the data in a permutation seeded by (seed, e).

    The last incomplete batch of an epoch is dropped. `state_dict` is the position, so a resumed
    run continues with exactly the next batch. `batch_size` is the global batch; process `rank` of
    `world_size` gets its batch_size / world_size indices of it (the position is the same on all).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if n < batch_size:
            raise ValueError(f"dataset has {n} images, fewer than batch_size={batch_size}; "
                             "use a smaller --batch-size or more data")
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} (the global batch) is not divisible by the "
                             f"{world_size} processes; use a multiple of {world_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.share = batch_size // world_size
        self.start = rank * self.share                 # this process's slice of each global batch
        self.epoch, self.position = 0, 0
        self._cache = (None, None)

    def permutation(self, epoch: int) -> torch.Tensor:
        if self._cache[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._cache = (epoch, torch.randperm(self.n, generator=gen))
        return self._cache[1]

    def next_indices(self) -> torch.Tensor:
        if self.position + self.batch_size > self.n:
            self.epoch, self.position = self.epoch + 1, 0
        first = self.position + self.start
        indices = self.permutation(self.epoch)[first:first + self.share]   # (batch_size / world_size,)
        self.position += self.batch_size
        return indices

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def load_batch(dataset, indices: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [-1, 1]; in-memory datasets are indexed in one go."""
    if isinstance(dataset, TensorImages):
        return to_signed(dataset.images[indices])
    return torch.stack([dataset[i] for i in indices.tolist()])
