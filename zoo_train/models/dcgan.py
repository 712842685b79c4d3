"""DCGAN: a transposed-convolution generator and a strided-convolution discriminator.

Sized from the dataset (channels, square image size divisible by 4): the generator projects
z to a (size/4)^2 map and doubles it twice; the discriminator halves it twice. The generator
ends in tanh (images in [-1, 1] while training, as in the DCGAN paper); ``generate`` maps that
to [0, 1], the bundle's image range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn as nn
from torch import Tensor

from zoo_runtime import schema
from zoo_train.registry import QualityTarget, Recipe, register_model


@dataclass(frozen=True)
class DCGANConfig:
    latent_dim: int = 64
    channels: int = 1
    image_size: int = 28
    g_features: int = 64
    d_features: int = 64


class Generator(nn.Module):
    def __init__(self, c: DCGANConfig):
        super().__init__()
        self.side = c.image_size // 4
        width = 2 * c.g_features
        self.project = nn.Sequential(
            nn.Linear(c.latent_dim, width * self.side * self.side, bias=False),
            nn.BatchNorm1d(width * self.side * self.side),
            nn.ReLU(inplace=True),
        )
        self.body = nn.Sequential(
            nn.ConvTranspose2d(width, c.g_features, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c.g_features),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c.g_features, c.channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        """z [N, Z] -> images [N, C, H, W] in [-1, 1]."""
        x = self.project(z)
        return self.body(x.view(z.shape[0], -1, self.side, self.side))


class Discriminator(nn.Module):
    def __init__(self, c: DCGANConfig):
        super().__init__()
        side = c.image_size // 4
        self.body = nn.Sequential(
            nn.Conv2d(c.channels, c.d_features, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c.d_features, 2 * c.d_features, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * c.d_features),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
            nn.Linear(2 * c.d_features * side * side, 1),
        )

    def forward(self, images: Tensor) -> Tensor:
        """images [N, C, H, W] in [-1, 1] -> real/fake logits [N]."""
        return self.body(images).squeeze(1)


class DCGAN(nn.Module):
    """Generator + discriminator; ``generate(z)`` is what gets exported (docs/BUNDLE.md)."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        if config.image_size % 4:
            raise ValueError(f"DCGAN needs an image size divisible by 4, got {config.image_size}")
        self.config = config
        self.latent_dim = config.latent_dim
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)
        for m in self.modules():  # the DCGAN paper's initialisation
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def generate(self, z: Tensor) -> Tensor:
        """z [N, Z] ~ N(0, 1) -> images [N, C, H, W] in [0, 1]."""
        return (self.generator(z) + 1.0) * 0.5

    def forward(self, z: Tensor) -> Tensor:
        return self.generate(z)


TINY = {"latent_dim": 8, "g_features": 4, "d_features": 4}


# The Fréchet distance in a trained classifier's features well below the untrained generator's, every garment drawn.
FD_TARGETS = (QualityTarget("fid", below="fid_untrained", fraction=0.25), QualityTarget("sample_classes_covered", at_least=10))


@register_model(
    "dcgan",
    task=schema.TASK_IMAGE_GENERATION,
    config_cls=DCGANConfig,
    default_dataset="fashion-mnist",
    recipes={
        "smoke": Recipe(
            epochs=1,
            batch_size=16,
            lr=2e-4,
            grad_clip=None,
            limit_train=64,
            limit_eval=32,
            model_overrides=TINY,
            data_options={"fid_samples": 64},
        ),
        # Two epochs of the whole training split (1,876 steps) with a narrower network, a peak lr 2.5x the paper's
        # annealed to 0: FD 0.17x the untrained generator's in the features of simple-cnn's quick run (one epoch: 0.28x;
        # 12k images twice at 2e-4: 0.35x in an older classifier's features). About 50 s on 2 AVX512-BF16 cores.
        "quick": Recipe(
            epochs=2,
            batch_size=64,
            lr=5e-4,
            final_lr_fraction=0.0,
            grad_clip=None,
            limit_eval=1000,
            model_overrides={"g_features": 32, "d_features": 32},
            data_options={"fid_samples": 2000},
        ),
        "full": Recipe(epochs=25, batch_size=128, lr=2e-4, grad_clip=None, limit_eval=2000, data_options={"fid_samples": 10000}),
    },
    description="DCGAN: transposed-conv generator, strided-conv discriminator, Fashion-MNIST",
    # "Far below" the untrained generator: at most a quarter of its distance; no mode collapse.
    targets=FD_TARGETS,
    demo_targets=FD_TARGETS,
    tiny_config=TINY,
)
def dcgan(**config: Any) -> DCGAN:
    return DCGAN(DCGANConfig(**config))
