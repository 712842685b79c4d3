"""The library's table: :class:`LibraryModel` shows :class:`BundleInfo` rows, :class:`TaskFilter`
narrows them to one task and a search text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor

from zoo_gui.catalog import BundleInfo
from zoo_gui.formatting import PASSED_HEX, format_metric, format_size, key_metric, metric_name, short_provider, task_title
from zoo_gui.widgets import ERROR_COLOR, ROOT_INDEX

PASSED_COLOR = QColor(PASSED_HEX)
PARITY_TEXT = {True: "✓ passed", False: "✗ failed", None: "—"}


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
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = ROOT_INDEX) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = ROOT_INDEX) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
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
            return self._sort_key(info, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(info, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._color(info, col)
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
            return PARITY_TEXT[info.parity]
        if col == self.PROVIDER:
            return self._provider(info)
        if col == self.LOCATION:
            return info.location
        return ""

    @staticmethod
    def _provider(info: BundleInfo) -> str:
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

    def _sort_key(self, info: BundleInfo, col: int) -> Any:
        if col == self.SIZE:
            return info.size_bytes or 0
        if col == self.METRIC:
            metric = key_metric(info.metrics)
            return float(info.metrics[metric[0]]) if metric else float("-inf")
        return self._display(info, col)

    def _tooltip(self, info: BundleInfo, col: int) -> str | None:
        if info.problem:
            return info.problem
        if col == self.PROVIDER and info.provider_note:
            return info.provider_note
        if col == self.METRIC:
            return "\n".join(f"{k}: {format_metric(k, v)}" for k, v in info.metrics.items()) or None
        return str(info.path)

    def _color(self, info: BundleInfo, col: int) -> QColor | None:
        if info.problem and col in (self.NAME, self.PROVIDER):
            return ERROR_COLOR
        if col == self.PARITY and info.parity is not None:
            return PASSED_COLOR if info.parity else ERROR_COLOR
        return None


class TaskFilter(QSortFilterProxyModel):
    """Rows of one task (None: all) whose name, run, location or task holds the search text."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.task: str | None = None
        self.text = ""
        self.setSortRole(LibraryModel.SortRole)

    def set_task(self, task: str | None) -> None:
        self._refilter(lambda: setattr(self, "task", task or None))

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "text", text.strip().lower()))

    def _refilter(self, change: Callable[[], None]) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter() is deprecated there
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:
        info = cast(LibraryModel, self.sourceModel()).info(row)
        if self.task and info.task != self.task:
            return False
        return not self.text or info.matches(self.text)
