import math

import pytest
import torch

from vitgan_lite import Generator, GeneratorConfig
from vitgan_lite.latent import interpolate, lerp, principal_directions, slerp


def test_slerp_follows_the_great_circle():
    a, b = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    t = torch.tensor([0.0, 1 / 3, 0.5, 1.0])
    expected = torch.tensor([[2 * math.cos(x * math.pi / 2), 2 * math.sin(x * math.pi / 2)] for x in t.tolist()])
    torch.testing.assert_close(slerp(a, b, t), expected)
    # the straight line's midpoint is shorter: the reason to use slerp for Gaussian z
    assert lerp(a, b, t)[2].norm() < slerp(a, b, t)[2].norm()
    torch.testing.assert_close(slerp(a, 3 * a, t), lerp(a, 3 * a, t))   # parallel: falls back to lerp


def test_principal_directions_are_orthonormal_and_sorted_and_explain_w():
    G = Generator(GeneratorConfig.tiny())
    pca = principal_directions(G, k=5, n=2000)
    torch.testing.assert_close(pca.directions @ pca.directions.t(), torch.eye(5), atol=1e-5, rtol=0)
    assert (pca.stds[:-1] >= pca.stds[1:]).all()
    # the std of w projected on direction i, measured on fresh samples, is about stds[i]
    w = G.mapping(torch.randn(4000, G.cfg.latent_dim))
    projected = (w - pca.mean) @ pca.directions.t()
    torch.testing.assert_close(projected.std(0), pca.stds, rtol=0.1, atol=0)
    edited = pca.edit(w[:2], torch.tensor([2.0, 0, 0, 0, 0]))
    torch.testing.assert_close((edited - w[:2]) @ pca.directions[0], 2 * pca.stds[0].expand(2), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="k must be in"):
        principal_directions(G, k=0)


def test_interpolation_ends_at_the_two_images():
    G = Generator(GeneratorConfig.tiny()).eval()
    z0, z1 = torch.randn(2, G.cfg.latent_dim)
    for space in ("z", "w"):
        frames = interpolate(G, z0, z1, steps=5, space=space)
        assert frames.shape == (5, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(frames[0], G(z0[None])[0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(frames[-1], G(z1[None])[0], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="space must be"):
        interpolate(G, z0, z1, space="x")
