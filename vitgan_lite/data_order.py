"""The order in which a run visits its data: deterministic, so a resumed run sees the same batches.

Epoch e visits the dataset in a permutation seeded by (seed, e); the position inside the epoch is
all a checkpoint needs to continue with exactly the next batch. Under torchrun every process
walks the same global order and takes its own disjoint slice of each global batch (rank r of N:
images [r B/N, (r+1) B/N) of the batch), so together they see what one process would.

Horizontal flips of the real data (TrainConfig.hflip; official: the `cifar10_hflip` dataset) are
part of the order too: in epoch e each image is mirrored with probability 1/2, a coin drawn from
the same (seed, e) generator as the permutation. So flips take no draw from the global RNG (turning
them on changes no other random number of a run), need nothing in a checkpoint, and are the same
under any number of processes.
"""
from __future__ import annotations

import torch

from .data import TensorImages, to_signed


class DataOrder:
    """Batches of indices: epoch e visits the data in a permutation seeded by (seed, e), and mirrors
    each image or not by a coin from the same generator.

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
        self._cache = (None, None, None)

    def _draws(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Epoch e's permutation (n,) and mirror coins (n,) bool, from one generator seeded by (seed, e)."""
        if self._cache[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=gen)
            mirrored = torch.rand(self.n, generator=gen) < 0.5            # drawn after: order unchanged
            self._cache = (epoch, order, mirrored)
        return self._cache[1], self._cache[2]

    def permutation(self, epoch: int) -> torch.Tensor:
        return self._draws(epoch)[0]

    def next_indices(self) -> torch.Tensor:
        if self.position + self.batch_size > self.n:
            self.epoch, self.position = self.epoch + 1, 0
        first = self.position + self.start
        indices = self.permutation(self.epoch)[first:first + self.share]   # (batch_size / world_size,)
        self.position += self.batch_size
        return indices

    def flips(self, indices: torch.Tensor) -> torch.Tensor:
        """(B,) bool: which images of the batch `next_indices` just returned are mirrored (p = 1/2 each)."""
        return self._draws(self.epoch)[1][indices]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def load_batch(dataset, indices: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [-1, 1]; in-memory datasets are indexed in one go."""
    if isinstance(dataset, TensorImages):
        return to_signed(dataset.images[indices])
    return torch.stack([dataset[i] for i in indices.tolist()])


def mirror(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): image b mirrored left-right where flips[b] (B,) is True."""
    flips = flips.to(images.device, non_blocking=True).view(-1, 1, 1, 1)   # (B, 1, 1, 1); GPU: no host wait
    return torch.where(flips, images.flip(-1), images)
