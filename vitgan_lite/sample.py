"""Images from a trained generator: sample grids during training and the `vitgan-sample` command.

    vitgan-sample --checkpoint runs/tiny --out grid.png [--n 64] [--truncation 0.7] [--images-dir DIR]

`--checkpoint` is a checkpoint file or a run folder (its newest readable checkpoint). Samples come
from the EMA generator. Truncation (StyleGAN): w = w_avg + psi * (w - w_avg) trades variety for
quality; psi = 1 is off.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image

from .checkpoint import load_checkpoint, load_latest
from .config import GeneratorConfig
from .errors import CONTENT_ERRORS, CheckpointError, cause
from .generator import Generator


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """images (..., C, H, W) in [-1, 1] -> the same shape in uint8 0..255, clamped and rounded."""
    unit = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    return unit.mul(255).add(0.5).clamp(0, 255).to(torch.uint8)


def tile(images: torch.Tensor, nrow: int, padding: int = 2) -> torch.Tensor:
    """images (N, C, H, W) -> one grid (C, H', W'), nrow images per row, black gaps of `padding`
    pixels around each (torchvision's make_grid layout; a single image comes back as it is)."""
    n, c, h, w = images.shape
    if n == 1:
        return images[0]
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    cells = torch.cat([images, images.new_zeros(rows * cols - n, c, h, w)])  # empty cells are black
    cells = F.pad(cells, (0, padding, 0, padding))                          # gap right and below
    grid = rearrange(cells, "(r k) c h w -> c (r h) (k w)", r=rows)         # (C, rows*(H+p), cols*(W+p))
    return F.pad(grid, (padding, 0, padding, 0))                            # and the top/left border


def write_png(image: torch.Tensor, path: str | Path) -> None:
    """One uint8 image (C, H, W), C = 1 or 3, -> a PNG file.

    Pillow, not torchvision.utils.save_image: importing torchvision costs a training process
    ~170 MB of memory and over a second, for a picture every few thousand steps."""
    array = rearrange(image, "c h w -> h w c").numpy()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """images (N, C, H, W) in [-1, 1] -> one PNG grid, nrow per row (default: a square)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.sqrt(len(images))))
    write_png(tile(to_uint8(images), nrow), path)
    return path


@torch.no_grad()
def generate(G: Generator, z: torch.Tensor, truncation_psi: float = 1.0,
             w_avg: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
    """z (N, latent_dim) -> images (N, C, H, W) on the CPU, in batches; G is used in eval mode."""
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    chunks = [G.synthesize(G.style(part.to(device), truncation_psi, w_avg)).cpu()
              for part in z.split(batch_size)]
    G.train(was_training)
    return torch.cat(chunks)


def ema_generator_from_checkpoint(source: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """The EMA generator of a checkpoint file or of the newest checkpoint in a run folder.

    CheckpointError names the file if it is unreadable or holds a generator that cannot be built
    (configs or weights that do not fit this vitgan_lite).
    """
    source = Path(source)
    path, state = load_latest(source) if source.is_dir() else (source, load_checkpoint(source))
    try:
        G = ema_generator_from_state(state)
    except (*CONTENT_ERRORS, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} holds a generator this vitgan_lite cannot build ({cause(exc)}); "
                              "use a ckpt_*.pt written by vitgan-train") from exc
    return G.to(device), state


def ema_generator_from_state(state: dict, device: str | torch.device = "cpu") -> Generator:
    """The EMA generator (eval mode, no gradients) of an already loaded training checkpoint."""
    G = Generator(GeneratorConfig.from_dict(state["configs"]["generator"]))
    G.load_state_dict(state["G_ema"])
    return G.to(device).eval().requires_grad_(False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitgan-sample", description="Sample images from a vitgan_lite checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or run folder (newest checkpoint)")
    parser.add_argument("--out", default="samples.png", help="grid PNG to write (default: samples.png)")
    parser.add_argument("--n", type=int, default=64, help="number of images (default: 64)")
    parser.add_argument("--nrow", type=int, default=None, help="images per grid row (default: square)")
    parser.add_argument("--truncation", type=float, default=1.0, help="truncation psi (default: 1 = off)")
    parser.add_argument("--images-dir", default=None, help="also write each image as a PNG into this folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latents (default: 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n <= 0:
        parser.error(f"--n must be positive, got {args.n}")
    from .trainer import resolve_device  # not at the top: trainer imports this module (via loop)

    try:
        G, state = ema_generator_from_checkpoint(args.checkpoint, resolve_device(args.device))
    except (FileNotFoundError, ValueError) as exc:   # errors.InputError (an unusable file) is a ValueError
        parser.error(str(exc))
    z = torch.randn(args.n, G.cfg.latent_dim, generator=torch.Generator().manual_seed(args.seed))
    w_avg = G.mean_style() if args.truncation != 1.0 else None
    images = generate(G, z, args.truncation, w_avg)                   # (n, C, H, W)
    try:
        grid = save_grid(images, args.out, args.nrow)
        print(f"wrote {grid} ({args.n} images, step {state['step']}, truncation {args.truncation})")
        if args.images_dir:
            folder = Path(args.images_dir)
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(to_uint8(images)):
                write_png(image, folder / f"{i:05d}.png")
            print(f"wrote {args.n} images to {folder}")
    except OSError as exc:   # a folder that is a file, no permission, a full disk
        parser.error(f"cannot write {exc.filename or args.out} ({exc.strerror or type(exc).__name__}); "
                     "choose a writable --out / --images-dir")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
