"""Fixtures shared by the unit tests."""
from pathlib import Path

import pytest
import torch

CIFAR_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def cifar_npz() -> Path:
    """The offline CIFAR-10 copy beside the project (../shared/data/cifar10/train_10k.npz)."""
    path = CIFAR_DIR / "train_10k.npz"
    if not path.is_file():
        pytest.skip(f"offline CIFAR-10 not found at ../shared/data/cifar10 (needs {path.name})")
    return path


@pytest.fixture
def one_thread():
    """Tiny models train fastest single-threaded; on a shared 2-core CPU extra torch threads wait
    for each other (a training test ran 10x slower with 2 threads while other jobs were running)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
