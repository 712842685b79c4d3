"""Image file -> pixels: the one path every consumer of an image bundle shares (no torch).

Training on an image folder decodes files with ``decode_image_file``, and ``zoo_runtime`` (so ``zoo-run``,
the app and the server) decodes the files it classifies with the same function and the manifest's
``preprocessing.image`` block, so a photo reaches the graph as the same pixels it reached training with.

The steps, in order: Pillow opens the file (first frame of an animation); a JPEG is decoded at the smallest
DCT scale (1/2, 1/4, 1/8) that still covers the target size (``Image.draft``, which makes decoding a large
photo for a small model several times faster); the EXIF orientation is applied; the image is converted to
the bundle's colour mode (16-bit greys scaled to 8 bits, alpha dropped); then it is resized bilinearly to
``width`` x ``height``: stretched (``resize: "stretch"``, the default) or, for
``"center-crop"``, the largest centred square (or box of the target's aspect) is cut out first, so that
photos keep their proportions as torchvision's Resize + CenterCrop presets keep them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

RESIZE_STRETCH = "stretch"
RESIZE_CENTER_CROP = "center-crop"
RESIZE_POLICIES = (RESIZE_STRETCH, RESIZE_CENTER_CROP)
# Pillow modes whose pixels are one grey level; every other mode is colour.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
# Modes holding more than 8 bits of grey: Pillow's convert("L") clips them at 255, which turns a 16-bit
# image white; they are scaled to 0..255 instead.
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def is_grey(mode: str) -> bool:
    return mode in GREY_MODES


def _full_scale(img: Any, values: np.ndarray) -> float:
    """The value of white in a high-bit-depth grey image: 65535 for 16-bit modes; for "I" and "F", whose depth
    Pillow does not record, the smallest of 1, 255 and 65535 that holds the values (or their maximum)."""
    if img.mode.startswith("I;16"):
        return 65535.0
    top = float(values.max()) if values.size else 0.0
    if img.mode == "I" and top <= 1.0:
        return 255.0  # whole numbers 0 and 1 are dark 8-bit values, not a 0..1 scale
    return next((scale for scale in (1.0, 255.0, 65535.0) if top <= scale), top)


def to_mode(img: Any, color: str) -> Any:
    """``img`` as Pillow mode ``color`` ("L" or "RGB"), 16-bit, 32-bit and float greys scaled by their depth
    rather than clipped at 255."""
    from PIL import Image

    if img.mode in _WIDE_GREY_MODES or img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        unit = values / _full_scale(img, values)
        img = Image.fromarray(np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8), "L")
    return img if img.mode == color else img.convert(color)


def crop_box(width: int, height: int, target_width: int, target_height: int) -> tuple[float, float, float, float]:
    """The centred box of ``width`` x ``height`` with the target's aspect ratio (as large as fits)."""
    scale = min(width / target_width, height / target_height)
    box_w, box_h = target_width * scale, target_height * scale
    left, top = (width - box_w) / 2, (height - box_h) / 2
    return left, top, left + box_w, top + box_h


def fit_image(img: Any, color: str, width: int, height: int, resize: str = RESIZE_STRETCH) -> np.ndarray:
    """A loaded PIL image -> uint8 [height, width, channels] pixels (EXIF orientation applied)."""
    from PIL import Image, ImageOps

    if resize not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {resize!r}; known: {', '.join(RESIZE_POLICIES)}")
    img = ImageOps.exif_transpose(img)
    img = to_mode(img, color)
    if img.size != (width, height):
        box = crop_box(img.width, img.height, width, height) if resize == RESIZE_CENTER_CROP else None
        img = img.resize((width, height), Image.Resampling.BILINEAR, box=box)
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def decode_image_file(
    path: str | os.PathLike[str],
    color: str,
    width: int,
    height: int,
    resize: str = RESIZE_STRETCH,
    check_size: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Decode an image file to uint8 [height, width, channels]; Pillow's own exceptions for unreadable files.

    ``check_size(width, height)`` sees the size from the file's header, before any pixel is decoded (and may raise).
    """
    from PIL import Image

    with Image.open(path) as img:
        if check_size is not None:
            check_size(*img.size)
        if img.format == "JPEG":
            # Both sides at least the target's larger side: covers any crop, and a rotation by EXIF.
            side = max(width, height)
            img.draft(None, (side, side))
        img.load()
        return fit_image(img, color, width, height, resize)
