"""MobileNetV3-Small, built by torchvision (``torchvision.models.mobilenet_v3_small``), for photos on small machines.

torchvision's modules under torchvision's names (``features``, ``classifier``), so that its ImageNet weights load
by name (``--init-from torchvision``); the stem's input channels follow the data (1 for grey), and the global
pooling sits at the end of ``features``, so that ``features(x)`` is the pooled vector as in the zoo's other
classifiers (pooling has no weights: the state dict's names are torchvision's). No weights are downloaded unless
asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torchvision.models import mobilenet_v3_small

from zoo_runtime import schema
from zoo_train.models._image_recipes import DEMO_ACCURACY
from zoo_train.models._torchvision import torchvision_recipes, with_input_channels
from zoo_train.registry import QualityTarget, register_model

BATCHNORM_MOMENTUM = 0.1


@dataclass(frozen=True)
class MobileNetV3SmallConfig:
    in_channels: int = 3
    num_classes: int = 1000
    image_size: int = 224  # any size of at least 32 works (global pooling); it shapes no weight
    width_mult: float = 1.0  # channels of every layer, scaled (torchvision's width multiplier)
    dropout: float = 0.2


class MobileNetV3Small(nn.Module):
    """MobileNetV3-Small: inverted residual blocks with squeeze-excitation and hard-swish, a two-layer head."""

    def __init__(self, config: MobileNetV3SmallConfig):
        super().__init__()
        self.config = config
        built = mobilenet_v3_small(
            weights=None, num_classes=config.num_classes, width_mult=config.width_mult, dropout=config.dropout
        )
        stem = built.features[0]
        stem[0] = with_input_channels(stem[0], config.in_channels)
        self.features = nn.Sequential(*built.features, built.avgpool, nn.Flatten(1))
        self.classifier = built.classifier
        # torchvision's BatchNorm momentum of 0.01 suits hundreds of ImageNet epochs; over the zoo's short recipes the
        # running statistics stay near their start and evaluation is at chance (10% after the quick recipe, measured).
        # PyTorch's default follows the data in a few dozen steps; loaded ImageNet statistics are kept as loaded.
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = BATCHNORM_MOMENTUM

    def inspect_stages(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """The stem, each inverted-residual block and the last 1x1 convolution, then the pooled features."""
        *blocks, pool, flatten = self.features
        names = ["stem", *(f"block{i}" for i in range(1, len(blocks) - 1)), "last_conv"]
        stages = []
        for name, block in zip(names, blocks, strict=True):
            x = block(x)
            stages.append((name, x))
        stages.append(("features", flatten(pool(x))))
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(
    "mobilenet-v3-small",
    task=schema.TASK_IMAGE_CLASSIFICATION,
    config_cls=MobileNetV3SmallConfig,
    default_dataset="fashion-mnist",
    # Two passes over 45,000 images at 5e-3: test 0.8787 and 0.8773 (seeds 0, 1) in 60 s on one thread in fp32; in
    # bf16 one pass over all 54,000 at 3e-3 gave 0.866 and two over 36,000 0.874 (benchmarks/RESULTS.md).
    recipes=torchvision_recipes(quick_lr=5e-3, quick_limit=45000, quick_epochs=2),
    description="MobileNetV3-Small (torchvision): inverted residuals with squeeze-excitation, for --init-from torchvision",
    targets=(QualityTarget("test_accuracy", at_least=0.90),),
    demo_targets=DEMO_ACCURACY,
    tiny_config={"width_mult": 0.25},
    # On an AVX512-BF16 CPU (no AMX) its quick recipe trained in 146 s in bf16 and 60 s in fp32, where every other
    # Fashion-MNIST classifier ran 1.2-2x faster in bf16 (benchmarks/RESULTS.md); its depthwise convolutions are what
    # sets it apart (not profiled).
    cpu_bf16_pays=False,
    torchvision_weights="MobileNet_V3_Small_Weights.IMAGENET1K_V1",
)
def mobilenet_v3_small_zoo(**config: Any) -> nn.Module:
    return MobileNetV3Small(MobileNetV3SmallConfig(**config))
