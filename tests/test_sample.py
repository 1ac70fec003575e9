"""PNG writing of sample.py against torchvision's save_image (the reference it replaces)."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import save_image

from vitgan_lite.sample import save_grid, to_uint8, write_png


@pytest.mark.parametrize("n, nrow", [(1, 8), (5, 2), (16, 4), (7, 3), (64, 8)])
def test_grid_equals_torchvision(tmp_path, n, nrow):
    images = torch.randn(n, 3, 8, 6, generator=torch.Generator().manual_seed(n)) * 1.3  # some out of [-1, 1]
    save_image(images, tmp_path / "reference.png", nrow=nrow, normalize=True, value_range=(-1, 1))
    save_grid(images, tmp_path / "ours.png", nrow=nrow)
    reference = np.asarray(Image.open(tmp_path / "reference.png"))
    ours = np.asarray(Image.open(tmp_path / "ours.png"))
    assert ours.shape == reference.shape
    np.testing.assert_array_equal(ours, reference)


def test_uint8_rounding_by_hand():
    values = torch.tensor([-2.0, -1.0, 0.0, 1.0 / 255, 1.0, 3.0]).view(1, 1, 1, 6)
    expected = [0, 0, 128, 128, 255, 255]    # (x + 1) / 2 * 255, rounded half up, clamped
    assert to_uint8(values).flatten().tolist() == expected


def test_grayscale_png(tmp_path):
    image = torch.arange(12, dtype=torch.uint8).view(1, 3, 4)
    write_png(image, tmp_path / "gray.png")
    with Image.open(tmp_path / "gray.png") as png:
        assert png.mode == "L"
        np.testing.assert_array_equal(np.asarray(png), image[0].numpy())


def test_training_does_not_import_torchvision():
    """torchvision costs ~170 MB and over a second of import: the training and sampling code avoids it."""
    code = ("import sys, vitgan_lite, vitgan_lite.train, vitgan_lite.sample, vitgan_lite.loop; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
