"""The "Inside" view of a text generator: GPT attention per layer and head, or a recurrent model's hidden
state over time (with a GC-content track for DNA).

:func:`look_inside_text` runs on a worker (the model calls); :class:`TextInsidePanel` turns the numbers
into pictures on the UI thread (cheap: at most ``MAX_CHARACTERS`` positions).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QStyle, QVBoxLayout, QWidget

from zoo_gui.inside import to_qimage
from zoo_runtime import TextGenerator

MAX_CHARACTERS = 256  # the text looked at: its last characters (fewer when the model's context is shorter)
PICTURE_SIDE = 384  # heat maps are enlarged by whole pixels towards this side
GC_WINDOW = 20


@dataclass
class TextInsideView:
    """What the panel shows for one text: the characters looked at and the arrays by name."""

    text: str
    arrays: dict[str, np.ndarray]
    attention: bool  # GPT attention [layers, 1, heads, T, T]; else recurrent states [layers, 1, T, H]
    dna: bool


def look_inside_text(model: TextGenerator, text: str) -> TextInsideView:
    """On a worker: the model's attention or hidden states over the last characters of ``text``."""
    if not text:
        raise ValueError("nothing to look inside: the prompt and the output are empty")
    attention = not model.is_recurrent
    limit = min(MAX_CHARACTERS, model.max_context or MAX_CHARACTERS)
    ids = model.encode(text)
    kept = model.decode(ids[-limit:])
    return TextInsideView(kept, model.inspect(kept), attention, model.is_dna)


def attention_picture(weights: np.ndarray, side: int = PICTURE_SIDE) -> np.ndarray:
    """[T, T] attention (rows: the attending position) -> uint8 RGB, white (0) to deep blue (1), enlarged."""
    w = np.clip(weights, 0.0, 1.0) ** 0.5  # a square root shows the weaker links too
    white, blue = np.array([1.0, 1.0, 1.0]), np.array([0.08, 0.25, 0.65])
    rgb = white * (1.0 - w[:, :, None]) + blue * w[:, :, None]
    return _enlarge(rgb, side)


def state_picture(states: np.ndarray, side: int = PICTURE_SIDE) -> np.ndarray:
    """[T, H] hidden states -> uint8 RGB [H rows, T columns]: blue below zero, white at zero, red above, enlarged."""
    peak = max(float(np.abs(states).max()), 1e-12)
    v = np.clip(states.T / peak, -1.0, 1.0)[:, :, None]
    white, red, blue = np.array([1.0, 1.0, 1.0]), np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.25, 0.8])
    rgb = np.where(v >= 0, white * (1 - v) + red * v, white * (1 + v) + blue * (-v))
    return _enlarge(rgb, side)


def gc_track(sequence: str, width_of: int, side: int = PICTURE_SIDE, height: int = 24) -> np.ndarray:
    """GC fraction over a sliding window ending at each base, as a bar plot under the state picture (uint8 grey)."""
    is_gc = np.array([base in "GC" for base in sequence.upper()], dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(is_gc)])
    starts = np.maximum(0, np.arange(1, len(is_gc) + 1) - GC_WINDOW)
    fraction = (cumulative[1:] - cumulative[starts]) / (np.arange(1, len(is_gc) + 1) - starts)
    scale = max(1, side // max(width_of, 1))
    bars = np.full((height, len(fraction)), 255, dtype=np.uint8)
    for column, value in enumerate(fraction):
        bars[height - round(float(value) * height) :, column] = 90
    return np.repeat(bars, scale, axis=1)


def _enlarge(rgb: np.ndarray, side: int) -> np.ndarray:
    scale = max(1, side // max(rgb.shape[:2]))
    big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    return np.ascontiguousarray((np.clip(big, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


class HoverPicture(QLabel):
    """A heat map that reports the row under the mouse (the attending character)."""

    row_hovered = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.setMouseTracking(True)
        self.rows = 0
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pixmap = self.pixmap()
        if self.rows and pixmap is not None and not pixmap.isNull():
            row = int(event.position().y() * self.rows / max(pixmap.height(), 1))
            if 0 <= row < self.rows:
                self.row_hovered.emit(row)
        super().mouseMoveEvent(event)


class TextInsidePanel(QWidget):
    """Attention (pick layer and head; hover a row to see what that character attends to) or hidden states."""

    save_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.view: TextInsideView | None = None
        self.status = QLabel("Generate some text, then look inside.")
        self.status.setWordWrap(True)
        self.layer = QComboBox()
        self.head = QComboBox()
        self.shown = QComboBox()  # recurrent models: which state or gate to show
        self.shown.setToolTip("The hidden state (h), the LSTM cell (c), or a gate of the from-scratch cells")
        self.layer.currentIndexChanged.connect(lambda _i: self.redraw())
        self.shown.currentIndexChanged.connect(lambda _i: self.redraw())
        self.head.currentIndexChanged.connect(lambda _i: self.redraw())
        self.save_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Save PNG…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_requested.emit)
        self.picture = HoverPicture()
        self.picture.row_hovered.connect(self.highlight_row)
        self.track = QLabel()
        self.track.hide()
        self.attended = QLabel()
        self.attended.setTextFormat(Qt.TextFormat.RichText)
        self.attended.setWordWrap(True)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Layer"))
        bar.addWidget(self.layer)
        self.head_label = QLabel("Head")
        bar.addWidget(self.head_label)
        bar.addWidget(self.head)
        bar.addWidget(self.shown)
        bar.addStretch(1)
        bar.addWidget(self.save_button)
        self.sheet = QWidget()  # what is saved as PNG
        sheet_layout = QVBoxLayout(self.sheet)
        sheet_layout.setContentsMargins(0, 0, 0, 0)
        sheet_layout.addWidget(self.status)
        sheet_layout.addWidget(self.picture)
        sheet_layout.addWidget(self.track)
        sheet_layout.addWidget(self.attended)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.sheet, 1)

    def clear(self, text: str = "Generate some text, then look inside.") -> None:
        self.view = None
        self.status.setText(text)
        self.picture.clear()
        self.picture.rows = 0
        self.track.hide()
        self.attended.clear()
        self.save_button.setEnabled(False)

    def set_waiting(self, text: str) -> None:
        self.status.setText(text)

    def show_view(self, view: TextInsideView) -> None:
        self.view = view
        first = next(iter(view.arrays.values()))
        self.layer.blockSignals(True)
        self.head.blockSignals(True)
        self.layer.clear()
        self.layer.addItems([str(i + 1) for i in range(first.shape[0])])
        self.layer.setCurrentIndex(first.shape[0] - 1)
        self.head.clear()
        if view.attention:
            self.head.addItems([str(i + 1) for i in range(first.shape[2])])
        self.head.setVisible(view.attention)
        self.head_label.setVisible(view.attention)
        self.shown.blockSignals(True)
        self.shown.clear()
        if not view.attention:
            self.shown.addItems(list(view.arrays))
        self.shown.setVisible(not view.attention)
        self.shown.blockSignals(False)
        self.layer.blockSignals(False)
        self.head.blockSignals(False)
        self.save_button.setEnabled(True)
        self.redraw()

    def redraw(self) -> None:
        view = self.view
        if view is None:
            return
        layer = max(0, self.layer.currentIndex())
        n = len(view.text)
        if view.attention:
            head = max(0, self.head.currentIndex())
            weights = view.arrays["attention"][layer, 0, head]
            self.status.setText(
                f"Attention of layer {layer + 1}, head {head + 1} over the last {n} characters: row i is how "
                "character i weighs the characters before it. Hover a row to see it in the text."
            )
            self.picture.setPixmap(QPixmap.fromImage(to_qimage(attention_picture(weights))))
            self.picture.rows = n
            self.highlight_row(n - 1)
        else:
            name = self.shown.currentText() or "h"
            states = view.arrays[name][layer, 0]  # [T, H]
            what = {"h": "Hidden state", "c": "Cell state"}.get(name, f"The {name} gate")
            self.status.setText(
                f"{what} of layer {layer + 1} ({states.shape[1]} units, rows) at each of the last {n} "
                "characters (columns): red above zero, blue below."
            )
            self.picture.setPixmap(QPixmap.fromImage(to_qimage(state_picture(states))))
            self.picture.rows = 0
            self.attended.clear()
            if view.dna:
                self.track.setPixmap(QPixmap.fromImage(to_qimage(gc_track(view.text, n))))
                self.track.setToolTip(f"GC content over the last {GC_WINDOW} bases at each position")
                self.track.show()
                self.attended.setText(f"Under it: GC content over a {GC_WINDOW}-base window (bar height, 0 to 100 %).")
            else:
                self.track.hide()

    def highlight_row(self, row: int) -> None:
        """Show the text with each character shaded by how much character ``row`` attends to it."""
        view = self.view
        if view is None or not view.attention or not 0 <= row < len(view.text):
            return
        weights = view.arrays["attention"][max(0, self.layer.currentIndex()), 0, max(0, self.head.currentIndex()), row]
        peak = max(float(weights.max()), 1e-12)
        parts = []
        for i, ch in enumerate(view.text):
            shade = int(255 - 160 * float(weights[i]) / peak)
            shown = html.escape(ch).replace("\n", "⏎").replace(" ", "&nbsp;")
            mark = "text-decoration: underline; font-weight: bold; color: #b02020;" if i == row else ""
            parts.append(f'<span style="background-color: rgb({shade},{shade},255); {mark}">{shown}</span>')
        self.attended.setText(f"<tt>{''.join(parts)}</tt>")
        self.attended.setToolTip(f"What character {row + 1} ({view.text[row]!r}) attends to")

    def save_png(self, path: str) -> str:
        if not path.lower().endswith(".png"):
            path += ".png"
        if not self.sheet.grab().save(path, "PNG"):
            raise OSError(f"cannot write {path}")
        return path
