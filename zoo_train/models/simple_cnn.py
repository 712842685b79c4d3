"""SimpleCNN: three Conv+BN+ReLU+MaxPool blocks, then FC layers with dropout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from zoo_runtime import schema
from zoo_train.models._image_recipes import DEMO_ACCURACY, image_recipes
from zoo_train.models.protocols import conv_activation_stages
from zoo_train.registry import QualityTarget, register_model


@dataclass(frozen=True)
class SimpleCNNConfig:
    in_channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    widths: tuple[int, int, int] = (32, 64, 128)
    hidden: int = 256
    dropout: float = 0.5


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SimpleCNN(nn.Module):
    def __init__(self, config: SimpleCNNConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        cin, side = config.in_channels, config.image_size
        for width in config.widths:
            layers += [*conv_bn_relu(cin, width), nn.MaxPool2d(2)]
            cin, side = width, side // 2
        if side < 1:
            raise ValueError(f"image_size {config.image_size} is too small for {len(config.widths)} pooling blocks")
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(cin * side * side, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
        )
        self.head = nn.Linear(config.hidden, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))

    def inspect_stages(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        return conv_activation_stages(self.body, self.fc, x, nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model(
    "simple-cnn",
    task=schema.TASK_IMAGE_CLASSIFICATION,
    config_cls=SimpleCNNConfig,
    default_dataset="fashion-mnist",
    # Full: a wider FC layer with less dropout; the default dropout of 0.5 underfits in 40 epochs.
    recipes=image_recipes(
        quick_epochs=1, full_epochs=40, lr=2e-3, label_smoothing=0.1, full_overrides={"dropout": 0.1, "hidden": 512}
    ),
    description="SimpleCNN: 3x (Conv+BN+ReLU+MaxPool), FC 256 with dropout",
    targets=(QualityTarget("test_accuracy", at_least=0.93),),
    demo_targets=DEMO_ACCURACY,
    tiny_config={"widths": (4, 8, 8), "hidden": 16},
)
def simple_cnn(**config: Any) -> SimpleCNN:
    return SimpleCNN(SimpleCNNConfig(**config))
