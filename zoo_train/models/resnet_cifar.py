"""ResNetCIFAR: a pre-activation residual network sized for 28-32 px images.

Three stages (stride 1, 2, 2) of basic blocks, global average pooling, one linear head:
the CIFAR ResNets of He et al. with wider stages, as used in the Fashion-MNIST benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from zoo_runtime import schema
from zoo_train.models._image_recipes import image_recipes
from zoo_train.registry import QualityTarget, Recipe, register_model


@dataclass(frozen=True)
class ResNetCIFARConfig:
    in_channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    widths: tuple[int, ...] = (32, 64, 128)
    blocks: tuple[int, ...] = (2, 2, 2)
    dropout: float = 0.1


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        # The projection sees the activated input, as in pre-activation ResNets.
        shortcut = self.shortcut(out) if not isinstance(self.shortcut, nn.Identity) else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


class ResNetCIFAR(nn.Module):
    def __init__(self, config: ResNetCIFARConfig):
        super().__init__()
        if len(config.widths) != len(config.blocks):
            raise ValueError("widths and blocks must have one entry per stage")
        self.config = config
        self.stem = nn.Conv2d(config.in_channels, config.widths[0], 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        cin = config.widths[0]
        for index, (width, count) in enumerate(zip(config.widths, config.blocks, strict=True)):
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(PreActBlock(cin, width, stride))
                cin = width
        self.stages = nn.Sequential(*stages)
        self.final = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(cin, config.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.stages(self.stem(x)))

    def inspect_stages(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """``stem``, each residual block (``block1``...) and the pooled ``features``."""
        x = self.stem(x)
        stages = [("stem", x)]
        for index, block in enumerate(self.stages, start=1):
            x = block(x)
            stages.append((f"block{index}", x))
        stages.append(("features", self.final(x)))
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


@register_model(
    "resnet-cifar",
    task=schema.TASK_IMAGE_CLASSIFICATION,
    config_cls=ResNetCIFARConfig,
    default_dataset="fashion-mnist",
    # Random erasing in the full recipe: on Fashion-MNIST it took WRN-28-10 from 95.9% to 96.3% (ANCHORS.md), and a
    # 60-epoch ResNet is the zoo's model most able to overfit 54k images.
    recipes={
        **image_recipes(
            quick_epochs=1,
            full_epochs=60,
            lr=0.1,
            optimizer="sgd",
            weight_decay=5e-4,
            quick_limit=24000,  # an epoch of all 54k images takes minutes on 2 cores
            label_smoothing=0.1,
            full_random_erasing=0.5,
        ),
        # The time-to-target recipe (benchmarks/train_speed.py; its runs in benchmarks/RESULTS.md, "Time to target").
        # As airbench does: large batches for the GPU, a warm-up of one epoch, the rate annealed to 0, and no random
        # erasing, which only pays back over a long schedule.
        "speedrun": Recipe(
            epochs=20,
            batch_size=512,
            lr=0.2,
            optimizer="sgd",
            weight_decay=5e-4,
            warmup_steps=105,
            final_lr_fraction=0.0,
            label_smoothing=0.1,
        ),
    },
    description="ResNetCIFAR: pre-activation ResNet, 3 stages (32/64/128) x 2 blocks",
    targets=(QualityTarget("test_accuracy", at_least=0.945),),
    demo_targets=(QualityTarget("test_accuracy", at_least=0.85),),
    tiny_config={"widths": (4, 8), "blocks": (1, 1)},
)
def resnet_cifar(**config: Any) -> ResNetCIFAR:
    return ResNetCIFAR(ResNetCIFARConfig(**config))
