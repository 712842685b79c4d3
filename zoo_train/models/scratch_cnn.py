"""ScratchCNN: a CNN built only from the zoo's from-scratch layers (no nn.Conv2d / nn.Linear)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from zoo_runtime import schema
from zoo_train.models._image_recipes import DEMO_ACCURACY, image_recipes
from zoo_train.models.protocols import conv_activation_stages
from zoo_train.nn_scratch import Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU
from zoo_train.registry import QualityTarget, register_model


@dataclass(frozen=True)
class ScratchCNNConfig:
    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 28
    widths: tuple[int, int] = (32, 64)
    hidden: int = 128
    dropout: float = 0.25


class ScratchCNN(nn.Module):
    """conv3x3-relu-pool x2, then Linear-ReLU-Dropout-Linear, every layer from zoo_train.nn_scratch."""

    def __init__(self, config: ScratchCNNConfig):
        super().__init__()
        self.config = config
        c1, c2 = config.widths
        self.body = nn.Sequential(
            Conv2D(config.in_channels, c1, 3, padding=1),
            ReLU(),
            MaxPool2D(2),
            Conv2D(c1, c2, 3, padding=1),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
        )
        side = config.image_size // 4
        if side < 1:
            raise ValueError(f"image_size {config.image_size} is too small for two pooling steps")
        self.fc = nn.Sequential(Dropout(config.dropout), Linear(c2 * side * side, config.hidden), ReLU(), Dropout(config.dropout))
        self.head = Linear(config.hidden, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))

    def inspect_stages(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        return conv_activation_stages(self.body, self.fc, x, ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model(
    "scratch-cnn",
    task=schema.TASK_IMAGE_CLASSIFICATION,
    config_cls=ScratchCNNConfig,
    default_dataset="fashion-mnist",
    recipes=image_recipes(quick_epochs=1, full_epochs=30, lr=2e-3),
    description="ScratchCNN: conv-relu-pool x2 + MLP, only from-scratch layers",
    targets=(QualityTarget("test_accuracy", at_least=0.90),),
    demo_targets=DEMO_ACCURACY,
    tiny_config={"widths": (4, 8), "hidden": 16},
)
def scratch_cnn(**config: Any) -> ScratchCNN:
    return ScratchCNN(ScratchCNNConfig(**config))
