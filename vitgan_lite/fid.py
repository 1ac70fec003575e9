"""`vitgan-fid`: the FID of a checkpoint's EMA generator, printed with its protocol.

    vitgan-fid --checkpoint runs/c10 --ref cifar10-test --n-gen 10000 --n-ref 10000  # official protocol
    vitgan-fid --checkpoint runs/tiny --ref cifar10-test --n-gen 500 --n-ref 1000

`--ref` is any dataset spec of `data.load_dataset` (the first n-ref images are used) or
`cifar10-test`, torchvision's CIFAR-10 test split. Reference statistics are cached (--cache-dir,
default ~/.cache/vitgan_lite or $VITGAN_CACHE). Inception on a CPU takes ~0.2 s per image.
"""
from __future__ import annotations

import argparse

from .metrics import InceptionFeatures, fid
from .sample import ema_generator_from_checkpoint
from .trainer import resolve_device


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vitgan-fid", description="FID of a vitgan_lite checkpoint (EMA generator).")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder (newest checkpoint)")
    p.add_argument("--ref", required=True, help="reference data: cifar10-test, cifar10, a .npz file or a folder")
    p.add_argument("--n-gen", type=int, default=10_000, help="generated images (default: 10000)")
    p.add_argument("--n-ref", type=int, default=10_000, help="reference images, the first n (default: 10000)")
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi (default: 1 = off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents (default: 0)")
    p.add_argument("--cache-dir", default=None, help="where reference statistics are cached")
    p.add_argument("--data-root", default="data", help="where cifar10 / cifar10-test are downloaded (default: data)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("n_gen", "n_ref"):
        if getattr(args, name) < 2:
            parser.error(f"--{name.replace('_', '-')} must be at least 2, got {getattr(args, name)}")
    try:
        device = resolve_device(args.device)
        G, state = ema_generator_from_checkpoint(args.checkpoint, device)
        features = InceptionFeatures(device)
        value, protocol = fid(G, args.ref, args.n_gen, args.n_ref, features, args.cache_dir, args.seed,
                              args.truncation, args.data_root)
    except (FileNotFoundError, ValueError) as exc:   # errors.InputError (an unusable file) is a ValueError
        parser.error(str(exc))
    except OSError as exc:   # --cache-dir or --data-root cannot be written
        parser.error(f"cannot write {exc.filename} ({exc.strerror or type(exc).__name__}); "
                     "choose a writable --cache-dir / --data-root")
    print(f"FID {value:.2f} at step {state['step']}: {protocol}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
