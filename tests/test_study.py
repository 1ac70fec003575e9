"""The recipe-study runner: two variants side by side, FID rows per evaluation, resumable, CSV + plot."""
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vitgan_lite import study
from vitgan_lite.checkpoint import load_latest, save_checkpoint
from vitgan_lite.data import load_dataset
from vitgan_lite.errors import RunFolderError
from vitgan_lite.trainer import Trainer


def rows(path):
    return list(csv.DictReader(path.open()))


def test_micro_study_writes_rows_csv_and_plot_and_resumes(tmp_path, cifar_npz):
    held_out = cifar_npz.parent / "test_1k.npz"
    argv = ["--preset", "tiny", "--data", str(cifar_npz), "--out", str(tmp_path), "--variants",
            "paper,no-bcr", "--steps", "2", "--eval-every", "1", "--jobs", "2", "--n-gen", "8",
            "--ref", str(cifar_npz), "--n-ref", "16", "--held-out", str(held_out)]
    assert study.main(argv) == 0
    table = rows(tmp_path / "study.csv")
    runs = [(r["variant"], r["step"]) for r in table if r["variant"] != "real"]
    assert sorted(runs) == [("no-bcr", "1"), ("no-bcr", "2"), ("paper", "1"), ("paper", "2")]
    assert all(float(r["fid"]) > 0 for r in table)
    assert [r["variant"] for r in table].count("real") == 1               # the protocol's floor
    assert (tmp_path / "study.png").stat().st_size > 0
    first = (tmp_path / "paper-s0" / "fid.csv").read_text()
    assert study.main(argv) == 0                                          # again: nothing to redo
    assert (tmp_path / "paper-s0" / "fid.csv").read_text() == first
    assert len((tmp_path / "command.txt").read_text().splitlines()) == 2


def test_every_variant_builds_valid_configs():
    for variant in study.VARIANTS.values():
        gcfg, dcfg, tcfg = variant.configs("small", steps=100, eval_every=50, seed=1)
        assert tcfg.steps == 100 and tcfg.seed == 1 and tcfg.checkpoint_every == 50


def test_unknown_variant_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        study.main(["--data", "x.npz", "--out", str(tmp_path), "--variants", "nope", "--ref", "r.npz",
                    "--held-out", "h.npz"])
    assert exc.value.code == 2 and "unknown variant" in capsys.readouterr().err


def changed_fields(name: str) -> dict:
    """{"G.field" | "D.field" | "T.field": new value} where variant `name` differs from its baseline
    at the tiny preset (g-wide gives G the small preset's width, so at `small` it changes nothing)."""
    mine = study.VARIANTS[name].configs("tiny", steps=10, eval_every=5, seed=0)
    base = study.VARIANTS[study.VARIANTS[name].baseline].configs("tiny", steps=10, eval_every=5, seed=0)
    return {f"{net}.{f}": getattr(new, f) for net, new, old in zip("GDT", mine, base)
            for f in vars(new) if getattr(new, f) != getattr(old, f)}


def test_each_variant_changes_one_thing_of_the_cpu_recipe():
    """Ablations and alternatives are compared with the CPU recipe they are taken from (g-wide's deeper and
    narrower variants: with g-wide or g-wide-deep), and change exactly one thing (the generator's official
    attention: its two fields together; a narrower D: its width, MLP and heads together; hflip-bf16 and
    p-0.8-d-lr-0.5x combine two gains)."""
    expected = {"lambda-10": {"T.lambda_real": 10.0, "T.lambda_fake": 10.0}, "bcr-official": {"T.bcr_mode": "official"},
                "bcr-paper": {"T.bcr_mode": "paper"}, "cutout-0.3": {"T.augment": "color,translation,cutout:0.3"},
                "hflip": {"T.hflip": True}, "g-official": {"G.attention": "l2", "G.spectral_norm": "isn"},
                "no-bcr": {"T.bcr": False}, "no-diffaug": {"T.augment": ""},
                "dot-attention": {"D.attention": "dot"}, "sn": {"D.spectral_norm": "sn"},
                "no-overlap": {"D.overlapping_patches": False}, "ema-torch": {"T.ema_warmup": "torch_ema"},
                "bf16": {"T.precision": "bf16"}, "mapping-lr-1": {"G.mapping_lr_mul": 1.0},
                "hflip-bf16": {"T.hflip": True, "T.precision": "bf16"},
                "lr-0.001": {"T.lr": 0.001}, "lr-0.004": {"T.lr": 0.004},
                "batch-16": {"T.batch_size": 16}, "batch-64": {"T.batch_size": 64},
                "ema-20k": {"T.ema_half_life_images": 20_000},
                "bf16-compile": {"T.precision": "bf16", "T.compile": True},
                "g-wide": {"G.dim": 128, "G.mlp_dim": 256},
                "g-wider": {"G.dim": 192, "G.mlp_dim": 384}, "d-lr-2x": {"T.d_lr_mul": 2.0},
                "d-lr-0.5x": {"T.d_lr_mul": 0.5}, "p-0.8": {"T.augment_p": 0.8},
                "p-0.8-d-lr-0.5x": {"T.augment_p": 0.8, "T.d_lr_mul": 0.5}, "lr-decay": {"T.lr_decay": 0.5}}
    narrow_d = {"D.dim": 32, "D.mlp_dim": 64, "D.heads": 2}
    from_g_wide = {"g-wide-deep": {"G.depth": 4}, "g-wide-d-deep": {"D.depth": 4}, "g-wide-d-narrow": narrow_d,
                   "g-wide-warmup": {"T.warmup_steps": 1000}}
    from_g_wide_deep = {"g-wide-deep-d-narrow": narrow_d}
    for baseline, variants in (("tiny-recipe", expected), ("g-wide", from_g_wide), ("g-wide-deep", from_g_wide_deep)):
        for name, fields in variants.items():
            assert study.VARIANTS[name].baseline == baseline, name
            assert changed_fields(name) == fields, name
    pinned = set(expected) | set(from_g_wide) | set(from_g_wide_deep)
    assert pinned == set(study.VARIANTS) - {"paper", "tiny-recipe"}  # every one pinned
    assert study.VARIANTS["paper"].baseline is None
    assert all(v.baseline in study.VARIANTS for v in study.VARIANTS.values() if v.name != "paper")
    assert changed_fields("tiny-recipe") == {"T.augment": "color,translation,cutout", "T.augment_p": 0.5,
                                             "T.lambda_real": 1.0, "T.lambda_fake": 1.0}


def gone(pid: int) -> bool:
    """The process has exited (a zombie left for a parent that does not reap counts as exited)."""
    status = Path(f"/proc/{pid}/status")
    if status.is_file():
        return "\nState:\tZ" in status.read_text()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_worker_stops_when_the_runner_is_killed(tmp_path):
    """`kill <runner>` must not leave a worker training on: the worker watches its parent and exits."""
    armed = tmp_path / "armed"          # written once the watch runs; after it, only the watch can end the sleep
    worker = ("import pathlib, sys, time; from vitgan_lite.study import exit_with_parent; "
              "exit_with_parent(int(sys.argv[1]), poll_seconds=0.1); pathlib.Path(sys.argv[2]).touch(); time.sleep(60)")
    runner = (f"import os, subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {worker!r}, str(os.getpid()), "
              f"{str(armed)!r}], stdout=subprocess.DEVNULL); print(p.pid, flush=True)\n"
              f"while not os.path.exists({str(armed)!r}): time.sleep(0.05)")   # the runner ends once the watch runs
    out = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=60, check=True)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 60
    while not (armed.exists() and gone(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert armed.exists(), "the worker never started its watch"
    assert gone(pid), "the worker outlived its runner"


def micro_run(tmp_path, cifar_npz, steps):
    """One variant of the micro study, trained to `steps` in this process (what a worker runs)."""
    return study.run_variant(study.VARIANTS["paper"], 0, "tiny", str(cifar_npz), tmp_path, steps, 1, 8,
                             str(cifar_npz), 16, tmp_path / "fid_cache")


@pytest.mark.usefixtures("one_thread")
def test_a_run_killed_between_its_checkpoint_and_its_fid_row_counts_all_its_cpu_time(tmp_path, cifar_npz):
    folder = micro_run(tmp_path, cifar_npz, 1)
    trainer = Trainer.from_state(load_latest(folder)[1], load_dataset(str(cifar_npz)), "cpu")
    trainer.run(2, folder)                             # the worker's step 2 and checkpoint; then it is killed
    spent = trainer.meta["train_cpu_seconds"]
    micro_run(tmp_path, cifar_npz, 2)                  # the resume measures the FID that was missing
    first, second = rows(folder / "fid.csv")
    assert second["step"] == "2" and float(first["train_cpu_seconds"]) < spent
    assert float(second["train_cpu_seconds"]) == pytest.approx(spent, abs=0.15)   # not first's: step 2 counted


@pytest.mark.usefixtures("one_thread")
def test_a_checkpoint_from_before_cpu_records_takes_its_rows_time_or_is_refused(tmp_path, cifar_npz):
    folder = micro_run(tmp_path, cifar_npz, 1)
    path, state = load_latest(folder)
    del state["meta"]["train_cpu_seconds"]
    save_checkpoint(state, path)
    recorded = rows(folder / "fid.csv")[0]["train_cpu_seconds"]
    assert study.legacy_cpu_seconds(rows(folder / "fid.csv"), 1, folder) == float(recorded)
    (folder / "fid.csv").unlink()                      # killed before its FID: that stretch's time is unknown
    with pytest.raises(RunFolderError, match="training time is unknown; delete the folder"):
        micro_run(tmp_path, cifar_npz, 2)
