"""vitgan_lite: ViTGAN (Lee et al., ICLR 2022), faithful to the paper, small enough to read."""
from .config import DiscriminatorConfig, GeneratorConfig
from .discriminator import Discriminator
from .generator import Generator

__all__ = ["Generator", "Discriminator", "GeneratorConfig", "DiscriminatorConfig"]
__version__ = "0.1.0"
