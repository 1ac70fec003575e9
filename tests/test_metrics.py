"""FID: the Frechet distance against closed forms, statistics, the reference cache, a real Inception run."""
import os

import numpy as np
import pytest
import scipy.linalg
import torch

from vitgan_lite import fid as fid_cli
from vitgan_lite import metrics, train
from vitgan_lite.data import NpzImages
from vitgan_lite.metrics import InceptionFeatures, frechet_distance, gaussian_stats, reference_stats

RNG = np.random.default_rng(0)


def random_rotation(d: int) -> np.ndarray:
    q, _ = np.linalg.qr(RNG.normal(size=(d, d)))
    return q


def test_frechet_distance_of_diagonal_gaussians():
    mu1, mu2 = RNG.normal(size=5), RNG.normal(size=5)
    var1, var2 = RNG.uniform(0.1, 3, size=5), RNG.uniform(0.1, 3, size=5)
    # diagonal: sqrt(S1 S2) is elementwise, so FD = |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_commuting_covariances():
    q = random_rotation(6)                                  # same eigenvectors -> S1 S2 = S2 S1
    a, b = RNG.uniform(0.1, 2, size=6), RNG.uniform(0.1, 2, size=6)
    mu1, mu2 = RNG.normal(size=6), RNG.normal(size=6)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_general_case_matches_scipy_sqrtm():
    x, y = RNG.normal(size=(4, 4)), RNG.normal(size=(4, 4))
    s1, s2 = x @ x.T + 0.1 * np.eye(4), y @ y.T + 0.1 * np.eye(4)
    # the reference FID formula, with the non-symmetric matrix square root
    expected = np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s1) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(np.ones(1), np.eye(1) * 4, np.zeros(1), np.eye(1)) == pytest.approx(1 + (2 - 1) ** 2)
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(4), s1, np.zeros(3), s2)


def test_gaussian_stats_are_mean_and_unbiased_covariance():
    feats = RNG.normal(size=(7, 3))
    mu, sigma = gaussian_stats(feats)
    centred = feats - feats.mean(0)
    loop = sum(np.outer(row, row) for row in centred) / (len(feats) - 1)
    np.testing.assert_allclose(mu, feats.mean(0))
    np.testing.assert_allclose(sigma, loop)
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(feats[:1])


class ColourFeatures:
    """A stand-in extractor (mean colour per image) that counts its calls."""

    calls = 0

    def __call__(self, images):
        ColourFeatures.calls += 1
        return images.float().mean(dim=(2, 3)).numpy()


def test_reference_stats_are_cached_per_dataset_and_n(tmp_path):
    data = tmp_path / "ref.npz"
    np.savez(data, x=RNG.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8))
    features, cache = ColourFeatures(), tmp_path / "cache"
    mu, sigma = reference_stats(str(data), 8, features, cache)
    expected = gaussian_stats(NpzImages(data).images[:8].float().mean(dim=(2, 3)).numpy())
    np.testing.assert_allclose(mu, expected[0]), np.testing.assert_allclose(sigma, expected[1])
    assert ColourFeatures.calls == 1 and len(list(cache.glob("*.npz"))) == 1
    np.testing.assert_array_equal(reference_stats(str(data), 8, features, cache)[0], mu)
    assert ColourFeatures.calls == 1                         # read from the cache
    reference_stats(str(data), 6, features, cache)           # another n: computed again
    assert ColourFeatures.calls == 2
    with pytest.raises(ValueError, match="fewer than the 11 requested"):
        reference_stats(str(data), 11, features, cache)


def test_reference_cache_follows_the_content_not_the_file_date(tmp_path):
    """A copied or re-provisioned dataset (new mtime, same bytes) reuses its statistics; new bytes do not."""
    data = tmp_path / "ref.npz"
    np.savez(data, x=RNG.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8))
    features, cache = ColourFeatures(), tmp_path / "cache"
    reference_stats(str(data), 8, features, cache)
    calls = ColourFeatures.calls
    os.utime(data, ns=(0, 10**18))                           # same bytes, another date
    reference_stats(str(data), 8, features, cache)
    assert ColourFeatures.calls == calls
    np.savez(data, x=RNG.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8))   # same size, new bytes
    reference_stats(str(data), 8, features, cache)
    assert ColourFeatures.calls == calls + 1


@pytest.fixture(scope="module")
def inception():
    return InceptionFeatures(batch_size=16)


def test_inception_fid_on_real_images(inception, cifar_npz):
    test_npz = cifar_npz.parent / "test_1k.npz"
    images = NpzImages(test_npz).images[:24]                  # uint8 (24, 3, 32, 32)
    feats = inception(images)
    assert feats.shape == (24, 2048) and np.isfinite(feats).all()
    real_a, real_b = gaussian_stats(feats[:12]), gaussian_stats(feats[12:])
    noise = gaussian_stats(inception(torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)))
    self_fid = frechet_distance(*real_a, *real_a)
    assert abs(self_fid) < 1e-3 * np.trace(real_a[1])         # a set against itself: ~0
    assert frechet_distance(*real_a, *real_b) < frechet_distance(*real_a, *noise)


@pytest.mark.usefixtures("one_thread")
def test_fid_command_prints_value_with_protocol(tmp_path, cifar_npz, capsys):
    run = tmp_path / "run"
    assert train.main(["--preset", "tiny", "--data", str(cifar_npz), "--steps", "1", "--batch-size", "4",
                       "--out", str(run)]) == 0
    capsys.readouterr()
    argv = ["--checkpoint", str(run), "--ref", str(cifar_npz.parent / "test_1k.npz"), "--n-gen", "8",
            "--n-ref", "8", "--cache-dir", str(tmp_path / "cache")]
    assert fid_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("FID ") and "at step 1: 8 generated images" in out and "first 8 images of" in out
    value = float(out.split()[1])
    assert np.isfinite(value) and value > 0
    assert len(list((tmp_path / "cache").glob("fid_ref_test_1k_8_*.npz"))) == 1
    with pytest.raises(SystemExit):
        fid_cli.main(argv[:4] + ["--n-gen", "1"])
    assert "--n-gen must be at least 2" in capsys.readouterr().err


def test_dataset_images_of_a_lazy_dataset_are_uint8():
    class Lazy(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.full((3, 2, 2), -1.0 + i)           # -1 -> 0, 0 -> 128 (127.5 rounds up), 1 -> 255

    assert metrics.dataset_images(Lazy(), 3)[:, 0, 0, 0].tolist() == [0, 128, 255]
