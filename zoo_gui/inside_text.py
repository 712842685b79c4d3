"""The "Inside" view of a text generator: GPT attention per layer and head, or a recurrent model's hidden
state over time (with a GC-content track for DNA).

:func:`look_inside_text` runs on a worker (the model calls); :class:`TextInsidePanel` turns the numbers
into pictures on the UI thread (cheap: at most ``MAX_CHARACTERS`` positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLayout, QPushButton, QStyle, QVBoxLayout, QWidget

from zoo_gui.heatmap import CharacterStrip, HeatMap
from zoo_runtime import SequenceClassifier, TextGenerator

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
    token_labels: list[str] | None = None  # what stands at each position where that is not one character (token ids)

    @property
    def labels(self) -> list[str]:
        """One label per position: the characters of ``text``, or the token ids."""
        return list(self.token_labels) if self.token_labels is not None else list(self.text)


def look_inside_text(model: TextGenerator, text: str) -> TextInsideView:
    """On a worker: the model's attention or hidden states over the last characters of ``text``."""
    if not text:
        raise ValueError("nothing to look inside: the prompt and the output are empty")
    attention = not model.is_recurrent
    limit = min(MAX_CHARACTERS, model.max_context or MAX_CHARACTERS)
    ids = model.encode(text)
    kept = model.decode(ids[-limit:])
    return TextInsideView(kept, model.inspect(kept), attention, model.is_dna)


def look_inside_sequence(model: SequenceClassifier, value: str | list[int]) -> TextInsideView:
    """On a worker: a sequence classifier's hidden state and gates at each position of ``value`` (its text, where
    the vocabulary is characters, else its token ids)."""
    arrays = model.inspect(value)
    if isinstance(value, str):
        return TextInsideView(value, arrays, attention=False, dna=model.vocab.is_dna)
    return TextInsideView("", arrays, attention=False, dna=False, token_labels=[str(i) for i in value])


def attention_picture(weights: np.ndarray, side: int = PICTURE_SIDE) -> np.ndarray:
    """[T, T] attention (rows: the attending position) -> uint8 RGB, white (0) to deep blue (1), enlarged."""
    w = np.clip(weights, 0.0, 1.0) ** 0.5  # a square root shows the weaker links too
    white, blue = np.array([1.0, 1.0, 1.0]), np.array([0.08, 0.25, 0.65])
    rgb = white * (1.0 - w[:, :, None]) + blue * w[:, :, None]
    scale = max(1, side // max(w.shape))
    return _enlarge(rgb, scale, scale)


def state_cells(time: int, units: int, side: int = PICTURE_SIDE) -> tuple[int, int]:
    """(pixels per unit, pixels per time step) of a state picture: the time axis about ``side`` long, the units
    about half of it (a few units over a long text still make rows one can see), whole pixels, at least one."""
    return max(1, side // 2 // max(units, 1)), max(1, side // max(time, 1))


def state_picture(states: np.ndarray, side: int = PICTURE_SIDE) -> np.ndarray:
    """[T, H] hidden states -> uint8 RGB [H rows, T columns]: blue below zero, white at zero, red above, enlarged
    by :func:`state_cells`."""
    peak = max(float(np.abs(states).max()), 1e-12)
    v = np.clip(states.T / peak, -1.0, 1.0)[:, :, None]
    white, red, blue = np.array([1.0, 1.0, 1.0]), np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.25, 0.8])
    rgb = np.where(v >= 0, white * (1 - v) + red * v, white * (1 + v) + blue * (-v))
    return _enlarge(rgb, *state_cells(states.shape[0], states.shape[1], side))


def gc_track(sequence: str, cell: int, height: int = 24) -> np.ndarray:
    """GC fraction over a sliding window ending at each base, as a bar plot under the state picture (uint8 grey),
    ``cell`` pixels per base (the state picture's, see :func:`state_cells`)."""
    is_gc = np.array([base in "GC" for base in sequence.upper()], dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(is_gc)])
    starts = np.maximum(0, np.arange(1, len(is_gc) + 1) - GC_WINDOW)
    fraction = (cumulative[1:] - cumulative[starts]) / (np.arange(1, len(is_gc) + 1) - starts)
    bars = np.full((height, len(fraction)), 255, dtype=np.uint8)
    for column, value in enumerate(fraction):
        bars[height - round(float(value) * height) :, column] = 90
    return np.repeat(bars, max(1, cell), axis=1)


def _enlarge(rgb: np.ndarray, row_pixels: int, column_pixels: int) -> np.ndarray:
    big = np.repeat(np.repeat(rgb, row_pixels, axis=0), column_pixels, axis=1)
    return np.ascontiguousarray((np.clip(big, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


class TextInsidePanel(QWidget):
    """Attention (pick layer and head; hover a character, in the text or as a row of the map, to see what it
    attends to) or a recurrent model's hidden state and gates over time (pick which), the characters along
    the time axis, and for DNA the GC content under them."""

    save_requested = Signal()

    def __init__(self, empty: str = "Generate some text, then look inside.") -> None:
        super().__init__()
        self.empty = empty
        self.view: TextInsideView | None = None
        self.hovered_row: int | None = None  # the attending position whose row is shown over the text
        self.status = QLabel(empty)
        self.status.setWordWrap(True)
        self.layer = QComboBox()
        self.head = QComboBox()
        self.shown = QComboBox()  # recurrent models: which state or gate to show
        self.shown.setToolTip("The hidden state (h), the LSTM cell (c), or a gate of the recurrent cells")
        self.layer.currentIndexChanged.connect(lambda _i: self.redraw())
        self.shown.currentIndexChanged.connect(lambda _i: self.redraw())
        self.head.currentIndexChanged.connect(lambda _i: self.redraw())
        self.save_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Save PNG…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_requested.emit)
        self.picture = HeatMap()
        self.picture.setObjectName("inside-map")
        self.picture.row_hovered.connect(self.highlight_row)
        self.text_strip = CharacterStrip()  # attention: the text, shaded by what the hovered character attends to
        self.text_strip.char_hovered.connect(self.highlight_row)
        self.text_strip.hide()
        self.attended = QLabel()
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
        sheet_layout.addWidget(self.text_strip)
        sheet_layout.addWidget(self.attended)
        sheet_layout.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)  # never squeezed below the map (a scroll area scrolls)
        layout.addLayout(bar)
        layout.addWidget(self.sheet, 1)

    def clear(self, text: str | None = None) -> None:
        self.view = None
        self.hovered_row = None
        self.status.setText(self.empty if text is None else text)
        self.picture.clear()
        self.text_strip.clear()
        self.text_strip.hide()
        self.attended.clear()
        self.save_button.setEnabled(False)

    def set_waiting(self, text: str) -> None:
        self.status.setText(text)

    def show_view(self, view: TextInsideView) -> None:
        self.view = view
        self.hovered_row = None
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
        labels = view.labels
        n = len(labels)
        unit = "bases" if view.dna else ("characters" if view.token_labels is None else "tokens")
        if view.attention:
            head = max(0, self.head.currentIndex())
            weights = view.arrays["attention"][layer, 0, head]
            self.status.setText(
                f"Attention of layer {layer + 1}, head {head + 1} over the last {n} {unit}: row i is how "
                "character i weighs the characters before it. Hover a character (in the text or as a row) to "
                "see what it attends to."
            )
            self.picture.set_map(attention_picture(weights), n, n, labels, labels, "attending", "attended to")
            self.picture.set_track(None)
            self.text_strip.show()
            self.attended.clear()
            self.highlight_row(n - 1 if self.hovered_row is None or self.hovered_row >= n else self.hovered_row)
        else:
            name = self.shown.currentText() or "h"
            states = view.arrays[name][layer, 0]  # [T, H]
            what = {"h": "Hidden state", "c": "Cell state"}.get(name, f"The {name} gate")
            self.status.setText(
                f"{what} of layer {layer + 1} ({states.shape[1]} units, rows) at each of the {n} {unit} "
                "(columns): red above zero, blue below."
            )
            self.picture.set_map(state_picture(states), states.shape[1], n, None, labels, "units", unit)
            self.text_strip.hide()
            if view.dna:
                self.picture.set_track(gc_track(view.text, state_cells(states.shape[0], states.shape[1])[1]))
                self.attended.setText(
                    f"Under the map: GC content over a {GC_WINDOW}-base window ending at each base (bar height, 0 to 100 %)."
                )
            else:
                self.picture.set_track(None)
                self.attended.clear()

    def highlight_row(self, row: int) -> None:
        """Shade the text by how much character ``row`` attends to each character, and mark its row in the map."""
        view = self.view
        if view is None or not view.attention or not 0 <= row < len(view.labels):
            return
        self.hovered_row = row
        weights = view.arrays["attention"][max(0, self.layer.currentIndex()), 0, max(0, self.head.currentIndex()), row]
        peak = max(float(weights.max()), 1e-12)
        self.text_strip.set_text(view.labels, [float(w) / peak for w in weights], marked=row)
        self.text_strip.setToolTip(f"What character {row + 1} ({view.labels[row]!r}) attends to")
        self.picture.highlight_row(row)

    def save_png(self, path: str) -> str:
        if not path.lower().endswith(".png"):
            path += ".png"
        # The whole sheet, even where a small window squeezes it (or a map shown a moment ago is not laid out yet).
        needed = self.sheet.minimumSizeHint().expandedTo(self.sheet.size())
        if needed != self.sheet.size():
            self.sheet.resize(needed)
            layout = self.sheet.layout()
            if layout is not None:
                layout.activate()
        if not self.sheet.grab().save(path, "PNG"):
            raise OSError(f"cannot write {path}")
        return path
