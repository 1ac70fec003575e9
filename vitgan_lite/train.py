"""`vitgan-train` (also `python -m vitgan_lite.train`): train ViTGAN from the command line.

    vitgan-train --preset tiny --data synthetic --steps 300 --out runs/demo      # CPU, minutes
    vitgan-train --preset cifar10 --data cifar10 --compile --out runs/c10          # GPU, the paper's run
    vitgan-train --preset cifar10 --data cifar10 --hours 2 --out runs/c10          # stop cleanly after 2 h
    vitgan-train --out runs/demo --resume --steps 600                            # continue to step 600
    vitgan-train --out runs/demo --resume --steps 1000 --lr-decay 0.4            # ... lr falls to 0 from 600
    torchrun --nproc_per_node 4 -m vitgan_lite.train --preset cifar10 --data cifar10 --out runs/c10  # 4 GPUs

Every `TrainConfig` field is an option: `lambda_real` is `--lambda-real`, a yes/no field is a pair
(`--bcr` / `--no-bcr`); the preset gives the values not set. `--steps` is the run's total.
`--resume` continues the newest readable checkpoint in `--out` up to it, with the configs and data
stored in that checkpoint: repeating the run's options is fine, a value that differs from the
run's is refused (except bookkeeping: --steps, --lr-decay, --compile, --micro-batches, --sample-every,
--checkpoint-every, --keep-checkpoints, --log-every), and another --data needs --new-data. `--hours H`
stops after the step that uses up H hours, saves, and exits with status 0; `--resume` continues the run.
Ablations: --no-bcr, --no-augment (or --augment POLICY), --attention dot, --spectral-norm sn|none,
--no-overlap, --r1-gamma G.
Under torchrun (distributed.py) `--batch-size` is the global batch, split evenly over the
processes (one per GPU; gloo CPU processes with --device cpu); only process 0 prints and writes.
Exit status: 0 done or time budget spent, 130 stopped by Ctrl-C (after saving), 1 NaN/inf loss,
2 bad arguments or a file that cannot be used (a one-line message naming it, no traceback).
A run killed at any moment (even SIGKILL) loses nothing but the steps since its last checkpoint:
`--resume` continues from there, and removes what the kill left half-written.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path

import torch

from . import distributed
from .checkpoint import list_checkpoints, load_latest
from .config import (ATTENTION_KINDS, PRECISIONS, SPECTRAL_NORM_KINDS, DiscriminatorConfig, GeneratorConfig,
                     TrainConfig)
from .data import load_dataset
from .errors import CONTENT_ERRORS, CheckpointError, InputError, cause
from .trainer import NonFiniteLossError, Trainer, resolve_device

PRESETS = ("cifar10", "small", "tiny")
TRAIN_FIELDS = tuple(field.name for field in dataclasses.fields(TrainConfig))
# Bookkeeping fields may change on --resume; the others would change the run's math, so a resumed
# run refuses values that differ from the run's. The lr decay is the end of the budget, like --steps:
# finishing a run with one (--resume --steps N --lr-decay F) is what it is for.
RESUMABLE = {"steps", "lr_decay", "compile", "micro_batches", "sample_every", "checkpoint_every", "keep_checkpoints",
             "log_every"}
DISC_FIELDS = ("attention", "spectral_norm", "overlapping_patches")
FLAGS = {"overlapping_patches": "--overlap"}          # option names that are not the field's
ALIASES = {"ema_half_life_images": ("--ema-half-life",)}
CHOICES = {"precision": PRECISIONS}
HELP = {  # a TrainConfig field missing here gets the comment beside it in config.py
    "batch_size": "images per step (under torchrun: the global batch)",
    "lr": "Adam learning rate of G (and of D, times --d-lr-mul)",
    "d_lr_mul": "D's learning rate as a multiple of --lr (two time-scale update rule; 1 = the paper's one lr)",
    "betas": "Adam's beta1 and beta2",
    "warmup_steps": "steps of linear lr warm-up (0 = off)",
    "lr_decay": "the last fraction of --steps in which the lr falls linearly to 0 (0.5: the second half; "
                "0 = constant lr, the paper's)",
    "steps": "total training steps of the run",
    "augment": "DiffAugment policy, e.g. color,translation,cutout,scale ('' or --no-augment: off)",
    "augment_p": "probability of each DiffAugment op that has none of its own (op:p in --augment)",
    "bcr": "balanced consistency regularization (bCR)",
    "bcr_policy": "bCR's transform T, a DiffAugment policy",
    "lambda_real": "bCR weight on real images",
    "lambda_fake": "bCR weight on generated images",
    "r1_gamma": "R1 penalty weight (0 = off, the paper's choice)",
    "ema_half_life_images": "half-life of G's EMA, in images",
    "precision": "fp32 | bf16 | fp16 (with loss scaling) | auto: bf16 on GPUs that have it, "
                 "fp16 on older ones (T4, V100), fp32 on CPU",
    "compile": "torch.compile G and D (GPU or CPU; the first steps build the kernels)",
    "micro_batches": "run each step's batch in this many slices, gradients summed: the same update in "
                     "less memory (other augmentation draws)",
    "sample_every": "steps between sample grids",
    "checkpoint_every": "steps between checkpoints",
    "keep_checkpoints": "how many of the newest checkpoints are kept",
    "log_every": "steps between lines of log.jsonl",
    "n_samples": "images in a sample grid",
    "seed": "seed of the weights' init, the latents, the augmentations and the data order",
}


def flag(name: str) -> str:
    """The option of a config field: --kebab-case of its name, unless FLAGS says otherwise."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def field_comments(cls) -> dict[str, str]:
    """The comment beside each field in the class's source (`name: type = default  # comment`,
    with its continuation lines), escaped for argparse's help."""
    found = re.findall(r"^ +(\w+): [^=\n]+=[^#\n]*#(.*(?:\n +#.*)*)", inspect.getsource(cls), re.M)
    return {name: re.sub(r"\s*\n\s*#\s*", " ", comment).strip().replace("%", "%%") for name, comment in found}


def field_option(field: dataclasses.Field, hint) -> dict:
    """argparse keywords for one config field, from its type: a --x/--no-x pair for a bool,
    `nargs` for a tuple (betas); default None, so that `given` sees which options were set."""
    types = [t for t in typing.get_args(hint) if t is not type(None)]
    if len(types) == 1:                    # `int | None`: an int option (None stays the preset's)
        hint = types[0]
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if hint in (int, float, str):
        return {"type": hint}
    if isinstance(field.default, tuple) and field.default:
        return {"nargs": len(field.default), "type": type(field.default[0])}
    raise TypeError(f"TrainConfig.{field.name}: no command-line option for the type {hint}; add one in train.py")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field (--kebab-case), in a group that says if --resume may change it."""
    hints, comments = typing.get_type_hints(TrainConfig), field_comments(TrainConfig)
    recipe = parser.add_argument_group("recipe (TrainConfig; default: the preset's; fixed on --resume)")
    bookkeeping = parser.add_argument_group("bookkeeping (TrainConfig; default: the preset's; "
                                            "--resume may change it)")
    for field in dataclasses.fields(TrainConfig):
        group = bookkeeping if field.name in RESUMABLE else recipe
        group.add_argument(flag(field.name), *ALIASES.get(field.name, ()), dest=field.name,
                           choices=CHOICES.get(field.name), help=HELP.get(field.name, comments.get(field.name)),
                           **field_option(field, hints[field.name]))
    recipe.add_argument("--no-augment", dest="augment", action="store_const", const="", help="no DiffAugment")


def build_parser() -> argparse.ArgumentParser:
    first, rest = __doc__.split("\n", 1)
    p = argparse.ArgumentParser(prog="vitgan-train", description=first, epilog=rest,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="cifar10 | synthetic | file.npz | image folder (default on --resume: the run's)")
    p.add_argument("--data-root", default="data", help="where --data cifar10 is downloaded (default: data)")
    p.add_argument("--preset", choices=PRESETS,
                   help="model and recipe size (default: cifar10; on --resume: the run's)")
    p.add_argument("--out", default="runs/vitgan", help="run folder: checkpoints, log.jsonl, samples/")
    p.add_argument("--resume", action="store_true", help="continue the newest checkpoint in --out")
    p.add_argument("--new-data", action="store_true",
                   help="with --resume: train on a --data other than the run's (e.g. the same images "
                        "moved to another path)")
    p.add_argument("--hours", type=float,
                   help="time budget: stop after the step that uses it up, save, exit 0 (continue with --resume)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add_train_options(p)
    a = p.add_argument_group("discriminator ablations (DiscriminatorConfig; default: the preset's)")
    a.add_argument("--attention", choices=ATTENTION_KINDS, help="attention of D (dot: the ablation)")
    a.add_argument("--spectral-norm", choices=SPECTRAL_NORM_KINDS, help="normalization of D's layers")
    a.add_argument(FLAGS["overlapping_patches"], dest="overlapping_patches", action=argparse.BooleanOptionalAction,
                   help="overlapping patches of D (--no-overlap: plain ViT patches)")
    return p


def given(args, fields) -> dict:
    """The options among `fields` set on the command line, as {field: value}."""
    return {f: getattr(args, f) for f in fields if getattr(args, f) is not None}


def shown(value) -> str:
    """A config value as a user would type it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return str(value) if value != "" else "''"


def usage_error(parser: argparse.ArgumentParser, message: str) -> typing.NoReturn:
    """parser.error (usage, message, exit status 2) on process 0; the other torchrun processes
    exit with the same status silently."""
    if distributed.is_main():
        parser.error(message)
    raise SystemExit(2)


def new_trainer(args, parser) -> Trainer:
    """A new run: the preset's configs with the options set, its data and preset recorded in meta."""
    if list_checkpoints(args.out):
        usage_error(parser, f"{args.out} already holds checkpoints: pass --resume to continue that run, "
                            "or choose another --out")
    if args.data is None:
        usage_error(parser, "--data is required for a new run (cifar10, synthetic, a .npz file or a folder)")
    preset = args.preset or "cifar10"
    gcfg = getattr(GeneratorConfig, preset)()
    dcfg = getattr(DiscriminatorConfig, preset)().replace(**given(args, DISC_FIELDS))
    tcfg = getattr(TrainConfig, preset)().replace(**given(args, TRAIN_FIELDS))
    trainer = Trainer(gcfg, dcfg, tcfg, load_dataset(args.data, gcfg.image_size, args.data_root), args.device)
    trainer.meta.update(data=args.data, preset=preset)
    return trainer


def run_preset(state: dict) -> str | None:
    """The preset a checkpoint's run started from: recorded in its meta, or (runs from before that
    was recorded) the preset whose generator it has -- no option changes the generator, so the
    preset alone decides it; None if no preset's generator matches."""
    if "preset" in state.get("meta", {}):
        return state["meta"]["preset"]
    saved = state["configs"]["generator"]
    for preset in PRESETS:
        made = dataclasses.asdict(getattr(GeneratorConfig, preset)())
        if all(made.get(name) == value for name, value in saved.items()):
            return preset
    return None


def changed_options(args, state: dict) -> list[str]:
    """'--lr 0.002 → 0.1' for every option set on the command line whose value differs from the
    run's, bookkeeping (RESUMABLE) aside."""
    configs = state["configs"]
    dcfg = DiscriminatorConfig(**configs["discriminator"])
    run = {**dataclasses.asdict(TrainConfig.from_dict(configs["train"])),
           **{name: getattr(dcfg, name) for name in DISC_FIELDS}, "preset": run_preset(state)}
    changes = []
    for name, new in given(args, ("preset", *TRAIN_FIELDS, *DISC_FIELDS)).items():
        new = tuple(new) if isinstance(new, list) else new           # nargs gives a list
        unknown = name == "preset" and run[name] is None             # noted by resume_trainer
        if name not in RESUMABLE and not unknown and new != run[name]:
            changes.append(f"{flag(name)} {shown(run[name])} → {shown(new)}")
    return changes


def same_data(a: str, b: str) -> bool:
    return a == b or Path(a).resolve() == Path(b).resolve()


def resume_data(args, parser, recorded: str | None) -> str:
    """The data a resumed run trains on: the run's, or --data if it is the same or --new-data says so."""
    if args.data is None:
        if recorded is None:
            usage_error(parser, "the checkpoint does not record its data; pass --data")
        return recorded
    if recorded is not None and not same_data(args.data, recorded) and not args.new_data:
        usage_error(parser, f"--data {recorded} → {args.data} differs from the run's data; add --new-data to "
                            "train on it (e.g. the same images moved), or drop --data")
    return args.data


def check_run_configs(path: Path, state: dict) -> None:
    """CheckpointError naming the checkpoint unless its configs are configs of this vitgan_lite."""
    configs = state["configs"]
    try:
        GeneratorConfig.from_dict(configs["generator"])
        DiscriminatorConfig(**configs["discriminator"])
        TrainConfig.from_dict(configs["train"])
    except (*CONTENT_ERRORS, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} holds configs this vitgan_lite cannot read ({cause(exc)}); "
                              "resume from an older checkpoint (move this one aside) or start a new --out") from exc


def restore(trainer: Trainer, path: Path, state: dict) -> None:
    """Load the checkpoint's weights and states; ones that do not fit the models its configs
    describe become a CheckpointError naming it."""
    try:
        trainer.load_state_dict(state)
    except (*CONTENT_ERRORS, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} holds weights or states that do not fit its configs "
                              f"({cause(exc)}); resume from an older checkpoint (move this one aside) "
                              "or start a new --out") from exc


def resume_trainer(args, parser) -> Trainer:
    """The run in --out, from its newest readable checkpoint; options may repeat the run's values.
    A checkpoint whose content this vitgan_lite cannot use is a CheckpointError naming it."""
    try:
        path, state = load_latest(args.out)
    except FileNotFoundError:
        found = len(list_checkpoints(args.out))
        if found:       # load_latest warned about each
            usage_error(parser, f"--resume: none of the {found} checkpoint file(s) in {args.out} is readable; "
                                "move them aside to start the run there again")
        usage_error(parser, f"--resume: no checkpoint (ckpt_*.pt) in {args.out}; start a run there without --resume")
    check_run_configs(path, state)
    changes = changed_options(args, state)
    if changes:
        usage_error(parser, f"--resume keeps the run's configs, and these options would change them: "
                            f"{', '.join(changes)}. Drop them, or start a new --out.")
    meta = state.get("meta", {})
    data = resume_data(args, parser, meta.get("data"))
    image_size = state["configs"]["generator"]["image_size"]
    trainer = Trainer.from_configs(state["configs"], load_dataset(data, image_size, args.data_root), args.device,
                                   **given(args, RESUMABLE))     # a ValueError here: a changed option's
    restore(trainer, path, state)
    trainer.meta["data"] = data
    preset = run_preset(state)
    if preset:
        trainer.meta["preset"] = preset          # runs from before it was recorded: the inferred one
    if distributed.is_main():
        print(f"resuming from {path} at step {trainer.step}")
        if args.preset is not None and preset is None:
            print(f"note: the run does not record its preset; --preset {args.preset} is ignored "
                  "(a resumed run keeps its configs)")
        if meta.get("data") not in (None, data):
            print(f"note: training on --data {data} (the run's was {meta['data']})")
    return trainer


def millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("steps", "threads", "hours"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.new_data and not (args.resume and args.data):
        parser.error("--new-data goes with --resume and --data (a run's new data)")
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
        usage_error(parser, str(exc))
    steps = trainer.tcfg.steps
    if steps < trainer.step:
        usage_error(parser, f"--steps {steps} is below the run's current step {trainer.step}")
    n = distributed.world_size()
    processes = f"{n} processes, {trainer.device.type}" if n > 1 else f"1 process, {trainer.device}"
    if distributed.is_main():
        print(f"vitgan-train: {processes}, G {millions(trainer.G):.2f}M / D {millions(trainer.D):.2f}M params, "
              f"data {trainer.meta['data']} ({len(trainer.dataset)} images), steps {trainer.step} -> {steps}, "
              f"out {Path(args.out)}")
    try:
        history = trainer.run(steps, args.out, max_seconds=args.hours * 3600 if args.hours else None)
    except InputError as exc:      # a run folder it must not write into, an image that broke meanwhile
        usage_error(parser, str(exc))
    except OSError as exc:         # --out cannot be written: a folder that is a file, no permission, a full disk
        usage_error(parser, f"cannot write into --out {args.out}: {exc.filename or ''} "
                            f"({exc.strerror or type(exc).__name__}); choose a writable folder")
    except NonFiniteLossError as exc:
        last = list_checkpoints(args.out)
        if distributed.is_main():
            print(f"vitgan-train: error: {exc}. Last good checkpoint: {last[0] if last else 'none'}",
                  file=sys.stderr)
        return 1
    if history.status == "time budget reached":
        if distributed.is_main():
            print(f"vitgan-train: the time budget of {args.hours:g} h is spent at step {trainer.step} of {steps}; "
                  f"continue with: vitgan-train --out {args.out} --resume [--hours H]")
        return 0
    return 0 if trainer.step >= steps else 130


if __name__ == "__main__":
    raise SystemExit(main())
