"""The training step of two versions of vitgan_lite, timed alternately on the same machine.

    git worktree add /tmp/before <rev>
    python benchmarks/compare_revisions.py /tmp/before . --preset tiny --threads 1
    python benchmarks/compare_revisions.py /tmp/before . --preset cifar10 --threads 2 --warmup 2 --steps 5
    python benchmarks/compare_revisions.py . . --preset small --after-precision bf16   # fp32 vs bf16
    python benchmarks/compare_revisions.py /tmp/before . --after-precision bf16 --after-compile

Each measurement is a fresh process that imports the package from the given source tree (so
"before" and "after" share nothing but the machine), trains on the course's CIFAR-10 subset and
prints the median seconds per `Trainer.train_step` and its peak RSS. Rounds alternate the trees,
so a change in the machine's load hits both. Older versions return losses as floats, newer ones
as tensors: `float()` reads either, which also waits for the step to finish.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

WORKER = """
import statistics, sys, time, torch
preset, threads, warmup, steps, precision, compile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1"
torch.set_num_threads(threads)
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import cifar10_subset
from vitgan_lite.trainer import Trainer
tcfg = TrainConfig.cifar10().replace(batch_size=32) if preset == "cifar10" else getattr(TrainConfig, preset)()
if precision != "fp32":                          # older trees have no precision field: fp32 is their only one
    tcfg = tcfg.replace(precision=precision)
if compile:                                      # the warm-up steps include the compilation
    tcfg = tcfg.replace(compile=True)
trainer = Trainer(getattr(GeneratorConfig, preset)(), getattr(DiscriminatorConfig, preset)(), tcfg,
                  cifar10_subset("train_10k"), "cpu")
for _ in range(warmup):
    trainer.train_step()
times = []
for _ in range(steps):
    start = time.perf_counter()
    float(trainer.train_step()["loss_D"])
    times.append(time.perf_counter() - start)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
peak_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(statistics.median(times), peak_kb / 1024)
"""


def measure(tree: str, precision: str, compile: bool, args) -> tuple[float, float]:
    """(median s/step, peak RSS MB) of one fresh process importing vitgan_lite from `tree`."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree), "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run([sys.executable, "-c", WORKER, args.preset, str(args.threads), str(args.warmup),
                          str(args.steps), precision, str(int(compile))], env=env, capture_output=True, text=True, check=True)
    seconds, rss = map(float, out.stdout.split())
    return seconds, rss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before", help="source tree of the older version (e.g. a git worktree)")
    p.add_argument("after", help="source tree of the newer version")
    p.add_argument("--preset", default="tiny", choices=["tiny", "small", "cifar10"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=6)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--after-precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="precision of the newer version's step (the older one runs fp32)")
    p.add_argument("--after-compile", action="store_true",
                   help="torch.compile the newer version's models (the older one runs eager)")
    args = p.parse_args()
    results = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name in results:
            precision = args.after_precision if name == "after" else "fp32"
            results[name].append(measure(getattr(args, name), precision, name == "after" and args.after_compile, args))
    for name, runs in results.items():
        precision = args.after_precision if name == "after" else "fp32"
        compiled = ", compiled" if name == "after" and args.after_compile else ""
        print(f"{name:6s} {args.preset}, {precision}{compiled}, {args.threads} threads: " +
              ", ".join(f"{s:.3f} s/step ({rss:.0f} MB)" for s, rss in runs))
    best = {name: min(s for s, _ in runs) for name, runs in results.items()}
    print(f"speed-up (best of each): {best['before'] / best['after']:.2f}x")


if __name__ == "__main__":
    main()
