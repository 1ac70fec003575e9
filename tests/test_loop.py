"""The run folder: log truncation (torn last line), refusing a longer run's folder, why a run stopped."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import vitgan_lite.checkpoint as ckpt
from vitgan_lite.checkpoint import checkpoint_path, list_checkpoints, save_checkpoint
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import SyntheticImages
from vitgan_lite.loop import RunFolderError, RunOutput, cpu_seconds, truncate_log
from vitgan_lite.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def write_log(path: Path, steps, tail: str = "") -> None:
    path.write_text("".join(json.dumps({"step": s, "loss_D": 1.0}) + "\n" for s in steps) + tail)


def log_steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def fake_checkpoint(folder: Path, step: int) -> Path:
    """A readable file with the keys of a training checkpoint (enough for the folder checks)."""
    return save_checkpoint({**{key: {} for key in ckpt.REQUIRED_KEYS}, "step": step}, checkpoint_path(folder, step))


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_truncate_log_drops_the_steps_after_the_checkpoint(tmp_path):
    log = tmp_path / "log.jsonl"
    write_log(log, [1, 2, 3, 4])
    truncate_log(log, 2)
    assert log_steps(log) == [1, 2]


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path):
    log = tmp_path / "log.jsonl"
    write_log(log, [1, 2], tail='{"step": 3, "loss_D": 0.6')      # a hard kill mid-write
    with pytest.warns(RuntimeWarning, match="torn last line"):
        truncate_log(log, 5)
    assert log.read_text().endswith("\n") and log_steps(log) == [1, 2]


def test_a_complete_last_line_without_its_newline_gets_one(tmp_path):
    log = tmp_path / "log.jsonl"
    write_log(log, [1], tail=json.dumps({"step": 2}))
    truncate_log(log, 5)
    assert log.read_text().endswith("\n") and log_steps(log) == [1, 2]


def test_corruption_before_the_last_line_is_an_error_and_changes_nothing(tmp_path):
    log = tmp_path / "log.jsonl"
    write_log(log, [1], tail='{"step": 2, "lo\n' + json.dumps({"step": 3}) + "\n")
    before = log.read_bytes()
    with pytest.raises(RunFolderError, match=r"log.jsonl line 2 is not a log entry.*repair or delete"):
        truncate_log(log, 1)
    assert log.read_bytes() == before


def test_trainer_refuses_a_folder_holding_a_longer_run_and_changes_nothing(tmp_path):
    fake_checkpoint(tmp_path, 100)
    fake_checkpoint(tmp_path, 90)
    write_log(tmp_path / "log.jsonl", range(1, 101))
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "step_0000100.png").write_bytes(b"png")
    before = snapshot(tmp_path)
    trainer = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(),
                      TrainConfig.tiny().replace(batch_size=4, n_samples=4, keep_checkpoints=1),
                      SyntheticImages(n=8), "cpu")
    with pytest.raises(RunFolderError, match="holds a longer run.*ckpt_0000100.pt.*step 0"):
        trainer.run(5, tmp_path)
    assert trainer.step == 0 and snapshot(tmp_path) == before


def test_unreadable_checkpoints_past_the_step_are_moved_aside(tmp_path):
    good = fake_checkpoint(tmp_path, 2)
    torn = checkpoint_path(tmp_path, 4)
    torn.write_bytes(b"half a zip")                        # the newest, skipped by load_latest
    with pytest.warns(RuntimeWarning, match="ckpt_0000004.pt is unreadable"):
        RunOutput(SimpleNamespace(step=2, meta={}), tmp_path)
    assert list_checkpoints(tmp_path) == [good]            # pruning can no longer keep it over new ones
    assert (tmp_path / "ckpt_0000004.pt.corrupt").read_bytes() == b"half a zip"


def test_a_longer_run_is_refused_before_unreadable_files_are_moved(tmp_path):
    fake_checkpoint(tmp_path, 3)
    checkpoint_path(tmp_path, 5).write_bytes(b"torn")
    (tmp_path / ".ckpt_0000006.pt.a1b2c3d4.tmp").write_bytes(b"half")   # not removed either: a refusal changes nothing
    before = snapshot(tmp_path)
    with pytest.raises(RunFolderError, match="ckpt_0000003.pt"):
        RunOutput(SimpleNamespace(step=1, meta={}), tmp_path)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("step", [0, 2], ids=["start", "resume"])
def test_a_run_removes_the_temporary_files_a_kill_left_and_nothing_else(tmp_path, step):
    if step:
        fake_checkpoint(tmp_path, step)
    stale = [".ckpt_0000003.pt.k2j4h5g6.tmp", ".ckpt_0000000.pt._x9_a1b2.tmp", "log.jsonl.tmp"]
    kept = ["notes.tmp", ".ckpt_notes.tmp", ".g.pt.k2j4h5g6.tmp", "ckpt_0000003.pt.tmp",
            "samples/.ckpt_0000001.pt.k2j4h5g6.tmp"]
    (tmp_path / "samples").mkdir()
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    RunOutput(SimpleNamespace(step=step, meta={}), tmp_path)
    assert [name for name in stale + kept if (tmp_path / name).exists()] == kept


def test_history_says_why_the_run_stopped():
    trainer = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(),
                      TrainConfig.tiny().replace(batch_size=4, n_samples=4), SyntheticImages(n=8), "cpu")
    spent = trainer.run(3, max_seconds=0)                 # the budget is spent before the first step
    assert (spent, spent.status, trainer.step) == ([], "time budget reached", 0)
    done = trainer.run(1)
    assert (len(done), done.status, trainer.step) == (1, "done", 1)


def test_each_checkpoint_records_the_training_cpu_time_summed_over_resumes(tmp_path):
    """meta["train_cpu_seconds"]: what the run cost so far, so a run killed after a checkpoint still knows it."""
    tcfg = TrainConfig.tiny().replace(batch_size=4, n_samples=4, checkpoint_every=2, sample_every=2)
    trainer = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), tcfg, SyntheticImages(n=8), "cpu")
    before = cpu_seconds()
    trainer.run(2, tmp_path)
    spent = cpu_seconds() - before
    first = ckpt.load_checkpoint(checkpoint_path(tmp_path, 2))["meta"]["train_cpu_seconds"]
    assert 0 < first <= spent + 0.05                           # rounded to 0.1 s; saving the file is after it
    resumed = Trainer.from_state(ckpt.load_checkpoint(checkpoint_path(tmp_path, 2)), SyntheticImages(n=8), "cpu")
    before = cpu_seconds()
    resumed.run(4, tmp_path)
    spent = cpu_seconds() - before
    second = ckpt.load_checkpoint(checkpoint_path(tmp_path, 4))["meta"]["train_cpu_seconds"]
    assert first < second <= first + spent + 0.1               # the first call's time carried over, plus this one's


def test_cpu_seconds_counts_the_subprocesses_a_run_waits_for():
    """torch.compile's C++ compiler runs in subprocesses: their CPU time is part of a run's cost."""
    burn = "import time\nwhile time.process_time() < 0.5: pass"        # 0.5 s of CPU in the child
    before = cpu_seconds()
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert cpu_seconds() - before > 0.4                            # os.times counts in clock ticks (10 ms)
