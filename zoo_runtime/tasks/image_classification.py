"""Image classification: files, PIL images or arrays in; top-k labels and probabilities out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from zoo_runtime import limits, schema
from zoo_runtime.bundle import Bundle
from zoo_runtime.errors import BundleError, InputError
from zoo_runtime.pixels import RESIZE_CENTER_CROP, RESIZE_POLICIES, RESIZE_STRETCH, crop_box, decode_image_file, fit_image
from zoo_runtime.providers import SessionFactory
from zoo_runtime.sampling import softmax
from zoo_runtime.tasks.base import BundleModel, Field, Prediction

_BATCH = 64


class ImageSpec:
    """What the graph takes: channels, height, width and the Pillow mode files are converted to."""

    def __init__(self, manifest: dict[str, Any], shape: list[Any]):
        pre = (manifest.get("preprocessing") or {}).get("image") or {}
        dims: list[Any] = list(shape[1:4]) if len(shape) == 4 else [None, None, None]
        self.channels = int(pre.get("channels") or dims[0])
        self.height = int(pre.get("height") or dims[1])
        self.width = int(pre.get("width") or dims[2])
        self.color = pre.get("color") or ("L" if self.channels == 1 else "RGB")
        self.resize = pre.get("resize") or RESIZE_STRETCH
        if self.resize not in RESIZE_POLICIES:
            raise BundleError(
                f"manifest preprocessing.image.resize {self.resize!r}: not a resize policy this runtime knows "
                f"({', '.join(RESIZE_POLICIES)}); a newer zoo_runtime may read this bundle"
            )

    @property
    def chw(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width


def read_image_file(path: str | os.PathLike[str], spec: ImageSpec) -> np.ndarray:
    """An image file as the graph's CHW float 0..1 pixels, decoded as training decoded it (``zoo_runtime.pixels``).

    A missing file, a file that is not an image, or one larger than ``limits.max_image_pixels()`` (checked
    from the header, before decoding) is an InputError naming it.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError  # Pillow only where files are read

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    most = limits.max_image_pixels()
    try:
        # Pillow warns (or, far above its threshold, refuses) as it opens a large file: check_size says it instead.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pixels = decode_image_file(
                path, spec.color, spec.width, spec.height, spec.resize, check_size=partial(_check_pixels, path, most)
            )
    except InputError:
        raise
    except Image.DecompressionBombError:
        # Pillow's own hard limit (twice PIL.Image.MAX_IMAGE_PIXELS), reached only when ours is set above it.
        raise _too_large(path, None, None, min(most, 2 * (Image.MAX_IMAGE_PIXELS or 0))) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(
            f"{path}: not an image Pillow can read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    return _uint8_to_chw(pixels)


def _uint8_to_chw(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((pixels.astype(np.float32) / 255.0).transpose(2, 0, 1))


def _check_pixels(path: Path, most: int, width: int, height: int) -> None:
    if width * height > most:
        raise _too_large(path, width, height, most)


def _too_large(path: Path, width: int | None, height: int | None, most: int) -> InputError:
    size = f"{width}x{height} = {width * height:,} pixels; " if width and height else ""
    return InputError(
        f"{path}: image too large to open ({size}the limit is {most:,} pixels, ${limits.IMAGE_PIXELS_ENV} changes it)"
    )


def _pil_to_chw(img: Any, spec: ImageSpec) -> np.ndarray:
    return _uint8_to_chw(fit_image(img, spec.color, spec.width, spec.height, spec.resize))


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert")


def _to_float01(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        finite = arr[np.isfinite(arr)]
        if finite.size != arr.size:
            raise BundleError(f"{what}: the array holds NaN or infinite values")
        if finite.size and (finite.min() < -1e-3 or finite.max() > 1.0 + 1e-3):
            raise BundleError(
                f"{what}: float pixels must be in 0..1 (got {finite.min():.3g}..{finite.max():.3g}); pass uint8 for 0..255"
            )
        return arr
    raise BundleError(f"{what}: arrays must be uint8 (0..255) or float (0..1), got {arr.dtype}")


def _hwc_to_chw(arr: np.ndarray, spec: ImageSpec, what: str) -> np.ndarray:
    """An HW or HWC array -> CHW float 0..1 of the graph's size; other sizes and channel counts are converted."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    c = arr.shape[2]
    if c not in (1, 3, 4):
        raise BundleError(
            f"{what}: wrong input shape {list(arr.shape)}: an HWC image needs 1, 3 or 4 channels "
            f"(this model takes {spec.channels}x{spec.height}x{spec.width} CxHxW)"
        )
    x = _to_float01(arr, what)
    if c == 4:
        x = x[:, :, :3]
        c = 3
    if c != spec.channels:
        if spec.channels == 1:  # ITU-R 601-2 luma, as Pillow's convert("L")
            x = (x[:, :, :1] * 0.299 + x[:, :, 1:2] * 0.587 + x[:, :, 2:3] * 0.114).astype(np.float32)
        elif spec.channels == 3 and c == 1:
            x = np.repeat(x, 3, axis=2)
        else:
            raise BundleError(f"{what}: wrong input shape {list(arr.shape)}: cannot make {spec.channels} channels from {c}")
    if x.shape[:2] != (spec.height, spec.width):
        from PIL import Image  # resizing uses Pillow's bilinear filter and the manifest's policy, as for files

        height, width = x.shape[:2]
        box = crop_box(width, height, spec.width, spec.height) if spec.resize == RESIZE_CENTER_CROP else None
        planes = [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(x[:, :, i], dtype=np.float32)).resize(
                    (spec.width, spec.height), Image.Resampling.BILINEAR, box=box
                )
            )
            for i in range(x.shape[2])
        ]
        x = np.clip(np.stack(planes, axis=2), 0.0, 1.0).astype(np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


class ImageClassifier(BundleModel):
    """``classify(images, top_k=5)`` over an image-classification bundle."""

    task = schema.TASK_IMAGE_CLASSIFICATION
    roles = (schema.ROLE_MODEL,)
    inputs: ClassVar[Mapping[str, Field]] = {
        "images": Field(
            "images",
            "one image or a list: file paths, PIL images, HW/HWC arrays, or one NCHW array (uint8 0..255 or float 0..1)",
            required=True,
        ),
        "top_k": Field("integer", "labels to return per image, most probable first (default 5)"),
    }
    outputs: ClassVar[Mapping[str, Field]] = {
        "predictions": Field("array", "per image, a list of {label, index, probability}, most probable first")
    }

    def __init__(self, bundle: Bundle, factory: SessionFactory) -> None:
        super().__init__(bundle, factory)
        self._input = self.graph(schema.ROLE_MODEL)["inputs"][0]["name"]
        self.image_spec = ImageSpec(self.manifest, self.graph(schema.ROLE_MODEL)["inputs"][0].get("shape", []))

    def preprocess(self, images: Any) -> np.ndarray:
        """Images as the graph's input: float32 [N,C,H,W] in 0..1."""
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise BundleError("classify: no images given")
        batches = []
        for i, item in enumerate(items):
            what = f"image {i}" if len(items) > 1 else "image"
            if isinstance(item, (str, os.PathLike)):
                batches.append(read_image_file(item, self.image_spec)[None])
            elif _is_pil(item):
                batches.append(_pil_to_chw(item, self.image_spec)[None])
            elif isinstance(item, np.ndarray):
                batches.append(self._array(item, what))
            else:
                raise BundleError(f"{what}: expected a file path, a PIL image or a numpy array, got {type(item).__name__}")
        return np.ascontiguousarray(np.concatenate(batches, axis=0), dtype=np.float32)

    def _array(self, arr: np.ndarray, what: str) -> np.ndarray:
        if arr.ndim in (2, 3):
            return _hwc_to_chw(arr, self.image_spec, what)[None]
        if arr.ndim == 4:
            if tuple(arr.shape[1:]) != self.image_spec.chw:
                c, h, w = self.image_spec.chw
                raise BundleError(
                    f"{what}: wrong input shape {list(arr.shape)}: this model takes NCHW [N, {c}, {h}, {w}] "
                    "(or one HW/HWC image, or an image file, which are converted)"
                )
            return _to_float01(arr, what)
        raise BundleError(f"{what}: wrong input shape {list(arr.shape)}: expected HW, HWC or NCHW")

    def logits(self, images: Any) -> np.ndarray:
        x = self.preprocess(images)
        out = [self._run(schema.ROLE_MODEL, {self._input: x[i : i + _BATCH]})[0] for i in range(0, x.shape[0], _BATCH)]
        return np.concatenate(out, axis=0)

    def classify(self, images: Any, top_k: int = 5) -> list[list[Prediction]]:
        probs = softmax(self.logits(images), axis=-1)
        return [self._predictions(p, top_k) for p in probs]

    def inspect(self, images: Any) -> dict[str, np.ndarray]:
        """What the model computes inside for ``images`` (as ``classify`` takes them), by stage name.

        The names, in order, are those of the bundle's ``inspect`` graph (``inspect_layers``): for
        example ``conv1`` [N, C, H, W] activations, ..., and ``features`` [N, D], the pooled vector
        the head classifies. A bundle without an inspect graph is a BundleError.
        """
        x = self.preprocess(images)
        batches = [self._inspect({self._input: x[i : i + _BATCH]}) for i in range(0, x.shape[0], _BATCH)]
        return {name: np.concatenate([batch[name] for batch in batches], axis=0) for name in batches[0]}

    def saliency(
        self,
        image: Any,
        class_index: int,
        patch: int | None = None,
        stride: int | None = None,
        baseline: float | list[float] | None = None,
    ) -> np.ndarray:
        """Occlusion saliency of one image for one class: float32 [H, W] at the graph's size.

        A ``patch`` x ``patch`` square (default about a seventh of the shorter side) slides over the
        image by ``stride`` (default half a patch), and is filled with ``baseline`` (default the
        training data's mean pixel from the manifest, i.e. zero after the graph's normalisation).
        Each pixel's value is the mean drop in the class's probability over the squares covering
        it: positive where hiding the pixel lowers the class, negative where it helps. Only
        forward passes of the model graph (batched), so any classifier bundle has it.
        """
        x = self.preprocess(image)
        if x.shape[0] != 1:
            raise BundleError(f"saliency: give one image, got {x.shape[0]}")
        reference_probs = softmax(self.logits(x), axis=-1)[0]
        classes = reference_probs.shape[-1]
        if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or not 0 <= class_index < classes:
            raise BundleError(f"saliency: class_index {class_index!r} is not a class of this model (0..{classes - 1})")
        h, w = self.image_spec.height, self.image_spec.width
        patch = _positive(patch, "patch", default=max(1, round(min(h, w) / 7)))
        if patch > min(h, w):
            raise BundleError(f"saliency: patch {patch} is larger than the {h}x{w} image")
        stride = _positive(stride, "stride", default=max(1, patch // 2))
        fill = self._baseline(baseline)
        tops = _window_starts(h, patch, stride)
        lefts = _window_starts(w, patch, stride)
        windows = [(top, left) for top in tops for left in lefts]
        occluded = np.repeat(x, len(windows), axis=0)
        for i, (top, left) in enumerate(windows):
            occluded[i, :, top : top + patch, left : left + patch] = fill[:, None, None]
        reference = float(reference_probs[class_index])
        probs = softmax(self.logits(occluded), axis=-1)[:, class_index]
        total = np.zeros((h, w), dtype=np.float64)
        covered = np.zeros((h, w), dtype=np.float64)
        for (top, left), prob in zip(windows, probs, strict=True):
            total[top : top + patch, left : left + patch] += reference - float(prob)
            covered[top : top + patch, left : left + patch] += 1.0
        saliency: np.ndarray = (total / np.maximum(covered, 1.0)).astype(np.float32)
        return saliency

    def _baseline(self, baseline: float | list[float] | None) -> np.ndarray:
        """The fill value per channel, float32 [C] in 0..1."""
        c = self.image_spec.channels
        if baseline is None:
            pre = (self.manifest.get("preprocessing") or {}).get("image") or {}
            baseline = pre.get("mean") or 0.0
        values = np.asarray(baseline, dtype=np.float32).reshape(-1)
        if values.size not in (1, c) or not np.all(np.isfinite(values)):
            raise BundleError(f"saliency: baseline {baseline!r}: expected one number or one per channel ({c})")
        return np.ascontiguousarray(np.broadcast_to(values, (c,)))

    def describe_task(self) -> dict[str, Any]:
        spec = self.image_spec
        return {"image": {"channels": spec.channels, "height": spec.height, "width": spec.width, "color": spec.color}}

    def predict_checked(self, request: Mapping[str, Any]) -> dict[str, Any]:
        results = self.classify(request["images"], top_k=request.get("top_k", 5))
        return {"predictions": [[p._asdict() for p in preds] for preds in results]}


def _positive(value: Any, what: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BundleError(f"saliency: {what} {value!r}: expected a positive integer")
    return int(value)


def _window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Where squares of ``patch`` start along one side so that, by ``stride``, they cover it to the edge."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts
