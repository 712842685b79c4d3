"""The library's details view of one bundle, as HTML for a QTextBrowser. Pure: no Qt."""

from __future__ import annotations

from html import escape
from typing import Any

from zoo_gui.catalog import BundleInfo
from zoo_gui.formatting import (
    ERROR_HEX,
    PASSED_HEX,
    display_path,
    format_metric,
    format_size,
    metric_name,
    short_provider,
    task_title,
)
from zoo_runtime import schema

TRAINING_ROWS = {
    "preset": "Preset",
    "data": "Data",
    "parameters": "Parameters",
    "epochs": "Epochs",
    "weights_epoch": "Weights from epoch",
    "steps": "Steps",
}
MAX_CHECKS = 40  # parity checks listed; the rest are counted
MAX_LABELS = 20


def _row(name: str, value: str) -> str:
    """A table row: ``name`` is plain text, ``value`` already HTML."""
    return f"<tr><td style='color:#666;padding-right:14px'>{escape(name)}</td><td>{value}</td></tr>"


def _table(rows: list[str], attributes: str = "") -> str:
    return f"<table{attributes}>" + "".join(rows) + "</table>"


def details_html(info: BundleInfo) -> str:
    manifest = info.manifest or {}
    parts = [
        f"<h2 style='margin-bottom:2px'>{escape(info.name)}</h2>",
        f"<div style='color:#666'>{escape(task_title(info.task))} · {escape(display_path(info.path))}</div>",
    ]
    if info.problem:
        parts.append(f"<p style='color:{ERROR_HEX}'><b>Cannot be used:</b> {escape(info.problem)}</p>")
    parts.append(_table(_facts(info, manifest)))
    parts.append(_metrics(info.metrics))
    parts.append(_parity(manifest.get("parity") or {}))
    parts.append(_labels(manifest.get("labels")))
    parts.append(_vocabulary(manifest.get("vocab")))
    parts.append(_files(manifest.get("files") or {}))
    return "".join(parts)


def _facts(info: BundleInfo, manifest: dict[str, Any]) -> list[str]:
    rows = [_row("Size on disk", escape(format_size(info.size_bytes)))]
    if info.provider:
        rows.append(_row("Runs on", escape(short_provider(info.provider))))
    if info.provider_note:
        rows.append(_row("Provider note", escape(info.provider_note)))
    if info.signature:
        rows.append(_row("Signature", escape(info.signature)))
    training = manifest.get("training") or {}
    for key, label in TRAINING_ROWS.items():
        if training.get(key) is not None:
            value = training[key]
            rows.append(_row(label, escape(f"{value:,}" if isinstance(value, int) else str(value))))
    if manifest.get("created"):
        rows.append(_row("Created", escape(str(manifest["created"]))))
    versions = manifest.get("versions") or {}
    if versions:
        rows.append(_row("Versions", escape(", ".join(f"{k} {v}" for k, v in versions.items()))))
    return rows


def _metrics(metrics: dict[str, Any]) -> str:
    primary = metrics.get("primary")
    rows = []
    for name, value in metrics.items():
        if name == "primary":
            continue
        text = escape(format_metric(name, value))
        rows.append(_row(metric_name(name), f"<b>{text}</b> (primary)" if name == primary else text))
    return "<h3>Metrics</h3>" + _table(rows) if rows else ""


def _parity(parity: dict[str, Any]) -> str:
    if not parity:
        return ""
    verdict: dict[object, str] = {
        True: f"<span style='color:{PASSED_HEX}'>passed</span>",
        False: f"<span style='color:{ERROR_HEX}'>failed</span>",
    }
    parts = [f"<h3>Parity: {verdict.get(parity.get('passed'), 'unknown')}</h3>"]
    tolerances = parity.get("tolerances") or {}
    if tolerances:
        parts.append("<div>Tolerances: " + escape(", ".join(f"{k} {v}" for k, v in tolerances.items())) + "</div>")
    checks = parity.get("checks") or []
    if checks:
        rows = [_check_row(check) for check in checks[:MAX_CHECKS]]
        if len(checks) > MAX_CHECKS:
            rows.append(_row("…", escape(f"{len(checks) - MAX_CHECKS} more")))
        parts.append(_table(rows, " cellspacing='0' cellpadding='2'"))
    return "".join(parts)


def _check_row(check: dict[str, Any]) -> str:
    what = " ".join(str(check[k]) for k in ("graph", "backend", "check") if k in check)
    shape = check.get("shape")
    if shape:
        what += " " + ", ".join(f"{k}={v}" for k, v in shape.items())
    err = check.get("max_abs_err")
    detail = f"max err {err:.2g}" if isinstance(err, (int, float)) else ""
    if schema.PARITY_TOKENS in check:  # a generation check compares token sequences, not values
        detail = f"{check[schema.PARITY_TOKENS]} tokens" + (" identical" if check.get("identical") else "")
    mark = "✓" if check.get("passed") else "✗"
    return _row(f"{mark} {what}", escape(detail))


def _labels(labels: list[Any] | None) -> str:
    if not labels:
        return ""
    shown = ", ".join(map(str, labels[:MAX_LABELS])) + (" …" if len(labels) > MAX_LABELS else "")
    return f"<h3>Labels ({len(labels)})</h3><div>{escape(shown)}</div>"


def _vocabulary(vocab: Any) -> str:
    if not isinstance(vocab, dict) or vocab.get(schema.VOCAB_TOKENS) is None:
        return ""
    tokens = vocab[schema.VOCAB_TOKENS]
    char = vocab.get("kind") == schema.VOCAB_CHAR
    shown = "".join(repr(str(t))[1:-1] for t in tokens[:80]) if char else " ".join(map(str, tokens[:40]))
    kind = escape(str(vocab.get("kind", "")))
    return f"<h3>Vocabulary ({len(tokens)} {kind} tokens)</h3><div><code>{escape(shown)}</code></div>"


def _files(files: dict[str, Any]) -> str:
    if not files:
        return ""
    rows = []
    for name, meta in files.items():
        meta = meta or {}
        size = format_size(meta.get("bytes"))
        digest = str(meta.get("sha256", ""))[:16]
        rows.append(_row(name, escape(f"{size}   sha256 {digest}…" if digest else size)))
    return "<h3>Files</h3>" + _table(rows)
