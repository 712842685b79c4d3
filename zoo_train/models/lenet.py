"""LeNet-5 and the CIFAR LeNet: two conv layers with pooling, three FC layers.

Both take the channel count, class count and image size from the dataset, so the
flattened size is computed rather than hard-coded (LeNet-5's 16*5*5 holds for 32x32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from zoo_runtime import schema
from zoo_train.models._image_recipes import DEMO_ACCURACY, image_recipes
from zoo_train.models.protocols import conv_activation_stages
from zoo_train.registry import QualityTarget, register_model


def _conv_out(size: int, kernel: int, pool: int) -> int:
    return (size - kernel + 1) // pool


@dataclass(frozen=True)
class LeNetConfig:
    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 32
    conv_channels: tuple[int, int] = (6, 16)
    fc_sizes: tuple[int, int] = (120, 84)
    kernel_size: int = 5
    pool: str = "avg"  # LeNet-5 subsamples by averaging; the CIFAR variant max-pools
    dropout: float = 0.0


@dataclass(frozen=True)
class CIFARLeNetConfig(LeNetConfig):
    in_channels: int = 3
    num_classes: int = 100
    conv_channels: tuple[int, int] = (64, 64)
    fc_sizes: tuple[int, int] = (384, 192)
    pool: str = "max"
    dropout: float = 0.3


class LeNet(nn.Module):
    """conv-pool-conv-pool, then FC-FC-classes (LeNet-5 and its CIFAR widening)."""

    def __init__(self, config: LeNetConfig):
        super().__init__()
        self.config = config
        c1, c2 = config.conv_channels
        k = config.kernel_size
        pool = nn.AvgPool2d(2) if config.pool == "avg" else nn.MaxPool2d(2)
        self.body = nn.Sequential(
            nn.Conv2d(config.in_channels, c1, k),
            nn.ReLU(inplace=True),
            pool,
            nn.Conv2d(c1, c2, k),
            nn.ReLU(inplace=True),
            pool,
            nn.Flatten(),
        )
        side = _conv_out(_conv_out(config.image_size, k, 2), k, 2)
        if side < 1:
            raise ValueError(f"image_size {config.image_size} is too small for two {k}x{k} convolutions with pooling")
        f1, f2 = config.fc_sizes
        self.fc = nn.Sequential(
            nn.Linear(c2 * side * side, f1),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(f1, f2),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(f2, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))

    def inspect_stages(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        return conv_activation_stages(self.body, self.fc, x, nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model(
    "lenet5",
    task=schema.TASK_IMAGE_CLASSIFICATION,
    config_cls=LeNetConfig,
    default_dataset="fashion-mnist",
    # LeNet-5's layout with max instead of average pooling (the paper's falls short of the target) and label smoothing.
    recipes=image_recipes(
        quick_epochs=3,
        full_epochs=40,
        lr=2e-3,
        quick_changes={"batch_size": 64},
        label_smoothing=0.1,
        quick_overrides={"pool": "max"},
        full_overrides={"pool": "max"},
    ),
    description="LeNet-5: conv 6@5x5, pool, conv 16@5x5, pool, FC 120-84-classes",
    targets=(QualityTarget("test_accuracy", at_least=0.90),),
    demo_targets=DEMO_ACCURACY,
)
def lenet5(**config: Any) -> LeNet:
    return LeNet(LeNetConfig(**config))


@register_model(
    "cifar-lenet",
    task=schema.TASK_IMAGE_CLASSIFICATION,
    config_cls=CIFARLeNetConfig,
    default_dataset="fashion-mnist",
    recipes=image_recipes(quick_epochs=1, full_epochs=40, lr=1e-3, quick_changes={"lr": 2e-3, "label_smoothing": 0.1}),
    description="CIFAR LeNet: conv 64@5x5 x2 with max-pooling, FC 384-192-classes",
    targets=(QualityTarget("test_accuracy", at_least=0.91),),
    demo_targets=DEMO_ACCURACY,
    tiny_config={"conv_channels": (8, 8), "fc_sizes": (16, 16)},
)
def cifar_lenet(**config: Any) -> LeNet:
    return LeNet(CIFARLeNetConfig(**config))
