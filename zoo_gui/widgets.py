"""Small widgets and painting helpers shared by the pages."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPalette
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QWidget

from zoo_gui.formatting import ERROR_HEX

BAR_HEIGHT = 18
BAR_SPACING = 4
ACCENT = QColor("#2f7fd8")
ACCENT_SOFT = QColor("#9cc3ee")
ERROR_COLOR = QColor(ERROR_HEX)
ROOT_INDEX = QModelIndex()  # the invisible parent of a list's or table's rows


def to_qimage(array: np.ndarray) -> QImage:
    """uint8 [H,W,C] (C = 1 or 3) or [H,W] -> a QImage that owns a copy of the pixels."""
    a = np.ascontiguousarray(array)
    if a.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = np.ascontiguousarray(a[:, :, 0])
    if a.ndim == 2:
        h, w = a.shape
        image = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8)
    elif a.ndim == 3 and a.shape[2] == 3:
        h, w, _ = a.shape
        image = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888)
    else:
        raise ValueError(f"cannot show pixels of shape {a.shape}")
    return image.copy()  # detach from the numpy buffer


def tile(images: np.ndarray, columns: int, pad: int = 2, background: int = 255) -> np.ndarray:
    """uint8 [N,H,W,C] -> one uint8 [rows*H', columns*W', C] grid with ``pad`` pixels between cells."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), background, np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def paint_bars(
    painter: QPainter,
    rect: QRectF,
    bars: Sequence[tuple[str, float]],
    palette: QPalette,
    label_width: float = 150.0,
) -> None:
    """Paint one labelled probability bar per (label, probability) pair, top to bottom.
    The first bar (the top prediction) is drawn in the accent colour."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    bold = QFont(painter.font())
    bold.setBold(True)
    pct_width = QFontMetrics(bold).horizontalAdvance("100.0 %") + 8
    y = rect.top()
    text_color = palette.color(QPalette.ColorRole.Text)
    track = palette.color(QPalette.ColorRole.Midlight)
    for i, (label, probability) in enumerate(bars):
        row = QRectF(rect.left(), y, rect.width(), BAR_HEIGHT)
        label_rect = QRectF(row.left(), row.top(), label_width - 8, row.height())
        bar_rect = QRectF(
            row.left() + label_width, row.top() + 3, max(10.0, row.width() - label_width - pct_width), row.height() - 6
        )
        pct_rect = QRectF(bar_rect.right() + 6, row.top(), pct_width, row.height())
        painter.setPen(text_color)
        font = painter.font()
        font.setBold(i == 0)
        painter.setFont(font)
        elided = QFontMetrics(font).elidedText(str(label), Qt.TextElideMode.ElideRight, int(label_rect.width()))
        painter.drawText(label_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, elided)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(track)
        painter.drawRoundedRect(bar_rect, 3, 3)
        p = float(min(max(probability, 0.0), 1.0))
        if p > 0:
            filled = QRectF(bar_rect.left(), bar_rect.top(), max(2.0, bar_rect.width() * p), bar_rect.height())
            painter.setBrush(ACCENT if i == 0 else ACCENT_SOFT)
            painter.drawRoundedRect(filled, 3, 3)
        painter.setPen(text_color)
        painter.drawText(pct_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, f"{100 * p:.1f} %")
        y += BAR_HEIGHT + BAR_SPACING
    painter.restore()


def bars_height(count: int) -> int:
    return count * BAR_HEIGHT + max(0, count - 1) * BAR_SPACING


class ProbabilityBars(QWidget):
    """A list of labelled probability bars (the top prediction first)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bars: list[tuple[str, float]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_bars(self, bars: Sequence[tuple[str, float]]) -> None:
        self._bars = list(bars)
        self.setFixedHeight(max(1, bars_height(len(self._bars))))
        self.update()

    def bars(self) -> list[tuple[str, float]]:
        return list(self._bars)

    def sizeHint(self) -> QSize:
        return QSize(420, bars_height(len(self._bars)))

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        paint_bars(painter, QRectF(self.rect()), self._bars, self.palette(), label_width=min(200.0, self.width() * 0.35))


class ImageView(QWidget):
    """Shows one QImage scaled to fit, centred, keeping its aspect ratio."""

    def __init__(self, parent: QWidget | None = None, *, smooth: bool = False, minimum: int = 96) -> None:
        super().__init__(parent)
        self._image = QImage()
        self._smooth = smooth
        self.setMinimumSize(minimum, minimum)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, image: QImage | None) -> None:
        self._image = image if image is not None else QImage()
        self.update()

    def image(self) -> QImage:
        return self._image

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        if self._image.isNull():
            return
        size = self._image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = (self.width() - size.width()) // 2
        y = (self.height() - size.height()) // 2
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth)
        painter.drawImage(QRectF(x, y, size.width(), size.height()), self._image)


def busy_bar(parent: QWidget | None = None, width: int = 120) -> QProgressBar:
    """An indeterminate progress bar, hidden until work starts."""
    bar = QProgressBar(parent)
    bar.setRange(0, 0)
    bar.setTextVisible(False)
    bar.setFixedWidth(width)
    bar.setMaximumHeight(14)
    bar.hide()
    return bar


def heading(text: str, parent: QWidget | None = None, scale: float = 1.35) -> QLabel:
    label = QLabel(text, parent)
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    label.setFont(font)
    return label


def hint(text: str, parent: QWidget | None = None) -> QLabel:
    """Muted secondary text."""
    label = QLabel(text, parent)
    label.setWordWrap(True)
    palette = label.palette()
    palette.setColor(QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.PlaceholderText))
    label.setPalette(palette)
    return label
