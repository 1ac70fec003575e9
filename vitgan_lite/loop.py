"""The training loop around `Trainer.train_step`: progress bar, log, sample grids, checkpoints.

Files written into `out_dir` (all optional: without it the loop only trains):
    log.jsonl                   one JSON object of losses per `log_every` steps (and the last step)
    samples/step_<step>.png     EMA-generator images at fixed latents, every `sample_every` steps
    ckpt_<step>.pt              every `checkpoint_every` steps, newest `keep_checkpoints` kept

Every run ends with a checkpoint, a grid and a log line for its last step -- also after Ctrl-C:
the first Ctrl-C lets the current step finish and then stops cleanly (a second one aborts at once).
A NaN/inf loss raises `NonFiniteLossError` and writes nothing, so the last good checkpoint stays.
The losses are read from the device (a sync) only at steps that log or write a file.

Under torchrun (distributed.py) only process 0 writes files and prints; every process reads the
losses at the same steps (averaged over the processes there), and all stop after the same step.

`max_seconds` stops a run early, cleanly, after the step that exhausts the time budget (a notebook
on a GPU trains "for two hours" instead of blocking for days); `--resume` continues it later.

Each checkpoint records the CPU time spent training the run so far, summed over resumed calls, in
its meta (`meta["train_cpu_seconds"]`: this process and the subprocesses it waited for, such as
torch.compile's C++ compiler): a run killed after a checkpoint still knows what it cost
(vitgan-study's budgets are in CPU-minutes).

A run continues only into its own folder: one holding checkpoints past the trainer's step (a
longer run) is refused before anything is written. What a hard kill (SIGKILL, power cut) leaves is
repaired when a run starts or resumes there: a torn log line is dropped, and temporary files of a
checkpoint or log rewrite cut off midway are deleted. Checkpoint every step and resume after each
kill, and the run ends bitwise equal to an uninterrupted one (tests/test_faults.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from . import distributed
from .checkpoint import (CheckpointError, checkpoint_path, checkpoint_step, list_checkpoints,
                         load_checkpoint, prune_checkpoints, save_checkpoint, stale_temp_files)
from .errors import RunFolderError
from .sample import save_grid

LOG_TMP = "log.jsonl.tmp"          # truncate_log's temporary file


class History(list):
    """The logs (dicts of Python numbers) of the steps one call trained, and why it stopped:
    `status` is 'done', 'interrupted' (Ctrl-C) or 'time budget reached'."""

    status = "done"


@contextlib.contextmanager
def stop_on_interrupt():
    """Turn the first Ctrl-C (SIGINT) into a flag {'stop': True} that the loop checks between steps.

    Works in a terminal and in Jupyter (an interrupt there is a SIGINT too). Outside the main
    thread no handler can be installed and Ctrl-C raises KeyboardInterrupt as usual.
    """
    flag = {"stop": False}

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def append_log(path: Path, logs: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(logs) + "\n")


def read_log_line(line: str) -> dict | None:
    """One line of log.jsonl as a dict with a step, or None if it is not one."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) and isinstance(entry.get("step"), int) else None


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines after `step` (written by a run that stopped after its last checkpoint).

    A hard kill can leave a torn last line (part of a JSON object, no newline): it is dropped with
    a warning. An unreadable line before the last is not a torn write: RunFolderError names it.
    """
    if not path.is_file():
        return
    text = path.read_text()
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    kept = []
    for i, (n, line) in enumerate(numbered):
        entry = read_log_line(line)
        if entry is None and i == len(numbered) - 1:
            warnings.warn(f"{path}: dropped a torn last line (a write cut off by a hard kill): {line[:60]!r}",
                          RuntimeWarning, stacklevel=2)
        elif entry is None:
            raise RunFolderError(f"{path} line {n} is not a log entry ({line[:60]!r}); "
                                 "repair or delete that line, then run again")
        elif entry["step"] <= step:
            kept.append(line)
    if len(kept) < len(numbered) or (text and not text.endswith("\n")):  # no next line may join this one
        tmp = path.with_name(LOG_TMP)                      # a kill mid-rewrite keeps the old log
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)


def check_no_longer_run(out_dir: Path, step: int) -> None:
    """Refuse a folder holding readable checkpoints past `step` (a longer run, which pruning and
    log truncation would destroy). Unreadable ones past `step` (a resume skipped them: load_latest)
    are renamed to *.pt.corrupt, so that pruning never keeps them over the new checkpoints."""
    unreadable = []
    for path in (p for p in list_checkpoints(out_dir) if checkpoint_step(p) > step):
        try:
            load_checkpoint(path)
        except CheckpointError:
            unreadable.append(path)
            continue
        raise RunFolderError(
            f"{out_dir} holds a longer run (checkpoint {path.name}, past this trainer's step {step}); "
            "continue it (vitgan-train --resume, or Trainer.from_state) or train into another folder")
    for path in unreadable:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        warnings.warn(f"{path} is unreadable: renamed to {aside.name}", RuntimeWarning, stacklevel=2)


def remove_stale_temp_files(out_dir: Path) -> None:
    """Delete the temporary files a killed run left in its folder: save_checkpoint's (each a full
    checkpoint) and truncate_log's. Only these names: nothing else in the folder is touched."""
    for path in [*stale_temp_files(out_dir), out_dir / LOG_TMP]:
        path.unlink(missing_ok=True)


def format_logs(logs: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())


class RunOutput:
    """The files of one run folder."""

    def __init__(self, trainer, out_dir: str | Path):
        """Check the folder (RunFolderError, before any change), remove a killed run's temporary
        files and drop log lines past the step."""
        self.trainer, self.dir = trainer, Path(out_dir)
        check_no_longer_run(self.dir, trainer.step)
        self.dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.dir)
        self.log_path = self.dir / "log.jsonl"
        truncate_log(self.log_path, trainer.step)
        self.written = {"log": -1, "grid": -1, "ckpt": -1}  # last step each was written at
        self.cpu_start, self.cpu_before = cpu_seconds(), trainer.meta.get("train_cpu_seconds", 0.0)

    def log(self, logs: dict) -> None:
        append_log(self.log_path, logs)
        self.written["log"] = logs["step"]

    def grid(self) -> Path:
        step = self.trainer.step
        self.written["grid"] = step
        return save_grid(self.trainer.sample(), self.dir / "samples" / f"step_{step:07d}.png")

    def checkpoint(self) -> Path:
        trainer = self.trainer
        trainer.meta["train_cpu_seconds"] = round(self.cpu_before + cpu_seconds() - self.cpu_start, 1)
        path = save_checkpoint(trainer.state_dict(), checkpoint_path(self.dir, trainer.step))
        prune_checkpoints(self.dir, trainer.tcfg.keep_checkpoints)
        self.written["ckpt"] = trainer.step
        return path

    def periodic(self, logs: dict) -> None:
        """Write what is due at this step; `logs` were read (and checked finite) by the loop."""
        cfg, step = self.trainer.tcfg, logs["step"]
        if step % cfg.log_every == 0:
            self.log(logs)
        if step % cfg.sample_every == 0:
            self.grid()
        if step % cfg.checkpoint_every == 0:
            self.checkpoint()

    def finish(self, last_logs: dict | None) -> dict:
        """Make sure the last step has its log line, grid and checkpoint; return their paths."""
        step = self.trainer.step
        if last_logs is not None and self.written["log"] != step:
            self.log(last_logs)
        grid = self.grid() if self.written["grid"] != step else self.dir / "samples" / f"step_{step:07d}.png"
        ckpt = self.checkpoint() if self.written["ckpt"] != step else checkpoint_path(self.dir, step)
        return {"checkpoint": ckpt, "grid": grid, "log": self.log_path}


def cpu_seconds() -> float:
    """CPU time of this process and of the subprocesses it has waited for: with `compile`, torch.compile
    runs a C++ compiler in subprocesses, whose time a run's cost must count too."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def read_due(trainer, writes: bool) -> bool:
    """Whether the loop reads the losses from the device after this step: when it logs or writes."""
    cfg, step = trainer.tcfg, trainer.step
    every = (cfg.log_every, cfg.sample_every, cfg.checkpoint_every) if writes else (cfg.log_every,)
    return any(step % n == 0 for n in every)


def open_output(trainer, out_dir: str | Path | None) -> RunOutput | None:
    """Process 0's RunOutput (None elsewhere, or without out_dir); if process 0 refuses the folder,
    every process raises RunFolderError (the others would wait for it forever)."""
    output, refused = None, None
    if out_dir is not None and distributed.is_main():
        try:
            output = RunOutput(trainer, out_dir)
        except RunFolderError as exc:
            refused = exc
    if distributed.any_rank(refused is not None):
        raise refused or RunFolderError(f"process 0 refused the run folder {out_dir}")
    return output


def run_training(trainer, steps: int, out_dir: str | Path | None = None,
                 max_seconds: float | None = None) -> History:
    """Train until trainer.step == steps (the run's total) or `max_seconds` have passed; return the
    logs (Python numbers) of the steps run here, with the reason it stopped (`History.status`)."""
    writes = out_dir is not None
    output = open_output(trainer, out_dir)
    history = History()
    deadline = time.monotonic() + max_seconds if max_seconds is not None else float("inf")
    # tqdm.notebook ignores TQDM_DISABLE unless `disable` is passed: pass it (CI, nbval, logs)
    quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes") or not distributed.is_main()
    with stop_on_interrupt() as flag, tqdm(total=steps, initial=trainer.step, desc="train", disable=quiet) as bar:
        pending: list[dict] = []                               # logs still on the device
        while trainer.step < steps and not distributed.any_rank(flag["stop"] or time.monotonic() >= deadline):
            pending.append(trainer.train_step())
            bar.update(1)
            if read_due(trainer, writes):                      # the same steps on every process
                history += [trainer.read_logs(logs) for logs in pending]   # NaN/inf raises here
                pending.clear()
                bar.set_postfix(loss_D=f"{history[-1]['loss_D']:.3f}", loss_G=f"{history[-1]['loss_G']:.3f}")
                if output is not None:
                    output.periodic(history[-1])
        history += [trainer.read_logs(logs) for logs in pending]
    history.status = "interrupted" if flag["stop"] else "time budget reached" if trainer.step < steps else "done"
    last = history[-1] if history else None
    if output is not None:
        files = output.finish(last)
        where = f"; checkpoint {files['checkpoint']}, samples {files['grid']}, log {files['log']}"
    else:
        where = ""
    summary = format_logs(last) if last else f"step={trainer.step} (nothing to do)"
    if distributed.is_main():
        tqdm.write(f"[{history.status}] {summary}{where}")
    return history
