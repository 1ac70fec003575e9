"""Checkpoints that survive crashes and resume a run exactly.

A checkpoint is one file `ckpt_<step>.pt` holding only tensors, numbers, strings, lists and dicts,
so `torch.load(..., weights_only=True)` can read it without running pickled code. It is written
atomically: to a temporary file in the same folder, flushed and fsync'ed, then renamed over the
final name with `os.replace` -- a crash mid-write leaves the previous checkpoints untouched and at
worst a stray temporary file (`stale_temp_files`; the next run in the folder removes them: loop.py).
Only the newest `keep` checkpoints are kept.

Exact resume also needs every source of randomness: torch's CPU (and CUDA) generators, numpy's
and Python's are saved and restored here.
"""
from __future__ import annotations

import os
import random
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError, cause

CHECKPOINT_RE = re.compile(r"^ckpt_(\d+)\.pt$")
# save_checkpoint's temporary files: mkstemp(prefix=".ckpt_<step>.pt.", suffix=".tmp")
CHECKPOINT_TMP_RE = re.compile(r"^\.ckpt_\d+\.pt\.\w+\.tmp$")
REQUIRED_KEYS = ("step", "G", "D", "G_ema", "ema", "opt_G", "opt_D", "rng", "data_order", "configs")


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / f"ckpt_{step:07d}.pt"


def checkpoint_step(path: str | Path) -> int:
    """The step in a checkpoint's file name, ckpt_<step>.pt."""
    return int(CHECKPOINT_RE.match(Path(path).name).group(1))


def rng_state() -> dict:
    """Every random generator a training step draws from, as tensors and plain numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached_gaussian": cached},
        "python": {"version": version, "state": list(mt_state), "gauss": gauss},
    }


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write `state` to `path` atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)          # mkstemp makes 0600; a checkpoint gets the usual file mode
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read one checkpoint safely (weights_only); CheckpointError names the file if it is broken.

    A file from elsewhere is loaded safely or not at all: whatever torch refuses to read with
    weights_only is reported as unreadable, never with torch's advice to unpickle it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, disallowed type: all mean "unusable"
        raise CheckpointError(f"checkpoint {path} is not a readable vitgan_lite checkpoint (corrupt or truncated, "
                              f"or another format: {cause(exc)}); use a ckpt_*.pt written by vitgan-train") from exc
    missing = [key for key in REQUIRED_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a vitgan_lite training checkpoint (missing {missing})")
    return state


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Checkpoint files in out_dir, newest (highest step) first."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def load_latest(out_dir: str | Path, map_location="cpu") -> tuple[Path, dict]:
    """The newest readable checkpoint in out_dir; broken ones are skipped with a warning."""
    for path in list_checkpoints(out_dir):
        try:
            return path, load_checkpoint(path, map_location)
        except CheckpointError as exc:
            warnings.warn(f"{exc}; falling back to the previous checkpoint", RuntimeWarning, stacklevel=2)
    raise FileNotFoundError(f"no readable checkpoint (ckpt_*.pt) in {out_dir}")


def stale_temp_files(out_dir: str | Path) -> list[Path]:
    """Temporary files of `save_checkpoint` in out_dir: left only by a process killed mid-write
    (SIGKILL, power cut), each as large as a checkpoint."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CHECKPOINT_TMP_RE.match(p.name))


def prune_checkpoints(out_dir: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints."""
    for path in list_checkpoints(out_dir)[keep:]:
        path.unlink(missing_ok=True)
