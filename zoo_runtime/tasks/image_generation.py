"""GAN image generation: latents -> uint8 images, seeded sampling and latent interpolation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from zoo_runtime import limits, schema
from zoo_runtime.bundle import Bundle
from zoo_runtime.errors import BundleError, InputError
from zoo_runtime.providers import SessionFactory
from zoo_runtime.sampling import random_generator
from zoo_runtime.tasks.base import BundleModel, Field

_BATCH = 64


class ImageGenerator(BundleModel):
    """``sample(n, seed)``, ``interpolate(z_a, z_b, steps)`` and ``decode(z)`` over a GAN bundle."""

    task = schema.TASK_IMAGE_GENERATION
    roles = (schema.ROLE_MODEL,)
    inputs: ClassVar[Mapping[str, Field]] = {
        "z": Field("array", "latent vectors [n, Z] or one [Z] to decode (else n are sampled)"),
        "n": Field("integer", "images to sample when no z is given (default 1)"),
        "seed": Field("integer", "seed of the sampled latents (default: a fresh one)"),
    }
    outputs: ClassVar[Mapping[str, Field]] = {
        "images": Field("array", "uint8 images [n, H, W, C]"),
        "z": Field("array", "the latent vectors decoded, float32 [n, Z]"),
    }

    def __init__(self, bundle: Bundle, factory: SessionFactory) -> None:
        super().__init__(bundle, factory)
        graph = self.graph(schema.ROLE_MODEL)
        self._input = graph["inputs"][0]["name"]
        self._output = graph["outputs"][0]["name"]
        latent = (self.manifest.get("preprocessing") or {}).get("latent") or {}
        dim = latent.get("dim")
        if dim is None:
            shape = graph["inputs"][0].get("shape") or []
            dim = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        if not isinstance(dim, int) or dim < 1:
            raise BundleError(f"{self.path}: the manifest gives no latent size (preprocessing.latent.dim)")
        self.latent_dim: int = dim
        self.distribution: str = latent.get("distribution", "normal")
        if self.distribution not in ("normal", "uniform"):
            raise BundleError(f"{self.path}: unknown latent distribution {self.distribution!r}")

    def image_bytes(self) -> int | None:
        """Memory one decoded image takes on its way out (float32 graph output, then uint8), if the graph says its size."""
        shape = self.graph("model")["outputs"][0].get("shape") or []
        if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[1:]):
            return int(np.prod(shape[1:])) * (4 + 1)
        return None

    def check_count(self, n: int, what: str = "n") -> int:
        """``n`` as a count of images to make, refused (InputError) before anything is allocated when it is
        not a positive whole number or its images would not fit ``limits.max_output_bytes()``."""
        n = _count(n, what)
        per_image = self.image_bytes()
        if per_image is not None:
            limits.check_output_bytes(n * per_image, f"{what} {n:,}: {n:,} images")
        return n

    def sample_latents(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` latent vectors float32 [n, Z] from the bundle's distribution, reproducible by seed."""
        rng = random_generator(seed)
        n = self.check_count(n)
        if self.distribution == "uniform":
            z = rng.uniform(-1.0, 1.0, size=(n, self.latent_dim))
        else:
            z = rng.standard_normal((n, self.latent_dim))
        return z.astype(np.float32)

    def _latents(self, z: Any, what: str = "z") -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            z = z[None]
        if z.ndim != 2 or z.shape[1] != self.latent_dim or z.shape[0] < 1:
            raise BundleError(
                f"{what}: wrong input shape {list(z.shape)}: expected [n, {self.latent_dim}] or [{self.latent_dim}]"
            )
        if not np.all(np.isfinite(z)):
            raise BundleError(f"{what}: holds NaN or infinite values")
        latents: np.ndarray = z
        return latents

    def decode_float(self, z: Any) -> np.ndarray:
        """The graph's own output: float32 [n, C, H, W] in 0..1."""
        z = self._latents(z)
        batches = (z[i : i + _BATCH] for i in range(0, z.shape[0], _BATCH))
        out = [self._run(schema.ROLE_MODEL, {self._input: batch}, [self._output])[0] for batch in batches]
        return np.concatenate(out, axis=0)

    def decode(self, z: Any) -> np.ndarray:
        """Latents [n, Z] -> uint8 images [n, H, W, C]."""
        return images_uint8(self.decode_float(z))

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        return self.decode(self.sample_latents(n, seed))

    def describe_task(self) -> dict[str, Any]:
        return {"latent": {"dim": self.latent_dim, "distribution": self.distribution}}

    def predict_checked(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if "z" in request and ("n" in request or "seed" in request):
            raise BundleError("request: give z, or n and seed to sample it, not both")
        z = self._latents(request["z"]) if "z" in request else self.sample_latents(request.get("n", 1), request.get("seed"))
        return {"images": self.decode(z), "z": z}

    def interpolate(self, z_a: Any, z_b: Any, steps: int = 8, method: str = "linear") -> np.ndarray:
        """Images along the path from ``z_a`` to ``z_b`` (both ends included): uint8 [steps, H, W, C].

        ``method="slerp"`` follows the great circle, which keeps normal latents at a typical norm.
        """
        a = self._latents(z_a, "z_a")[0]
        b = self._latents(z_b, "z_b")[0]
        steps = self.check_count(steps, "steps")
        t = np.linspace(0.0, 1.0, steps, dtype=np.float64)[:, None]
        if method == "slerp":
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            cos = float(np.clip(np.dot(a, b) / max(na * nb, 1e-12), -1.0, 1.0))
            omega = np.arccos(cos)
            z = (1 - t) * a + t * b if omega < 1e-06 else (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
        elif method == "linear":
            z = (1 - t) * a + t * b
        else:
            raise BundleError(f"interpolate: method {method!r}: expected 'linear' or 'slerp'")
        return self.decode(z.astype(np.float32))


def images_uint8(x: np.ndarray) -> np.ndarray:
    """The graph's float32 [n, C, H, W] in 0..1 -> uint8 images [n, H, W, C] (rounded, clipped)."""
    return np.ascontiguousarray((np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1))


def _count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"{what}: expected a positive integer, got {n!r}")
    return int(n)
