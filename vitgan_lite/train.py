"""`vitgan-train` (also `python -m vitgan_lite.train`): train ViTGAN from the command line.

    vitgan-train --preset tiny --data synthetic --steps 300 --out runs/demo      # CPU, minutes
    vitgan-train --preset cifar10 --data cifar10 --compile --out runs/c10          # GPU, the paper's run
    vitgan-train --out runs/demo --resume --steps 600                            # continue to step 600
    torchrun --nproc_per_node 4 -m vitgan_lite.train --preset cifar10 --data cifar10 --out runs/c10  # 4 GPUs

`--steps` is the run's total: `--resume` continues the newest readable checkpoint in `--out` up
to it, with the configs stored in that checkpoint. Ablations: --no-bcr, --no-augment (or
--augment POLICY), --attention dot, --spectral-norm sn|none, --no-overlap, --r1-gamma G.
Under torchrun (distributed.py) `--batch-size` is the global batch, split evenly over the
processes (one per GPU; gloo CPU processes with --device cpu); only process 0 prints and writes.
Exit status: 0 done, 130 stopped by Ctrl-C (after saving), 1 NaN/inf loss, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import distributed
from .checkpoint import list_checkpoints, load_latest
from .config import PRECISIONS, DiscriminatorConfig, GeneratorConfig, TrainConfig
from .data import load_dataset
from .trainer import NonFiniteLossError, Trainer, resolve_device

PRESETS = ("cifar10", "tiny")
# CLI dest -> TrainConfig field. Bookkeeping fields may change on --resume; the others would
# change the run's math, so a resumed run refuses them.
TRAIN_FIELDS = ("steps", "batch_size", "lr", "warmup_steps", "augment", "augment_p", "bcr", "r1_gamma",
                "ema_half_life_images", "precision", "compile", "sample_every", "checkpoint_every",
                "keep_checkpoints", "log_every", "seed")
RESUMABLE = {"steps", "compile", "sample_every", "checkpoint_every", "keep_checkpoints", "log_every"}
DISC_FIELDS = ("attention", "spectral_norm", "overlapping_patches")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vitgan-train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="cifar10 | synthetic | file.npz | image folder (default on --resume: the run's)")
    p.add_argument("--data-root", default="data", help="where --data cifar10 is downloaded (default: data)")
    p.add_argument("--preset", choices=PRESETS, default="cifar10", help="model and recipe size")
    p.add_argument("--out", default="runs/vitgan", help="run folder: checkpoints, log.jsonl, samples/")
    p.add_argument("--resume", action="store_true", help="continue the newest checkpoint in --out")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    n = p.add_argument_group("recipe (default: the preset's)")
    n.add_argument("--steps", type=int, help="total training steps of the run")
    n.add_argument("--batch-size", type=int)
    n.add_argument("--lr", type=float)
    n.add_argument("--warmup-steps", type=int)
    n.add_argument("--seed", type=int)
    n.add_argument("--ema-half-life", dest="ema_half_life_images", type=int, help="EMA half-life in images")
    n.add_argument("--precision", choices=PRECISIONS,
                   help="fp32 | bf16 | fp16 (with loss scaling) | auto: bf16 on GPUs that have it, "
                        "fp16 on older ones (T4, V100), fp32 on CPU (default: auto)")
    n.add_argument("--compile", action="store_const", const=True,
                   help="torch.compile G and D (GPU or CPU; the first steps build the kernels)")
    a = p.add_argument_group("ablations")
    a.add_argument("--augment", metavar="POLICY", help="DiffAugment policy, e.g. color,translation,cutout,scale")
    a.add_argument("--no-augment", dest="augment", action="store_const", const="", help="no DiffAugment")
    a.add_argument("--augment-p", type=float, help="probability of each augmentation op")
    a.add_argument("--no-bcr", dest="bcr", action="store_const", const=False, help="no bCR")
    a.add_argument("--r1-gamma", type=float, help="R1 penalty weight (0 = off, the paper's choice)")
    a.add_argument("--attention", choices=["l2", "dot"], help="discriminator attention")
    a.add_argument("--spectral-norm", choices=["isn", "sn", "none"], help="discriminator normalization")
    a.add_argument("--no-overlap", dest="overlapping_patches", action="store_const", const=False,
                   help="plain (non-overlapping) discriminator patches")
    o = p.add_argument_group("outputs")
    o.add_argument("--sample-every", type=int)
    o.add_argument("--checkpoint-every", type=int)
    o.add_argument("--keep-checkpoints", type=int)
    o.add_argument("--log-every", type=int)
    return p


def given(args, fields) -> dict:
    return {f: getattr(args, f) for f in fields if getattr(args, f) is not None}


def new_trainer(args, parser) -> Trainer:
    if list_checkpoints(args.out):
        parser.error(f"{args.out} already holds checkpoints: pass --resume to continue that run, "
                     "or choose another --out")
    if args.data is None:
        parser.error("--data is required for a new run (cifar10, synthetic, a .npz file or a folder)")
    preset = args.preset
    gcfg = getattr(GeneratorConfig, preset)()
    dcfg = getattr(DiscriminatorConfig, preset)().replace(**given(args, DISC_FIELDS))
    tcfg = getattr(TrainConfig, preset)().replace(**given(args, TRAIN_FIELDS))
    trainer = Trainer(gcfg, dcfg, tcfg, load_dataset(args.data, gcfg.image_size, args.data_root), args.device)
    trainer.meta["data"] = args.data
    return trainer


def resume_trainer(args, parser) -> Trainer:
    fixed = sorted(set(given(args, TRAIN_FIELDS)) - RESUMABLE) + sorted(given(args, DISC_FIELDS))
    if fixed:
        parser.error(f"--resume keeps the run's configs; these options would change them: "
                     f"{', '.join('--' + f.replace('_', '-') for f in fixed)}. Start a new --out instead.")
    try:
        path, state = load_latest(args.out)
    except FileNotFoundError:
        parser.error(f"--resume: no checkpoint (ckpt_*.pt) in {args.out}; start a run there without --resume")
    data = args.data or state.get("meta", {}).get("data")
    if data is None:
        parser.error("the checkpoint does not record its data; pass --data")
    image_size = state["configs"]["generator"]["image_size"]
    trainer = Trainer.from_state(state, load_dataset(data, image_size, args.data_root), args.device,
                                 **given(args, TRAIN_FIELDS))
    trainer.meta["data"] = data
    if distributed.is_main():
        print(f"resuming from {path} at step {trainer.step}")
    return trainer


def millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("steps", "threads"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    with distributed.process_group(device):               # under torchrun; a no-op otherwise
        return train_from_args(args, parser)


def train_from_args(args, parser) -> int:
    """Build (or resume) the run that `args` describe and train it; the exit status."""
    try:
        trainer = resume_trainer(args, parser) if args.resume else new_trainer(args, parser)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    steps = trainer.tcfg.steps
    if steps < trainer.step:
        parser.error(f"--steps {steps} is below the run's current step {trainer.step}")
    n = distributed.world_size()
    processes = f"{n} processes, {trainer.device.type}" if n > 1 else f"1 process, {trainer.device}"
    if distributed.is_main():
        print(f"vitgan-train: {processes}, G {millions(trainer.G):.2f}M / D {millions(trainer.D):.2f}M params, "
              f"data {trainer.meta['data']} ({len(trainer.dataset)} images), steps {trainer.step} -> {steps}, "
              f"out {Path(args.out)}")
    try:
        trainer.run(steps, args.out)
    except NonFiniteLossError as exc:
        last = list_checkpoints(args.out)
        if distributed.is_main():
            print(f"vitgan-train: error: {exc}. Last good checkpoint: {last[0] if last else 'none'}",
                  file=sys.stderr)
        return 1
    return 0 if trainer.step >= steps else 130


if __name__ == "__main__":
    raise SystemExit(main())
