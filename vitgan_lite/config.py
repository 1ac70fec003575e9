"""One place for every setting: `GeneratorConfig`, `DiscriminatorConfig` and `TrainConfig`.

Presets:
- `cifar10()`: the paper's 32x32 CIFAR-10 model. Each value carries a comment with its source;
  "paper" means the ViTGAN paper states it, "official" means the authors' code
  (github mlpc-ucsd/ViTGAN), "ours" means neither states it and we chose.
- `tiny()`: the same code path at a size that trains for a few seconds on a CPU (tests, fast mode).

Invalid settings raise `ValueError` naming the value and what was expected.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ATTENTION_KINDS = ("l2", "dot")
SPECTRAL_NORM_KINDS = ("isn", "sn", "none")
DECODER_ACTIVATIONS = ("leaky_relu", "sine")
COORDINATE_KINDS = ("cell", "linspace")   # fourier.coordinate_axis
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
BCR_MODES = ("augmented", "official", "paper")   # bcr.py
EMA_WARMUPS = ("official", "torch_ema")         # ema.py


def _check_positive(cfg, names):
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{type(cfg).__name__}.{name} must be a positive integer, got {value!r}")


def _check_choice(cfg, name, choices):
    value = getattr(cfg, name)
    if value not in choices:
        raise ValueError(f"{type(cfg).__name__}.{name} must be one of {choices}, got {value!r}")


def _check_patches(cfg):
    if cfg.image_size % cfg.patch_size:
        raise ValueError(
            f"{type(cfg).__name__}: image_size={cfg.image_size} is not divisible by patch_size="
            f"{cfg.patch_size}; choose a patch size that divides the image size (e.g. 4 for 32x32)"
        )
    if cfg.dim % cfg.heads:
        raise ValueError(
            f"{type(cfg).__name__}: dim={cfg.dim} is not divisible by heads={cfg.heads}; "
            "each head gets dim // heads channels"
        )


@dataclass(frozen=True)
class GeneratorConfig:
    """Settings of the ViTGAN generator."""

    image_size: int = 32           # paper: CIFAR-10 32x32
    channels: int = 3              # RGB
    patch_size: int = 4            # paper: 4x4 patches at 32x32 -> 64 tokens
    latent_dim: int = 384          # official code (paper does not state z's size)
    style_dim: int = 384           # official code (size of w; paper does not state it)
    mapping_depth: int = 8         # official code (StyleGAN2's 8-layer mapping MLP)
    mapping_lr_mul: float = 0.01   # StyleGAN2 / official code
    dim: int = 384                 # paper: hidden size D = 384
    depth: int = 4                 # paper: 4 Transformer blocks
    heads: int = 6                 # paper: 6 heads
    mlp_dim: int = 1536            # paper: MLP hidden 1536 (4 x D)
    decoder_dim: int = 384         # ours: hidden width of the implicit decoder f_theta (paper: "2-layer MLP")
    decoder_depth: int = 2         # paper: 2-layer MLP f_theta (2 modulated hidden layers + modulated RGB layer)
    decoder_activation: str = "leaky_relu"  # official code; paper cites SIREN (sine) -- unverified, so an option
    demodulate: bool = True        # official code demodulates hidden decoder layers; paper unverified
    attention: str = "dot"         # paper: L2 attention is the discriminator's; official code: "l2" in G too
    spectral_norm: str = "none"    # paper: SN/ISN are the discriminator's; official code: "isn" in G's blocks
    coordinates: str = "cell"      # ours: cell-centred pixel grids, same square at any render size;
                                   # "linspace" = official code and generators saved before this field

    def __post_init__(self):
        _check_positive(self, ("image_size", "channels", "patch_size", "latent_dim", "style_dim",
                               "mapping_depth", "dim", "depth", "heads", "mlp_dim",
                               "decoder_dim", "decoder_depth"))
        if not self.mapping_lr_mul > 0:
            raise ValueError(f"GeneratorConfig.mapping_lr_mul must be > 0, got {self.mapping_lr_mul!r}")
        _check_choice(self, "decoder_activation", DECODER_ACTIVATIONS)
        _check_choice(self, "attention", ATTENTION_KINDS)
        _check_choice(self, "spectral_norm", SPECTRAL_NORM_KINDS)
        _check_choice(self, "coordinates", COORDINATE_KINDS)
        _check_patches(self)

    @property
    def num_patches(self) -> int:
        """L = (H / P)^2 tokens."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def cifar10(cls) -> "GeneratorConfig":
        """The paper's CIFAR-10 generator (the field defaults)."""
        return cls()

    @classmethod
    def tiny(cls) -> "GeneratorConfig":
        """Same architecture, CPU-sized: trains for a few seconds in tests."""
        return cls(latent_dim=64, style_dim=64, mapping_depth=2, dim=64, depth=2, heads=4,
                   mlp_dim=128, decoder_dim=32)

    @classmethod
    def small(cls) -> "GeneratorConfig":
        """Same architecture, sized for CPU studies: ~0.6 s per step (batch 32, one core), so a recipe
        gets ~2,400 steps in 25 CPU-minutes (G 0.54M parameters)."""
        return cls(latent_dim=128, style_dim=128, mapping_depth=4, dim=128, depth=2, heads=4,
                   mlp_dim=256, decoder_dim=64)

    def replace(self, **changes) -> "GeneratorConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, fields: dict) -> "GeneratorConfig":
        """A GeneratorConfig from a saved dict (checkpoint, generator file).

        Generators saved before the `coordinates` field were trained on linspace grids: a dict
        without it gets "linspace", so they render exactly as before. The fields added with it
        (attention, spectral_norm) default to what those generators had.
        """
        return cls(**{"coordinates": "linspace", **fields})


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Settings of the ViTGAN discriminator."""

    image_size: int = 32           # paper: CIFAR-10 32x32
    channels: int = 3              # RGB
    patch_size: int = 4            # paper: 4x4 patches -> 64 tokens
    dim: int = 384                 # paper: D = 384
    depth: int = 4                 # paper: 4 blocks at 32x32
    heads: int = 6                 # paper: 6 heads
    mlp_dim: int = 1536            # paper: MLP hidden 1536
    overlapping_patches: bool = True  # paper: overlapping patches (kernel 2P, stride P; padding P/2 is ours)
    attention: str = "l2"          # paper: L2 attention with tied W_q = W_k ("dot" for the ablation)
    spectral_norm: str = "isn"     # paper: improved spectral norm ("sn" plain, "none" for ablations)
    fused_attention: bool = True   # ours: use scaled_dot_product_attention (same math as the reference path)

    def __post_init__(self):
        _check_positive(self, ("image_size", "channels", "patch_size", "dim", "depth", "heads", "mlp_dim"))
        _check_choice(self, "attention", ATTENTION_KINDS)
        _check_choice(self, "spectral_norm", SPECTRAL_NORM_KINDS)
        _check_patches(self)
        if self.overlapping_patches and self.patch_size % 2:
            raise ValueError(
                f"DiscriminatorConfig: overlapping patches pad by patch_size/2, so patch_size must be "
                f"even, got {self.patch_size}; use an even patch size or overlapping_patches=False"
            )

    @property
    def num_patches(self) -> int:
        """L = (H / P)^2 tokens (the class token is extra)."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def cifar10(cls) -> "DiscriminatorConfig":
        """The paper's CIFAR-10 ViT discriminator (the field defaults)."""
        return cls()

    @classmethod
    def tiny(cls) -> "DiscriminatorConfig":
        """Same architecture, CPU-sized."""
        return cls(dim=64, depth=2, heads=4, mlp_dim=128)

    @classmethod
    def small(cls) -> "DiscriminatorConfig":
        """Same architecture, sized for CPU studies (pairs with GeneratorConfig.small())."""
        return cls(dim=128, depth=2, heads=4, mlp_dim=256)

    def replace(self, **changes) -> "DiscriminatorConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _check_fraction(cfg, name):
    value = getattr(cfg, name)
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"TrainConfig.{name} must be in [0, 1], got {value!r}")


def _check_non_negative(cfg, names):
    for name in names:
        value = getattr(cfg, name)
        if not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"TrainConfig.{name} must be >= 0, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the training recipe (the paper's experiment setup and the official code).

    The architecture ablations (attention, spectral norm, overlapping patches) live in
    `DiscriminatorConfig`; the recipe ablations (bCR, DiffAugment) live here.
    """

    batch_size: int = 128          # paper (TPU); official PyTorch code: 64
    lr: float = 0.002              # paper; official code: 0.001 at batch 64
    d_lr_mul: float = 1.0          # official: lr_d, default lr (1 here); D's lr = lr * d_lr_mul (TTUR, Heusel 2017)
    betas: tuple = (0.0, 0.99)     # paper: Adam(beta1 = 0, beta2 = 0.99)
    warmup_steps: int = 3000       # official code: linear lr warm-up over 3k steps; 0 = off
    lr_decay: float = 0.0          # ours: the last fraction of `steps` in which lr falls linearly to 0 at
                                   # `steps` (0.5: the second half); 0 = constant, as the paper and official
    steps: int = 400_000           # ours: the images of the official 800k steps at batch 64
    augment: str = "color,translation,cutout:0.3,scale"  # paper: DiffAugment + scaling; official: cutout
                                   # with p = 0.3 ("op:p", augment.py); "" = off (ablation)
    augment_p: float = 0.8         # paper (unverified) and official: the p of every op without ":p"
    hflip: bool = True             # official: cifar10_hflip, real images mirrored with p = 1/2 (data_order.py)
    bcr: bool = True               # paper: balanced consistency regularization (False: ablation)
    bcr_mode: str = "augmented"    # ours: D(A(x)) vs D(T(x)); "official": D(A(x)) vs D(A'(x)) (2nd DiffAugment
                                   # draw); "paper": D(x) vs D(T(x)) on clean x. See bcr.py
    bcr_policy: str = "translation"  # ours: T of bCR, modes augmented/paper (bCR paper: small shifts and flips)
    lambda_real: float = 10.0      # paper: lambda_real = 10 (official code: 1 with its CNN D)
    lambda_fake: float = 10.0      # paper: lambda_fake = 10
    r1_gamma: float = 0.0          # paper: no R1 with the ViT discriminator; > 0 turns it on
    ema_half_life_images: int = 1_000_000  # official code (paper does not state the EMA decay)
    ema_start_images: int | None = None  # official: G_ema is a copy of G until then; None = one half-life
                                   # (official ema_start_k defaults to halflife_k: 1M images here)
    ema_warmup: str = "official"   # official: copy G, then the constant decay; "torch_ema": min(decay,
                                   # (1+n)/(10+n)), how runs before this field trained. See ema.py
    precision: str = "auto"        # ours: fp32 | bf16 | fp16 | auto (bf16 or fp16 on a GPU, fp32 on CPU)
    compile: bool = False          # ours: torch.compile G and D (GPU speed-up; works on CPU, slow to build)
    micro_batches: int = 1         # ours: D and G steps in this many slices of the batch, gradients summed:
                                   # the same update in less memory (micro_batch.py)
    sample_every: int = 5000       # ours: steps between sample grids
    checkpoint_every: int = 5000   # ours: steps between checkpoints
    keep_checkpoints: int = 3      # ours: older checkpoints are deleted
    log_every: int = 10            # ours: steps between lines of log.jsonl (the last step always)
    n_samples: int = 64            # ours: images in a sample grid (fixed latents)
    seed: int = 0                  # ours

    def __post_init__(self):
        from .augment import parse_policy

        object.__setattr__(self, "betas", tuple(self.betas))  # a list after a round trip to a checkpoint
        _check_positive(self, ("batch_size", "micro_batches", "steps", "ema_half_life_images", "sample_every",
                               "checkpoint_every", "keep_checkpoints", "log_every", "n_samples"))
        _check_non_negative(self, ("warmup_steps", "lambda_real", "lambda_fake", "r1_gamma", "seed"))
        if self.ema_start_images is not None:
            _check_non_negative(self, ("ema_start_images",))
        for name in ("lr", "d_lr_mul"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"TrainConfig.{name} must be > 0, got {value!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.micro_batches > self.batch_size:
            raise ValueError(f"TrainConfig.micro_batches ({self.micro_batches}) cannot exceed batch_size "
                             f"({self.batch_size}): each slice needs at least one image")
        _check_fraction(self, "augment_p")
        _check_fraction(self, "lr_decay")
        _check_choice(self, "precision", PRECISIONS)
        _check_choice(self, "bcr_mode", BCR_MODES)
        _check_choice(self, "ema_warmup", EMA_WARMUPS)
        for name in ("augment", "bcr_policy"):
            try:
                parse_policy(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"TrainConfig.{name}: {exc}") from None
        if self.bcr and self.bcr_mode != "official" and not parse_policy(self.bcr_policy):
            raise ValueError(f"TrainConfig.bcr_policy is empty while bcr=True (mode {self.bcr_mode!r}); give "
                             "bCR a transform (e.g. 'translation'), use bcr_mode='official' or set bcr=False")

    @property
    def ema_decay(self) -> float:
        """Per-step EMA decay with the configured half-life: 0.5 ** (batch_size / half_life)."""
        return 0.5 ** (self.batch_size / self.ema_half_life_images)

    @classmethod
    def cifar10(cls) -> "TrainConfig":
        """The paper's CIFAR-10 recipe (the field defaults): a GPU job."""
        return cls()

    @classmethod
    def tiny(cls) -> "TrainConfig":
        """The recipe sized for a CPU (batch 32, ~0.3 s per step on one core).

        A tiny D cannot hold its own against the paper's regularisation: with lambda = 10 and all
        four augmentations at p = 0.8 its loss sat at log 4 (chance) for 1500 steps on CIFAR-10.
        So: lambda = 1 (the official code's value), no scaling, each op with p = 0.5. No flips of the
        real data (ours: the tiny runs and the pretrained tiny generator were trained without). The
        EMA starts after one half-life as officially: 5000 images, step 156 of 3000.
        """
        return cls(batch_size=32, warmup_steps=0, steps=3000, ema_half_life_images=5000,
                   augment="color,translation,cutout", augment_p=0.5, hflip=False, lambda_real=1.0, lambda_fake=1.0,
                   sample_every=250, checkpoint_every=250, log_every=1, n_samples=64)

    @classmethod
    def small(cls) -> "TrainConfig":
        """The CPU recipe for the small preset (batch 32, one core): `tiny`'s milder regularisation.

        Chosen from the recipe study (results/recipe, `vitgan-study`): on the small model it is ahead of
        the paper's recipe at every measured step (FID 153 vs 179 after 2,400 steps, 24 CPU-minutes),
        whose bCR weight 10 and four augmentations at p = 0.8 hold the small D at chance.
        """
        return cls.tiny().replace(steps=6000, ema_half_life_images=10_000, log_every=10)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, fields: dict) -> "TrainConfig":
        """A TrainConfig from a checkpoint's dict, which may be older than some fields.

        Older runs stored `bf16: bool` for `precision`. Runs saved before `hflip`, `bcr_mode` and
        `ema_warmup` existed trained without flips, with bCR "augmented" and torch-ema's warm-up: a
        dict without those fields gets those values, so such a run resumes exactly as it trained.
        """
        fields = {"hflip": False, "bcr_mode": "augmented", "ema_warmup": "torch_ema", **fields}
        if "bf16" in fields:
            fields["precision"] = "bf16" if fields.pop("bf16") else "fp32"
        return cls(**fields)
