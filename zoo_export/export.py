"""checkpoint -> bundle: the Python API behind ``zoo-export``.

``export_checkpoint`` loads and validates a checkpoint (an input problem raises
:class:`ExportInputError` before anything is written), asks the task exporter for its graphs,
writes ONNX and TorchScript files into a temp folder, checks them with ``onnx.checker``
(full_check) and parity, and publishes the bundle only when every check passed.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

from zoo_export import graphs as graph_io
from zoo_export.bundle import BundleWriter, now_utc
from zoo_export.graphs import GraphExportError, GraphSpec
from zoo_export.parity import Tolerances, check_graph, summarise
from zoo_export.tasks.base import BundleContext, ExportInputError, get_exporter
from zoo_runtime import schema, signing
from zoo_runtime.errors import BundleError
from zoo_runtime.rundir import RunDir

FORMATS = ("onnx", "torchscript")
DTYPES = ("fp32", "fp16")


@dataclass
class ExportResult:
    """What happened to one checkpoint. ``status``: ok | parity-failed | export-failed | input-error."""

    checkpoint: Path
    model: str | None = None
    task: str | None = None
    status: str = "ok"
    bundle: Path | None = None
    manifest: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    error: str | None = None
    exporters: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    quantized: dict[str, Any] | None = None
    seconds: float = 0.0
    traceback: str | None = None  # an unexpected failure's traceback (for the JSON report)

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "input-error": 2}.get(self.status, 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.checkpoint),
            "model": self.model,
            "task": self.task,
            "status": self.status,
            "bundle": str(self.bundle) if self.bundle else None,
            "error": self.error,
            "seconds": round(self.seconds, 2),
            "exporters": self.exporters,
            "warnings": self.warnings,
            "parity": self.parity,
            "quantized": self.quantized,
            "graphs": sorted((self.manifest or {}).get("graphs", {})),
            "traceback": self.traceback,
        }


@dataclass
class LoadedCheckpoint:
    path: Path
    payload: dict[str, Any]
    model: nn.Module


def load_for_export(checkpoint_path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """Read, rebuild and validate a checkpoint; every problem is an ExportInputError naming the file."""
    from zoo_train.checkpoint import CheckpointError, build_from_checkpoint, load_checkpoint

    path = Path(checkpoint_path)
    try:
        payload = load_checkpoint(path)
        model = build_from_checkpoint(payload, path)
    except CheckpointError as exc:
        raise ExportInputError(str(exc)) from None
    except (TypeError, ValueError) as exc:  # a config the builder refuses
        raise ExportInputError(f"{path}: cannot rebuild model {payload.get('model')!r}: {exc}") from None
    try:
        exporter = get_exporter(payload["task"])
    except ValueError as exc:
        raise ExportInputError(f"{path}: {exc}") from None
    exporter.validate(BundleContext(model, payload, path))
    return LoadedCheckpoint(path, payload, model)


def default_bundle_dir(checkpoint: Path) -> Path:
    """``<run>/export`` for ``<run>/checkpoints/best.pt``; else ``export`` beside the file."""
    return RunDir.of_checkpoint(checkpoint).export


# Kept in float32 inside fp16 graphs: onnxruntime has no fp16 LSTM/GRU kernels on CPU (1.32 crashed
# creating a session for an fp16 LSTM graph instead of refusing it).
FP32_ISLANDS = (nn.LSTM, nn.GRU, nn.RNN)


def _to_float(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float(v, dtype) for v in value)
    return value


class CastWrapper(nn.Module):
    """Runs a module in another float dtype with float32 at its interface (``--dtype fp16``)."""

    def __init__(self, module: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.module = module.to(dtype)
        self.dtype = dtype
        for sub in self.module.modules():
            if isinstance(sub, FP32_ISLANDS):
                sub.float()
                sub.register_forward_pre_hook(lambda m, args: _to_float(args, torch.float32))
                sub.register_forward_hook(lambda m, args, out: _to_float(out, dtype))

    def forward(self, *inputs: torch.Tensor) -> Any:
        cast = [x.to(self.dtype) if x.is_floating_point() else x for x in inputs]
        out = self.module(*cast)
        if isinstance(out, (tuple, list)):
            return tuple(o.float() if o.is_floating_point() else o for o in out)
        return out.float()


def _exported_spec(spec: GraphSpec, dtype: str) -> GraphSpec:
    if dtype == "fp32":
        return spec
    return dataclasses.replace(spec, module=CastWrapper(copy.deepcopy(spec.module), torch.float16).eval())


def versions(opset: int | None, exporter: str) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "opset": opset,
        "exporter": exporter,
        "python": platform.python_version(),
    }


def _training_block(payload: dict[str, Any], summary: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    return {
        "preset": payload.get("preset"),
        "data": summary.get("data") or (payload.get("meta") or {}).get("dataset"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": payload.get("config"),
        # The run may go on past its best epoch; the bundle holds the weights of that best one.
        "epochs": summary.get("epochs_run") or (payload.get("train_state") or {}).get("epoch"),
        "weights_epoch": (payload.get("train_state") or {}).get("epoch"),
    }


def _metrics(payload: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's validation metrics, overlaid with the run's final figures from summary.json.

    The summary's headline metric and its baseline (FID, bits per base, ...) come along by name, so the
    manifest's ``primary`` always names a value it holds, the one the quality table reports.
    """
    metrics = {k: v for k, v in (payload.get("metrics") or {}).items() if isinstance(v, (int, float))}
    headline = {summary.get("metric"), summary.get("baseline_metric")}
    for key, value in summary.items():
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (key.startswith("test_") or key in headline or key in ("macro_f1", "best_val", "perplexity", "bits_per_char"))
        ):
            metrics[key] = value
    if isinstance(summary.get("metric"), str):
        metrics["primary"] = summary["metric"]
    return metrics


def _read_summary(checkpoint: Path) -> dict[str, Any]:
    return RunDir.of_checkpoint(checkpoint).read_summary() or {}


def export_checkpoint(
    checkpoint_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    formats: Iterable[str] = FORMATS,
    opset: int | None = None,
    check: bool = True,
    dtype: str = "fp32",
    quantize: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    tolerances: Tolerances | None = None,
    loaded: LoadedCheckpoint | None = None,
    sign_key: str | os.PathLike[str] | None = None,
) -> ExportResult:
    """Export one checkpoint to a bundle. Raises ExportInputError (nothing written) for bad input.

    Returns an :class:`ExportResult`; ``status`` is ``ok`` only when the bundle was published
    with every parity check passed (or checks were turned off with ``check=False``). ``sign_key``: an
    EC private key (PEM) to sign the published bundle with (OpenSSF Model Signing, ``model.sig``).
    """
    started = time.perf_counter()
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportInputError(f"formats must be a non-empty subset of {FORMATS}, got {formats}")
    if dtype not in DTYPES:
        raise ExportInputError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if quantize not in (None, "int8"):
        raise ExportInputError(f"quantize must be 'int8' or None, got {quantize!r}")
    if sign_key is not None:
        try:
            signing.check_private_key(Path(sign_key))  # before any work, so a bad key publishes nothing
        except BundleError as exc:
            raise ExportInputError(str(exc)) from None
    loaded = loaded or load_for_export(checkpoint_path)
    payload, model, path = loaded.payload, loaded.model, loaded.path
    ctx = BundleContext(model, payload, path)
    exporter = get_exporter(payload["task"])
    if quantize and "onnx" not in formats:
        raise ExportInputError("--quantize int8 needs the onnx format")
    quant_data = None
    if quantize and exporter.supports_int8 and dtype == "fp32":
        quant_data = exporter.calibration_and_test(ctx, Path(data_dir) if data_dir else None, calibration=256, test=2000)
    tol = tolerances or Tolerances.for_dtype(dtype)
    result = ExportResult(checkpoint=path, model=payload["model"], task=payload["task"])
    target = Path(out_dir) if out_dir is not None else default_bundle_dir(path)
    check_target(target)
    specs = exporter.graphs(ctx)  # may still refuse the checkpoint (ExportInputError): nothing is written yet
    writer = BundleWriter(target)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is faster than two contending ones, and reproducible
    try:
        _build(writer, ctx, exporter, specs, formats, opset, check, dtype, quantize, quant_data, tol, result, sign_key)
    except (GraphExportError, ExportInputError) as exc:
        writer.discard()
        result.status, result.error = "export-failed", str(exc)
    except BaseException:
        writer.discard()
        raise
    finally:
        torch.set_num_threads(threads)
    result.seconds = time.perf_counter() - started
    return result


def check_target(target: Path) -> None:
    """A bundle replaces only an earlier bundle (or an empty folder), never other files."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ExportInputError(f"{target}: exists and is not a directory; refusing to replace it with a bundle")
    if not any(target.iterdir()):
        return
    try:
        manifest = json.loads((target / schema.MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != schema.FORMAT:
        raise ExportInputError(f"{target}: exists and is not a Model Zoo bundle; refusing to replace it (choose another --out)")


def _build(
    writer: BundleWriter,
    ctx: BundleContext,
    exporter: Any,
    specs: list[GraphSpec],
    formats: Sequence[str],
    opset: int | None,
    check: bool,
    dtype: str,
    quantize: str | None,
    quant_data: Any,
    tol: Tolerances,
    result: ExportResult,
    sign_key: str | os.PathLike[str] | None = None,
) -> None:
    graphs: dict[str, dict[str, Any]] = {}
    files: dict[str, Path] = {}
    ts_files: dict[str, Path] = {}
    exporters_used = set()
    for spec in specs:
        exported = _exported_spec(spec, dtype)
        entry: dict[str, Any] = {
            "file": None,
            "torchscript": None,
            "inputs": [t.manifest() for t in spec.inputs],
            "outputs": [t.manifest() for t in spec.outputs],
        }
        if "onnx" in formats:
            note = graph_io.export_onnx(exported, writer.path(spec.onnx_file), opset)
            files[spec.role] = writer.path(spec.onnx_file)
            entry["file"] = spec.onnx_file
            entry["exporter"] = note.exporter
            exporters_used.add(note.exporter)
            result.exporters[spec.role] = {"onnx": note.exporter, "fallback_reason": note.fallback_reason}
            _merge(result.warnings, note.warnings)
        if "torchscript" in formats and spec.torchscript:
            note = graph_io.export_torchscript(exported, writer.path(spec.ts_file))
            ts_files[spec.role] = writer.path(spec.ts_file)
            entry["torchscript"] = spec.ts_file
            result.exporters.setdefault(spec.role, {})["torchscript"] = note.exporter
            _merge(result.warnings, note.warnings)
        graphs[spec.role] = entry
    if "onnx" not in formats:
        # A TorchScript-only bundle: the manifest lists the .ts files as the graphs' files.
        for _role, entry in graphs.items():
            entry["file"] = entry["torchscript"]

    fields = exporter.manifest_fields(ctx)
    summary = _read_summary(ctx.checkpoint)
    opset_used = graph_io.opset_of(next(iter(files.values()))) if files else None
    manifest: dict[str, Any] = {
        "format": schema.FORMAT,
        "schema_version": schema.SCHEMA_VERSION,
        "complete": False,
        "model": ctx.name,
        "task": ctx.payload["task"],
        "created": now_utc(),
        "versions": versions(opset_used, "dynamo" if exporters_used <= {"dynamo"} else "+".join(sorted(exporters_used))),
        "dtype": dtype,
        "files": {},
        "graphs": graphs,
        "labels": fields.get("labels"),
        "vocab": fields.get("vocab"),
        # Optional blocks, written only where the task has them (docs/BUNDLE.md).
        **{key: fields[key] for key in ("target_vocab", "examples") if fields.get(key) is not None},
        "preprocessing": fields.get("preprocessing") or {},
        "generation": fields.get("generation"),
        "sampling": fields.get("sampling"),
        "metrics": _metrics(ctx.payload, summary),
        "training": _training_block(ctx.payload, summary, ctx.model),
        "parity": None,
        "quantized": None,
        "exporters": result.exporters,
        "export_warnings": result.warnings,
        "checkpoint": {"path": str(ctx.checkpoint), "format": ctx.payload.get("format"), "version": ctx.payload.get("version")},
    }
    writer.write_metadata(manifest)
    for _role, file in files.items():
        graph_io.check_onnx(file)

    if check:
        checks: list[dict[str, Any]] = []
        for spec in specs:
            checks += check_graph(
                _exported_spec(spec, dtype), files.get(spec.role), ts_files.get(spec.role), tol, reference=spec.module
            )
        if files:
            by_role = {s.role: s for s in specs}
            checks += exporter.generation_checks(ctx, by_role, files, tol)
        parity = summarise(checks, tol)
        parity["export_shapes"] = {spec.role: spec.example_dims() for spec in specs}
    else:
        parity = {"passed": None, "skipped": True, "tolerances": tol.as_dict(), "checks": []}
    result.parity = parity
    manifest["parity"] = parity

    if quantize and parity["passed"] is not False:
        from zoo_export.quantize import quantize_int8

        if quant_data is None:
            why = "covers image classifiers only" if not exporter.supports_int8 else "starts from fp32 graphs (not --dtype fp16)"
            result.quantized = {"skipped": f"int8 quantization {why}"}
        else:
            result.quantized = quantize_int8(files["model"], writer.path(schema.INT8_FILE), ctx, quant_data)
            manifest["quantized"] = result.quantized
            writer.write_metadata(manifest)
            graph_io.check_onnx(writer.path(schema.INT8_FILE))

    if parity["passed"] is False:
        result.bundle, result.manifest = writer.fail(manifest)
        result.status = "parity-failed"
        failed = [c for c in parity["checks"] if not c["passed"]]
        result.error = f"{len(failed)} of {len(parity['checks'])} parity checks failed; first: {_describe(failed[0])}"
    else:
        result.bundle, result.manifest = writer.publish(manifest, Path(sign_key) if sign_key is not None else None)


def _describe(check: dict[str, Any]) -> str:
    where = ", ".join(f"{k}={v}" for k, v in check.get("shape", {}).items())
    what = check.get("error") or check.get("shape_error") or check.get("detail")
    if not what:
        bad = [o for o in check.get("outputs", []) if not o.get("passed")]
        what = "; ".join(
            f"{o['output']} max_abs_err {o.get('max_abs_err', float('nan')):.3g}"
            + ("" if o.get("top1_agree", True) else ", top-1 differs")
            for o in bad
        )
    return f"{check.get('graph')} {check.get('backend') or check.get('check')} [{where}]: {what}"


def _merge(into: list[dict[str, str]], new: list[dict[str, str]]) -> None:
    seen = {(w["category"], w["message"]) for w in into}
    for w in new:
        if (w["category"], w["message"]) not in seen:
            seen.add((w["category"], w["message"]))
            into.append(w)
