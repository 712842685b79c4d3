"""Parity: the exported files compute what the torch model computes, at sizes other than the export's.

For each graph and each parity case the torch wrapper is the reference; onnxruntime (CPU) and
the saved TorchScript file are compared with it output by output. Logits must agree on top-1
for every row and lie within ``atol + rtol * |ref|``; images, states and memories within their
tolerances. Each run also checks that the actual output shapes are the declared symbolic ones
(a graph whose annotations are pinned to the export size is not truly dynamic).
Generation checks (whole greedy generations) live with their task exporters and use
:func:`first_divergence` from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from zoo_export.graphs import GraphSpec, TensorKind, TensorSpec, bind_dims, load_torchscript, resolve_dim


@dataclass(frozen=True)
class Tolerances:
    logits_atol: float = 1e-4
    logits_rtol: float = 1e-3
    image_atol: float = 1e-4
    state_atol: float = 1e-4
    state_rtol: float = 1e-3
    # Top-1 must agree everywhere unless the reference's top-2 margin is below this (fp16 only: 0 = strict).
    tie_margin: float = 0.0

    @classmethod
    def for_dtype(cls, dtype: str) -> Tolerances:
        if dtype == "fp16":
            # fp16 graphs are compared with the fp32 torch model: ~3 decimal digits survive.
            return cls(logits_atol=3e-2, logits_rtol=3e-2, image_atol=2e-2, state_atol=3e-2, state_rtol=3e-2, tie_margin=6e-2)
        return cls()

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def cpu_session(path: Path | str | bytes, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), options, providers=["CPUExecutionProvider"])


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def compare(spec: TensorSpec, ref: np.ndarray, got: np.ndarray, tol: Tolerances) -> dict[str, Any]:
    """One output against its reference; the dict goes into the report."""
    if ref.shape != got.shape:
        return {"output": spec.name, "passed": False, "error": f"shape {list(got.shape)} != reference {list(ref.shape)}"}
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    err = np.abs(ref64 - got64)
    result: dict[str, Any] = {"output": spec.name, "max_abs_err": float(err.max()) if err.size else 0.0}
    if not np.all(np.isfinite(got64)) and np.all(np.isfinite(ref64)):
        result.update(passed=False, error="non-finite values where the reference is finite")
        return result
    if spec.kind == TensorKind.IMAGE:
        result["passed"] = bool(np.all(err <= tol.image_atol))
        return result
    atol, rtol = (tol.logits_atol, tol.logits_rtol) if spec.kind == TensorKind.LOGITS else (tol.state_atol, tol.state_rtol)
    result["max_rel_err"] = float((err / (np.abs(ref64) + 1e-12)).max()) if err.size else 0.0
    within = bool(np.all(err <= atol + rtol * np.abs(ref64)))
    result["passed"] = within
    if spec.kind == TensorKind.LOGITS and ref.size:
        top_ref, top_got = ref64.argmax(-1), got64.argmax(-1)
        agree = top_ref == top_got
        result["top1_agree"] = bool(agree.all())
        if not agree.all():
            # A disagreement is forgiven only where the reference itself is a near-tie (fp16 graphs).
            sorted_ref = np.sort(ref64, axis=-1)
            margin = (sorted_ref[..., -1] - sorted_ref[..., -2])[~agree]
            result["top1_disagree"] = int((~agree).sum())
            result["min_margin_at_disagreement"] = float(margin.min())
            if float(margin.max()) > tol.tie_margin:
                result["passed"] = False
    return result


def check_shapes(spec: GraphSpec, inputs: Sequence[torch.Tensor], outputs: Sequence[np.ndarray]) -> str | None:
    """None when every output has its declared symbolic shape for these inputs, else what differs."""
    dims = bind_dims(spec.inputs, inputs)
    for out_spec, value in zip(spec.outputs, outputs, strict=False):
        want = [resolve_dim(d, dims) for d in out_spec.shape]
        if len(want) != value.ndim or any(w is not None and w != s for w, s in zip(want, value.shape, strict=False)):
            return f"{out_spec.name}: shape {list(value.shape)}, declared {list(out_spec.shape)} = {want}"
    return None


def check_graph(
    spec: GraphSpec,
    onnx_path: Path | None,
    ts_path: Path | None,
    tol: Tolerances,
    reference: Callable[..., Any] | None = None,
) -> list[dict[str, Any]]:
    """Run every parity case (and the export example) through torch, onnxruntime and TorchScript."""
    backends: list[tuple[str, Callable[[Sequence[torch.Tensor]], Sequence[np.ndarray]]]] = []
    if onnx_path is not None:
        session = cpu_session(onnx_path)
        names = [t.name for t in spec.inputs]

        def run_ort(inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
            return session.run(None, {n: to_numpy(x) for n, x in zip(names, inputs, strict=False)})

        backends.append(("onnxruntime", run_ort))
    if ts_path is not None:
        scripted = load_torchscript(ts_path)

        def run_ts(inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
            with torch.no_grad():
                return [to_numpy(t) for t in as_tuple(scripted(*inputs))]

        backends.append(("torchscript", run_ts))

    reference = reference or spec.module
    example_dims = spec.example_dims()
    checks: list[dict[str, Any]] = []
    for case in spec.cases:
        with torch.no_grad():
            ref = [to_numpy(t).astype(np.float32) for t in as_tuple(reference(*case.inputs))]
        for backend, run in backends:
            check: dict[str, Any] = {
                "graph": spec.role,
                "backend": backend,
                "shape": dict(case.dims),
                "export_shape": case.dims == example_dims,
            }
            try:
                got = list(run(case.inputs))
            except Exception as exc:
                check.update(passed=False, error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}")
                checks.append(check)
                continue
            outputs = [compare(s, r, g, tol) for s, r, g in zip(spec.outputs, ref, got, strict=False)]
            shape_error = check_shapes(spec, case.inputs, got)
            check["max_abs_err"] = max((o.get("max_abs_err", float("inf")) for o in outputs), default=0.0)
            logits = [o for o in outputs if "top1_agree" in o]
            if logits:
                check["top1_agree"] = all(o["top1_agree"] for o in logits)
            check["outputs"] = outputs
            if shape_error:
                check["shape_error"] = shape_error
            check["passed"] = all(o["passed"] for o in outputs) and shape_error is None
            checks.append(check)
    return checks


def first_divergence(a: np.ndarray, b: np.ndarray) -> int | None:
    """Index of the first position where two token sequences differ (None when equal)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return 0
    diff = np.argwhere(a != b)
    if not len(diff):
        return None
    return int(diff[:, -1].min())


def summarise(checks: Sequence[dict[str, Any]], tol: Tolerances) -> dict[str, Any]:
    return {
        "passed": bool(checks) and all(c["passed"] for c in checks),
        "tolerances": tol.as_dict(),
        "checks": list(checks),
        "max_abs_err": max((c["max_abs_err"] for c in checks if "max_abs_err" in c), default=None),
    }
