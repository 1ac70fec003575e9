import io

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from vitgan_lite import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, TrainConfig, Trainer
from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention
from vitgan_lite.augment import diff_augment
from vitgan_lite.data import SyntheticImages
from vitgan_lite.patches import unpatchify
from vitgan_lite.spectral import improved_spectral_norm

D_ABLATIONS = [
    {},
    {"attention": "dot"},
    {"spectral_norm": "sn"},
    {"spectral_norm": "none"},
    {"overlapping_patches": False},
]
G_OPTIONS = [   # generator variants beside the paper's (the defaults); first the official code's blocks
    {"attention": "l2", "spectral_norm": "isn"},
    {"attention": "l2"},
    {"spectral_norm": "sn"},
    {"coordinates": "linspace"},
]


def _models(g_changes=None, **d_changes):
    return (Generator(GeneratorConfig.tiny().replace(**(g_changes or {}))),
            Discriminator(DiscriminatorConfig.tiny().replace(**d_changes)))


def dead_parameters(loss, *models):
    """Names of the parameters whose TRUE gradient of `loss` is zero: max |g| below 1e-8 of the largest.

    Use float64 models: there a gradient that cancels exactly (a bias that drops out of q - k) comes
    out ~1e-16, while the smallest real one here is ~1e-4. A step that merely changed the weight
    proves nothing: Adam with beta1 = 0 moves a weight by ~lr for any gradient, rounding noise too.
    """
    named = [(f"{i}.{name}", p) for i, model in enumerate(models) for name, p in model.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    size = [0.0 if g is None else g.abs().max().item() for g in grads]
    return [name for (name, _), s in zip(named, size) if not s > 1e-8 * max(size)]


def _gan_loss(G, D):
    """The terms of L_D and L_G (D's and G's gradients in one backward) through DiffAugment, in float64."""
    z = torch.randn(4, G.cfg.latent_dim, dtype=torch.float64)
    real = torch.rand(4, 3, 32, 32, dtype=torch.float64) * 2 - 1
    fake = G(z)
    return F.softplus(D(diff_augment(fake))).mean() + F.softplus(-D(diff_augment(real))).mean() \
        + F.softplus(-D(fake)).mean()


@pytest.mark.parametrize("g_changes, d_changes", [({}, d) for d in D_ABLATIONS] + [(g, {}) for g in G_OPTIONS])
def test_one_backward_of_a_gan_loss_reaches_every_parameter(g_changes, d_changes):
    G, D = (model.double() for model in _models(g_changes, **d_changes))
    assert dead_parameters(_gan_loss(G, D), G, D) == []


def test_a_bias_on_the_tied_qk_projection_would_be_caught_as_dead():
    """The old L2 attention had a bias on to_qk: it cancels in q - k, so its true gradient is zero."""
    G, D = _models()
    for block in D.blocks:                                   # put the old biased projection back
        block.attn.to_qk = improved_spectral_norm(torch.nn.Linear(D.cfg.dim, D.cfg.dim))
    G, D = G.double(), D.double()
    assert dead_parameters(_gan_loss(G, D), G, D) == [f"1.blocks.{i}.attn.to_qk.bias" for i in range(D.cfg.depth)]
    assert all(block.attn.to_qk.bias is None for block in _models()[1].blocks)   # today's: no bias


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


@pytest.mark.parametrize("coordinates, axis", [("cell", (torch.arange(8) + 0.5) / 8 * 2 - 1),   # cell centres
                                               ("linspace", torch.linspace(-1, 1, 8))])      # older generators
def test_generator_assembles_blocks_in_the_paper_order(coordinates, axis):
    G, _ = _models({"coordinates": coordinates})
    z = torch.randn(2, G.cfg.latent_dim)
    w = G.mapping(z)
    coords = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1)   # (8, 8, 2) patch centres (y, x)
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
    # cells split 3x3: the 12x12 render of every patch holds its 4x4 pixels at rows/columns 1, 4, 7, 10
    fine = G.synthesize(w, patch_resolution=12)                                  # (2, 3, 96, 96)
    torch.testing.assert_close(fine[:, :, 1::3, 1::3], G.synthesize(w), atol=1e-5, rtol=1e-5)


def test_generator_options_build_the_official_blocks():
    paper, official = Generator(GeneratorConfig.tiny()), Generator(GeneratorConfig.tiny().replace(**G_OPTIONS[0]))
    assert all(isinstance(b.attn, MultiHeadAttention) for b in paper.blocks)
    assert all(isinstance(b.attn, L2MultiHeadAttention) for b in official.blocks)
    assert not any(parametrize.is_parametrized(m) for m in paper.modules())
    normalised = {name for name, m in official.named_modules() if parametrize.is_parametrized(m)}
    expected = {f"blocks.{i}.{layer}" for i in range(2)
                for layer in ("attn.to_qk", "attn.to_v", "attn.proj", "mlp.net.0", "mlp.net.2")}
    assert normalised == expected                 # attention and MLP layers; not SLN, mapping or decoder
    with pytest.raises(ValueError, match="attention must be one of"):
        GeneratorConfig.tiny().replace(attention="cosine")
    with pytest.raises(ValueError, match="coordinates must be one of"):
        GeneratorConfig.tiny().replace(coordinates="corners")


@pytest.mark.parametrize("spectral_norm", ["none", "isn"])
def test_l2_attention_in_the_generator_equals_the_reference_path(spectral_norm):
    """The fused L2 path (padded SDPA) and the explicit logits give the same G(z) and gradients."""
    G = Generator(GeneratorConfig.tiny().replace(attention="l2", spectral_norm=spectral_norm)).double().eval()
    z = torch.randn(3, G.cfg.latent_dim, dtype=torch.float64)
    results = []
    for fused in (True, False):
        for block in G.blocks:
            block.attn.fused = fused
        image = G(z)
        results.append((image, torch.autograd.grad(image.pow(2).sum(), list(G.parameters()))))
    (image_fused, grads_fused), (image_ref, grads_ref) = results
    torch.testing.assert_close(image_fused, image_ref)
    for g_fused, g_ref in zip(grads_fused, grads_ref):
        torch.testing.assert_close(g_fused, g_ref)


def test_ema_generator_takes_the_power_iteration_state_of_g():
    """torch-ema averages parameters only; the u of G's spectral norm must reach the EMA generator."""
    gcfg = GeneratorConfig.tiny().replace(**G_OPTIONS[0])
    tcfg = TrainConfig.tiny().replace(batch_size=4, n_samples=4)
    trainer = Trainer(gcfg, DiscriminatorConfig.tiny(), tcfg, SyntheticImages(n=8), "cpu")
    trainer.train_step()
    buffers = dict(trainer.G.named_buffers())
    assert any(name.endswith(".u") for name in buffers)
    for name, buffer in trainer.ema_generator().named_buffers():
        assert torch.equal(buffer, buffers[name]), name


def test_truncation_moves_w_towards_the_average():
    G, _ = _models()
    z = torch.randn(3, G.cfg.latent_dim)
    w_avg = G.mean_style(n=256)
    torch.testing.assert_close(G.style(z, truncation_psi=0.0, w_avg=w_avg), w_avg.expand(3, -1))
    with pytest.raises(ValueError, match="w_avg"):
        G.style(z, truncation_psi=0.5)


@pytest.mark.parametrize("build", [lambda: _models()[0], lambda: _models()[1], lambda: _models(G_OPTIONS[0])[0]])
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
