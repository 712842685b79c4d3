"""The "Inside" view of an image classifier: the selected image's feature maps per layer and its saliency.

What a worker thread computes (:func:`look_inside`: numpy images ready to show, downsampled) is
kept apart from the widget that shows them (:class:`InsidePanel`), so that the UI thread only
wraps finished pixels in QImages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QScrollArea, QStyle, QVBoxLayout, QWidget

from zoo_runtime import ImageClassifier

MAX_CHANNELS = 32  # feature maps shown per layer, the strongest first
TILE = 48  # largest side of one feature map on screen (larger maps are averaged down)
GAP = 2  # pixels between tiles
COLUMNS = 8
OVERLAY_SIDE = 224  # the saliency overlay's side on screen


@dataclass
class LayerView:
    """One stage of the inspect graph as shown: its grid of maps (uint8 [H, W]), which channels, of how many."""

    name: str
    shape: tuple[int, ...]  # the activation's shape for one image
    grid: np.ndarray
    channels_shown: list[int]

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def caption(self) -> str:
        if len(self.shape) == 1:
            return f"{self.name}: {self.channels} features"
        shown = len(self.channels_shown)
        size = "x".join(str(d) for d in self.shape[1:])
        more = f", the {shown} strongest shown" if shown < self.channels else ", strongest first"
        return f"{self.name}: {self.channels} channels of {size}{more}"


@dataclass
class InsideView:
    """What the panel shows for one image and one class."""

    bundle: Path  # the model's bundle (the view of one model is never shown for another)
    path: Path
    class_index: int
    label: str
    layers: list[LayerView] = field(default_factory=list)
    overlay: np.ndarray | None = None  # uint8 [S, S, 3]: the image with its saliency in red
    note: str = ""  # why something is missing (no inspect graph)


def _block_mean(maps: np.ndarray, largest: int) -> np.ndarray:
    """Average [C, H, W] maps down by an integer factor so that no side exceeds ``largest``."""
    factor = max(1, -(-max(maps.shape[1:]) // largest))
    if factor == 1:
        return maps
    c, h, w = maps.shape
    h2, w2 = h // factor, w // factor
    return maps[:, : h2 * factor, : w2 * factor].reshape(c, h2, factor, w2, factor).mean(axis=(2, 4))


def feature_grid(
    maps: np.ndarray, max_channels: int = MAX_CHANNELS, tile: int = TILE, columns: int = COLUMNS
) -> tuple[np.ndarray, list[int]]:
    """[C, H, W] activations -> (uint8 grid image, the channels shown): strongest (highest mean) first,
    each map scaled to its own range, at most ``max_channels`` of them, each about ``tile`` pixels a side."""
    strength = maps.reshape(maps.shape[0], -1).mean(axis=1)
    order = [int(i) for i in np.argsort(-strength, kind="stable")[:max_channels]]
    small = _block_mean(maps[order].astype(np.float32), tile)
    enlarge = max(1, tile // max(small.shape[1:]))  # small maps are shown in big pixels, not as specks
    small = np.repeat(np.repeat(small, enlarge, axis=1), enlarge, axis=2)
    low = small.min(axis=(1, 2), keepdims=True)
    span = np.maximum(small.max(axis=(1, 2), keepdims=True) - low, 1e-12)
    tiles = ((small - low) / span * 255.0 + 0.5).astype(np.uint8)
    n, h, w = tiles.shape
    cols = min(columns, n)
    rows = -(-n // cols)
    grid = np.full((rows * (h + GAP) - GAP, cols * (w + GAP) - GAP), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * (h + GAP) : r * (h + GAP) + h, c * (w + GAP) : c * (w + GAP) + w] = tiles[i]
    return grid, order


def feature_strip(vector: np.ndarray, height: int = 12, cell: int = 4) -> np.ndarray:
    """A [D] feature vector as one row of grey cells (uint8 [height, D * cell]), scaled to its range."""
    low, span = float(vector.min()), max(float(vector.max() - vector.min()), 1e-12)
    row = ((vector - low) / span * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(np.repeat(row[None, :], height, axis=0), cell, axis=1)


def saliency_overlay(image_chw: np.ndarray, saliency: np.ndarray, side: int = OVERLAY_SIDE) -> np.ndarray:
    """The image (grey or RGB, 0..1) with the saliency's positive part laid over it in red, enlarged to about ``side``."""
    rgb = np.repeat(image_chw, 3, axis=0) if image_chw.shape[0] == 1 else image_chw[:3]
    rgb = rgb.transpose(1, 2, 0)
    peak = float(saliency.max())
    alpha = (np.clip(saliency / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(saliency))[:, :, None] * 0.7
    red = np.array([1.0, 0.1, 0.1], dtype=np.float32)
    mixed = rgb * (1.0 - alpha) + red * alpha
    scale = max(1, side // max(saliency.shape))
    mixed = np.repeat(np.repeat(mixed, scale, axis=0), scale, axis=1)
    return np.ascontiguousarray((np.clip(mixed, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def look_inside(model: ImageClassifier, path: Path, class_index: int) -> InsideView:
    """On a worker: the feature maps of every stage and the saliency overlay for ``class_index``."""
    labels = model.labels or []
    label = str(labels[class_index]) if class_index < len(labels) else str(class_index)
    view = InsideView(model.path, path, class_index, label)
    x = model.preprocess([str(path)])
    if model.inspect_layers:
        for name, value in model.inspect(x).items():
            one = value[0]
            if one.ndim == 3:
                grid, shown = feature_grid(one)
            elif one.ndim == 1:
                grid, shown = feature_strip(one), list(range(one.shape[0]))
            else:
                continue
            view.layers.append(LayerView(name, tuple(one.shape), grid, shown))
    else:
        view.note = "This bundle has no inspect graph (export it again to see its feature maps); saliency still works."
    view.overlay = saliency_overlay(x[0], model.saliency(x, class_index))
    return view


def to_qimage(pixels: np.ndarray) -> QImage:
    """uint8 [H, W] (grey) or [H, W, 3] (RGB) -> a QImage that owns a copy of the pixels."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    fmt = QImage.Format.Format_Grayscale8 if pixels.ndim == 2 else QImage.Format.Format_RGB888
    return QImage(pixels.data, w, h, pixels.strides[0], fmt).copy()


class InsidePanel(QWidget):
    """Feature maps per layer and the saliency overlay of the selected image; asks for work through ``wanted``."""

    wanted = Signal(int)  # the class whose saliency to show, after the user picked it
    save_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.title = QLabel("<b>Inside</b>: select an image")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("The class whose evidence the saliency map shows")
        self.class_combo.activated.connect(lambda index: self.wanted.emit(int(index)))
        self.save_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Save PNG…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_requested.emit)

        self.content = QWidget()
        self.content_layout = QVBoxLayout(self.content)
        self.content_layout.setAlignment(Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.content)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Saliency for:"))
        bar.addWidget(self.class_combo, 1)
        bar.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)
        self.view: InsideView | None = None
        self.setMinimumWidth(300)

    def set_labels(self, labels: list[str]) -> None:
        self.class_combo.clear()
        self.class_combo.addItems(labels)

    def set_waiting(self, text: str) -> None:
        self.status.setText(text)

    def clear(self, text: str = "Select an image to see inside the model.") -> None:
        self.view = None
        self.title.setText("<b>Inside</b>")
        self.status.setText(text)
        self.save_button.setEnabled(False)
        self._clear_content()

    def _clear_content(self) -> None:
        while self.content_layout.count():
            item = self.content_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()

    def show_view(self, view: InsideView) -> None:
        self.view = view
        self._clear_content()
        self.title.setText(f"<b>Inside</b>: {view.path.name}")
        self.class_combo.setCurrentIndex(view.class_index)
        self.status.setText(view.note)
        if view.overlay is not None:
            self._add(f"Saliency for {view.label} (occlusion: red where hiding the pixels lowers it)", view.overlay)
        for layer in view.layers:
            self._add(layer.caption, layer.grid, name=layer.name)
        self.save_button.setEnabled(True)

    def _add(self, caption: str, pixels: np.ndarray, name: str = "saliency") -> None:
        text = QLabel(caption)
        text.setWordWrap(True)
        picture = QLabel()
        picture.setObjectName(f"inside-{name}")
        picture.setPixmap(QPixmap.fromImage(to_qimage(pixels)))
        picture.setAlignment(Qt.AlignmentFlag.AlignLeft)
        self.content_layout.addWidget(text)
        self.content_layout.addWidget(picture)

    def save_png(self, path: Path | str) -> Path:
        """Write what the panel shows (every layer and the overlay, with captions) as one PNG."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        self.content.adjustSize()
        if not self.content.grab().save(str(path), "PNG"):
            raise OSError(f"cannot write {path}")
        return path
