"""Augmentation applied to whole batches on the training device (GPU when there is one)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zoo_train.data.images import Augmentation


def augment_batch(x: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """Random flips, shifts, rotations and colour jitter of ``x`` (float [N,C,H,W] in 0..1)."""
    n = x.shape[0]
    device = x.device
    if aug.flip:
        flip = torch.rand(n, device=device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if aug.translate or aug.rotate:
        angle = (torch.rand(n, device=device) * 2 - 1) * math.radians(aug.rotate)
        shift = torch.randint(-aug.translate, aug.translate + 1, (n, 2), device=device).float() if aug.translate else torch.zeros(n, 2, device=device)
        h, w = x.shape[-2:]
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([
            torch.stack([cos, -sin, shift[:, 0] * 2 / w], dim=1),
            torch.stack([sin, cos, shift[:, 1] * 2 / h], dim=1),
        ], dim=1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if aug.brightness or aug.contrast:
        b = 1 + (torch.rand(n, 1, 1, 1, device=device) * 2 - 1) * aug.brightness
        c = 1 + (torch.rand(n, 1, 1, 1, device=device) * 2 - 1) * aug.contrast
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * c + mean) * b
        x = x.clamp(0, 1)
    return x
