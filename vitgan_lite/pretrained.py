"""Pretrained generators: a slim file with only what sampling needs.

    python -m vitgan_lite.pretrained CHECKPOINT OUT [--dataset NAME]

A training checkpoint (`checkpoint.py`) carries G, D, the EMA shadow weights, both Adam states and
every RNG state -- about 7x the size of the generator alone for the tiny preset. Sampling needs only
the EMA generator. `export_generator` writes that, plus its `GeneratorConfig` and where it came from
(step, dataset, training recipe), as tensors and plain values: `torch.load(..., weights_only=True)`
reads it without running pickled code. `load_generator` reads either kind of file.

Slim file layout:
    {"format": FORMAT, "config": GeneratorConfig fields, "state_dict": the EMA generator's weights,
     "meta": {"step", "dataset", "train": TrainConfig fields, "source": checkpoint file name, "weights": "EMA",
              optionally "fid": its measured FID and "fid_protocol": how it was measured}}
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from .checkpoint import save_checkpoint
from .config import GeneratorConfig
from .errors import CONTENT_ERRORS, GeneratorFileError, cause
from .generator import Generator
from .sample import ema_generator_from_checkpoint, ema_generator_from_state

FORMAT = "vitgan_lite.generator/1"      # bump if the layout of the slim file changes
HOW_TO_FIX = ("pass a file written by `python -m vitgan_lite.pretrained CHECKPOINT OUT` "
              "or a training checkpoint ckpt_*.pt (re-export or re-download it if it is damaged)")


def provenance(state: dict, source: str | Path, dataset: str | None = None) -> dict:
    """Where a generator comes from: step, dataset, training recipe, source file name (no folders)."""
    if dataset is None:                     # what the run recorded (a spec or a path: keep the file name)
        dataset = Path(str(state.get("meta", {}).get("data", "unknown"))).name
    return {"step": int(state["step"]), "dataset": dataset, "train": dict(state["configs"]["train"]),
            "source": Path(source).name, "weights": "EMA"}


def export_generator(checkpoint: str | Path, out_path: str | Path, dataset: str | None = None,
                     fid: float | None = None, fid_protocol: str | None = None) -> Path:
    """Write the EMA generator of `checkpoint` (file or run folder) to `out_path`, atomically.

    `dataset` names the training data in the metadata (default: what the run recorded, else 'unknown').
    `fid` and `fid_protocol` record a measured FID with the protocol it was measured under (both or neither).
    """
    if (fid is None) != (fid_protocol is None):
        raise ValueError("give the FID and its protocol together (--fid and --fid-protocol)")
    G, state = ema_generator_from_checkpoint(checkpoint)
    meta = provenance(state, checkpoint, dataset)
    if fid is not None:
        meta.update(fid=float(fid), fid_protocol=str(fid_protocol))
    slim = {"format": FORMAT, "config": dataclasses.asdict(G.cfg), "state_dict": G.state_dict(), "meta": meta}
    return save_checkpoint(slim, out_path)   # temp file + fsync + os.replace


def _read(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, disallowed pickle: all unusable
        raise GeneratorFileError(f"{path} is corrupt or not a torch file ({cause(exc)}); {HOW_TO_FIX}") from exc


def _from_slim(slim: dict) -> tuple[Generator, dict]:
    """The generator and metadata of a slim file's content (any error: the content does not fit)."""
    G = Generator(GeneratorConfig.from_dict(slim["config"]))
    G.load_state_dict(slim["state_dict"])
    return G.eval().requires_grad_(False), dict(slim["meta"])


def _built(path: Path, build) -> tuple[Generator, dict]:
    """build() -> (Generator, metadata); content that does not fit becomes a GeneratorFileError naming the file."""
    try:
        return build()
    except (*CONTENT_ERRORS, ValueError) as exc:
        raise GeneratorFileError(f"{path} holds a generator this vitgan_lite cannot build ({cause(exc)}); "
                                 f"{HOW_TO_FIX}") from exc


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """A slim generator file, a training checkpoint or a run folder -> (EMA Generator in eval mode, metadata).

    Read with weights_only, never unpickling; a file that cannot be used raises GeneratorFileError
    (errors.InputError) naming it, a missing one FileNotFoundError.
    """
    path = Path(path)
    if path.is_dir():
        G, state = ema_generator_from_checkpoint(path, device)     # newest readable checkpoint
        return G, provenance(state, path)
    if not path.is_file():
        raise FileNotFoundError(f"no generator file {path}; {HOW_TO_FIX}")
    content = _read(path)
    if isinstance(content, dict) and "format" in content:
        if content["format"] != FORMAT or not {"config", "state_dict", "meta"} <= content.keys():
            raise GeneratorFileError(f"{path} is not a {FORMAT!r} generator file (format {str(content['format'])[:40]!r}, "
                                     f"keys {sorted(map(str, content))}): upgrade vitgan_lite or re-export the generator")
        G, meta = _built(path, lambda: _from_slim(content))
    elif isinstance(content, dict) and {"G_ema", "configs", "step"} <= content.keys():  # a training checkpoint
        G, meta = _built(path, lambda: (ema_generator_from_state(content), provenance(content, path)))
    else:
        raise GeneratorFileError(f"{path} is neither a vitgan_lite generator file nor a training checkpoint; "
                                 f"{HOW_TO_FIX}")
    return G.to(device), meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vitgan_lite.pretrained",
                                     description="Export the EMA generator of a training checkpoint to a slim file.")
    parser.add_argument("checkpoint", help="training checkpoint ckpt_*.pt or a run folder (its newest checkpoint)")
    parser.add_argument("out", help="file to write, e.g. vitgan_tiny_cifar10.pt")
    parser.add_argument("--dataset", default=None, help="name of the training data for the metadata")
    parser.add_argument("--fid", type=float, default=None, help="the generator's measured FID, for the metadata")
    parser.add_argument("--fid-protocol", default=None,
                        help="how --fid was measured, e.g. '1000 EMA samples vs 10000 train_10k images'")
    args = parser.parse_args(argv)
    try:
        out = export_generator(args.checkpoint, args.out, args.dataset, args.fid, args.fid_protocol)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    except OSError as exc:   # the output cannot be written: a folder that is a file, no permission, a full disk
        parser.error(f"cannot write {exc.filename or args.out} ({exc.strerror or type(exc).__name__}); "
                     "choose a writable output path")
    _, meta = load_generator(out)                     # the file must load back
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB; EMA generator of step {meta['step']}, "
          f"data {meta['dataset']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
