import pytest

from vitgan_lite import DiscriminatorConfig, GeneratorConfig


def test_cifar10_presets_match_the_paper():
    g, d = GeneratorConfig.cifar10(), DiscriminatorConfig.cifar10()
    assert (g.image_size, g.patch_size, g.dim, g.depth, g.heads, g.mlp_dim) == (32, 4, 384, 4, 6, 1536)
    assert (d.image_size, d.patch_size, d.dim, d.depth, d.heads, d.mlp_dim) == (32, 4, 384, 4, 6, 1536)
    assert g.num_patches == d.num_patches == 64
    assert (d.attention, d.spectral_norm, d.overlapping_patches) == ("l2", "isn", True)


@pytest.mark.parametrize("cls", [GeneratorConfig, DiscriminatorConfig])
@pytest.mark.parametrize("changes, message", [
    ({"patch_size": 5}, "not divisible by patch_size"),
    ({"heads": 5}, "not divisible by heads"),
    ({"dim": 0}, "dim must be a positive integer"),
    ({"depth": -1}, "depth must be a positive integer"),
])
def test_invalid_settings_name_the_value(cls, changes, message):
    with pytest.raises(ValueError, match=message):
        cls.tiny().replace(**changes)


@pytest.mark.parametrize("changes, message", [
    ({"attention": "cosine"}, "attention must be one of"),
    ({"spectral_norm": "weight_norm"}, "spectral_norm must be one of"),
    ({"patch_size": 1, "image_size": 5}, "must be even"),
])
def test_invalid_discriminator_choices(changes, message):
    with pytest.raises(ValueError, match=message):
        DiscriminatorConfig(**changes)


def test_invalid_generator_choices():
    with pytest.raises(ValueError, match="decoder_activation must be one of"):
        GeneratorConfig(decoder_activation="relu")
    with pytest.raises(ValueError, match="mapping_lr_mul"):
        GeneratorConfig(mapping_lr_mul=0)
