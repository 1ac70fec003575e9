"""Training on several GPUs (or CPU processes) with PyTorch's DistributedDataParallel (DDP).

    torchrun --nproc_per_node 4 -m vitgan_lite.train --preset cifar10 --data cifar10 --out runs/c10

torchrun starts N copies of the program and tells each its place in environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). `process_group` joins them: nccl between GPUs
(process r uses cuda:LOCAL_RANK), gloo between CPU processes. Without torchrun (or with one
process) every function here is a no-op and a run is exactly the single-process run.

What N processes change, and where:
  batch      --batch-size stays the global batch: process r takes slice r of every global batch of
             the one data order all processes share (`DataOrder(..., rank, world_size)`), so the
             N processes together see exactly the images one process would.
  gradients  `wrap`: G and D in DDP for their training passes; backward averages the gradients over
             the processes, so each takes the same Adam step and the weights stay identical. The G
             step freezes D (requires_grad False): DDP would wait for D gradients that never come,
             so the G step calls the plain D (the trainer's `d_forward_frozen`). R1 (a double
             backward: D's gradient w.r.t. the images, then backward through it) works under DDP:
             the tests check its gradients equal the per-process ones averaged by hand.
  buffers    broadcast_buffers=False. D's only buffers are the spectral-norm u (refined by a power
             iteration, a deterministic function of u and the weights, both identical on every
             process) and sigma_init (constant); G has none. Broadcasting them would cost a
             collective per forward and would hide a divergence instead of exposing it (the tests
             check they stay bit-identical). Even a GPU that rounded u differently could not split
             the weights (their gradients are averaged), and u would converge to the same vector.
  randomness `seed_step`: every process draws its own z and DiffAugment from a generator seeded by
             (seed, rank, step) at the start of each step. A resumed run re-derives the same seeds,
             so nothing per process has to be gathered into checkpoints (which keep one format),
             and ranks never share draws. Model init uses the common seed: identical everywhere.
             A single process keeps its one stream, saved in checkpoints as before.
  logs       `mean_over_ranks`: the losses are averaged over the processes when the loop reads them
             (log, sample and checkpoint steps only: one all-reduce there, none per step), so a log
             line is the global batch's loss and a NaN on one process stops all of them.
  stopping   `any_rank`: Ctrl-C (torchrun passes it on to every process) or the time budget stops all
             processes after the same step: a flag exchanged on the CPU (gloo) each step, which
             does not wait for the GPU. Process 0 saves as usual; torchrun itself then exits with
             status 1 and a SignalException traceback.
  files      the loop writes logs, grids and checkpoints on process 0 only (`is_main`). Every process
             keeps the EMA of G (identical everywhere, one cheap update) so `train_step` has no
             rank checks.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

# buffers are not broadcast at every forward (see above); newer torch (2.14) renamed the switch and
# warns on the old name
NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                  if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                  else {"broadcast_buffers": False})
_host_group = None           # gloo group for CPU flags when the default group is nccl (None: default)


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def is_main() -> bool:
    """Process 0: the one that prints and writes files."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun a CUDA device becomes this process's GPU, cuda:LOCAL_RANK."""
    if world_size() > 1 and device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join torchrun's processes for the block (nccl for CUDA, gloo for CPU); a no-op without torchrun."""
    global _host_group
    if not launched():
        yield
        return
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo")
    _host_group = dist.new_group(backend="gloo") if cuda else None
    try:
        yield
    except BaseException:
        _host_group = None      # no teardown: it would wait on processes that may be mid-collective
        raise
    # Every process is done before the group goes: process 1 tearing down while process 0 still saves the
    # last checkpoint aborted it once in CI ("terminate called without an active exception", SIGABRT).
    dist.barrier()
    _host_group = None
    dist.destroy_process_group()


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`module` in DDP (gradients averaged over the processes in backward); itself in one process."""
    if world_size() == 1:
        return module
    # D's head weight (1, dim) gets a gradient with strides (1, 1), not (dim, 1): the same layout for
    # a dimension of size 1, but DDP's check warns once per process. Nothing to fix, so not shown.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   **NO_BUFFER_SYNC)


def no_sync(module: torch.nn.Module):
    """A context in which DDP does not average gradients (backward passes before the last of a step,
    micro_batch.py); a no-op for a module that is not DDP's (one process), compiled or not."""
    module = getattr(module, "_orig_mod", module)                      # torch.compile's wrapper
    return module.no_sync() if isinstance(module, DistributedDataParallel) else contextlib.nullcontext()


def seed_step(seed: int, step: int) -> None:
    """Several processes: seed torch's generators (CPU and CUDA) for this process and step."""
    if world_size() > 1:
        state = np.random.SeedSequence([seed, rank(), step]).generate_state(1, np.uint64)[0]
        torch.manual_seed(int(state))


def mean_over_ranks(logs: dict) -> dict:
    """`logs` with its tensors (0-dim) averaged over the processes, in one all-reduce."""
    if world_size() == 1:
        return logs
    keys = [key for key, value in logs.items() if torch.is_tensor(value)]
    values = torch.stack([logs[key].float() for key in keys])        # (K,)
    dist.all_reduce(values)
    return {**logs, **dict(zip(keys, (values / world_size()).unbind()))}


def any_rank(flag: bool) -> bool:
    """True on every process if `flag` is true on any (a CPU all-reduce; `flag` itself in one process)."""
    if world_size() == 1:
        return bool(flag)
    value = torch.tensor([int(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_host_group)
    return bool(value.item())
