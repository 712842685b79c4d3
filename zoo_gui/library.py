"""The Library page: the table of bundles (name, task, key metric, size, parity, provider),
a task filter, a search line, and a details view with the manifest.

Scanning is :mod:`zoo_gui.catalog` (on a worker), loading is :mod:`zoo_gui.store`, the table
is :mod:`zoo_gui.library_table`, the details are :mod:`zoo_gui.details`; this module wires
them into widgets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QFontDatabase, QKeySequence
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

from zoo_gui.catalog import BundleInfo, bundle_key, scan, unique_roots
from zoo_gui.details import details_html
from zoo_gui.formatting import display_path
from zoo_gui.library_table import LibraryModel, TaskFilter
from zoo_gui.store import ModelStore
from zoo_gui.widgets import heading, hint
from zoo_gui.workers import Runner
from zoo_runtime import BundleModel
from zoo_runtime.contract import TASK_KINDS
from zoo_runtime.schema import MANIFEST_FILE

FOLDERS_KEY = "library/folders"
DEFAULT_FOLDER = "models_out"  # where `make demo` puts its runs, looked in when it exists
EMPTY_TEXT = (
    "<h3>No bundles yet</h3>"
    "<p>Train and export the demo models with <code>make demo</code>, or choose "
    "<b>Open Folder…</b> to add a folder that holds exported bundles "
    f"(folders with a <code>{MANIFEST_FILE}</code>).</p>"
)


class LibraryPage(QWidget):
    """The table of bundles, a task filter, the details view, Open Folder… and Refresh."""

    title = "Library"
    icon = QStyle.StandardPixmap.SP_DirHomeIcon
    bundles_changed = Signal(list)  # list[BundleInfo]
    open_requested = Signal(str)  # bundle key
    scan_finished = Signal()

    def __init__(
        self,
        runner: Runner,
        store: ModelStore,
        settings: QSettings,
        extra_paths: Iterable[Path] = (),
        report_error: Callable[[str, str], None] | None = None,
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

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self._build_table())
        splitter.addWidget(self._build_details())
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)

        self.summary_label = hint("")
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Model library"))
        layout.addWidget(self.summary_label)
        layout.addLayout(self._build_toolbar())
        layout.addWidget(splitter, 1)

        store.loaded.connect(self._on_loaded)
        store.failed.connect(self._on_failed)
        store.started.connect(self._on_started)
        store.reset.connect(self._on_store_reset)
        self._update_empty()

    def _button(self, icon: QStyle.StandardPixmap, text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(self.style().standardIcon(icon), text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def _build_toolbar(self) -> QHBoxLayout:
        shortcut = QKeySequence("Ctrl+Shift+O").toString(QKeySequence.SequenceFormat.NativeText)
        self.open_button = self._button(
            QStyle.StandardPixmap.SP_DirOpenIcon,
            "Open Folder…",
            f"Add a folder of bundles to the library ({shortcut})",
            self.choose_folder,
        )
        self.refresh_button = self._button(
            QStyle.StandardPixmap.SP_BrowserReload, "Refresh", "Look for bundles again (F5)", self.refresh
        )
        self.task_combo = QComboBox()
        self.task_combo.addItem("All tasks", "")
        for kind in TASK_KINDS.values():
            self.task_combo.addItem(kind.title, kind.name)
        self.task_combo.currentIndexChanged.connect(lambda _i: self.proxy.set_task(self.task_combo.currentData()))
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.set_text)
        self.open_model_button = self._button(
            QStyle.StandardPixmap.SP_MediaPlay,
            "Use Model",
            "Open the selected bundle in its page (Enter or double-click)",
            self._open_selected,
        )
        self.open_model_button.setEnabled(False)

        bar = QHBoxLayout()
        bar.addWidget(self.open_button)
        bar.addWidget(self.refresh_button)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Task:"))
        bar.addWidget(self.task_combo)
        bar.addWidget(self.search, 1)
        bar.addWidget(self.open_model_button)
        return bar

    def _build_table(self) -> QStackedWidget:
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

        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setTextFormat(Qt.TextFormat.RichText)
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.empty)
        return self.table_stack

    def _build_details(self) -> QTabWidget:
        self.summary = QTextBrowser()
        self.summary.setOpenExternalLinks(False)
        self.manifest_view = QPlainTextEdit()
        self.manifest_view.setReadOnly(True)
        self.manifest_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details = QTabWidget()
        self.details.addTab(self.summary, "Details")
        self.details.addTab(self.manifest_view, "Manifest")
        return self.details

    # ---- folders

    def folders(self) -> list[Path]:
        value = self.settings.value(FOLDERS_KEY, [], type=list)
        return [Path(v) for v in value if v] if isinstance(value, list) else []

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
        default = Path.cwd() / DEFAULT_FOLDER
        return unique_roots([*([default] if default.is_dir() else []), *self.extra_paths, *self.folders()])

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
        self.scan_finished.emit()

    def _on_scanned(self, value: tuple[list[BundleInfo], list[str]]) -> None:
        infos, problems = value
        current = self.current_info()
        for info in infos:
            self._apply_store_state(info)
        self.model.set_bundles(infos)
        self._update_empty()
        self.summary_label.setText(self._summary(infos, problems))
        if current is not None:
            self.select(current.key)
        elif self.proxy.rowCount() and not self.table.currentIndex().isValid():
            self.table.selectRow(0)
        self.bundles_changed.emit(infos)
        self.store.preload(i.path for i in infos if i.usable)

    def _summary(self, infos: list[BundleInfo], problems: list[str]) -> str:
        roots = self.roots()
        usable = sum(1 for i in infos if i.usable)
        if roots:
            text = f"{usable} bundle{'s' if usable != 1 else ''} in {', '.join(display_path(r) for r in roots)}"
        else:
            text = "No folders yet"
        return text + (" — " + "; ".join(problems) if problems else "")

    def _apply_store_state(self, info: BundleInfo) -> None:
        model = self.store.get(info.path)
        if model is not None:
            info.provider, info.provider_note = model.provider, model.provider_note
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

    def _on_loaded(self, key: str, model: BundleModel) -> None:
        self._update_info(
            key,
            loading=False,
            load_error=None,
            provider=model.provider,
            provider_note=model.provider_note,
            signature=model.signature.badge(),
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
        has_rows = self.model.rowCount() > 0
        self.details.setVisible(has_rows)
        self.table_stack.setCurrentWidget(self.table if has_rows else self.empty)

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
        self.open_requested.emit(info.key)
