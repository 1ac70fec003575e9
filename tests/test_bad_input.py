"""Bad input. Every loader a user can point at a file (.npz, image folder, checkpoint, generator file),
fed random bytes, truncations, empty files and wrong contents, raises the project's own error
(errors.InputError) naming the path; every command-line error exits with status 2 and one error
line -- no traceback (any other exception fails these tests) and no advice to unpickle."""
import contextlib
import fractions
import io
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from vitgan_lite import fid, pretrained, sample, train
from vitgan_lite.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import FolderImages, NpzImages, synthetic_images
from vitgan_lite.errors import CheckpointError, DatasetError, GeneratorFileError, InputError
from vitgan_lite.pretrained import export_generator, load_generator
from vitgan_lite.sample import ema_generator_from_checkpoint
from vitgan_lite.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
UNSAFE_ADVICE = ("weights_only", "allow_pickle", "unsafe", "pickle", "trust")
DAMAGE = {  # what becomes of a valid file's bytes
    "empty": lambda data: b"",
    "text": lambda data: b"garbage\n",
    "random-64": lambda data: np.random.default_rng(64).bytes(64),
    "random-4096": lambda data: np.random.default_rng(4096).bytes(4096),
    "cut-1": lambda data: data[:1],
    "cut-10": lambda data: data[:10],
    "cut-100": lambda data: data[:100],
    "cut-half": lambda data: data[:len(data) // 2],
    "cut-last-byte": lambda data: data[:-1],
}
IMAGE_DAMAGE = [name for name in DAMAGE if name != "cut-last-byte"]   # a PNG without its end marker decodes


def assert_clean(message: str, path: Path) -> None:
    """One line naming the path, with no advice to unpickle anything."""
    assert str(path) in message and "\n" not in message, message
    assert not any(word in message.lower() for word in UNSAFE_ADVICE), message


def assert_usage_error(main, argv: list[str], capsys, expected: str) -> str:
    """main(argv) exits with status 2; stderr ends with its one error line, which says `expected`."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n") and expected in errors[0], err
    assert not any(word in err.lower() for word in UNSAFE_ADVICE), err
    return errors[0]


def npz_bytes(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=x)
    return buffer.getvalue()


def image_bytes(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def images_hwc(n: int, size: int = 32) -> np.ndarray:
    return synthetic_images(n, size).permute(0, 2, 3, 1).numpy()      # uint8 (n, size, size, 3)


def save_pngs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images_hwc(n)):
        Image.fromarray(image).save(folder / f"good_{i}.png")


def with_state(source: Path, target: Path, change) -> Path:
    """A copy of a checkpoint with change(state) applied."""
    state = load_checkpoint(source)
    change(state)
    return save_checkpoint(state, target)


def shrink_generators(state: dict) -> None:
    """Every weight of G and G_ema replaced by a tensor of the wrong shape."""
    for key in ("G", "G_ema"):
        state[key] = {name: torch.zeros(1) for name in state[key]}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> SimpleNamespace:
    """Valid and broken files of every kind the tests point the loaders and commands at."""
    root = tmp_path_factory.mktemp("inputs")
    f = SimpleNamespace(root=root, npz=root / "small.npz")
    f.npz.write_bytes(npz_bytes(images_hwc(16)))
    tcfg = TrainConfig.tiny().replace(batch_size=4, n_samples=4)
    trainer = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), tcfg, NpzImages(f.npz), "cpu")
    trainer.train_step()
    trainer.meta.update(data=str(f.npz), preset="tiny")
    f.run = root / "run"
    f.checkpoint = save_checkpoint(trainer.state_dict(), checkpoint_path(f.run, 1))
    f.generator = export_generator(f.checkpoint, root / "g.pt")
    return f


# ---- the fuzz: every loader, damaged bytes and wrong contents ----------------------------------

def wrong_npz(kind: str, path: Path) -> None:
    x = images_hwc(4)
    arrays = {"no-x": {"images": x}, "float-x": {"x": x.astype(np.float32)},
              "chw-x": {"x": x.transpose(0, 3, 1, 2)}, "no-images": {"x": x[:0]},
              "object-x": {"x": np.array([{"a": 1}], dtype=object)}}
    if kind == "npy-file":
        with open(path, "wb") as f:
            np.save(f, x)                                         # a lone array, not an archive
    elif kind == "torch-file":
        torch.save({"x": torch.from_numpy(x)}, path)             # a zip, but not of .npy arrays
    else:
        np.savez(path, **arrays[kind])


@pytest.mark.parametrize("damage", DAMAGE)
def test_npz_damaged_bytes(files, tmp_path, capsys, damage):
    path = tmp_path / "data.npz"
    path.write_bytes(DAMAGE[damage](files.npz.read_bytes()))
    with pytest.raises(DatasetError) as error:
        NpzImages(path)
    assert_clean(str(error.value), path)
    assert_usage_error(train.main, ["--preset", "tiny", "--data", str(path), "--out", str(tmp_path / "run")],
                       capsys, str(path))


@pytest.mark.parametrize("kind", ["no-x", "float-x", "chw-x", "no-images", "object-x", "npy-file", "torch-file"])
def test_npz_wrong_contents(tmp_path, capsys, kind):
    path = tmp_path / "data.npz"
    wrong_npz(kind, path)
    with pytest.raises(DatasetError) as error:
        NpzImages(path)
    assert_clean(str(error.value), path)
    assert_usage_error(train.main, ["--preset", "tiny", "--data", str(path), "--out", str(tmp_path / "run")],
                       capsys, str(path))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("damage", IMAGE_DAMAGE)
def test_image_folder_skips_a_damaged_file_naming_it(tmp_path, damage, fmt):
    good = Image.fromarray(images_hwc(1)[0])
    save_pngs(tmp_path, 3)
    broken = tmp_path / f"broken.{fmt.lower()}"
    broken.write_bytes(DAMAGE[damage](image_bytes(good, fmt)))
    with pytest.warns(RuntimeWarning, match=rf"skipped 1 unreadable image file\(s\) of 4: broken\.{fmt.lower()} \("):
        ds = FolderImages(tmp_path)
    assert broken not in ds.paths and len(ds) == 3 and ds[2].shape == (3, 32, 32)


@pytest.mark.parametrize("damage", IMAGE_DAMAGE)
def test_image_folder_of_mostly_damaged_files_is_refused(tmp_path, capsys, damage):
    save_pngs(tmp_path / "images", 1)
    png = (tmp_path / "images" / "good_0.png").read_bytes()
    for name in ("broken_a.png", "broken_b.png"):
        (tmp_path / "images" / name).write_bytes(DAMAGE[damage](png))
    with pytest.raises(DatasetError, match="only 1 of 3 image files are readable; unreadable: broken_a.png") as error:
        FolderImages(tmp_path / "images")
    assert_clean(str(error.value), tmp_path / "images")
    assert_usage_error(train.main, ["--preset", "tiny", "--data", str(tmp_path / "images"),
                                    "--out", str(tmp_path / "run")], capsys, "only 1 of 3 image files are readable")


@pytest.mark.parametrize("damage", DAMAGE)
def test_checkpoint_damaged_bytes(files, tmp_path, capsys, damage):
    path = checkpoint_path(tmp_path, 1)
    path.write_bytes(DAMAGE[damage](files.checkpoint.read_bytes()))
    with pytest.raises(CheckpointError) as error:
        ema_generator_from_checkpoint(path)
    assert_clean(str(error.value), path)
    assert_usage_error(sample.main, ["--checkpoint", str(path), "--out", str(tmp_path / "grid.png")], capsys, str(path))


WRONG_CHECKPOINTS = {
    "a-tensor": lambda f, path: torch.save(torch.zeros(3), path),
    "a-list": lambda f, path: torch.save([1, 2, 3], path),
    "missing-keys": lambda f, path: torch.save({"step": 1, "G": {}}, path),
    "needs-unpickling": lambda f, path: torch.save({"step": 1, "G": fractions.Fraction(1, 3)}, path),
    "an-npz": lambda f, path: shutil.copy(f.npz, path),
    "wrong-weights": lambda f, path: with_state(f.checkpoint, path, shrink_generators),
    "wrong-configs": lambda f, path: with_state(f.checkpoint, path,
                                                lambda s: s["configs"]["generator"].update(dim="wide")),
    "no-configs": lambda f, path: with_state(f.checkpoint, path, lambda s: s.update(configs=[])),
}


@pytest.mark.parametrize("kind", WRONG_CHECKPOINTS)
def test_checkpoint_wrong_contents(files, tmp_path, capsys, kind):
    path = checkpoint_path(tmp_path, 1)
    WRONG_CHECKPOINTS[kind](files, path)
    with pytest.raises(CheckpointError) as error:
        ema_generator_from_checkpoint(path)
    assert_clean(str(error.value), path)
    assert_usage_error(sample.main, ["--checkpoint", str(path), "--out", str(tmp_path / "grid.png")], capsys, str(path))


@pytest.mark.parametrize("damage", DAMAGE)
def test_generator_file_damaged_bytes(files, tmp_path, capsys, damage):
    path = tmp_path / "g.pt"
    path.write_bytes(DAMAGE[damage](files.generator.read_bytes()))
    with pytest.raises(GeneratorFileError) as error:
        load_generator(path)
    assert_clean(str(error.value), path)
    assert_usage_error(pretrained.main, [str(path), str(tmp_path / "out.pt")], capsys, str(path))


def slim_with(change):
    """A writer of a copy of the slim generator file with change(content) applied."""
    def write(f, path):
        content = torch.load(f.generator, weights_only=True)
        change(content)
        torch.save(content, path)
    return write


WRONG_GENERATORS = {
    "a-tensor": lambda f, path: torch.save(torch.zeros(3), path),
    "needs-unpickling": lambda f, path: torch.save({"format": fractions.Fraction(1, 3)}, path),
    "other-format": slim_with(lambda c: c.update(format="vitgan_lite.generator/99")),
    "wrong-weights": slim_with(lambda c: c.update(state_dict={k: torch.zeros(1) for k in c["state_dict"]})),
    "wrong-config": slim_with(lambda c: c["config"].update(heads="four")),
    "config-a-list": slim_with(lambda c: c.update(config=[1, 2])),
    "meta-a-tensor": slim_with(lambda c: c.update(meta=torch.zeros(3))),
    "wrong-checkpoint": lambda f, path: with_state(f.checkpoint, path, shrink_generators),
}


@pytest.mark.parametrize("kind", WRONG_GENERATORS)
def test_generator_file_wrong_contents(files, tmp_path, kind):
    path = tmp_path / "g.pt"
    WRONG_GENERATORS[kind](files, path)
    with pytest.raises(GeneratorFileError) as error:
        load_generator(path)
    assert_clean(str(error.value), path)


# ---- every command-line error path -------------------------------------------------------------

def run_folder(f, name: str, change=None) -> Path:
    """A copy of the one-step run, optionally with change(folder) applied."""
    folder = Path(shutil.copytree(f.run, f.root / name, dirs_exist_ok=True))
    if change:
        change(folder)
    return folder


def broken_checkpoint(change):
    return lambda folder: with_state(checkpoint_path(folder, 1), checkpoint_path(folder, 1), change)


def write(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def prepend_garbage_to_log(folder: Path) -> None:
    log = folder / "log.jsonl"
    log.write_text("garbage\n" + (log.read_text() if log.exists() else '{"step": 1}\n'))


def mostly_broken_folder(f) -> Path:
    folder = f.root / "mostly_broken"
    save_pngs(folder, 1)
    for name in ("a.png", "b.jpg"):
        (folder / name).write_bytes(b"not an image")
    return folder


def wrong_size_npz(f) -> Path:
    path = f.root / "small16.npz"
    path.write_bytes(npz_bytes(images_hwc(8, size=16)))
    return path


def garbage(f, name: str) -> Path:
    (f.root / name).write_bytes(b"garbage\n")
    return f.root / name


TRAIN = ["--preset", "tiny", "--batch-size", "4"]
CLI_ERRORS = {  # id: (main, argv from (files, out folder), what the error line says)
    "train-steps-0": (train.main, lambda f, o: TRAIN + ["--data", "synthetic", "--steps", "0", "--out", o],
                      "--steps must be positive"),
    "train-no-data": (train.main, lambda f, o: TRAIN + ["--out", o], "--data is required"),
    "train-unknown-device": (train.main, lambda f, o: TRAIN + ["--data", "synthetic", "--device", "bogus", "--out", o],
                             "unknown device 'bogus'"),
    "train-missing-npz": (train.main, lambda f, o: TRAIN + ["--data", str(f.root / "missing.npz"), "--out", o],
                          "no such .npz file"),
    "train-garbage-npz": (train.main, lambda f, o: TRAIN + ["--data", str(garbage(f, "garbage.npz")), "--out", o],
                          "garbage.npz is not a valid .npz archive"),
    "train-truncated-npz": (train.main, lambda f, o: TRAIN + ["--data", str(f.root / "cut.npz"), "--out", o],
                            "cut.npz is not a valid .npz archive"),
    "train-wrong-image-size": (train.main, lambda f, o: TRAIN + ["--data", str(wrong_size_npz(f)), "--out", o],
                               "has 16x16 images but the model expects 32x32"),
    "train-mostly-broken-folder": (train.main, lambda f, o: TRAIN + ["--data", str(mostly_broken_folder(f)),
                                                                     "--out", o],
                                   "only 1 of 3 image files are readable"),
    "train-folder-without-images": (train.main, lambda f, o: TRAIN + ["--data", str(f.root / "nothing"), "--out", o],
                                    "no images"),
    "train-existing-run": (train.main, lambda f, o: TRAIN + ["--data", str(f.npz), "--out", str(f.run)],
                           "already holds checkpoints"),
    "resume-no-checkpoint": (train.main, lambda f, o: ["--out", o, "--resume"], "no checkpoint (ckpt_*.pt) in"),
    "resume-unreadable-checkpoint": (train.main, lambda f, o: ["--out", str(run_folder(
        f, "unreadable", write("ckpt_0000001.pt", b"PK\x03\x04 torn"))), "--resume"],
        "none of the 1 checkpoint file(s) in"),
    "resume-wrong-weights": (train.main, lambda f, o: ["--out", str(run_folder(
        f, "wrong_weights", broken_checkpoint(shrink_generators))), "--resume"],
        "ckpt_0000001.pt holds weights or states that do not fit its configs"),
    "resume-wrong-configs": (train.main, lambda f, o: ["--out", str(run_folder(
        f, "wrong_configs", broken_checkpoint(lambda s: s["configs"]["train"].update(lr="fast")))), "--resume"],
        "ckpt_0000001.pt holds configs this vitgan_lite cannot read"),
    "resume-corrupt-log": (train.main, lambda f, o: ["--out", str(run_folder(f, "corrupt_log", prepend_garbage_to_log)),
                                                     "--resume", "--steps", "2"],
                           "log.jsonl line 1 is not a log entry"),
    "resume-changed-option": (train.main, lambda f, o: ["--out", str(f.run), "--resume", "--lr", "0.1"],
                              "would change them: --lr"),
    "sample-n-0": (sample.main, lambda f, o: ["--checkpoint", str(f.run), "--n", "0"], "--n must be positive"),
    "sample-missing": (sample.main, lambda f, o: ["--checkpoint", str(f.root / "missing.pt")], "no checkpoint file"),
    "sample-garbage": (sample.main, lambda f, o: ["--checkpoint", str(garbage(f, "garbage.pt"))],
                       "garbage.pt is not a readable vitgan_lite checkpoint"),
    "sample-needs-unpickling": (sample.main, lambda f, o: ["--checkpoint", str(f.root / "foreign.pt")],
                                "foreign.pt is not a readable vitgan_lite checkpoint"),
    "sample-folder-without-checkpoints": (sample.main, lambda f, o: ["--checkpoint", o],
                                          "no readable checkpoint (ckpt_*.pt) in"),
    "sample-wrong-weights": (sample.main, lambda f, o: ["--checkpoint", str(run_folder(
        f, "sample_wrong", broken_checkpoint(shrink_generators)))], "holds a generator this vitgan_lite cannot build"),
    "sample-unknown-device": (sample.main, lambda f, o: ["--checkpoint", str(f.run), "--device", "bogus"],
                              "unknown device 'bogus'"),
    "fid-n-gen-1": (fid.main, lambda f, o: ["--checkpoint", str(f.run), "--ref", str(f.npz), "--n-gen", "1"],
                    "--n-gen must be at least 2"),
    "fid-garbage-checkpoint": (fid.main, lambda f, o: ["--checkpoint", str(garbage(f, "garbage.pt")), "--ref",
                                                       str(f.npz)], "garbage.pt is not a readable vitgan_lite"),
    "fid-garbage-ref": (fid.main, lambda f, o: ["--checkpoint", str(f.run), "--ref", str(garbage(f, "garbage.npz")),
                                                "--n-gen", "2", "--n-ref", "2", "--cache-dir", o],
                        "garbage.npz is not a valid .npz archive"),
    "fid-unknown-device": (fid.main, lambda f, o: ["--checkpoint", str(f.run), "--ref", str(f.npz), "--device", "x"],
                           "unknown device 'x'"),
    "export-garbage": (pretrained.main, lambda f, o: [str(garbage(f, "garbage.pt")), str(Path(o) / "g.pt")],
                       "garbage.pt is not a readable vitgan_lite checkpoint"),
    "export-a-generator-file": (pretrained.main, lambda f, o: [str(f.generator), str(Path(o) / "g.pt")],
                                "not a vitgan_lite training checkpoint"),
    "export-missing": (pretrained.main, lambda f, o: [str(f.root / "missing.pt"), str(Path(o) / "g.pt")],
                       "no checkpoint file"),
}


@pytest.fixture(scope="module")
def cli_files(files) -> SimpleNamespace:
    """`files` plus the inputs only the command-line cases need."""
    (files.root / "cut.npz").write_bytes(files.npz.read_bytes()[:300])
    (files.root / "nothing").mkdir()
    torch.save({"step": 1, "G": fractions.Fraction(1, 3)}, files.root / "foreign.pt")
    return files


WARNINGS = {"resume-unreadable-checkpoint": "ckpt_0000001.pt is not a readable vitgan_lite checkpoint"}


@pytest.mark.parametrize("case", CLI_ERRORS)
def test_every_command_line_error_is_one_line_and_exit_status_2(cli_files, tmp_path, capsys, case):
    main, argv, expected = CLI_ERRORS[case]
    warns = pytest.warns(RuntimeWarning, match=WARNINGS[case]) if case in WARNINGS else contextlib.nullcontext()
    with warns:
        assert_usage_error(main, argv(cli_files, str(tmp_path)), capsys, expected)


def test_errors_of_unusable_input_are_value_errors_of_one_family():
    for error in (DatasetError, CheckpointError, GeneratorFileError):
        assert issubclass(error, InputError) and issubclass(error, ValueError)


# ---- outputs that cannot be written --------------------------------------------------------------
def test_unwritable_outputs_are_usage_errors(files, tmp_path, capsys):
    """An output path below a regular file (NotADirectoryError, even for root): one line, exit 2."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    below = blocker / "sub"
    assert_usage_error(sample.main, ["--checkpoint", str(files.checkpoint), "--out", str(below / "grid.png"),
                                     "--n", "4"], capsys, "cannot write")
    assert_usage_error(sample.main, ["--checkpoint", str(files.checkpoint), "--out", str(tmp_path / "grid.png"),
                                     "--n", "4", "--images-dir", str(below)], capsys, "cannot write")
    assert_usage_error(pretrained.main, [str(files.checkpoint), str(below / "g.pt")], capsys, "cannot write")
    assert_usage_error(train.main, ["--preset", "tiny", "--data", str(files.npz), "--out", str(below),
                                    "--steps", "1", "--batch-size", "4"], capsys, "cannot write into --out")
