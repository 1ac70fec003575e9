"""Datasets that all yield float images in [-1, 1], shape (3, H, W), and nothing else.

- `cifar10`: torchvision's CIFAR10, downloaded into `data/` on first use.
- an `.npz` file holding `x`: uint8 (N, H, W, 3) RGB -- the format of the offline CIFAR-10 copy
  used by the tests; bring your own images in the same format.
- a folder of images (png/jpg/...; searched recursively), centre-cropped and resized; unreadable
  files are skipped with a warning naming them (refused if fewer than half are readable).
- `synthetic`: deterministic coloured discs on gradient backgrounds, generated from a seed;
  needs no download, and has structure a GAN can learn in minutes on a CPU.

`load_dataset(spec)` picks one from a string: "cifar10", "synthetic", a path to a .npz, or a folder.
A file or folder it cannot use raises `errors.DatasetError` naming it (a missing one:
FileNotFoundError).

`cifar10_subset` gives the course's two fixed subsets of real CIFAR-10 (the same images whether
they come from the offline copy that tests and CI use or from a fresh download), so notebook
outputs are reproducible everywhere.
"""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DatasetError, cause

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
MIN_READABLE_FRACTION = 0.5   # an image folder with fewer readable files is refused, not trained on
SHOWN_BROKEN = 5              # unreadable files a message names one by one


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


NPZ_HOW_TO = "save images with np.savez(path, x=images), images uint8 (N, H, W, 3) RGB"


def read_npz_images(path: Path) -> np.ndarray:
    """The array `x` of an .npz archive, read without unpickling anything.

    DatasetError names the file if it is not a zip archive (random bytes, an empty or truncated
    file, a lone .npy), if an array in it cannot be read (damaged, or pickled objects), or if it
    has no `x`. Numpy's own message is not repeated: for a non-archive it advises unpickling.
    """
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path} is not a valid .npz archive (empty, truncated or another format); {NPZ_HOW_TO}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.keys())
            x = archive["x"] if "x" in names else None
    except Exception as exc:  # damaged members (BadZipFile, zlib.error), object arrays, bad headers
        raise DatasetError(f"{path} is a damaged .npz archive ({cause(exc)}); re-create it: {NPZ_HOW_TO}") from exc
    if x is None:
        raise DatasetError(f"{path} has arrays {names}; expected 'x': uint8 (N, H, W, 3)")
    return x


class NpzImages(TensorImages):
    """An .npz file with `x`: uint8 (N, H, W, 3) RGB, at least one image."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such .npz file: {path}")
        x = read_npz_images(path)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
            raise DatasetError(f"{path}: 'x' must be uint8 (N, H, W, 3) RGB, got {x.dtype} {x.shape}")
        if x.shape[0] == 0:
            raise DatasetError(f"{path}: 'x' holds no images (shape {x.shape})")
        super().__init__(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())


def unreadable_image(path: Path, image_size: int) -> str | None:
    """Why PIL cannot decode the image file (an exception's class name), or None if it can.

    The file is decoded in full (a truncated JPEG opens fine and fails only then); JPEGs are decoded
    at a reduced scale (draft), which is several times faster on large photos.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("RGB", (image_size, image_size))
            im.load()
    except Exception as exc:  # UnidentifiedImageError, truncated data, decompression bomb, permissions
        return cause(exc)
    return None


def readable_images(root: Path, paths: list[Path], image_size: int) -> list[Path]:
    """The paths PIL can decode. Unreadable files are skipped with one warning naming them (the first
    SHOWN_BROKEN); if fewer than MIN_READABLE_FRACTION of the files are readable, a DatasetError
    names them instead (a wrong folder, not a few broken files)."""
    broken = {path: why for path in paths if (why := unreadable_image(path, image_size)) is not None}
    good = [path for path in paths if path not in broken]
    if broken:
        named = ", ".join(f"{path.relative_to(root)} ({why})" for path, why in list(broken.items())[:SHOWN_BROKEN])
        more = f" and {len(broken) - SHOWN_BROKEN} more" if len(broken) > SHOWN_BROKEN else ""
        if len(good) < MIN_READABLE_FRACTION * len(paths):
            raise DatasetError(f"{root}: only {len(good)} of {len(paths)} image files are readable; unreadable: "
                               f"{named}{more}. Repair or remove them, or use the right folder")
        warnings.warn(f"{root}: skipped {len(broken)} unreadable image file(s) of {len(paths)}: {named}{more}",
                      RuntimeWarning, stacklevel=3)
    return good


class FolderImages(Dataset):
    """Every readable image file under a folder, centre-cropped to a square and resized to image_size.

    Scraped folders hold broken files: every file is decoded once here, and the ones PIL cannot
    read are skipped with a warning naming them -- unless fewer than half of the files are readable,
    which is a DatasetError (most likely the wrong folder or a format PIL does not know). A file
    that breaks later (changed while training) is a DatasetError naming it.
    """

    def __init__(self, root: str | Path, image_size: int = 32):
        from torchvision import transforms

        self.root = Path(root)
        paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {self.root}")
        self.paths = readable_images(self.root, paths, image_size)
        self.transform = transforms.Compose([
            transforms.Resize(image_size), transforms.CenterCrop(image_size), transforms.PILToTensor()])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as im:
                return to_signed(self.transform(im.convert("RGB")))
        except OSError as exc:    # UnidentifiedImageError and truncated data are OSErrors
            raise DatasetError(f"image file {self.paths[i]} became unreadable ({cause(exc)}); "
                               "repair or remove it, then resume") from exc


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
        raise DatasetError(f"dataset {spec!r} has {size[0]}x{size[1]} images but the model expects "
                         f"{image_size}x{image_size}; resize the data or change image_size in the config")
    return ds
