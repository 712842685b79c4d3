"""One torch module -> one ONNX file (and its TorchScript twin), with the names and shapes we declare.

A task exporter describes each graph as a :class:`GraphSpec`: a wrapper module whose
``forward`` takes positional tensors, the declared inputs/outputs (names, dtypes, symbolic
shapes), an example to export at, and the inputs parity runs at. This module turns a spec into
files and knows nothing about tasks.

The ONNX exporter is the one torch recommends (``torch.onnx.export(..., dynamo=True)``). The
TorchScript-based exporter is used only when dynamo raises, and the reason is kept for the
report. After export the graph's inputs and outputs are rewritten to the declared symbolic
shapes and the intermediate ``value_info`` is dropped: dynamo annotates, for example, an
``nn.LSTM`` output's time axis with the example's length, which makes onnxruntime warn at every
other length (the graph computes right; only its annotation was static).
"""

from __future__ import annotations

import inspect
import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from pathlib import Path
from typing import Any

import onnx
import torch
import torch.nn as nn

Dim = int | str


class TensorKind(Enum):
    """How parity compares a graph's output with torch's."""

    LOGITS = auto()  # top-1 agreement, then tolerance
    IMAGE = auto()  # absolute tolerance on pixels
    STATE = auto()  # tolerance only
    MEMORY = auto()  # tolerance only
    TENSOR = auto()  # an input, or an output compared by tolerance only


ONNX_DTYPES = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16, "int64": onnx.TensorProto.INT64}
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the manifest describes it.

    ``kind`` says how parity compares an output (``TensorKind``); it is not written to the manifest.
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    kind: TensorKind = TensorKind.TENSOR

    def manifest(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class ParityCase:
    """Inputs for one parity run; ``dims`` names the symbolic sizes they bind (for the report)."""

    inputs: tuple[torch.Tensor, ...]
    dims: dict[str, int]


@dataclass
class GraphSpec:
    role: str  # manifest["graphs"] key: model | step | encoder | decoder
    module: nn.Module  # forward(*inputs) -> tensor or tuple of tensors, in `outputs` order
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    example: tuple[torch.Tensor, ...]  # what the graph is exported (and traced) at
    cases: list[ParityCase] = field(default_factory=list)  # parity inputs: other sizes than `example`
    torchscript: bool = True  # write <role>.ts beside <role>.onnx
    dim_max: dict[str, int] = field(default_factory=dict)  # upper bounds of symbolic dims (positions a model knows)

    @property
    def onnx_file(self) -> str:
        return f"{self.role}.onnx"

    @property
    def ts_file(self) -> str:
        return f"{self.role}.ts"

    def example_dims(self) -> dict[str, int]:
        return bind_dims(self.inputs, self.example)


@dataclass
class ExportNote:
    """How a graph was exported: which exporter, why a fallback, what warnings and what they mean."""

    exporter: str = "dynamo"
    fallback_reason: str | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)


class GraphExportError(Exception):
    """The graph could not be exported by either exporter (the message says why)."""


# ----------------------------------------------------------------------------------- warnings

# Warnings that export raises and what they mean; anything else is reported as unexplained.
KNOWN_WARNINGS: list[tuple[str, str]] = [
    (
        r"torch\.jit\.\w+` is deprecated|TorchScript.*deprecated|torch\.jit.*deprecated",
        "TorchScript is deprecated upstream in favour of torch.export; model.ts is still written because users "
        "ask for it (C++ libtorch, mobile). ONNX is the bundle's primary format.",
    ),
    (
        r"The axis name: .* will not be used, since it shares the same shape constraints",
        "Several inputs share one named dimension (e.g. 'batch'); the exporter keeps a single name for it. Informational.",
    ),
    (
        r"Converting a tensor to a Python|TracerWarning|trace might not generalize|Iterating over a tensor",
        "torch.jit.trace recorded a Python value as a constant; parity at sizes other than the traced one "
        "checks that the TorchScript file still computes right.",
    ),
    (
        r"Exporting a model while it is in training mode|model is in training mode",
        "A submodule reports training mode; the export wrapper runs in eval mode.",
    ),
    (
        r"_check_is_size will be removed",
        "Raised inside torch.export while it traces nn.LSTM/nn.GRU (torch's own decomposition, not model code); "
        "harmless for the exported graph.",
    ),
    (
        r"_flat_weights.* were assigned during export",
        "nn.LSTM/nn.GRU re-flatten their weights when called; torch.export notices the attribute write. The "
        "weights are the trained ones (parity proves it).",
    ),
    (
        r"legacy TorchScript-based ONNX export|The feature will be removed",
        "The older TorchScript-based ONNX exporter was used because dynamo could not export this graph "
        "(the reason is in the report).",
    ),
    (
        r"batch_size other than 1, with a variable length with LSTM",
        "Legacy exporter note on nn.LSTM; parity at several batch sizes and lengths checks the graph.",
    ),
]


def explain(message: str, category: str) -> dict[str, str]:
    for pattern, meaning in KNOWN_WARNINGS:
        if re.search(pattern, message) or re.search(pattern, category):
            return {"category": category, "message": message.splitlines()[0][:300], "explanation": meaning}
    return {"category": category, "message": message.splitlines()[0][:300], "explanation": ""}


def _collect(caught: Sequence[warnings.WarningMessage], into: list[dict[str, str]]) -> None:
    seen = {(w["category"], w["message"]) for w in into}
    for w in caught:
        item = explain(str(w.message), w.category.__name__)
        if (item["category"], item["message"]) not in seen:
            seen.add((item["category"], item["message"]))
            into.append(item)


# ------------------------------------------------------------------------------------ shapes


def bind_dims(specs: Sequence[TensorSpec], tensors: Sequence[Any]) -> dict[str, int]:
    """The values symbolic dims take for these inputs: {"batch": 3, "time": 7}."""
    dims: dict[str, int] = {}
    for spec, tensor in zip(specs, tensors, strict=True):
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str) and _is_name(dim):
                dims.setdefault(dim, int(tensor.shape[axis]))
    return dims


def resolve_dim(dim: Dim, dims: dict[str, int]) -> int | None:
    """An int, a bound name, or a sum such as ``"past + new"``; None when it cannot be resolved."""
    if isinstance(dim, int):
        return dim
    total = 0
    for part in dim.split("+"):
        part = part.strip()
        if part.isdigit():
            total += int(part)
        elif part in dims:
            total += dims[part]
        else:
            return None
    return total


def _is_name(dim: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", dim) is not None


def dynamic_shapes(spec: GraphSpec) -> tuple[Any, ...]:
    """torch.export dims for the spec's symbolic input axes; one Dim object per name.

    The structure follows ``forward``'s signature: inputs gathered by a ``*state`` parameter
    are given as one nested tuple, as torch.export requires.
    """
    dims: dict[str, Any] = {}
    out: list[dict[int, Any] | None] = []
    for tensor_spec in spec.inputs:
        axes = {}
        for axis, dim in enumerate(tensor_spec.shape):
            if isinstance(dim, str):
                if dim not in dims:
                    kwargs = {"max": spec.dim_max[dim]} if dim in spec.dim_max else {}
                    dims[dim] = torch.export.Dim(dim, **kwargs)
                axes[axis] = dims[dim]
        out.append(axes or None)
    params = list(inspect.signature(spec.module.forward).parameters.values())
    fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return (*out[: len(fixed)], tuple(out[len(fixed) :]))
    return tuple(out)


def _set_shape(value: onnx.ValueInfoProto, shape: Sequence[Dim]) -> None:
    tensor_type = value.type.tensor_type
    tensor_type.ClearField("shape")
    for dim in shape:
        d = tensor_type.shape.dim.add()
        if isinstance(dim, int):
            d.dim_value = dim
        else:
            d.dim_param = dim


def fix_io(model: onnx.ModelProto, spec: GraphSpec) -> onnx.ModelProto:
    """Make the graph's interface exactly the declared one: names, dtypes and symbolic shapes."""
    graph = model.graph
    real_inputs = [i for i in graph.input if i.name not in {init.name for init in graph.initializer}]
    if [i.name for i in real_inputs] != [t.name for t in spec.inputs]:
        raise GraphExportError(
            f"graph {spec.role!r}: exported inputs {[i.name for i in real_inputs]} differ from the declared "
            f"{[t.name for t in spec.inputs]} (an input the graph does not use is dropped by the exporter)"
        )
    if [o.name for o in graph.output] != [t.name for t in spec.outputs]:
        raise GraphExportError(
            f"graph {spec.role!r}: exported outputs {[o.name for o in graph.output]} differ from the declared "
            f"{[t.name for t in spec.outputs]}"
        )
    for value, declared in zip([*real_inputs, *graph.output], spec.inputs + spec.outputs, strict=True):
        elem = value.type.tensor_type.elem_type
        if elem != ONNX_DTYPES[declared.dtype]:
            raise GraphExportError(
                f"graph {spec.role!r}: {declared.name} is {onnx.TensorProto.DataType.Name(elem)} in the graph, "
                f"declared {declared.dtype}"
            )
        _set_shape(value, declared.shape)
    # Intermediate annotations are optional; the exporter's can pin a dynamic axis to the example's size.
    del graph.value_info[:]
    return model


# ------------------------------------------------------------------------------------ export


def export_onnx(spec: GraphSpec, path: Path, opset: int | None = None) -> ExportNote:
    """Export ``spec`` to ``path`` (single file), dynamo first; the interface is then fixed to the spec."""
    note = ExportNote()
    names_in = [t.name for t in spec.inputs]
    names_out = [t.name for t in spec.outputs]
    spec.module.eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            program = torch.onnx.export(
                spec.module,
                spec.example,
                dynamo=True,
                input_names=names_in,
                output_names=names_out,
                dynamic_shapes=dynamic_shapes(spec),
                opset_version=opset,
                external_data=False,
                verbose=False,
                optimize=True,
            )
            assert program is not None  # torch.onnx.export returns None only without dynamo
            model = program.model_proto
        except Exception as exc:
            note.exporter = "torchscript-exporter"
            note.fallback_reason = f"dynamo export failed: {type(exc).__name__}: {_first_line(exc)}"
            model = _export_legacy(spec, opset)
    _collect(caught, note.warnings)
    # torch.onnx keeps its own opset, with at most a warning, where its version converter cannot reach the asked one.
    written = _default_domain_opset(model)
    if opset is not None and written != opset:
        raise GraphExportError(
            f"graph {spec.role!r}: ONNX opset {opset} was asked for, but torch.onnx could only write this graph at "
            f"opset {written}; leave --opset out (opset {written}) or ask for another"
        )
    model = fix_io(model, spec)
    onnx.save_model(model, str(path), save_as_external_data=False)
    return note


def _export_legacy(spec: GraphSpec, opset: int | None) -> onnx.ModelProto:
    dynamic_axes = {
        t.name: {axis: dim for axis, dim in enumerate(t.shape) if isinstance(dim, str) and _is_name(dim)}
        for t in spec.inputs + spec.outputs
    }
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"{spec.role}.onnx"  # the documented target of torch.onnx.export is a path
        try:
            torch.onnx.export(
                spec.module,
                spec.example,
                target,
                dynamo=False,
                input_names=[t.name for t in spec.inputs],
                output_names=[t.name for t in spec.outputs],
                dynamic_axes={k: v for k, v in dynamic_axes.items() if v},
                opset_version=opset or 18,
            )
        except Exception as exc:
            raise GraphExportError(f"graph {spec.role!r}: neither exporter could export it ({_first_line(exc)})") from None
        return onnx.load_model(str(target))


def _default_domain_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def opset_of(path: Path) -> int:
    return _default_domain_opset(onnx.load(str(path), load_external_data=False))


def check_onnx(path: Path) -> None:
    """onnx.checker with full_check (strict shape inference) on the file as written."""
    onnx.checker.check_model(str(path), full_check=True)


def set_metadata(path: Path, props: dict[str, str], doc: str = "") -> None:
    model = onnx.load(str(path), load_external_data=False)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    if doc:
        model.doc_string = doc
    model.producer_name = "model-zoo zoo-export"
    onnx.save_model(model, str(path), save_as_external_data=False)


def export_torchscript(spec: GraphSpec, path: Path, extra_files: dict[str, str] | None = None) -> ExportNote:
    """torch.jit.trace the wrapper at the example and save it; parity checks the other sizes."""
    note = ExportNote(exporter="torch.jit.trace")
    spec.module.eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            traced = torch.jit.trace(spec.module, spec.example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files=extra_files or {})
    _collect(caught, note.warnings)
    return note


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice, explained above
        return torch.jit.load(str(path), map_location="cpu")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__
