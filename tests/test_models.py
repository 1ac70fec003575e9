import io

import pytest
import torch
import torch.nn.functional as F

from vitgan_lite import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from vitgan_lite.augment import diff_augment
from vitgan_lite.data import SyntheticImages
from vitgan_lite.patches import unpatchify

ABLATIONS = [
    {},
    {"attention": "dot"},
    {"spectral_norm": "sn"},
    {"spectral_norm": "none"},
    {"overlapping_patches": False},
]


def _models(**d_changes):
    return Generator(GeneratorConfig.tiny()), Discriminator(DiscriminatorConfig.tiny().replace(**d_changes))


@pytest.mark.parametrize("d_changes", ABLATIONS)
def test_one_backward_of_a_gan_loss_reaches_every_parameter(d_changes):
    G, D = _models(**d_changes)
    z = torch.randn(4, G.cfg.latent_dim)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    fake = G(z)
    loss = F.softplus(D(diff_augment(fake))).mean() + F.softplus(-D(diff_augment(real))).mean() \
        + F.softplus(-D(fake)).mean()
    loss.backward()
    missing = [name for model in (G, D) for name, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_discriminator_logits_depend_on_the_input_and_take_both_signs():
    _, D = _models()
    real = SyntheticImages(n=64).images.float() / 127.5 - 1
    noise = torch.randn(64, 3, 32, 32)
    with torch.no_grad():
        logits = torch.cat([D(real), D(noise)])
    assert logits.shape == (128,)
    assert logits.std() > 1e-2                        # not a constant (one port: 0.0091 for any input)
    # the head is linear: a few steps of the D loss push real above 0 and noise below 0
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99))
    for _ in range(15):
        opt.zero_grad()
        (F.softplus(-D(real)).mean() + F.softplus(D(noise)).mean()).backward()
        opt.step()
    with torch.no_grad():
        assert (D(real) > 0).all() and (D(noise) < 0).all()


def test_generator_output_depends_on_z_and_is_not_constant():
    G, _ = _models()
    x = G(torch.randn(16, G.cfg.latent_dim))
    assert x.shape == (16, 3, 32, 32)
    per_pixel_std_over_z = x.std(dim=0).mean()
    assert per_pixel_std_over_z > 0.05
    assert x.flatten(1).std(dim=1).min() > 0.05     # every image has spatial structure
    assert x.abs().mean() < 2.0                       # about [-1, 1]


def test_generator_assembles_blocks_in_the_paper_order():
    G, _ = _models()
    z = torch.randn(2, G.cfg.latent_dim)
    w = G.mapping(z)
    coords = torch.stack(torch.meshgrid(torch.linspace(-1, 1, 8), torch.linspace(-1, 1, 8), indexing="ij"), -1)
    h = torch.sin(coords.reshape(64, 2) @ G.pos_embedding.linear.weight.t() + G.pos_embedding.linear.bias)
    h = h.expand(2, 64, -1)
    for block in G.blocks:
        h = h + block.attn(block.norm1(h, w))
        h = h + block.mlp(block.norm2(h, w))
    image = unpatchify(G.decoder(G.norm_out(h, w)), 4)
    torch.testing.assert_close(G(z), image)


def test_generator_renders_at_higher_resolution():
    G, _ = _models()
    w = G.style(torch.randn(2, G.cfg.latent_dim))
    assert G.synthesize(w, patch_resolution=8).shape == (2, 3, 64, 64)


def test_truncation_moves_w_towards_the_average():
    G, _ = _models()
    z = torch.randn(3, G.cfg.latent_dim)
    w_avg = G.mean_style(n=256)
    torch.testing.assert_close(G.style(z, truncation_psi=0.0, w_avg=w_avg), w_avg.expand(3, -1))
    with pytest.raises(ValueError, match="w_avg"):
        G.style(z, truncation_psi=0.5)


@pytest.mark.parametrize("build", [lambda: _models()[0], lambda: _models()[1]])
def test_state_dict_round_trip_into_fresh_modules(build):
    model = build()
    model.train()
    inp = torch.randn(3, model.cfg.latent_dim) if isinstance(model, Generator) else torch.randn(3, 3, 32, 32)
    model(inp)  # a training-mode forward moves the power-iteration state away from its init
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = build()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    model.eval(), fresh.eval()
    assert torch.equal(model(inp), fresh(inp))


def test_bad_inputs_say_what_was_expected():
    G, D = _models()
    with pytest.raises(ValueError, match=r"z of shape \(B, 64\)"):
        G(torch.randn(2, 63))
    with pytest.raises(ValueError, match=r"images of shape \(B, 3, 32, 32\)"):
        D(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"images of shape \(B, 3, 32, 32\)"):
        D(torch.randn(2, 3, 64, 64))


def test_paper_config_forward_shapes():
    G = Generator(GeneratorConfig.cifar10())
    D = Discriminator(DiscriminatorConfig.cifar10())
    with torch.no_grad():
        assert D(G(torch.randn(2, 384))).shape == (2,)
