"""How the app writes tasks, sizes, metrics, providers and paths for people. Pure: no Qt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo_runtime.contract import TASK_KINDS

ERROR_HEX = "#c0392b"
PASSED_HEX = "#2e8b57"

# Which metric best says how good a model is, best first; the first one present is shown.
KEY_METRICS = (
    "test_accuracy",
    "test_acc",
    "val_accuracy",
    "val_acc",
    "accuracy",
    "test_exact",
    "val_exact",
    "test_exact_match",
    "val_exact_match",
    "exact_match",
    "test_token_accuracy",
    "val_token_accuracy",
    "fid",
    "val_fd_pixels",
    "val_bpc",
    "val_loss",
    "test_loss",
    "loss",
)


def task_title(task: str | None) -> str:
    """The task kind's title (from the task contract); an unknown kind shows as itself."""
    kind = TASK_KINDS.get(task or "")
    return kind.title if kind else task or "unknown"


def format_size(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def format_metric(name: str, value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{value}"
    if any(word in name for word in ("acc", "exact", "f1")) and 0 <= value <= 1:
        return f"{100 * value:.1f} %"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def metric_name(name: str) -> str:
    """'test_accuracy' -> 'test accuracy'."""
    return name.replace("_", " ")


def key_metric(metrics: dict[str, Any] | None) -> tuple[str, str] | None:
    """(metric name, formatted value) of the most telling metric, or None."""
    if not metrics:
        return None
    numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    primary = metrics.get("primary")  # the trainer names the metric it selected the model by
    for name in (primary, *KEY_METRICS):
        if name in numeric:
            return name, format_metric(name, numeric[name])
    numeric.pop("best_val", None)  # a copy of the primary metric, without its name
    if numeric:
        name = sorted(numeric)[0]
        return name, format_metric(name, numeric[name])
    return None


def short_provider(provider: str | None) -> str:
    """'CUDAExecutionProvider' -> 'CUDA'; already short names pass through."""
    if not provider:
        return "—"
    name = str(provider).removesuffix("ExecutionProvider")
    return {"Tensorrt": "TensorRT", "Dml": "DirectML", "CoreML": "CoreML"}.get(name, name)


def display_path(path: Path | str) -> str:
    """A path as a person reads it: relative to the working folder when inside it, ``~/...`` under home."""
    path = Path(path)
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~")):
        try:
            rel = path.resolve().relative_to(base.resolve())
        except (ValueError, OSError):
            continue
        return str(Path(prefix) / rel) if prefix else (str(rel) if str(rel) != "." else ".")
    return str(path)
