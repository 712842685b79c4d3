"""Augmentation applied to whole batches on the training device (GPU when there is one)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zoo_train.data.images import Augmentation


def augment_batch(x: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """Random flips, shifts, rotations, colour jitter and erasing of ``x`` (float [N,C,H,W] in 0..1)."""
    n = x.shape[0]
    device = x.device
    if aug.flip:
        flip = torch.rand(n, device=device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if aug.translate or aug.rotate:
        angle = (torch.rand(n, device=device) * 2 - 1) * math.radians(aug.rotate)
        if aug.translate:
            shift = torch.randint(-aug.translate, aug.translate + 1, (n, 2), device=device).float()
        else:
            shift = torch.zeros(n, 2, device=device)
        h, w = x.shape[-2:]
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([cos, -sin, shift[:, 0] * 2 / w], dim=1),
                torch.stack([sin, cos, shift[:, 1] * 2 / h], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if aug.brightness or aug.contrast:
        b = 1 + (torch.rand(n, 1, 1, 1, device=device) * 2 - 1) * aug.brightness
        c = 1 + (torch.rand(n, 1, 1, 1, device=device) * 2 - 1) * aug.contrast
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * c + mean) * b
        x = x.clamp(0, 1)
    if aug.erase:
        x = erase_rectangles(x, aug.erase)
    return x


def erase_rectangles(
    x: torch.Tensor, probability: float, area: tuple[float, float] = (0.02, 0.4), aspect: tuple[float, float] = (0.3, 3.3)
) -> torch.Tensor:
    """Random erasing, batched: with ``probability`` per image, one rectangle of uniform noise.

    Area (a fraction of the image) and aspect ratio are drawn as in Zhong et al. 2017 and torchvision's
    RandomErasing; a rectangle that would not fit is clipped to the image instead of re-drawn, so the
    whole batch takes one pass with no per-image loop.
    """
    n, _, h, w = x.shape
    device = x.device
    size = torch.empty(n, device=device).uniform_(*area) * h * w
    ratio = torch.exp(torch.empty(n, device=device).uniform_(math.log(aspect[0]), math.log(aspect[1])))
    height = (size * ratio).sqrt().round().clamp(1, h)
    width = (size / ratio).sqrt().round().clamp(1, w)
    top = (torch.rand(n, device=device) * (h - height + 1)).floor()
    left = (torch.rand(n, device=device) * (w - width + 1)).floor()
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    chosen = (torch.rand(n, device=device) < probability).view(n, 1, 1)
    inside = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + height).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + width).view(n, 1, 1))
        & chosen
    )
    return torch.where(inside.unsqueeze(1), torch.rand_like(x), x)
