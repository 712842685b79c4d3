"""Widgets of the Inside views that people point at: a heat map with its axes labelled by the characters (or
tokens) along them, and a line of text whose characters are shaded and report the one under the mouse.

Both take finished numbers from the panels (computed on workers) and only paint; labels that would overlap
are thinned to every k-th one, so long sequences stay legible.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from zoo_gui.inside import to_qimage

GAP = 3  # pixels between the map and its labels
HIGHLIGHT = QColor(200, 30, 30)


def shown_label(label: str) -> str:
    """A character as it can be drawn: a newline, a space and a tab get visible signs."""
    return {"\n": "⏎", " ": "␣", "\t": "⇥"}.get(label, label)


def label_step(labels: list[str], cell: float, metrics: QFontMetrics, along: str) -> int:
    """Every how many cells a label fits without overlapping its neighbour (``along`` "x" or "y")."""
    if not labels or cell <= 0:
        return 1
    need = metrics.height() if along == "y" else max(metrics.horizontalAdvance(shown_label(x)) for x in labels) + 2
    return max(1, math.ceil(need / cell))


class HeatMap(QWidget):
    """A heat map (uint8 RGB pixels, whole cells enlarged) with row labels on the left, column labels under
    it (thinned when they would overlap), optional axis titles and an optional track (e.g. GC content) drawn
    between the map and the column labels, aligned with the columns. It reports the cell under the mouse."""

    cell_hovered = Signal(int, int)  # row, column
    row_hovered = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.font_ = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.image = to_qimage(np.full((1, 1, 3), 255, dtype=np.uint8))
        self.track: QImage | None = None  # under the map, as wide as it
        self.rows = self.columns = 0
        self.row_labels: list[str] = []
        self.column_labels: list[str] = []
        self.row_title = self.column_title = ""
        self.highlighted_row: int | None = None
        self.hovered: tuple[int, int] | None = None
        self._layout()

    # ------------------------------------------------------------------ content

    def set_map(
        self,
        pixels: np.ndarray,
        rows: int,
        columns: int,
        row_labels: list[str] | None = None,
        column_labels: list[str] | None = None,
        row_title: str = "",
        column_title: str = "",
    ) -> None:
        """Show ``pixels`` (uint8 [H, W, 3], ``rows`` x ``columns`` cells) with these labels (one per row/column)."""
        self.image = to_qimage(pixels)
        self.rows, self.columns = rows, columns
        self.row_labels = list(row_labels or [])
        self.column_labels = list(column_labels or [])
        self.row_title, self.column_title = row_title, column_title
        self.highlighted_row = None
        self.hovered = None
        self._layout()

    def set_track(self, pixels: np.ndarray | None) -> None:
        """A strip under the map with one column per map column (uint8 [h, columns * cell] grey or RGB), or none."""
        self.track = None if pixels is None else to_qimage(pixels)
        self._layout()

    def clear(self) -> None:
        self.set_map(np.full((1, 1, 3), 255, dtype=np.uint8), 0, 0)
        self.set_track(None)

    def highlight_row(self, row: int | None) -> None:
        self.highlighted_row = row
        self.update()

    @property
    def has_map(self) -> bool:
        return self.rows > 0 and self.columns > 0

    # ------------------------------------------------------------------ geometry

    def _metrics(self) -> QFontMetrics:
        return QFontMetrics(self.font_)

    def _layout(self) -> None:
        m = self._metrics()
        self.left = 0
        if self.row_labels:
            self.left = max(m.horizontalAdvance(shown_label(x)) for x in self.row_labels) + GAP
        if self.row_title:
            self.left += m.height() + GAP
        self.map_rect = QRect(self.left, 0, self.image.width(), self.image.height())
        bottom = self.map_rect.bottom() + 1
        self.track_rect = QRect(self.left, bottom + GAP, self.image.width(), self.track.height()) if self.track else None
        if self.track_rect is not None:
            bottom = self.track_rect.bottom() + 1
        self.column_y = bottom + GAP
        height = self.column_y + (m.height() if self.column_labels else 0) + (m.height() + GAP if self.column_title else 0)
        self.setFixedSize(QSize(self.left + self.image.width() + 2, height + 2))
        self.update()

    def cell_at(self, point: QPoint) -> tuple[int, int] | None:
        """The (row, column) under a point of the widget, or None outside the map."""
        if not self.has_map or not self.map_rect.contains(point):
            return None
        row = int((point.y() - self.map_rect.top()) * self.rows / max(self.map_rect.height(), 1))
        column = int((point.x() - self.map_rect.left()) * self.columns / max(self.map_rect.width(), 1))
        return min(row, self.rows - 1), min(column, self.columns - 1)

    def cell_center(self, row: int, column: int) -> QPoint:
        """Where cell (row, column) lies on the widget (for tests and tooltips)."""
        x = self.map_rect.left() + (column + 0.5) * self.map_rect.width() / max(self.columns, 1)
        y = self.map_rect.top() + (row + 0.5) * self.map_rect.height() / max(self.rows, 1)
        return QPoint(int(x), int(y))

    # ------------------------------------------------------------------ events

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        cell = self.cell_at(event.position().toPoint())
        if cell is not None and cell != self.hovered:
            self.hovered = cell
            row, column = cell
            name_r = f" {shown_label(self.row_labels[row])!r}" if row < len(self.row_labels) else ""
            name_c = f" {shown_label(self.column_labels[column])!r}" if column < len(self.column_labels) else ""
            self.setToolTip(f"row {row + 1}{name_r}, column {column + 1}{name_c}")
            self.cell_hovered.emit(row, column)
            self.row_hovered.emit(row)
        super().mouseMoveEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setFont(self.font_)
        m = self._metrics()
        painter.drawImage(self.map_rect.topLeft(), self.image)
        if self.track is not None and self.track_rect is not None:
            painter.drawImage(self.track_rect.topLeft(), self.track)
        painter.setPen(self.palette().color(self.foregroundRole()))
        if self.rows and self.row_labels:
            cell = self.map_rect.height() / self.rows
            step = label_step(self.row_labels, cell, m, "y")
            right = self.left - GAP
            for row in range(0, min(self.rows, len(self.row_labels)), step):
                y = int(self.map_rect.top() + (row + 0.5) * cell)
                text = shown_label(self.row_labels[row])
                painter.drawText(right - m.horizontalAdvance(text), y + m.ascent() // 2 - 1, text)
        if self.columns and self.column_labels:
            cell = self.map_rect.width() / self.columns
            step = label_step(self.column_labels, cell, m, "x")
            for column in range(0, min(self.columns, len(self.column_labels)), step):
                text = shown_label(self.column_labels[column])
                x = int(self.map_rect.left() + (column + 0.5) * cell - m.horizontalAdvance(text) / 2)
                painter.drawText(x, self.column_y + m.ascent(), text)
        if self.column_title:
            y = self.column_y + (m.height() if self.column_labels else 0) + GAP + m.ascent()
            painter.drawText(self.map_rect.left(), y, self.column_title)
        if self.row_title:
            painter.save()
            painter.translate(m.ascent(), self.map_rect.top() + m.horizontalAdvance(self.row_title))
            painter.rotate(-90)
            painter.drawText(0, 0, self.row_title)
            painter.restore()
        if self.highlighted_row is not None and 0 <= self.highlighted_row < self.rows:
            cell = self.map_rect.height() / self.rows
            top = int(self.map_rect.top() + self.highlighted_row * cell)
            painter.setPen(QPen(HIGHLIGHT, 1))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(self.map_rect.left(), top, self.map_rect.width() - 1, max(1, int(cell)) - 1)
        painter.end()


class CharacterStrip(QWidget):
    """Text drawn one character per cell, wrapped to the widget's width, each cell shaded (0 white .. 1 blue);
    one character may be marked. Reports the character under the mouse (``char_hovered``)."""

    char_hovered = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.setMouseTracking(True)
        self.font_ = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.labels: list[str] = []
        self.shades: list[float] = []
        self.marked: int | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_text(self, labels: list[str], shades: list[float] | None = None, marked: int | None = None) -> None:
        self.labels = list(labels)
        self.shades = list(shades) if shades is not None else [0.0] * len(self.labels)
        self.marked = marked
        self._fit_height(self.width())
        self.update()

    def clear(self) -> None:
        self.set_text([])

    def _cell(self) -> QSize:
        m = QFontMetrics(self.font_)
        widest = max((m.horizontalAdvance(shown_label(x)) for x in self.labels), default=m.horizontalAdvance("M"))
        return QSize(widest + 2, m.height() + 4)

    def _per_line(self, width: int) -> int:
        return max(1, width // max(self._cell().width(), 1))

    def _fit_height(self, width: int) -> None:
        lines = math.ceil(len(self.labels) / self._per_line(max(width, 1))) if self.labels else 0
        self.setFixedHeight(lines * self._cell().height() + 2)

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._fit_height(event.size().width())
        super().resizeEvent(event)

    def char_at(self, point: QPoint) -> int | None:
        cell = self._cell()
        column, line = point.x() // cell.width(), point.y() // cell.height()
        per_line = self._per_line(self.width())
        if point.x() < 0 or point.y() < 0 or column >= per_line:
            return None
        index = line * per_line + column
        return index if index < len(self.labels) else None

    def char_center(self, index: int) -> QPoint:
        cell, per_line = self._cell(), self._per_line(self.width())
        line, column = divmod(index, per_line)
        return QPoint(column * cell.width() + cell.width() // 2, line * cell.height() + cell.height() // 2)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        index = self.char_at(event.position().toPoint())
        if index is not None:
            self.char_hovered.emit(index)
        super().mouseMoveEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        font = QFont(self.font_)
        cell, per_line = self._cell(), self._per_line(self.width())
        m = QFontMetrics(font)
        ink = self.palette().color(self.foregroundRole())
        for index, label in enumerate(self.labels):
            line, column = divmod(index, per_line)
            box = QRect(column * cell.width(), line * cell.height(), cell.width(), cell.height())
            level = int(255 - 160 * min(max(self.shades[index], 0.0), 1.0))
            painter.fillRect(box, QColor(level, level, 255))
            marked = index == self.marked
            font.setBold(marked)
            font.setUnderline(marked)
            painter.setFont(font)
            painter.setPen(HIGHLIGHT if marked else ink)
            text = shown_label(label)
            painter.drawText(box.left() + (cell.width() - m.horizontalAdvance(text)) // 2, box.top() + 2 + m.ascent(), text)
        painter.end()
