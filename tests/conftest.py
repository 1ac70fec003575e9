"""Fixtures shared by the unit tests."""
from pathlib import Path

import pytest
import torch

from vitgan_lite.data import offline_cifar10_dir


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def cifar_npz() -> Path:
    """The offline CIFAR-10 copy: $VITGAN_CIFAR10_DIR or ../shared/data/cifar10 beside the project."""
    folder = offline_cifar10_dir()
    if folder is None:
        pytest.skip("offline CIFAR-10 (train_10k.npz) not found: set VITGAN_CIFAR10_DIR or put it in "
                    "../shared/data/cifar10")
    return folder / "train_10k.npz"


@pytest.fixture
def one_thread():
    """Tiny models train fastest single-threaded; on a shared 2-core CPU extra torch threads wait
    for each other (a training test ran 10x slower with 2 threads while other jobs were running)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
