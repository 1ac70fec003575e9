"""ViTGAN's training step and the `Trainer` that holds everything a run needs.

One `train_step`:
  data    the next real batch x of the data order, half of it mirrored if hflip (official).
  D step  real x and fake G(z) through DiffAugment A, plus the views bCR compares: one D pass on
          the concatenation, e.g. [A(x), A(G(z)), T(x), T(G(z))];
          L_D = softplus(D(A(G(z)))) + softplus(-D(A(x)))
              + bCR: lambda_real (D(U(x)) - D(V(x)))^2 + lambda_fake (the same for G(z)), the two
                views set by `bcr_mode` (bcr.py): "augmented" (default) U = A, V = T = `bcr_policy`;
                "official" U = A, V = a second DiffAugment draw A'; "paper" U = identity, V = T
              + optional R1 on the real images.
  G step  L_G = softplus(-D(A(G(z)))) with fresh z, gradients through the augmented D (D's
          weights frozen, its spectral-norm power iteration too: refined once per step).
  EMA     shadow weights of G, decay from a half-life in images, a copy of G until the start
          (ema.py: official schedule, or torch-ema's warm-up).

What touches the step from the side lives in its own module: precision (fp32/bf16/fp16 autocast
and loss scaling) in precision.py, the batch in slices for memory (`micro_batches`) in
micro_batch.py, several processes (torchrun, DDP, each process's share of the
batch and its own random draws) in distributed.py. The step returns its losses as tensors and never
waits for the device; the loop reads them (`read_logs`) only at steps that log or write files.

The data order (data_order.py) and the saved RNG states make a resumed run identical to an
uninterrupted one.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch_ema import ExponentialMovingAverage

from . import distributed
from .augment import diff_augment
from .bcr import balanced_consistency, bcr_views
from .checkpoint import rng_state, set_rng_state
from .config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from .data_order import DataOrder, load_batch, mirror
from .discriminator import Discriminator
from .ema import ema_decay_at, update_ema
from .generator import Generator
from .loop import run_training
from .losses import d_logistic_loss, g_logistic_loss, r1_penalty
from .micro_batch import accumulate
from .precision import Precision
from .schedule import lr_scale
from .spectral import power_iteration_frozen


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf (found when the losses are read: at log, sample and checkpoint steps)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available, else cpu; a name torch does not know, or cuda without CUDA, is a
    ValueError (torch's own error lists every device type it was built with)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use --device cpu or auto")
    return device


class Trainer:
    """G, D, EMA G, both Adam optimizers, the data order and the step count of one run.

    >>> trainer = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), TrainConfig.tiny(), data)
    >>> logs = trainer.train_step()          # {'loss_D': ..., 'loss_G': ..., ...}
    >>> history = trainer.run(200, out_dir="runs/demo")   # up to step 200 in total
    """

    def __init__(self, gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, tcfg: TrainConfig,
                 dataset, device: str | torch.device = "auto"):
        if (gcfg.image_size, gcfg.channels) != (dcfg.image_size, dcfg.channels):
            raise ValueError(f"generator makes {gcfg.channels}x{gcfg.image_size}x{gcfg.image_size} images "
                             f"but the discriminator expects {dcfg.channels}x{dcfg.image_size}x{dcfg.image_size}")
        self.gcfg, self.dcfg, self.tcfg = gcfg, dcfg, tcfg
        self.device = distributed.local_device(resolve_device(device))  # torchrun: cuda:LOCAL_RANK
        self.dataset = dataset.to(self.device) if hasattr(dataset, "to") else dataset  # in-memory: on device
        self.precision = Precision(tcfg.precision, self.device)
        torch.manual_seed(tcfg.seed)          # model init and every later draw (z, DiffAugment)
        np.random.seed(tcfg.seed)
        random.seed(tcfg.seed)
        self.G = Generator(gcfg).to(self.device)
        self.D = Discriminator(dcfg).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        # torch-ema holds the shadow weights; update_ema applies the decay of each step (ema.py)
        self.ema = ExponentialMovingAverage(self.G.parameters(), decay=tcfg.ema_decay, use_num_updates=False)
        assert len(self.ema.shadow_params) == len(list(self.G.parameters())) > 0, "EMA must track every G weight"
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=tcfg.lr, betas=tcfg.betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=tcfg.lr * tcfg.d_lr_mul, betas=tcfg.betas)
        self.data_order = DataOrder(len(dataset), tcfg.batch_size, tcfg.seed,   # torchrun: this rank's share
                                    distributed.rank(), distributed.world_size())
        self.step = 0
        self.meta: dict = {}                   # free-form run facts saved with checkpoints (e.g. the data)
        gen = torch.Generator().manual_seed(tcfg.seed)
        self.fixed_z = torch.randn(tcfg.n_samples, gcfg.latent_dim, generator=gen).to(self.device)
        compiled = torch.compile if tcfg.compile else (lambda module: module)
        self.g_forward = compiled(distributed.wrap(self.G, self.device))  # torchrun: DDP, gradients averaged
        self.d_forward = compiled(distributed.wrap(self.D, self.device))  # the D step's
        # the G step's: D frozen, so never DDP's (which would wait for D's gradients; distributed.py)
        self.d_forward_frozen = compiled(self.D) if distributed.world_size() > 1 else self.d_forward

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """DiffAugment A: (N, C, H, W) -> (N, C, H, W), each op with its probability."""
        return diff_augment(images, self.tcfg.augment, self.tcfg.augment_p)

    def real_batch(self) -> torch.Tensor:
        """The next real images (B, C, H, W) of the data order; with hflip, those it mirrors mirrored."""
        indices = self.data_order.next_indices()
        real = load_batch(self.dataset, indices).to(self.device)
        return mirror(real, self.data_order.flips(indices)) if self.tcfg.hflip else real

    def latents(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.gcfg.latent_dim, device=self.device)

    def set_lr(self) -> float:
        """Set this step's lr (`lr_scale` of TrainConfig.lr); D's is d_lr_mul times G's. Returns G's."""
        lr = self.tcfg.lr * lr_scale(self.tcfg, self.step)
        for opt, mul in ((self.opt_G, 1.0), (self.opt_D, self.tcfg.d_lr_mul)):
            for group in opt.param_groups:
                group["lr"] = lr * mul
        return lr

    def discriminator_losses(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """real, fake (B, C, H, W) -> L_D ("loss"), its terms (scalars) and mean logits, from one D pass."""
        cfg = self.tcfg
        r1 = cfg.r1_gamma > 0
        if r1:
            real = real.detach().requires_grad_(True)
        images = torch.cat([real, fake])                                  # (2B, C, H, W)
        views = [self.augment(images)]                                    # A(x), A(G(z))
        if cfg.bcr:
            views += bcr_views(images, cfg.bcr_mode, self.augment, cfg.bcr_policy)  # e.g. T(x), T(G(z))
        # R1 differentiates D's gradient again; fused attention kernels have no double backward
        kernels = sdpa_kernel(SDPBackend.MATH) if r1 else contextlib.nullcontext()
        with self.precision.autocast(), kernels:
            logits = self.d_forward(torch.cat(views)).float()             # (2B * len(views),)
        adversarial, *extra = logits.chunk(len(views))                    # each (2B,): real, then fake
        real_logits, fake_logits = adversarial.chunk(2)                   # each (B,)
        terms = {"adv": d_logistic_loss(real_logits, fake_logits)}
        if cfg.bcr:
            terms["bcr"] = balanced_consistency(adversarial, extra, cfg.bcr_mode, cfg.lambda_real, cfg.lambda_fake)
        if r1:
            terms["r1"] = r1_penalty(real_logits, real, cfg.r1_gamma)
        return {"loss": sum(terms.values()), **terms,
                "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}

    def train_step(self) -> dict:
        """One D step then one G step. Returns the step, lr and the losses as 0-dim tensors (no sync)."""
        lr = self.set_lr()
        distributed.seed_step(self.tcfg.seed, self.step)                  # torchrun: this rank's draws
        real = self.real_batch()                                          # (B, C, H, W)
        batch = real.shape[0]

        with torch.no_grad(), self.precision.autocast():
            fake = self.g_forward(self.latents(batch)).float()            # (B, C, H, W)
        terms = self.in_slices("D", batch, lambda rows: self.discriminator_losses(real[rows], fake[rows]))

        self.D.requires_grad_(False)                                      # G step: no D gradients
        z = self.latents(batch)                                           # (B, latent_dim)
        with power_iteration_frozen(self.D):
            loss_g = self.in_slices("G", batch, lambda rows: {"loss": self.generator_loss(z[rows])})["loss"]
        self.D.requires_grad_(True)
        update_ema(self.ema.shadow_params, self.G.parameters(), ema_decay_at(self.tcfg, self.step + 1))
        self.step += 1
        return {"step": self.step, "loss_D": terms.pop("loss"), "loss_G": loss_g, **terms, "lr": lr}

    def generator_loss(self, z: torch.Tensor) -> torch.Tensor:
        """L_G = softplus(-D(A(G(z)))) for latents z (b, latent_dim), a scalar; D frozen by the caller."""
        with self.precision.autocast():
            logits = self.d_forward_frozen(self.augment(self.g_forward(z))).float()  # (b,)
        return g_logistic_loss(logits)

    def in_slices(self, net: str, batch: int, losses_of) -> dict[str, torch.Tensor]:
        """Backward of net's loss ("D" or "G") over the batch in `micro_batches` slices, then one
        optimizer step (micro_batch.py). losses_of(rows) -> the terms of the images `rows`, with the
        total under "loss"; returns the batch's terms, detached."""
        optimizer, forward = (self.opt_D, self.d_forward) if net == "D" else (self.opt_G, self.g_forward)
        optimizer.zero_grad(set_to_none=True)
        terms = accumulate(losses_of, batch, self.tcfg.micro_batches, lambda loss: self.precision.backward(net, loss),
                           later_slices=lambda: power_iteration_frozen(self.D),   # refined once per step
                           before_last=lambda: distributed.no_sync(forward))      # torchrun: average once
        self.precision.step(net, optimizer)
        return terms

    def read_logs(self, logs: dict) -> dict:
        """A step's logs as Python numbers (waits for the device); NonFiniteLossError on NaN/inf."""
        logs = distributed.mean_over_ranks(logs)                           # torchrun: the global batch's
        values = {key: value.item() if torch.is_tensor(value) else value for key, value in logs.items()}
        for name in ("loss_D", "loss_G"):
            if not math.isfinite(values[name]):
                raise NonFiniteLossError(
                    f"{name} became {values[name]} at step {values['step']}; training stopped without "
                    "writing this step (try a lower lr, or precision fp32)")
        return values

    def run(self, steps: int, out_dir=None, max_seconds: float | None = None) -> list[dict]:
        """Train until `steps` steps in total (or for `max_seconds`), writing log/grids/checkpoints
        into out_dir if given."""
        return run_training(self, steps, out_dir, max_seconds)

    def ema_generator(self) -> Generator:
        """The generator with the EMA weights (eval mode, no gradients): use it for samples and FID.

        Its buffers are G's: the EMA averages weights only, and the power-iteration state u of a
        generator with spectral norm (GeneratorConfig.spectral_norm) must follow the trained weights.
        """
        self.ema.copy_to(self.G_ema.parameters())
        for ema_buffer, buffer in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            ema_buffer.copy_(buffer)
        return self.G_ema

    @torch.no_grad()
    def sample(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """EMA-generator images (n, C, H, W) for z (default: the run's fixed latents)."""
        return self.ema_generator()(self.fixed_z if z is None else z.to(self.device))

    def state_dict(self) -> dict:
        """Everything a resumed run needs, as tensors and plain Python values."""
        return {
            "step": self.step, "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.ema_generator().state_dict(), "ema": self.ema.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "precision": self.precision.state_dict(), "rng": rng_state(), "data_order": self.data_order.state_dict(), "meta": dict(self.meta),
            "configs": {"generator": dataclasses.asdict(self.gcfg),
                        "discriminator": dataclasses.asdict(self.dcfg),
                        "train": dataclasses.asdict(self.tcfg)},
        }

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.load_state_dict(state["ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.precision.load_state_dict(state.get("precision", {}))
        self.data_order.load_state_dict(state["data_order"])
        self.step = int(state["step"])
        self.meta = dict(state.get("meta", {}))
        set_rng_state(state["rng"])

    @classmethod
    def from_configs(cls, configs: dict, dataset, device: str | torch.device = "auto",
                     **train_changes) -> "Trainer":
        """A new trainer with a checkpoint's configs (its "configs" entry); `train_changes` may only
        touch bookkeeping."""
        tcfg = TrainConfig.from_dict(configs["train"]).replace(**train_changes)
        gcfg = GeneratorConfig.from_dict(configs["generator"])      # older runs: linspace coordinates
        return cls(gcfg, DiscriminatorConfig(**configs["discriminator"]), tcfg, dataset, device)

    @classmethod
    def from_state(cls, state: dict, dataset, device: str | torch.device = "auto", **train_changes) -> "Trainer":
        """Rebuild a trainer from a checkpoint's state; `train_changes` may only touch bookkeeping."""
        trainer = cls.from_configs(state["configs"], dataset, device, **train_changes)
        trainer.load_state_dict(state)
        return trainer
