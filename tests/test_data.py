import numpy as np
import pytest
import torch
from PIL import Image

from vitgan_lite.data import (FolderImages, NpzImages, SyntheticImages, cifar10, cifar10_subset, load_dataset,
                              subset_indices, to_uint8)


def test_npz_images_are_signed_chw_and_lossless(cifar_npz):
    ds = load_dataset(str(cifar_npz))
    assert len(ds) == 10_000
    x = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    raw = np.load(cifar_npz)["x"][0]                    # (32, 32, 3) uint8
    assert np.array_equal(to_uint8(x).permute(1, 2, 0).numpy(), raw)
    mean = ds.images.float().div(255).mean(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.tensor([0.4936, 0.4832, 0.4470]), atol=5e-4, rtol=0)


def test_any_npz_in_the_same_format(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", x=x)
    ds = NpzImages(tmp_path / "mine.npz")
    assert len(ds) == 5 and ds[4].shape == (3, 16, 16)
    np.savez(tmp_path / "bad.npz", images=x)
    with pytest.raises(ValueError, match="expected 'x'"):
        NpzImages(tmp_path / "bad.npz")
    np.savez(tmp_path / "chw.npz", x=x.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"uint8 \(N, H, W, 3\)"):
        NpzImages(tmp_path / "chw.npz")


def test_folder_of_images_is_cropped_and_resized(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (64, 48), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (40, 40), (0, 0, 255)).save(tmp_path / "sub" / "b.jpg")
    ds = FolderImages(tmp_path, image_size=32)
    assert len(ds) == 2
    assert ds[0].shape == (3, 32, 32)
    torch.testing.assert_close(ds[0][:, 10, 10], torch.tensor([1.0, -1.0, -1.0]))


def test_synthetic_is_deterministic_and_varied():
    a, b = SyntheticImages(n=32, seed=3), SyntheticImages(n=32, seed=3)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, SyntheticImages(n=32, seed=4).images)
    assert a.images.float().std(dim=0).mean() > 20


def test_missing_data_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        cifar10(tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="'cifar10', 'synthetic'"):
        load_dataset(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no images"):
        FolderImages(tmp_path)


def test_wrong_image_size_is_reported(cifar_npz):
    with pytest.raises(ValueError, match="32x32 images but the model expects 64x64"):
        load_dataset(str(cifar_npz), image_size=64)


def test_course_subsets_select_the_first_1000_per_class_in_order():
    labels = np.repeat(np.arange(10), 1500)[np.random.default_rng(0).permutation(15000)]
    idx = subset_indices(labels, "train_10k")
    assert len(idx) == 10_000 and np.all(np.diff(idx) > 0)
    for c in range(10):
        assert np.array_equal(idx[labels[idx] == c], np.flatnonzero(labels == c)[:1000])
    assert np.array_equal(subset_indices(labels, "test_1k"), np.arange(1000))
    with pytest.raises(ValueError, match="unknown CIFAR-10 subset"):
        cifar10_subset("train_5k")


def test_offline_subset_matches_its_description(cifar_npz, monkeypatch):
    monkeypatch.setenv("VITGAN_CIFAR10_DIR", str(cifar_npz.parent))
    archive = np.load(cifar_npz)
    assert np.all(np.diff(archive["index"]) > 0)                       # original order
    assert np.array_equal(np.bincount(archive["y"]), np.full(10, 1000))  # 1,000 per class
    ds = cifar10_subset("train_10k")
    assert torch.equal(ds.images, torch.from_numpy(archive["x"]).permute(0, 3, 1, 2))
    assert len(cifar10_subset("test_1k")) == 1000
