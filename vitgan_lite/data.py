"""Datasets that all yield float images in [-1, 1], shape (3, H, W), and nothing else.

- `cifar10`: torchvision's CIFAR10, downloaded into `data/` on first use.
- an `.npz` file holding `x`: uint8 (N, H, W, 3) RGB -- the format of the offline CIFAR-10 copy
  used by the tests; bring your own images in the same format.
- a folder of images (png/jpg/...; searched recursively), centre-cropped and resized.
- `synthetic`: deterministic coloured discs on gradient backgrounds, generated from a seed;
  needs no download, and has structure a GAN can learn in minutes on a CPU.

`load_dataset(spec)` picks one from a string: "cifar10", "synthetic", a path to a .npz, or a folder.

`cifar10_subset` gives the course's two fixed subsets of real CIFAR-10 (the same images whether
they come from the offline copy that tests and CI use or from a fresh download), so notebook
outputs are reproducible everywhere.
"""
from __future__ import annotations

from pathlib import Path

import os

import numpy as np
import torch
from torch.utils.data import Dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def to_signed(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) in [0, 255] -> float32 in [-1, 1]."""
    return images_uint8.to(torch.float32) / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float (..., 3, H, W) in [-1, 1] -> uint8 [0, 255] (clamped, rounded)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class TensorImages(Dataset):
    """Images held in memory as uint8 (N, 3, H, W); item i is float (3, H, W) in [-1, 1]."""

    def __init__(self, images_uint8: torch.Tensor):
        if images_uint8.ndim != 4 or images_uint8.shape[1] != 3 or images_uint8.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images of shape (N, 3, H, W), got {images_uint8.dtype} "
                             f"{tuple(images_uint8.shape)}")
        self.images = images_uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_signed(self.images[i])

    def to(self, device: str | torch.device) -> "TensorImages":
        """The same images on `device` (a trainer keeps them on its GPU: no copy per batch)."""
        moved = TensorImages.__new__(TensorImages)
        moved.images = self.images.to(device)
        return moved


class NpzImages(TensorImages):
    """An .npz file with `x`: uint8 (N, H, W, 3) RGB."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such .npz file: {path}")
        with np.load(path) as archive:
            if "x" not in archive:
                raise ValueError(f"{path} has arrays {list(archive.keys())}; expected 'x': uint8 (N, H, W, 3)")
            x = archive["x"]
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
            raise ValueError(f"{path}: 'x' must be uint8 (N, H, W, 3) RGB, got {x.dtype} {x.shape}")
        super().__init__(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())


class FolderImages(Dataset):
    """Every image file under a folder, centre-cropped to a square and resized to image_size."""

    def __init__(self, root: str | Path, image_size: int = 32):
        from torchvision import transforms

        self.root = Path(root)
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {self.root}")
        self.transform = transforms.Compose([
            transforms.Resize(image_size), transforms.CenterCrop(image_size), transforms.PILToTensor()])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return to_signed(self.transform(im.convert("RGB")))


def synthetic_images(n: int, image_size: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 3, S, S): a disc of random colour, centre and radius on a random linear gradient."""
    gen = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1, 1, image_size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")                       # (S, S)
    corner_a, corner_b, disc = (torch.rand(n, 3, 1, 1, generator=gen) for _ in range(3))
    angle = torch.rand(n, 1, 1, 1, generator=gen) * 2 * torch.pi
    t = (torch.cos(angle) * xx + torch.sin(angle) * yy + 1) / 2             # (n, 1, S, S) in [0, 1]
    background = corner_a * (1 - t) + corner_b * t                           # (n, 3, S, S)
    centre = torch.rand(n, 2, 1, 1, generator=gen) * 1.2 - 0.6
    radius = torch.rand(n, 1, 1, 1, generator=gen) * 0.3 + 0.2
    inside = ((yy - centre[:, :1]) ** 2 + (xx - centre[:, 1:]) ** 2 < radius ** 2).to(torch.float32)
    images = background * (1 - inside) + disc * inside
    return (images * 255).round().to(torch.uint8)


class SyntheticImages(TensorImages):
    """`n` deterministic synthetic images (see `synthetic_images`); no download needed."""

    def __init__(self, n: int = 10_000, image_size: int = 32, seed: int = 0):
        super().__init__(synthetic_images(n, image_size, seed))


def _torchvision_cifar10(root: str | Path, train: bool, download: bool):
    from torchvision.datasets import CIFAR10

    try:
        return CIFAR10(str(root), train=train, download=download)
    except (RuntimeError, OSError) as exc:  # no network, or no files with download=False
        raise FileNotFoundError(
            f"CIFAR-10 is not in {Path(root).resolve()} and could not be downloaded ({exc}). "
            f"Put the extracted 'cifar-10-batches-py' folder there (from "
            f"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz), or use an .npz file "
            f"with 'x': uint8 (N, 32, 32, 3)."
        ) from exc


def _images(ds) -> torch.Tensor:
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()   # (N, 3, 32, 32) uint8


def cifar10(root: str | Path = "data", train: bool = True, download: bool = True) -> TensorImages:
    """CIFAR-10 (50k train / 10k test) via torchvision, stored under `root`."""
    return TensorImages(_images(_torchvision_cifar10(root, train, download)))


CIFAR10_SUBSETS = {"train_10k": "the first 1,000 training images of each class, in the original order",
                   "test_1k": "the first 1,000 test images"}


def offline_cifar10_dir() -> Path | None:
    """The folder of the offline subsets: $VITGAN_CIFAR10_DIR, else ../shared/data/cifar10 beside the
    project checkout (where this project's tests and CI find it); None if neither exists."""
    candidates = [os.environ.get("VITGAN_CIFAR10_DIR"),
                  Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"]
    return next((Path(c) for c in candidates if c and (Path(c) / "train_10k.npz").is_file()), None)


def subset_indices(labels: np.ndarray, name: str) -> np.ndarray:
    """Positions in the full split that make up a course subset (see CIFAR10_SUBSETS), ascending."""
    if name == "test_1k":
        return np.arange(1000)
    if name == "train_10k":
        return np.sort(np.concatenate([np.flatnonzero(labels == c)[:1000] for c in range(10)]))
    raise ValueError(f"unknown CIFAR-10 subset {name!r}; known: {sorted(CIFAR10_SUBSETS)}")


def cifar10_subset(name: str = "train_10k", root: str | Path = "data") -> TensorImages:
    """A fixed subset of CIFAR-10: the offline .npz if found (`offline_cifar10_dir`), otherwise
    torchvision's download into `root`, from which the same images are selected."""
    if name not in CIFAR10_SUBSETS:
        raise ValueError(f"unknown CIFAR-10 subset {name!r}; known: {sorted(CIFAR10_SUBSETS)}")
    folder = offline_cifar10_dir()
    if folder is not None and (folder / f"{name}.npz").is_file():
        return NpzImages(folder / f"{name}.npz")
    ds = _torchvision_cifar10(root, train=(name == "train_10k"), download=True)
    return TensorImages(_images(ds)[torch.from_numpy(subset_indices(np.asarray(ds.targets), name))])


def load_dataset(spec: str, image_size: int = 32, root: str | Path = "data") -> Dataset:
    """'cifar10' | 'synthetic' | path/to/file.npz | path/to/folder -> a Dataset of (3, S, S) in [-1, 1]."""
    if spec == "cifar10":
        ds = cifar10(root)
    elif spec == "synthetic":
        ds = SyntheticImages(image_size=image_size)
    elif spec.endswith(".npz"):
        ds = NpzImages(spec)
    elif Path(spec).is_dir():
        ds = FolderImages(spec, image_size)
    else:
        raise FileNotFoundError(
            f"dataset {spec!r} not found: use 'cifar10', 'synthetic', an existing .npz file "
            f"(uint8 'x' of shape (N, H, W, 3)) or an existing folder of images")
    size = tuple(ds[0].shape[-2:])
    if size != (image_size, image_size):
        raise ValueError(f"dataset {spec!r} has {size[0]}x{size[1]} images but the model expects "
                         f"{image_size}x{image_size}; resize the data or change image_size in the config")
    return ds
