"""Fault injection: a run killed with SIGKILL (once mid-write of a checkpoint, then at random moments)
and resumed with --resume each time ends bitwise equal to the same run uninterrupted, logs every
step exactly once, and leaves no temporary file behind."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vitgan_lite import train
from vitgan_lite.checkpoint import (checkpoint_path, checkpoint_step, list_checkpoints, load_checkpoint,
                                    stale_temp_files)
from vitgan_lite.data import synthetic_images

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
STEPS, KILLS = 12, 3          # each kill lands within 3 steps of its segment's start: 3 kills fit in 12
RUN = ["--preset", "tiny", "--batch-size", "4", "--steps", str(STEPS), "--checkpoint-every", "1",
       "--keep-checkpoints", "2", "--n-samples", "4"]


def start(*args: str) -> subprocess.Popen:
    """`python -m vitgan_lite.train ARGS` on one thread (as the uninterrupted run in this process)."""
    return subprocess.Popen([sys.executable, "-m", "vitgan_lite.train", "--threads", "1", *args], cwd=ROOT,
                            env={**os.environ, "TQDM_DISABLE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def newest_step(out: Path) -> int:
    found = list_checkpoints(out)
    return checkpoint_step(found[0]) if found else 0


def wait_for_checkpoint(proc: subprocess.Popen, out: Path, past: int) -> float:
    """Wait until a checkpoint past step `past` exists; the time it was seen."""
    deadline = time.monotonic() + 300
    while newest_step(out) <= past:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    return time.monotonic()


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def kill_at_a_random_moment(proc: subprocess.Popen, out: Path, rng: random.Random) -> None:
    """SIGKILL the run at a random moment of a step cycle (train step, log line, checkpoint write).

    The cycle's length is measured first (two new checkpoints: the run has resumed and made
    progress), then the kill comes a random fraction of one more cycle later -- before the run can
    finish, whatever the machine's speed.
    """
    first = newest_step(out)
    seen = wait_for_checkpoint(proc, out, first)
    cycle = wait_for_checkpoint(proc, out, first + 1) - seen
    time.sleep(rng.uniform(0, 1) * cycle)
    assert proc.poll() is None, f"the run finished before the kill; {proc.communicate()}"
    kill(proc)


def kill_while_writing_a_checkpoint(proc: subprocess.Popen, out: Path) -> None:
    """SIGKILL the run as soon as a checkpoint's temporary file appears (the write takes tens of ms;
    rarely the rename wins the race and nothing is left)."""
    wait_for_checkpoint(proc, out, newest_step(out))              # the run is past its start-up
    while not stale_temp_files(out):
        assert proc.poll() is None, f"the run finished before the kill; {proc.communicate()}"
        time.sleep(0.001)
    kill(proc)


def assert_bitwise_equal(a, b, where: str = "checkpoint") -> None:
    """Two checkpoint states hold the same values: tensors bit for bit (dtype and shape too)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and (a.dtype, a.shape) == (b.dtype, b.shape) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_bitwise_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_sigkill_at_random_moments_then_resume_loses_nothing(tmp_path):
    data = tmp_path / "small.npz"
    np.savez(data, x=synthetic_images(16).permute(0, 2, 3, 1).numpy())
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    rng = random.Random(10)

    proc, left = start(*RUN, "--data", str(data), "--out", str(killed)), set()
    for _ in range(KILLS):     # mid-write until a kill there has left a temporary file, then at random
        if left:
            kill_at_a_random_moment(proc, killed, rng)
        else:
            kill_while_writing_a_checkpoint(proc, killed)
        left |= {path.name for path in stale_temp_files(killed)}
        proc = start("--out", str(killed), "--resume")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert train.main([*RUN, "--data", str(data), "--out", str(reference)]) == 0

    log = (killed / "log.jsonl").read_text()
    assert [json.loads(line)["step"] for line in log.splitlines()] == list(range(1, STEPS + 1))
    assert log == (reference / "log.jsonl").read_text()               # the same losses at every step
    resumed, straight = load_checkpoint(checkpoint_path(killed, STEPS)), load_checkpoint(checkpoint_path(reference, STEPS))
    for state in (resumed, straight):          # the CPU time each spent: measured, so never bitwise equal
        assert state["meta"].pop("train_cpu_seconds") > 0
    assert_bitwise_equal(resumed, straight)
    assert left and not [p.name for p in killed.rglob("*") if p.name.endswith(".tmp")]   # resume removed them
