"""``--quantize int8``: onnxruntime static quantization (QDQ, per-channel) of a classifier graph.

Calibration images come from the training split; the report gives what int8 costs and buys
on this machine: test accuracy before and after, how often the two agree on top-1, the file
size ratio and the CPU latency ratio (onnxruntime, one thread, batch 1 and 32).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo_export.parity import cpu_session


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an array of images."""

    def __init__(self, name: str, images: np.ndarray, batch: int = 32):
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [{name: images[i : i + batch]} for i in range(0, len(images), batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # part of the protocol in newer onnxruntime versions; one pass is enough here
        pass


def _predict(session: Any, name: str, images: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([session.run(None, {name: images[i : i + batch]})[0].argmax(-1) for i in range(0, len(images), batch)])


def latency_ms(sessions: list[Any], name: str, sample: np.ndarray, repeats: int = 50) -> list[float]:
    """Median wall time of one run of each session, after warm-up; runs alternate between the
    sessions so that load from other processes falls on both alike."""
    for session in sessions:
        for _ in range(5):
            session.run(None, {name: sample})
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeats):
        for session, acc in zip(sessions, times, strict=True):
            t = time.perf_counter()
            session.run(None, {name: sample})
            acc.append(time.perf_counter() - t)
    return [statistics.median(acc) * 1000.0 for acc in times]


def quantize_int8(
    fp32_path: Path, out_path: Path, ctx: Any, data: tuple[np.ndarray, np.ndarray, np.ndarray, str]
) -> dict[str, Any]:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration, test_x, test_y, dataset = data
    name = "image"
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # the quantizer logs its progress at INFO/WARNING through the root logger
        try:
            pre = Path(tmp) / "pre.onnx"
            try:
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
                pre_note = "quant_pre_process with symbolic shape inference"
            except Exception as exc:
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
                pre_note = (
                    f"quant_pre_process without symbolic shape inference (it failed: {type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''})"
                )
            quantize_static(
                str(pre),
                str(out_path),
                _Reader(name, calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        finally:
            root.setLevel(level)
    fp32, int8 = cpu_session(fp32_path), cpu_session(out_path)
    pred32, pred8 = _predict(fp32, name, test_x), _predict(int8, name, test_x)
    acc32, acc8 = float((pred32 == test_y).mean()), float((pred8 == test_y).mean())
    lat = {}
    for batch in (1, 32):
        sample = test_x[:batch] if len(test_x) >= batch else np.repeat(test_x[:1], batch, axis=0)
        lat[batch] = tuple(latency_ms([fp32, int8], name, sample, repeats=50 if batch == 1 else 20))
    size32, size8 = fp32_path.stat().st_size, out_path.stat().st_size
    return {
        "file": out_path.name,
        "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations",
        "calibration": {"dataset": dataset, "split": "train", "images": len(calibration)},
        "pre_process": pre_note,
        "test_images": len(test_x),
        "accuracy_fp32": acc32,
        "accuracy_int8": acc8,
        "accuracy_delta": acc8 - acc32,
        "top1_agreement": float((pred32 == pred8).mean()),
        "bytes_fp32": size32,
        "bytes_int8": size8,
        "size_ratio": size8 / size32,
        "latency_ms": {f"batch{b}": {"fp32": round(a, 4), "int8": round(q, 4)} for b, (a, q) in lat.items()},
        "latency_ratio": {f"batch{b}": q / a for b, (a, q) in lat.items()},
        "ratios_note": "size_ratio and latency_ratio are int8 / fp32 (below 1: int8 smaller / faster); onnxruntime CPU, 1 thread",
    }
