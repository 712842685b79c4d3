"""The model library: which bundles exist, what they are, and the loaded models.

- :func:`scan` finds bundles under folders (worker thread) and reads their manifests.
- :class:`ModelStore` loads bundles with ``zoo_runtime.load`` on worker threads and
  caches them; the library preloads each listed bundle so it can show the provider
  it really runs on (and a bundle that fails verification shows as an error at once).
- :class:`LibraryPage` is the table (name, task, key metric, size, parity, provider),
  a task filter, and a details view with the manifest.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QSettings,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFontDatabase, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyle,
    QTableView,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

import zoo_runtime
from zoo_gui.widgets import ERROR_COLOR, heading, hint
from zoo_gui.workers import Job, Runner, describe_error, emit

FOLDERS_KEY = "library/folders"

TASK_TITLES = {
    "image-classification": "Image classification",
    "text-generation": "Text generation",
    "image-generation": "Image generation",
    "sequence-classification": "Sequence classification",
    "seq2seq": "Sequence to sequence",
}

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
    return TASK_TITLES.get(task or "", task or "unknown")


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


def disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += (Path(dirpath) / f).stat().st_size
            except OSError:
                pass
    return total


@dataclass
class BundleInfo:
    """One row of the library."""

    path: Path
    manifest: dict[str, Any] | None = None
    error: str | None = None  # the manifest could not be read
    size_bytes: int | None = None
    root: Path | None = None
    # filled in when the bundle has been loaded
    provider: str | None = None
    provider_note: str | None = None
    signature: str | None = None  # the signed/unsigned badge (zoo_runtime.SignatureStatus.badge)
    load_error: str | None = None
    loading: bool = False

    @property
    def key(self) -> str:
        return bundle_key(self.path)

    @property
    def name(self) -> str:
        if self.manifest and self.manifest.get("model"):
            return str(self.manifest["model"])
        return self.path.parent.name if self.path.name == "export" else self.path.name

    @property
    def run_name(self) -> str:
        return self.path.parent.name if self.path.name == "export" else self.path.name

    @property
    def task(self) -> str | None:
        return self.manifest.get("task") if self.manifest else None

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.manifest.get("metrics") or {}) if self.manifest else {}

    @property
    def parity(self) -> bool | None:
        parity = (self.manifest or {}).get("parity") or {}
        passed = parity.get("passed")
        return None if passed is None else bool(passed)

    @property
    def usable(self) -> bool:
        return self.manifest is not None and self.error is None

    @property
    def problem(self) -> str | None:
        return self.error or self.load_error

    @property
    def location(self) -> str:
        if self.root is not None:
            try:
                rel = self.path.relative_to(self.root)
                return str(Path(self.root.name) / rel) if str(rel) != "." else self.root.name
            except ValueError:
                pass
        return str(self.path)

    def label(self) -> str:
        """How pages name the bundle in their model pickers."""
        if self.run_name and self.run_name != self.name:
            return f"{self.name}  ({self.run_name})"
        return self.name


def bundle_key(path: Path | str) -> str:
    return str(Path(path).expanduser().resolve())


def _is_bundle(path: Path) -> bool:
    return (path.is_dir() and (path / "manifest.json").is_file()) or (path.is_file() and path.suffix == ".onnx")


def bundle_paths(root: Path) -> list[Path]:
    """The bundles a path names: itself when it is one, else every bundle under it."""
    if _is_bundle(root):
        return [root]
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    return [Path(p) for p in zoo_runtime.find_bundles(root)]


def read_bundle(path: Path, root: Path | None = None) -> BundleInfo:
    info = BundleInfo(path=path, root=root)
    try:
        info.manifest = dict(zoo_runtime.read_manifest(path))
    except Exception as exc:  # a broken bundle is a row with its reason, not a failed scan
        info.error = describe_error(exc)
        info.manifest = _unverified_manifest(path)  # for its name and task in the listing only
    try:
        info.size_bytes = disk_size(path)
    except OSError:
        info.size_bytes = None
    return info


def _unverified_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def scan(roots: Iterable[Path]) -> tuple[list[BundleInfo], list[str]]:
    """Every bundle under ``roots`` (deduplicated), and one message per root that could not be read."""
    seen: set[str] = set()
    infos: list[BundleInfo] = []
    problems: list[str] = []
    for root in roots:
        root = Path(root).expanduser()
        try:
            paths = bundle_paths(root)
        except Exception as exc:
            problems.append(describe_error(exc))
            continue
        base = root if root.is_dir() and not _is_bundle(root) else root.parent
        for path in paths:
            key = bundle_key(path)
            if key in seen:
                continue
            seen.add(key)
            infos.append(read_bundle(Path(path), base))
    infos.sort(key=lambda i: (i.task or "~", i.name, i.location))
    return infos, problems


# --------------------------------------------------------------------------- loading


class ModelStore(QObject):
    """Loads bundles on worker threads and keeps the loaded models.

    ``request(path)`` returns the model when it is already loaded, else starts a load
    and returns None; ``loaded``/``failed`` follow. ``preload(paths)`` loads one
    bundle after another in the background."""

    loaded = Signal(str, object)  # key, model
    failed = Signal(str, str)  # key, message
    started = Signal(str)  # key
    reset = Signal()  # device changed: every model must be requested again

    def __init__(
        self,
        runner: Runner,
        device: str = "auto",
        threads: int | None = None,
        parent: QObject | None = None,
        trusted_keys: Sequence[Path] = (),
    ):
        super().__init__(parent)
        self.runner = runner
        self.device = device
        self.threads = threads
        self.trusted_keys = list(trusted_keys)  # when set, only bundles signed by one of these keys load
        self._models: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._pending: dict[str, Job] = {}
        self._queue: list[str] = []

    def get(self, path: Path | str) -> Any | None:
        return self._models.get(bundle_key(path))

    def error(self, path: Path | str) -> str | None:
        return self._errors.get(bundle_key(path))

    def is_loading(self, path: Path | str) -> bool:
        return bundle_key(path) in self._pending

    def request(self, path: Path | str) -> Any | None:
        """The loaded model, or None while a load runs (a bundle that failed before is tried again)."""
        key = bundle_key(path)
        if key in self._models:
            return self._models[key]
        if key not in self._pending:
            self._start(key)
        return None

    def preload(self, paths: Iterable[Path | str]) -> None:
        for path in paths:
            key = bundle_key(path)
            if key not in self._models and key not in self._errors and key not in self._queue:
                self._queue.append(key)
        self._next_preload()

    def _next_preload(self) -> None:
        if any(job.name == "preload" for job in self._pending.values()):
            return
        while self._queue:
            key = self._queue.pop(0)
            if key not in self._models and key not in self._errors and key not in self._pending:
                self._start(key, name="preload")
                return

    def _start(self, key: str, name: str = "load") -> None:
        device, threads, keys = self.device, self.threads, self.trusted_keys

        def load(job: Job) -> Any:
            return zoo_runtime.load(key, device=device, threads=threads, trusted_keys=keys)

        def settle() -> bool:
            """True when this job is the load now pending for the key, which it then stops being.

            A load that forget() or set_device() let go of is stale and must not report. The entry
            goes as the outcome comes in, not at `finished`, which Qt may deliver later, after a
            request that would have waited on this job."""
            if self._pending.get(key) is not job:
                return False
            del self._pending[key]
            return True

        def done_ok(model: Any) -> None:
            if settle():
                self._models[key] = model
                self._errors.pop(key, None)
                emit(self.loaded, key, model)

        def done_error(message: str) -> None:
            if settle():
                self._errors[key] = message
                emit(self.failed, key, message)

        def finished() -> None:
            settle()  # a job ended by a BaseException reports neither outcome; it must not stay pending
            self._next_preload()

        job = self.runner.submit(load, name=name, result=done_ok, error=done_error, finished=finished)
        self._pending[key] = job
        emit(self.started, key)

    def forget(self, path: Path | str) -> None:
        """Drop what is known of a bundle (it changed on disk): the next request loads it again."""
        key = bundle_key(path)
        self._models.pop(key, None)
        self._errors.pop(key, None)
        self._pending.pop(key, None)

    def set_device(self, device: str) -> None:
        if device == self.device:
            return
        self.device = device
        self._models.clear()
        self._errors.clear()
        self._pending.clear()
        self._queue.clear()
        emit(self.reset)


# --------------------------------------------------------------------------- table


class LibraryModel(QAbstractTableModel):
    COLUMNS = ("Name", "Task", "Key metric", "Size", "Parity", "Provider", "Location")
    NAME, TASK, METRIC, SIZE, PARITY, PROVIDER, LOCATION = range(len(COLUMNS))
    InfoRole = Qt.ItemDataRole.UserRole + 1
    TaskRole = Qt.ItemDataRole.UserRole + 2
    SortRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[BundleInfo] = []

    def set_bundles(self, infos: list[BundleInfo]) -> None:
        self.beginResetModel()
        self._rows = list(infos)
        self.endResetModel()

    def bundles(self) -> list[BundleInfo]:
        return list(self._rows)

    def info(self, row: int) -> BundleInfo:
        return self._rows[row]

    def row_of(self, key: str) -> int:
        for i, info in enumerate(self._rows):
            if info.key == key:
                return i
        return -1

    def refresh(self, key: str) -> None:
        row = self.row_of(key)
        if row >= 0:
            emit(self.dataChanged, self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        info = self._rows[index.row()]
        col = index.column()
        if role == self.InfoRole:
            return info
        if role == self.TaskRole:
            return info.task or ""
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(info, col)
        if role == self.SortRole:
            if col == self.SIZE:
                return info.size_bytes or 0
            if col == self.METRIC:
                metric = key_metric(info.metrics)
                return float(info.metrics[metric[0]]) if metric else float("-inf")
            return self._display(info, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            if info.problem:
                return info.problem
            if col == self.PROVIDER and info.provider_note:
                return info.provider_note
            if col == self.METRIC:
                return "\n".join(f"{k}: {format_metric(k, v)}" for k, v in info.metrics.items()) or None
            return str(info.path)
        if role == Qt.ItemDataRole.ForegroundRole:
            if info.problem and col in (self.NAME, self.PROVIDER):
                return ERROR_COLOR
            if col == self.PARITY and info.parity is False:
                return ERROR_COLOR
            if col == self.PARITY and info.parity:
                return QColor("#2e8b57")
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.SIZE, self.METRIC):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, info: BundleInfo, col: int) -> str:
        if col == self.NAME:
            return info.label()
        if col == self.TASK:
            return task_title(info.task) if info.manifest else "—"
        if col == self.METRIC:
            metric = key_metric(info.metrics)
            return f"{metric_name(metric[0])}  {metric[1]}" if metric else "—"
        if col == self.SIZE:
            return format_size(info.size_bytes)
        if col == self.PARITY:
            return {True: "✓ passed", False: "✗ failed", None: "—"}[info.parity]
        if col == self.PROVIDER:
            if info.error:
                return "⚠ unreadable"
            if info.load_error:
                return "⚠ cannot load"
            if info.loading:
                return "loading…"
            if info.provider:
                note = " (fallback)" if info.provider_note else ""
                return short_provider(info.provider) + note
            return "not loaded"
        if col == self.LOCATION:
            return info.location
        return ""


class TaskFilter(QSortFilterProxyModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.task: str | None = None
        self.text = ""
        self.setSortRole(LibraryModel.SortRole)

    def set_task(self, task: str | None) -> None:
        self._refilter(lambda: setattr(self, "task", task or None))

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "text", text.strip().lower()))

    def _refilter(self, change) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter() is deprecated there
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:
        model = self.sourceModel()
        info: BundleInfo = model.info(row)
        if self.task and info.task != self.task:
            return False
        if self.text:
            haystack = f"{info.name} {info.run_name} {info.location} {info.task or ''}".lower()
            return self.text in haystack
        return True


# --------------------------------------------------------------------------- details


TRAINING_ROWS = {
    "preset": "Preset",
    "data": "Data",
    "parameters": "Parameters",
    "epochs": "Epochs",
    "weights_epoch": "Weights from epoch",
    "steps": "Steps",
}


def _row(name: str, value: str) -> str:
    return f"<tr><td style='color:#666;padding-right:14px'>{html.escape(name)}</td><td>{value}</td></tr>"


def details_html(info: BundleInfo) -> str:
    esc = html.escape
    parts = [f"<h2 style='margin-bottom:2px'>{esc(info.name)}</h2>"]
    parts.append(f"<div style='color:#666'>{esc(task_title(info.task))} · {esc(display_path(info.path))}</div>")
    if info.problem:
        parts.append(f"<p style='color:{ERROR_COLOR.name()}'><b>Cannot be used:</b> {esc(info.problem)}</p>")
    m = info.manifest or {}
    rows = [_row("Size on disk", esc(format_size(info.size_bytes)))]
    if info.provider:
        rows.append(_row("Runs on", esc(short_provider(info.provider))))
    if info.provider_note:
        rows.append(_row("Provider note", esc(info.provider_note)))
    if info.signature:
        rows.append(_row("Signature", esc(info.signature)))
    training = m.get("training") or {}
    for key, label in TRAINING_ROWS.items():
        if training.get(key) is not None:
            value = training[key]
            rows.append(_row(label, esc(f"{value:,}" if isinstance(value, int) else str(value))))
    if m.get("created"):
        rows.append(_row("Created", esc(str(m["created"]))))
    versions = m.get("versions") or {}
    if versions:
        rows.append(_row("Versions", esc(", ".join(f"{k} {v}" for k, v in versions.items()))))
    parts.append("<table>" + "".join(rows) + "</table>")

    metrics = {k: v for k, v in info.metrics.items() if k != "primary"}
    if metrics:
        primary = info.metrics.get("primary")
        parts.append("<h3>Metrics</h3><table>")
        for k, v in metrics.items():
            value = esc(format_metric(k, v))
            parts.append(_row(metric_name(k), f"<b>{value}</b> (primary)" if k == primary else value))
        parts.append("</table>")

    parity = m.get("parity") or {}
    if parity:
        verdict = {
            True: "<span style='color:#2e8b57'>passed</span>",
            False: f"<span style='color:{ERROR_COLOR.name()}'>failed</span>",
        }
        parts.append(f"<h3>Parity: {verdict.get(parity.get('passed'), 'unknown')}</h3>")
        tol = parity.get("tolerances") or {}
        if tol:
            parts.append("<div>Tolerances: " + esc(", ".join(f"{k} {v}" for k, v in tol.items())) + "</div>")
        checks = parity.get("checks") or []
        if checks:
            parts.append("<table cellspacing='0' cellpadding='2'>")
            for check in checks[:40]:
                what = " ".join(str(check[k]) for k in ("graph", "backend", "check") if k in check)
                shape = check.get("shape")
                if shape:
                    what += " " + ", ".join(f"{k}={v}" for k, v in shape.items())
                err = check.get("max_abs_err")
                detail = f"max err {err:.2g}" if isinstance(err, (int, float)) else ""
                if "tokens" in check:
                    detail = f"{check['tokens']} tokens" + (" identical" if check.get("identical") else "")
                mark = "✓" if check.get("passed") else "✗"
                parts.append(_row(f"{mark} {what}", esc(detail)))
            if len(checks) > 40:
                parts.append(_row("…", esc(f"{len(checks) - 40} more")))
            parts.append("</table>")

    labels = m.get("labels")
    if labels:
        shown = ", ".join(map(str, labels[:20])) + (" …" if len(labels) > 20 else "")
        parts.append(f"<h3>Labels ({len(labels)})</h3><div>{esc(shown)}</div>")
    vocab = m.get("vocab")
    if isinstance(vocab, dict) and vocab.get("tokens") is not None:
        tokens = vocab["tokens"]
        shown = (
            "".join(repr(str(t))[1:-1] for t in tokens[:80]) if vocab.get("kind") == "char" else " ".join(map(str, tokens[:40]))
        )
        parts.append(
            f"<h3>Vocabulary ({len(tokens)} {esc(str(vocab.get('kind', '')))} tokens)</h3><div><code>{esc(shown)}</code></div>"
        )

    files = m.get("files") or {}
    if files:
        parts.append("<h3>Files</h3><table>")
        for fname, meta in files.items():
            meta = meta or {}
            digest = str(meta.get("sha256", ""))[:16]
            parts.append(
                _row(
                    fname,
                    esc(f"{format_size(meta.get('bytes'))}   sha256 {digest}…" if digest else format_size(meta.get("bytes"))),
                )
            )
        parts.append("</table>")
    return "".join(parts)


# --------------------------------------------------------------------------- page


class LibraryPage(QWidget):
    """The table of bundles, a task filter, the details view, Open Folder… and Refresh."""

    title = "Library"
    icon = QStyle.StandardPixmap.SP_DirHomeIcon
    bundles_changed = Signal(list)  # list[BundleInfo]
    open_requested = Signal(str)  # bundle key
    scan_finished = Signal()

    def __init__(
        self, runner: Runner, store: ModelStore, settings: QSettings, extra_paths: Iterable[Path] = (), report_error=None
    ):
        super().__init__()
        self.runner = runner
        self.store = store
        self.settings = settings
        self.extra_paths = [Path(p).expanduser() for p in extra_paths]
        self.report_error = report_error or (lambda title, text: None)
        self.scanning = False
        self._rescan = False

        self.model = LibraryModel(self)
        self.proxy = TaskFilter(self)
        self.proxy.setSourceModel(self.model)

        # toolbar
        self.open_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon), "Open Folder…")
        self.open_button.setToolTip(
            f"Add a folder of bundles to the library ({QKeySequence('Ctrl+Shift+O').toString(QKeySequence.SequenceFormat.NativeText)})"
        )
        self.open_button.clicked.connect(self.choose_folder)
        self.refresh_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserReload), "Refresh")
        self.refresh_button.setToolTip("Look for bundles again (F5)")
        self.refresh_button.clicked.connect(self.refresh)
        self.task_combo = QComboBox()
        self.task_combo.addItem("All tasks", "")
        for task, title in TASK_TITLES.items():
            self.task_combo.addItem(title, task)
        self.task_combo.currentIndexChanged.connect(lambda _i: self.proxy.set_task(self.task_combo.currentData()))
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.set_text)
        self.open_model_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Use Model")
        self.open_model_button.setToolTip("Open the selected bundle in its page (Enter or double-click)")
        self.open_model_button.setEnabled(False)
        self.open_model_button.clicked.connect(self._open_selected)

        bar = QHBoxLayout()
        bar.addWidget(self.open_button)
        bar.addWidget(self.refresh_button)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Task:"))
        bar.addWidget(self.task_combo)
        bar.addWidget(self.search, 1)
        bar.addWidget(self.open_model_button)

        # table
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(LibraryModel.TASK, Qt.SortOrder.AscendingOrder)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(LibraryModel.LOCATION, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_details())
        self.table.activated.connect(lambda _i: self._open_selected())  # double-click or Enter

        self.empty = QLabel()
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setTextFormat(Qt.TextFormat.RichText)
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.empty)

        # details
        self.summary = QTextBrowser()
        self.summary.setOpenExternalLinks(False)
        self.manifest_view = QPlainTextEdit()
        self.manifest_view.setReadOnly(True)
        self.manifest_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details = QTabWidget()
        self.details.addTab(self.summary, "Details")
        self.details.addTab(self.manifest_view, "Manifest")

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table_stack)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)

        self.summary_label = hint("")
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Model library"))
        layout.addWidget(self.summary_label)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)

        store.loaded.connect(self._on_loaded)
        store.failed.connect(self._on_failed)
        store.started.connect(self._on_started)
        store.reset.connect(self._on_store_reset)
        self._update_empty()

    # ---- folders

    def folders(self) -> list[Path]:
        value = self.settings.value(FOLDERS_KEY, [], type=list) or []
        return [Path(v) for v in value if v]

    def add_folder(self, folder: Path | str) -> None:
        folder = Path(folder).expanduser().resolve()
        folders = [str(f) for f in self.folders()]
        if str(folder) not in folders:
            folders.append(str(folder))
            self.settings.setValue(FOLDERS_KEY, folders)
            self.settings.sync()
        self.refresh()

    def forget_folders(self) -> None:
        self.settings.remove(FOLDERS_KEY)
        self.settings.sync()
        self.refresh()

    def choose_folder(self) -> None:
        start = str(self.folders()[-1]) if self.folders() else str(Path.cwd())
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of bundles", start)
        if folder:
            self.add_folder(folder)

    def roots(self) -> list[Path]:
        roots: list[Path] = []
        default = Path.cwd() / "models_out"
        if default.is_dir():
            roots.append(default)
        roots.extend(self.extra_paths)
        roots.extend(self.folders())
        unique: dict[str, Path] = {}
        for r in roots:
            unique.setdefault(str(r.expanduser().resolve()), r)
        return list(unique.values())

    # ---- scanning

    def refresh(self) -> None:
        if self.scanning:
            self._rescan = True
            return
        self.scanning = True
        self.refresh_button.setEnabled(False)
        self.summary_label.setText("Looking for bundles…")
        roots = self.roots()
        self.runner.submit(
            lambda job: scan(roots),
            name="scan",
            result=self._on_scanned,
            error=lambda msg: self.report_error("Cannot list bundles", msg),
            finished=self._scan_done,
        )

    def _scan_done(self) -> None:
        self.scanning = False
        self.refresh_button.setEnabled(True)
        if self._rescan:
            self._rescan = False
            self.refresh()
            return
        emit(self.scan_finished)

    def _on_scanned(self, value: tuple[list[BundleInfo], list[str]]) -> None:
        infos, problems = value
        current = self.current_info()
        for info in infos:
            self._apply_store_state(info)
        self.model.set_bundles(infos)
        self._update_empty()
        roots = self.roots()
        usable = sum(1 for i in infos if i.usable)
        if roots:
            where = ", ".join(display_path(r) for r in roots)
            self.summary_label.setText(f"{usable} bundle{'s' if usable != 1 else ''} in {where}")
        else:
            self.summary_label.setText("No folders yet")
        if problems:
            self.summary_label.setText(self.summary_label.text() + " — " + "; ".join(problems))
        if current is not None:
            self.select(current.key)
        elif self.proxy.rowCount() and not self.table.currentIndex().isValid():
            self.table.selectRow(0)
        emit(self.bundles_changed, infos)
        self.store.preload(i.path for i in infos if i.usable)

    def _apply_store_state(self, info: BundleInfo) -> None:
        model = self.store.get(info.path)
        if model is not None:
            info.provider = getattr(model, "provider", None)
            info.provider_note = getattr(model, "provider_note", None)
            info.signature = model.signature.badge()
        info.load_error = self.store.error(info.path)
        info.loading = self.store.is_loading(info.path)

    def _update_info(self, key: str, **changes: Any) -> None:
        row = self.model.row_of(key)
        if row < 0:
            return
        info = self.model.info(row)
        for name, value in changes.items():
            setattr(info, name, value)
        self.model.refresh(key)
        if self.current_info() is info:
            self._show_details()

    def _on_started(self, key: str) -> None:
        self._update_info(key, loading=True)

    def _on_loaded(self, key: str, model: Any) -> None:
        self._update_info(
            key,
            loading=False,
            load_error=None,
            provider=getattr(model, "provider", None),
            provider_note=getattr(model, "provider_note", None),
        )

    def _on_failed(self, key: str, message: str) -> None:
        self._update_info(key, loading=False, load_error=message)

    def _on_store_reset(self) -> None:
        for info in self.model.bundles():
            info.provider = info.provider_note = info.signature = info.load_error = None
            info.loading = False
        self.model.set_bundles(self.model.bundles())
        self.store.preload(i.path for i in self.model.bundles() if i.usable)

    def _update_empty(self) -> None:
        self.details.setVisible(self.model.rowCount() > 0)
        if self.model.rowCount():
            self.table_stack.setCurrentWidget(self.table)
            return
        self.empty.setText(
            "<h3>No bundles yet</h3>"
            "<p>Train and export the demo models with <code>make demo</code>, or choose "
            "<b>Open Folder…</b> to add a folder that holds exported bundles "
            "(folders with a <code>manifest.json</code>).</p>"
        )
        self.table_stack.setCurrentWidget(self.empty)

    # ---- selection and details

    def bundles(self) -> list[BundleInfo]:
        return self.model.bundles()

    def current_info(self) -> BundleInfo | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.proxy.data(index, LibraryModel.InfoRole)

    def select(self, key: str) -> bool:
        row = self.model.row_of(bundle_key(key))
        if row < 0:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.selectRow(index.row())
        self.table.setCurrentIndex(index)
        return True

    def _show_details(self) -> None:
        info = self.current_info()
        self.open_model_button.setEnabled(bool(info and info.usable))
        if info is None:
            self.summary.clear()
            self.manifest_view.clear()
            return
        self.summary.setHtml(details_html(info))
        self.manifest_view.setPlainText(
            json.dumps(info.manifest, indent=2, ensure_ascii=False) if info.manifest else (info.error or "")
        )

    def _open_selected(self) -> None:
        info = self.current_info()
        if info is None:
            return
        if not info.usable:
            self.report_error("Cannot open this bundle", info.problem or "the manifest could not be read")
            return
        emit(self.open_requested, info.key)
