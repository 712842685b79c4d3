"""``zoo-serve export-triton``: the bundles' stateless graphs as a Triton model repository.

    REPO/<model>/config.pbtxt        backend onnxruntime, max_batch_size, dims, datatypes, dynamic batching
    REPO/<model>/1/model.onnx        the verified bytes of the bundle's graph, unchanged
    REPO/<model>/labels.txt          classifiers: one label per line (Triton's classification extension)

Model names are those zoo-serve gives the graphs under /v2 (``lenet5``, ``seq2seq-transformer.encoder``),
so a client written against zoo-serve runs against Triton or KServe unchanged. Step graphs are left
out: generation is a loop around them (state, cache resets, sampling) that Triton's ONNX Runtime
backend does not run. Every config.pbtxt is parsed against Triton's own ModelConfig protobuf, which
ships in ``tritonclient`` (``pip install tritonclient``), before the repository is published.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from zoo_runtime import find_bundles
from zoo_runtime.bundle import Bundle, open_bundle
from zoo_runtime.cli import HelpFormatter, checked_number, positive_int
from zoo_runtime.errors import BundleError
from zoo_serve.models import STATEFUL_ROLES, graph_model_name
from zoo_serve.settings import BatchPolicy
from zoo_serve.v2 import V2_DATATYPES, v2_dims

CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
VERSION = "1"
BATCH_AXIS = "batch"


class SchemaUnavailable(Exception):
    """tritonclient (which ships Triton's model_config.proto, compiled) is not installed."""


@dataclass(frozen=True)
class TritonModel:
    """One graph of one bundle as a Triton model."""

    name: str
    graph: dict[str, Any]
    onnx: bytes
    labels: list[str] | None  # for the classification output of a classifier's main graph

    @property
    def batched(self) -> bool:
        """Triton batches a model only when every input and output has the batch axis first."""
        tensors = [*self.graph["inputs"], *self.graph["outputs"]]
        return all(t["shape"] and t["shape"][0] == BATCH_AXIS for t in tensors)


def triton_models(bundle: Bundle) -> list[TritonModel]:
    """The graphs of ``bundle`` that Triton's ONNX Runtime backend can serve alone (all but step graphs)."""
    manifest = bundle.manifest
    models = []
    for role, graph in sorted(manifest["graphs"].items()):
        if role in STATEFUL_ROLES or role not in bundle.graph_bytes:
            continue
        labels = manifest.get("labels") if role == "model" and manifest["task"].endswith("classification") else None
        models.append(TritonModel(graph_model_name(manifest["model"], role), graph, bundle.graph_bytes[role], labels))
    return models


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor(spec: dict[str, Any], batched: bool, labels: bool) -> list[str]:
    dims = v2_dims(spec["shape"])[1 if batched else 0 :]
    lines = [
        "  {",
        f"    name: {_quote(spec['name'])}",
        f"    data_type: TYPE_{V2_DATATYPES.get(spec.get('dtype', 'float32'), 'FP32')}",
        f"    dims: [ {', '.join(map(str, dims or [1]))} ]",
    ]
    if not dims:  # a tensor of the batch axis alone: Triton wants one dim, reshaped away
        lines.append("    reshape: { shape: [ ] }")
    if labels:
        lines.append(f"    label_filename: {_quote(LABELS_FILE)}")
    return [*lines, "  }"]


def config_pbtxt(model: TritonModel, policy: BatchPolicy) -> str:
    """Triton's model configuration (protobuf text format) for one graph."""
    batched = model.batched
    lines = [f"name: {_quote(model.name)}", 'backend: "onnxruntime"', f"max_batch_size: {policy.max_batch if batched else 0}"]
    for key, specs in (("input", model.graph["inputs"]), ("output", model.graph["outputs"])):
        entries = [_tensor(spec, batched, key == "output" and bool(model.labels)) for spec in specs]
        lines.append(f"{key} [")
        for i, entry in enumerate(entries):
            lines.extend([*entry[:-1], entry[-1] + ("," if i < len(entries) - 1 else "")])
        lines.append("]")
    if batched and policy.max_batch > 1:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {round(policy.window_s * 1e6)}", "}"]
    return "\n".join(lines) + "\n"


def model_config_schema() -> ModuleType:
    """Triton's compiled model_config.proto from tritonclient, loaded without tritonclient.grpc's own imports (grpcio)."""
    spec = importlib.util.find_spec("tritonclient")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder, "grpc", "model_config_pb2.py")
        if path.is_file():
            module_spec = importlib.util.spec_from_file_location("zoo_serve_triton_model_config_pb2", path)
            if module_spec is not None and module_spec.loader is not None:
                module = importlib.util.module_from_spec(module_spec)
                module_spec.loader.exec_module(module)
                return module
    raise SchemaUnavailable("Triton's model-config schema ships in tritonclient; pip install tritonclient to check configs")


def check_config(text: str, folder_name: str, schema: ModuleType) -> str | None:
    """None if ``text`` parses as Triton's ModelConfig and names its folder; else the problem in one line."""
    from google.protobuf import text_format

    config = schema.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        return f"does not parse as Triton's ModelConfig ({exc})"
    if config.name != folder_name:
        return f"names model {config.name!r}, but its folder is {folder_name!r}"
    if not config.input or not config.output:
        return "has no inputs or no outputs"
    return None


def write_repository(bundles: Sequence[Bundle], out: Path, policy: BatchPolicy, schema: ModuleType) -> list[str]:
    """Write the repository into a temporary sibling of ``out``, check every config, then rename it to ``out``.

    Returns the model names written; raises BundleError (nothing left on disk) when a config fails its check.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    names = []
    try:
        for bundle in bundles:
            for model in triton_models(bundle):
                folder = staging / model.name
                (folder / VERSION).mkdir(parents=True)
                (folder / VERSION / "model.onnx").write_bytes(model.onnx)
                text = config_pbtxt(model, policy)
                problem = check_config(text, model.name, schema)
                if problem:
                    raise BundleError(f"{out / model.name / CONFIG_FILE}: {problem}")
                (folder / CONFIG_FILE).write_text(text, encoding="utf-8")
                if model.labels:
                    (folder / LABELS_FILE).write_text("".join(f"{label}\n" for label in model.labels), encoding="utf-8")
                names.append(model.name)
        if out.exists():
            out.rmdir()  # only ever an empty folder (checked by the caller)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zoo-serve export-triton",
        description="Write a Triton model repository (also served by KServe) from bundles: each stateless ONNX graph "
        "with its config.pbtxt, checked against Triton's model-config schema (from tritonclient). Step graphs "
        "of text generators are left out: their generation loop runs in the client.",
        epilog="Exit codes: 0 written; 1 a bundle failed verification (left out) or a config failed its check; 2 bad usage.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a bundle, or a folder searched for bundles")
    p.add_argument("--out", type=Path, required=True, metavar="REPO", help="the repository folder to create (new or empty)")
    p.add_argument("--max-batch", type=positive_int, default=BatchPolicy().max_batch, help="max_batch_size of batchable graphs")
    p.add_argument(
        "--batch-window-ms",
        type=checked_number(float, lambda value: 0 <= value < 1e6, "0 or a positive number of milliseconds"),
        default=BatchPolicy().window_s * 1000,
        help="dynamic_batching's max_queue_delay",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for path in args.paths:
        if not path.exists():
            print(f"zoo-serve export-triton: error: {path}: no such bundle or folder", file=sys.stderr)
            return 2
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        print(f"zoo-serve export-triton: error: --out {args.out}: exists and is not an empty folder", file=sys.stderr)
        return 2
    try:
        schema = model_config_schema()
    except SchemaUnavailable as exc:
        print(f"zoo-serve export-triton: error: {exc}", file=sys.stderr)
        return 2
    bundles: list[Bundle] = []
    failed = False
    for root in args.paths:
        for path in find_bundles(root) if root.is_dir() else [root]:
            try:
                bundle = open_bundle(path)
            except BundleError as exc:
                print(f"zoo-serve export-triton: error: {exc}; left out", file=sys.stderr)
                failed = True
                continue
            name = bundle.manifest["model"]
            if any(b.manifest["model"] == name for b in bundles):
                print(
                    f"zoo-serve export-triton: error: {path}: a bundle named {name!r} is already in; left out",
                    file=sys.stderr,
                )
                failed = True
                continue
            bundles.append(bundle)
    if not bundles:
        print(f"zoo-serve export-triton: error: no usable bundle under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1 if failed else 2
    try:
        names = write_repository(bundles, args.out, BatchPolicy(args.max_batch, args.batch_window_ms / 1000), schema)
    except BundleError as exc:
        print(f"zoo-serve export-triton: error: {exc}; nothing written", file=sys.stderr)
        return 1
    print(f"zoo-serve export-triton: wrote {len(names)} models to {args.out}: {', '.join(names)}")
    return 1 if failed else 0
