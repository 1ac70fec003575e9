"""Command lines: vitgan-train (in-process and as `python -m`), vitgan-sample, argparse-style errors."""
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitgan_lite import sample, train
from vitgan_lite.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from vitgan_lite.config import TrainConfig
from vitgan_lite.data import synthetic_images
from vitgan_lite.sample import ema_generator_from_checkpoint, generate

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory) -> str:
    """16 synthetic images as an .npz (building the 10k-image synthetic set takes seconds)."""
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, x=synthetic_images(16).permute(0, 2, 3, 1).numpy())
    return str(path)


def log_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]


def test_train_synthetic(tmp_path):
    out = tmp_path / "run"
    assert train.main(["--preset", "tiny", "--data", "synthetic", "--steps", "2", "--batch-size", "4",
                       "--out", str(out)]) == 0
    state = load_checkpoint(out / "ckpt_0000002.pt")
    assert state["step"] == 2 and state["meta"]["data"] == "synthetic"
    assert log_steps(out) == [1, 2]
    with Image.open(out / "samples" / "step_0000002.png") as grid:
        assert grid.size == (2 + 8 * 34, 2 + 8 * 34)        # 64 images of 32x32, padding 2


def test_resume_continues_to_the_new_total(tmp_path, small_npz):
    out = tmp_path / "run"
    assert train.main(["--preset", "tiny", "--data", small_npz, "--steps", "3", "--batch-size", "4",
                       "--out", str(out)]) == 0
    assert train.main(["--out", str(out), "--resume", "--steps", "5", "--keep-checkpoints", "1"]) == 0
    assert [p.name for p in list_checkpoints(out)] == ["ckpt_0000005.pt"]
    assert log_steps(out) == [1, 2, 3, 4, 5]
    assert load_checkpoint(out / "ckpt_0000005.pt")["meta"]["data"] == small_npz


def test_train_cifar10_with_ablations_and_sample(tmp_path, cifar_npz, capsys):
    out = tmp_path / "run"
    assert train.main(["--preset", "tiny", "--data", str(cifar_npz), "--steps", "2", "--batch-size", "4",
                       "--out", str(out), "--no-bcr", "--no-augment", "--attention", "dot",
                       "--spectral-norm", "sn", "--no-overlap", "--r1-gamma", "0.5"]) == 0
    configs = load_checkpoint(out / "ckpt_0000002.pt")["configs"]
    assert (configs["train"]["bcr"], configs["train"]["augment"], configs["train"]["r1_gamma"]) == (False, "", 0.5)
    assert {k: configs["discriminator"][k] for k in ("attention", "spectral_norm", "overlapping_patches")} \
        == {"attention": "dot", "spectral_norm": "sn", "overlapping_patches": False}
    assert log_steps(out) == [1, 2] and (out / "samples" / "step_0000002.png").is_file()

    grid, images = tmp_path / "grid.png", tmp_path / "images"
    assert sample.main(["--checkpoint", str(out), "--out", str(grid), "--n", "6", "--nrow", "3",
                        "--truncation", "0.7", "--images-dir", str(images)]) == 0
    with Image.open(grid) as im:
        assert im.size == (2 + 3 * 34, 2 + 2 * 34)
    assert sorted(p.name for p in images.iterdir()) == [f"{i:05d}.png" for i in range(6)]
    out_text = capsys.readouterr().out
    assert "step 2, truncation 0.7" in out_text and f"wrote 6 images to {images}" in out_text


def test_truncation_moves_samples_towards_the_mean_style(tmp_path, small_npz):
    assert train.main(["--preset", "tiny", "--data", small_npz, "--steps", "1", "--batch-size", "4",
                       "--out", str(tmp_path)]) == 0
    G, _ = ema_generator_from_checkpoint(tmp_path)
    z, w_avg = torch.randn(3, G.cfg.latent_dim), G.mean_style()
    collapsed = generate(G, z, truncation_psi=0.0, w_avg=w_avg)         # psi = 0: every image is G(w_avg)
    torch.testing.assert_close(collapsed, G.synthesize(w_avg.expand(3, -1)))
    assert not torch.allclose(generate(G, z)[0], generate(G, z)[1])


@pytest.mark.parametrize("argv, message", [
    (["--preset", "tiny", "--data", "synthetic", "--steps", "0"], "--steps must be positive"),
    (["--preset", "tiny"], "--data is required"),
    (["--preset", "tiny", "--data", "missing.npz"], "no such .npz file"),
    (["--preset", "tiny", "--data", "no/such/folder"], "not found"),
    (["--preset", "tiny", "--data", "synthetic", "--augment", "blur"], "unknown DiffAugment policy"),
    (["--preset", "tiny", "--data", "synthetic", "--augment-p", "2"], r"augment_p must be in \[0, 1\]"),
    (["--preset", "tiny", "--data", "synthetic", "--lr-decay", "1.5"], r"lr_decay must be in \[0, 1\]"),
    (["--preset", "tiny", "--data", "synthetic", "--batch-size", "-1"], "batch_size must be a positive"),
    (["--preset", "tiny", "--data", "synthetic", "--d-lr-mul", "0"], "d_lr_mul must be > 0"),
    (["--preset", "tiny", "--data", "synthetic", "--batch-size", "64", "--threads", "0"], "--threads must be"),
    (["--resume"], "no checkpoint"),
    (["--preset", "tiny", "--data", "synthetic", "--hours", "0"], "--hours must be positive"),
    (["--preset", "tiny", "--data", "synthetic", "--new-data"], "--new-data goes with --resume and --data"),
])
def test_bad_arguments_are_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv + ["--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: vitgan-train" in err and len(re.findall(message, err)) == 1


def test_existing_run_needs_resume_and_resume_keeps_configs(tmp_path, capsys, small_npz):
    base = ["--preset", "tiny", "--data", small_npz, "--batch-size", "4", "--out", str(tmp_path)]
    assert train.main(base + ["--steps", "1"]) == 0
    for argv, message in [(base + ["--steps", "2"], "already holds checkpoints"),
                          (["--out", str(tmp_path), "--resume", "--lr", "0.1"], "would change them: --lr"),
                          (["--out", str(tmp_path), "--resume", "--no-overlap"], "--overlap on → off")]:
        with pytest.raises(SystemExit):
            train.main(argv)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sample.main(["--checkpoint", str(tmp_path / "nothing.pt")])
    assert "no checkpoint file" in capsys.readouterr().err


def test_module_entry_point_saves_on_ctrl_c(tmp_path, small_npz):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vitgan_lite.train", "--preset", "tiny", "--data", small_npz,
           "--steps", "100000", "--batch-size", "4", "--out", str(out), "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ((out / "log.jsonl").is_file() and (out / "log.jsonl").read_text().count("\n") >= 2):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    last = log_steps(out)[-1]
    assert "[interrupted]" in stdout and f"step={last}" in stdout
    assert [p.name for p in list_checkpoints(out)] == [f"ckpt_{last:07d}.pt"]
    assert (out / "samples" / f"step_{last:07d}.png").is_file()


def test_train_on_an_image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(synthetic_images(6, image_size=48)):      # resized and cropped to 32x32
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    (folder / "scraped.jpg").write_bytes(b"<html>403 Forbidden</html>")  # a scraped folder's broken file
    with pytest.warns(RuntimeWarning, match=r"skipped 1 unreadable image file\(s\) of 7: scraped.jpg"):
        assert train.main(["--preset", "tiny", "--data", str(folder), "--steps", "2", "--batch-size", "3",
                           "--out", str(tmp_path / "run")]) == 0
    assert log_steps(tmp_path / "run") == [1, 2]


RUN = ["--preset", "tiny", "--batch-size", "4", "--seed", "0", "--lambda-real", "2", "--betas", "0.5", "0.9",
       "--no-bcr"]


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory, small_npz) -> Path:
    """A tiny run of one step started with RUN; tests resume a copy of it (`run_copy`)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train.main(RUN + ["--data", small_npz, "--steps", "1", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture
def run_copy(one_step_run, tmp_path) -> Path:
    return Path(shutil.copytree(one_step_run, tmp_path / "run"))


def test_every_train_config_field_is_an_option():
    help_text = train.build_parser().format_help()
    for field in dataclasses.fields(TrainConfig):
        assert f"--{field.name.replace('_', '-')}" in help_text, field.name
    args = train.build_parser().parse_args(["--ema-half-life", "7", "--no-augment", "--no-bcr", "--compile",
                                            "--betas", "0.1", "0.2", "--bcr-policy", "color", "--lambda-fake", "3"])
    assert train.given(args, train.TRAIN_FIELDS) == {
        "ema_half_life_images": 7, "augment": "", "bcr": False, "compile": True, "betas": [0.1, 0.2],
        "bcr_policy": "color", "lambda_fake": 3.0}


def test_options_reach_the_run_and_meta_records_the_preset(one_step_run, small_npz):
    state = load_checkpoint(one_step_run / "ckpt_0000001.pt")
    recipe = state["configs"]["train"]
    assert (recipe["lambda_real"], tuple(recipe["betas"]), recipe["bcr"]) == (2.0, (0.5, 0.9), False)
    assert state["meta"].pop("train_cpu_seconds") >= 0                 # a measurement (loop.py), not a setting
    assert state["meta"] == {"data": small_npz, "preset": "tiny"}


def test_resume_accepts_the_command_that_started_the_run(run_copy, small_npz):
    assert train.main(RUN + ["--data", small_npz, "--steps", "2", "--out", str(run_copy), "--resume"]) == 0
    assert log_steps(run_copy) == [1, 2]


def test_resume_refuses_changed_options_saying_old_and_new(run_copy, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--out", str(run_copy), "--resume", "--preset", "cifar10", "--lr", "0.001", "--seed", "0",
                    "--betas", "0.5", "0.99", "--bcr", "--no-overlap", "--steps", "5"])
    assert exit_info.value.code == 2
    assert ("would change them: --preset tiny → cifar10, --lr 0.002 → 0.001, --betas 0.5 0.9 → 0.5 0.99, "
            "--bcr off → on, --overlap on → off. Drop them, or start a new --out.") in capsys.readouterr().err
    assert [p.name for p in list_checkpoints(run_copy)] == ["ckpt_0000001.pt"]


def test_resume_may_end_the_run_with_an_lr_decay(run_copy):
    assert train.main(["--out", str(run_copy), "--resume", "--steps", "4", "--lr-decay", "0.5"]) == 0
    lines = [json.loads(line) for line in (run_copy / "log.jsonl").read_text().splitlines()]
    # the run's lr 0.002 until the last half of 4 steps, then (4 - i) / 2 of it at step index i = 3
    assert [(line["step"], line["lr"]) for line in lines] == [(1, 0.002), (2, 0.002), (3, 0.002), (4, 0.001)]
    assert load_checkpoint(run_copy / "ckpt_0000004.pt")["configs"]["train"]["lr_decay"] == 0.5


def test_a_run_without_a_recorded_preset_gets_it_from_its_generator(run_copy, capsys):
    path = run_copy / "ckpt_0000001.pt"
    state = load_checkpoint(path)
    del state["meta"]["preset"]                                # as saved before the preset was recorded
    save_checkpoint(state, path)
    with pytest.raises(SystemExit):
        train.main(["--out", str(run_copy), "--resume", "--preset", "cifar10"])
    assert "--preset tiny → cifar10" in capsys.readouterr().err
    assert train.main(["--out", str(run_copy), "--resume", "--preset", "tiny", "--steps", "2"]) == 0
    assert load_checkpoint(run_copy / "ckpt_0000002.pt")["meta"]["preset"] == "tiny"


def test_resume_on_other_data_needs_new_data(run_copy, small_npz, tmp_path, capsys):
    moved = tmp_path / "moved.npz"
    shutil.copy(small_npz, moved)
    with pytest.raises(SystemExit):
        train.main(["--out", str(run_copy), "--resume", "--data", str(moved)])
    assert f"--data {small_npz} → {moved} differs from the run's data; add --new-data" in capsys.readouterr().err
    assert train.main(["--out", str(run_copy), "--resume", "--data", str(moved), "--new-data", "--steps", "2"]) == 0
    assert load_checkpoint(run_copy / "ckpt_0000002.pt")["meta"]["data"] == str(moved)


def test_hours_stops_cleanly_and_says_how_to_continue(run_copy, monkeypatch, capsys):
    clock = iter(range(0, 10**6, 1000))                        # each reading of the clock: 1000 s later
    monkeypatch.setattr("vitgan_lite.loop.time.monotonic", lambda: next(clock))
    assert train.main(["--out", str(run_copy), "--resume", "--steps", "6", "--hours", "1"]) == 0
    monkeypatch.undo()
    step = log_steps(run_copy)[-1]
    out = capsys.readouterr().out
    assert 1 < step < 6 and "[time budget reached]" in out
    assert f"time budget of 1 h is spent at step {step} of 6; continue with: vitgan-train --out {run_copy} --resume" \
        in out
    assert [p.name for p in list_checkpoints(run_copy)][0] == f"ckpt_{step:07d}.pt"
    assert train.main(["--out", str(run_copy), "--resume"]) == 0   # on to the run's total, 6
    assert log_steps(run_copy) == [1, 2, 3, 4, 5, 6]


def test_resume_after_a_hard_kill_that_tore_the_last_log_line(run_copy):
    with open(run_copy / "log.jsonl", "a") as log:
        log.write('{"step": 2, "loss_D": 1.3')
    with pytest.warns(RuntimeWarning, match="torn last line"):
        assert train.main(["--out", str(run_copy), "--resume", "--steps", "2"]) == 0
    assert log_steps(run_copy) == [1, 2]


def test_a_corrupt_log_is_a_usage_error(run_copy, capsys):
    log = run_copy / "log.jsonl"
    log.write_text("garbage\n" + log.read_text())
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--out", str(run_copy), "--resume", "--steps", "2"])
    assert exit_info.value.code == 2
    assert "log.jsonl line 1 is not a log entry" in capsys.readouterr().err
