"""Checkpoint files: safe loading, atomic writes, corrupt-file fallback, pruning, RNG round trip."""
import os
import random
import signal

import numpy as np
import pytest
import torch

import vitgan_lite.checkpoint as ckpt
from vitgan_lite.checkpoint import (CheckpointError, checkpoint_path, checkpoint_step, list_checkpoints,
                                    load_checkpoint, load_latest, prune_checkpoints, rng_state, save_checkpoint,
                                    set_rng_state, stale_temp_files)


def fake_state(step: int) -> dict:
    """The keys of a training checkpoint, with small contents."""
    state = {key: {} for key in ckpt.REQUIRED_KEYS}
    state.update(step=step, G={"w": torch.full((3,), float(step))}, rng=rng_state())
    return state


def draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_state_round_trip_through_a_safe_file(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.randn()                                  # leaves a cached gaussian in numpy's state
    path = save_checkpoint(fake_state(1), tmp_path / "a.pt")
    expected = draws()
    set_rng_state(load_checkpoint(path)["rng"])        # weights_only load
    assert draws() == expected


def test_save_is_atomic_when_torch_save_crashes(tmp_path, monkeypatch):
    good = save_checkpoint(fake_state(1), checkpoint_path(tmp_path, 1))
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        real_save(obj, f)
        f.truncate(100)                                 # half-written file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(fake_state(2), checkpoint_path(tmp_path, 2))
    monkeypatch.undo()
    assert list_checkpoints(tmp_path) == [good]        # no broken ckpt_0000002.pt, no temp file left
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]
    assert load_latest(tmp_path)[1]["step"] == 1


def test_save_is_atomic_when_rename_fails(tmp_path, monkeypatch):
    target = checkpoint_path(tmp_path, 1)
    save_checkpoint(fake_state(1), target)
    monkeypatch.setattr(ckpt.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(fake_state(5), target)         # overwriting the same name must not break it
    monkeypatch.undo()
    assert load_checkpoint(target)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_sigkill_mid_write_leaves_a_temp_file_that_stale_temp_files_finds(tmp_path):
    """A process killed inside save_checkpoint (here it SIGKILLs itself halfway through torch.save)
    cannot clean up: its temporary file stays beside the intact previous checkpoint."""
    good = save_checkpoint(fake_state(17), checkpoint_path(tmp_path, 17))
    (tmp_path / ".ckpt_notes.tmp").write_text("not a checkpoint's")
    state = fake_state(18)
    pid = os.fork()
    if pid == 0:                                         # the child: killed mid-write of step 18
        try:
            def killed_midway(obj, f, *args, **kwargs):
                f.write(b"PK\x03\x04 half a checkpoint")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            torch.save = killed_midway
            save_checkpoint(state, checkpoint_path(tmp_path, 18))
        finally:
            os._exit(1)                                  # only if the kill did not happen
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    stale = stale_temp_files(tmp_path)
    assert len(stale) == 1 and stale[0].name.startswith(".ckpt_0000018.pt.")
    assert stale[0].read_bytes() == b"PK\x03\x04 half a checkpoint"
    assert list_checkpoints(tmp_path) == [good] and load_latest(tmp_path)[1]["step"] == 17


def test_corrupt_checkpoint_names_the_file_and_resume_falls_back(tmp_path):
    save_checkpoint(fake_state(1), checkpoint_path(tmp_path, 1))
    newest = save_checkpoint(fake_state(2), checkpoint_path(tmp_path, 2))
    newest.write_bytes(newest.read_bytes()[:200])       # truncated
    with pytest.raises(CheckpointError, match="ckpt_0000002.pt.*corrupt or truncated"):
        load_checkpoint(newest)
    with pytest.warns(RuntimeWarning, match="ckpt_0000002.pt.*falling back"):
        path, state = load_latest(tmp_path)
    assert path == checkpoint_path(tmp_path, 1) and state["step"] == 1


def test_unsafe_or_foreign_files_are_refused(tmp_path):
    path = tmp_path / "ckpt_0000003.pt"
    torch.save({"step": 3, "payload": CheckpointError("x")}, path)  # needs full unpickling
    with pytest.raises(CheckpointError, match="ckpt_0000003.pt"):
        load_checkpoint(path)
    torch.save({"step": 3}, path)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no readable checkpoint"):
        with pytest.warns(RuntimeWarning):
            load_latest(tmp_path)


def test_prune_keeps_the_newest(tmp_path):
    for step in (5, 10, 15, 20):
        save_checkpoint(fake_state(step), checkpoint_path(tmp_path, step))
    prune_checkpoints(tmp_path, keep=2)
    assert list_checkpoints(tmp_path) == [checkpoint_path(tmp_path, 20), checkpoint_path(tmp_path, 15)]
    assert [checkpoint_step(path) for path in list_checkpoints(tmp_path)] == [20, 15]


def test_checkpoint_files_get_the_usual_file_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        path = ckpt.save_checkpoint({"x": torch.zeros(1)}, tmp_path / "ckpt_0000001.pt")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
