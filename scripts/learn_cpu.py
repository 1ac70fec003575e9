"""Learning evidence on a CPU: train the tiny preset on CIFAR-10 and record FID along the way.

    /work/venv/bin/python scripts/learn_cpu.py --out /work/runs/learn_cpu     # ~1 h on a shared 2-core CPU

Writes into --out: the usual run files (checkpoints, log.jsonl, samples/) and fid_curve.csv
(step, FID, seconds of training so far, FID time excluded). FID protocol: --n-gen EMA-generator
images vs the first --n-ref images of --ref (default: the 1k CIFAR-10 test images); small n biases FID upward, so the
numbers only compare with each other. Not a test: it takes tens of minutes. Re-running with the
same --out resumes where it stopped.
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: extra BLAS threads only wait on a shared CPU
import torch  # noqa: E402

from vitgan_lite.checkpoint import list_checkpoints, load_latest  # noqa: E402
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig  # noqa: E402
from vitgan_lite.data import load_dataset, offline_cifar10_dir  # noqa: E402
from vitgan_lite.metrics import InceptionFeatures, fid  # noqa: E402
from vitgan_lite.trainer import Trainer  # noqa: E402

DATA = offline_cifar10_dir() or Path("../shared/data/cifar10")  # $VITGAN_CIFAR10_DIR or beside the project


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DATA / "train_10k.npz"))
    p.add_argument("--ref", default=str(DATA / "test_1k.npz"))
    p.add_argument("--out", default="runs/learn_cpu")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--eval-at", default="0,500,1000,1500,2000,3000,4000,5000,6000",
                   help="steps at which to measure FID")
    p.add_argument("--n-gen", type=int, default=500)
    p.add_argument("--n-ref", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--fid-cache", default=None, help="reference-statistics cache (default: OUT/fid_cache)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core CPU)")
    return p.parse_args()


def make_trainer(args, dataset) -> Trainer:
    if list_checkpoints(args.out):
        path, state = load_latest(args.out)
        print(f"resuming from {path}")
        return Trainer.from_state(state, dataset, "cpu")
    changes = {k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr)) if v is not None}
    tcfg = TrainConfig.tiny().replace(steps=args.steps, log_every=10, **changes)
    return Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), tcfg, dataset, "cpu")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(args, load_dataset(args.data))
    features = InceptionFeatures()
    curve_path = out / "fid_curve.csv"
    rows = list(csv.DictReader(curve_path.open())) if curve_path.is_file() else []
    if not rows:
        curve_path.write_text("step,fid,train_seconds\n")
    done = {int(row["step"]) for row in rows}
    train_seconds = float(rows[-1]["train_seconds"]) if rows else 0.0   # cumulative over resumed runs
    for target in sorted(int(s) for s in args.eval_at.split(",")):
        if target > args.steps or target in done or target < trainer.step:
            continue
        start = time.time()
        trainer.run(target, out)
        train_seconds += time.time() - start
        start = time.time()
        value, protocol = fid(trainer.ema_generator(), args.ref, args.n_gen, args.n_ref, features,
                           args.fid_cache or out / "fid_cache")
        print(f"step {target}: FID {value:.2f} ({time.time() - start:.0f} s); {protocol}", flush=True)
        with curve_path.open("a") as f:
            f.write(f"{target},{value:.3f},{train_seconds:.0f}\n")
    print(f"curve: {curve_path}; last grid: {sorted((out / 'samples').glob('*.png'))[-1]}")


if __name__ == "__main__":
    main()
