"""zoo_runtime: run Model Zoo bundles with numpy and onnxruntime only (never torch).

    import zoo_runtime
    model = zoo_runtime.load("models_out/lenet5/export")   # verifies the manifest and every sha256
    model.classify("shoe.png", top_k=3)

``load`` returns one object per task kind (see ``zoo_runtime.tasks``); each also answers
``describe()`` and ``predict(request)``, so code that serves any bundle needs no task switch.
Every user-caused problem is a ``BundleError`` whose message names the file and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from zoo_runtime import publishing
from zoo_runtime.bundle import MAX_FILE_BYTES, find_bundles, open_bundle, read_manifest
from zoo_runtime.errors import BundleError, InputError
from zoo_runtime.providers import SessionFactory
from zoo_runtime.schema import FORMAT, SCHEMA_VERSION
from zoo_runtime.signing import SignatureStatus, check_signature
from zoo_runtime.tasks import (
    TASK_CLASSES,
    BundleModel,
    ImageClassifier,
    ImageGenerator,
    Prediction,
    SequenceClassifier,
    TextGenerator,
    Translator,
)


def load(
    path: str | os.PathLike[str],
    device: str = "auto",
    threads: int | None = None,
    trusted_keys: Iterable[str | os.PathLike[str]] | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> BundleModel:
    """Open a bundle directory (or a lone .onnx with Model Zoo metadata) and return its task object.

    ``device``: "auto" (CUDA when onnxruntime lists it and the session really gets it, else
    CPU), "cpu", or "cuda" (asked for, falling back to CPU). ``provider_note`` says why a
    fallback happened: CUDA was listed (or asked for) but not obtained; it is None when the
    model runs where asked, including "auto" on a build without CUDA. ``threads``:
    onnxruntime's intra-op thread count (None: its default). ``trusted_keys``: PEM public keys;
    when given, the bundle must carry an OpenSSF Model Signing signature (``model.sig``) made by one
    of them over exactly its verified files (needs ``model-zoo[signing]``). The result's
    ``signature`` says whether the bundle is signed, and by which key when verified.
    ``max_file_bytes``: the largest file a bundle may hold (default 2 GiB, the most a single-file ONNX
    graph can be); a larger file is refused before it is read. What is verified before any graph
    reaches onnxruntime is listed in docs/SECURITY.md.
    """
    factory = SessionFactory(device, threads)  # checks the options before any file is read
    if not os.path.exists(path):
        publishing.settle(path)  # an export killed between its two renames: its bundle is put in place
    bundle = open_bundle(path, max_file_bytes=max_file_bytes)
    signature = check_signature(bundle, trusted_keys)  # before any session reads a graph
    model = TASK_CLASSES[bundle.manifest["task"]](bundle, factory)
    model.signature = signature
    return model


__all__ = [
    "FORMAT",
    "MAX_FILE_BYTES",
    "SCHEMA_VERSION",
    "TASK_CLASSES",
    "BundleError",
    "BundleModel",
    "ImageClassifier",
    "ImageGenerator",
    "InputError",
    "Prediction",
    "SequenceClassifier",
    "SignatureStatus",
    "TextGenerator",
    "Translator",
    "find_bundles",
    "load",
    "read_manifest",
]
