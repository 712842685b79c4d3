"""What the zoo's wrappers of torchvision architectures share: the stem for other channel counts, and their recipes.

The wrapped models keep torchvision's module names, so that torchvision's state dicts (its ImageNet weights, or a
``torch.save(model.state_dict())`` of a torchvision model) load into them by name (``zoo-train --init-from``).
"""

from __future__ import annotations

from typing import cast

import torch.nn as nn

from zoo_train.models._image_recipes import image_recipes
from zoo_train.registry import Recipe


def with_input_channels(conv: nn.Conv2d, channels: int) -> nn.Conv2d:
    """``conv`` itself when it takes ``channels`` already, else a fresh convolution like it for ``channels`` inputs.

    torchvision's stems take RGB; grey data (Fashion-MNIST, grey photos) gets a stem of one input channel, initialised
    as torchvision initialises its convolutions. Pretrained RGB stem weights are adapted to it by zoo_train.transfer.
    """
    if conv.in_channels == channels:
        return conv
    pair = tuple[int, int]  # what a Conv2d holds its sizes as
    stem = nn.Conv2d(
        channels,
        conv.out_channels,
        cast(pair, conv.kernel_size),
        stride=cast(pair, conv.stride),
        padding=cast(pair, conv.padding),
        dilation=cast(pair, conv.dilation),
        bias=conv.bias is not None,
    )
    nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
    if stem.bias is not None:
        nn.init.zeros_(stem.bias)
    return stem


def torchvision_recipes(quick_lr: float, quick_limit: int | None = 24000, quick_epochs: int = 1) -> dict[str, Recipe]:
    """smoke/quick/full for an ImageNet architecture on Fashion-MNIST-sized data (AdamW: no per-model SGD tuning).

    The quick recipe is ``quick_epochs`` at a higher rate, over ``quick_limit`` images (None: all 54,000), as a
    model's minutes on 2 cores allow.
    """
    return image_recipes(
        quick_epochs=quick_epochs,
        full_epochs=30,
        lr=1e-3,
        weight_decay=0.05,
        quick_limit=quick_limit,
        label_smoothing=0.1,
        quick_changes={"lr": quick_lr},
    )
