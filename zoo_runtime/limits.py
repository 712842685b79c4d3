"""How much the runtime allocates for one request, checked before it allocates (docs/SECURITY.md).

A careless count (``zoo-run --sample 10000000``) or a huge image would otherwise end in a
MemoryError or Pillow's decompression-bomb warning. Each limit has a default and an environment
variable that changes it for zoo-run, the app and any embedder alike (read at each use).
"""

from __future__ import annotations

import os

from zoo_runtime.errors import InputError

# Pixels of one image file (width x height). 64 megapixels takes in any camera photo and stays under
# Pillow's own warning threshold (about 89.5 MP), so within this limit Pillow never warns.
IMAGE_PIXELS_ENV = "ZOO_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
# Bytes of the outputs of one call (such as sampled images): 1 GiB.
OUTPUT_BYTES_ENV = "ZOO_MAX_OUTPUT_BYTES"
DEFAULT_MAX_OUTPUT_BYTES = 1 << 30


def _from_env(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"${name}={text!r}: expected a positive whole number") from None
    if value < 1:
        raise InputError(f"${name}={text!r}: expected a positive whole number")
    return value


def max_image_pixels() -> int:
    """The largest image (width x height) the runtime opens: $ZOO_MAX_IMAGE_PIXELS, else 64 million."""
    return _from_env(IMAGE_PIXELS_ENV, DEFAULT_MAX_IMAGE_PIXELS)


def max_output_bytes() -> int:
    """The most one call may produce: $ZOO_MAX_OUTPUT_BYTES, else 1 GiB."""
    return _from_env(OUTPUT_BYTES_ENV, DEFAULT_MAX_OUTPUT_BYTES)


def human_bytes(count: float) -> str:
    """``1536`` -> ``"1.5 KiB"``: sizes in messages, to one decimal."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:,.0f} bytes" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def check_output_bytes(needed: int, what: str) -> None:
    """Refuse (InputError) a request whose outputs would need more than ``max_output_bytes()``."""
    limit = max_output_bytes()
    if needed > limit:
        raise InputError(
            f"{what} would need about {human_bytes(needed)} of memory, more than the limit of {human_bytes(limit)} "
            f"(${OUTPUT_BYTES_ENV} raises it)"
        )
