"""ResNet-18, torchvision's own (``torchvision.models.ResNet`` with basic blocks), for photos on small machines.

The ImageNet layout unchanged (a 7x7 stride-2 stem and max-pooling, four stages of 64-512 channels, global average
pooling, one linear head), so that torchvision's ImageNet weights load into it by name (``--init-from torchvision``);
only the stem's input channels follow the data (1 for grey). No weights are downloaded unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, ResNet

from zoo_runtime import schema
from zoo_train.models._image_recipes import DEMO_ACCURACY
from zoo_train.models._torchvision import torchvision_recipes, with_input_channels
from zoo_train.registry import QualityTarget, register_model


@dataclass(frozen=True)
class ResNet18Config:
    in_channels: int = 3
    num_classes: int = 1000
    image_size: int = 224  # any size of at least 32 works (global pooling); it shapes no weight
    layers: tuple[int, int, int, int] = (2, 2, 2, 2)  # basic blocks per stage: ResNet-18's


class ResNet18(ResNet):
    """torchvision's ResNet with basic blocks, its stem taking ``in_channels``."""

    conv1: nn.Conv2d  # set by torchvision's ResNet, replaced here for other channel counts

    def __init__(self, config: ResNet18Config):
        super().__init__(BasicBlock, list(config.layers), num_classes=config.num_classes)
        self.config = config
        self.conv1 = with_input_channels(self.conv1, config.in_channels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled vector [N, 512] the head classifies."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def inspect_stages(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """The stem's activation, each of the four stages' output, then the pooled features (the app's Inside view)."""
        x = self.relu(self.bn1(self.conv1(x)))
        stages = [("stem", x)]
        x = self.maxpool(x)
        for index, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            x = stage(x)
            stages.append((f"stage{index}", x))
        stages.append(("features", torch.flatten(self.avgpool(x), 1)))
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model(
    "resnet18",
    task=schema.TASK_IMAGE_CLASSIFICATION,
    config_cls=ResNet18Config,
    default_dataset="fashion-mnist",
    recipes=torchvision_recipes(quick_lr=2e-3),
    description="ResNet-18 (torchvision): 7x7 stem, 4 stages of 2 basic blocks (64-512), for --init-from torchvision",
    targets=(QualityTarget("test_accuracy", at_least=0.92),),
    demo_targets=DEMO_ACCURACY,
    tiny_config={"layers": (1, 1, 1, 1)},
    torchvision_weights="ResNet18_Weights.IMAGENET1K_V1",
)
def resnet18(**config: Any) -> nn.Module:
    return ResNet18(ResNet18Config(**config))
