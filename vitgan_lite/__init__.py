"""vitgan_lite: ViTGAN (Lee et al., ICLR 2022), faithful to the paper, small enough to read."""
from .config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from .discriminator import Discriminator
from .generator import Generator
from .trainer import NonFiniteLossError, Trainer

__all__ = ["Generator", "Discriminator", "GeneratorConfig", "DiscriminatorConfig", "TrainConfig", "Trainer",
           "NonFiniteLossError"]
__version__ = "0.1.0"
