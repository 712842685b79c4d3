"""GAN sampling: a grid of samples from a seed; pick two and interpolate between them."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from zoo_gui.pages.base import ModelPage
from zoo_gui.widgets import ImageView, hint, tile, to_qimage
from zoo_runtime import ImageGenerator

GRID_SIZES = (9, 16, 25, 36, 64)
STEPS = 32
STRIP = 8
MAX_SEED = 2**31 - 1
PICK_HINT = "Click two samples to interpolate between them (A, then B)."
MARK_COLORS = {"A": QColor("#e67e22"), "B": QColor("#8e44ad")}


class SampleGrid(QWidget):
    """Square cells of images; clicking picks up to two of them as A and B."""

    clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None, *, selectable: bool = True, gap: int = 6) -> None:
        super().__init__(parent)
        self.images: list[QImage] = []
        self.columns = 4
        self.marks: dict[int, str] = {}
        self.selectable = selectable
        self.gap = gap
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 200 if selectable else 40)
        if selectable:
            self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_images(self, images: list[QImage], columns: int) -> None:
        self.images = images
        self.columns = max(1, columns)
        self.updateGeometry()
        self.update()

    def set_marks(self, marks: dict[int, str]) -> None:
        self.marks = dict(marks)
        self.update()

    def _cell(self) -> tuple[float, float, float]:
        """(cell size, x offset, y offset) for the current widget size."""
        n = len(self.images)
        rows = max(1, -(-n // self.columns))
        cell = min((self.width() - self.gap * (self.columns + 1)) / self.columns, (self.height() - self.gap * (rows + 1)) / rows)
        cell = max(4.0, cell)
        used_w = self.columns * cell + (self.columns + 1) * self.gap
        used_h = rows * cell + (rows + 1) * self.gap
        return cell, (self.width() - used_w) / 2, (self.height() - used_h) / 2

    def cell_rect(self, i: int) -> QRectF:
        cell, x0, y0 = self._cell()
        r, c = divmod(i, self.columns)
        return QRectF(x0 + self.gap + c * (cell + self.gap), y0 + self.gap + r * (cell + self.gap), cell, cell)

    def index_at(self, point: QPointF) -> int:
        for i in range(len(self.images)):
            if self.cell_rect(i).contains(point):
                return i
        return -1

    def heightForWidth(self, width: int) -> int:
        rows = max(1, -(-len(self.images) // self.columns))
        cell = (width - self.gap * (self.columns + 1)) / self.columns
        return int(rows * cell + (rows + 1) * self.gap)

    def hasHeightForWidth(self) -> bool:
        return not self.selectable

    def sizeHint(self) -> QSize:
        return QSize(520, 520) if self.selectable else QSize(360, 60)

    def mousePressEvent(self, event) -> None:
        if not self.selectable or event.button() != Qt.MouseButton.LeftButton:
            return
        i = self.index_at(event.position())
        if i >= 0:
            self.clicked.emit(i)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        pal = self.palette()
        for i, image in enumerate(self.images):
            rect = self.cell_rect(i)
            painter.drawImage(rect, image)
            mark = self.marks.get(i)
            if mark:
                color = MARK_COLORS.get(mark, pal.color(QPalette.ColorRole.Highlight))
                painter.setPen(QPen(color, 4))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRect(rect.adjusted(-2, -2, 2, 2))
                badge = QRectF(rect.left(), rect.top(), 24, 22)
                painter.fillRect(badge, color)
                font = QFont(self.font())
                font.setBold(True)
                painter.setFont(font)
                painter.setPen(Qt.GlobalColor.white)
                painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, mark)


class GanPage(ModelPage[ImageGenerator]):
    title = "GAN"
    tasks = (ImageGenerator.task,)
    icon = QStyle.StandardPixmap.SP_DesktopIcon
    supports = frozenset({"run", "stop", "save"})
    run_label = "Regenerate"

    def build(self) -> QWidget:
        self.latents: np.ndarray | None = None
        self.samples: np.ndarray | None = None  # uint8 [n,H,W,C]
        self.frames: np.ndarray | None = None  # uint8 [STEPS,H,W,C]
        self.picks: list[int] = []  # [A] or [A, B]
        self._frames_for: tuple[int, ...] = ()  # the picks that self.frames interpolate

        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setValue(42)
        self.seed.setToolTip("The same seed gives the same samples")
        self.dice = QToolButton()
        self.dice.setText("Random")
        self.dice.setToolTip("New random seed, and regenerate")
        self.dice.clicked.connect(self.random_seed)
        self.count = QComboBox()
        for n in GRID_SIZES:
            self.count.addItem(f"{n} samples", n)
        self.count.setCurrentIndex(GRID_SIZES.index(16))
        self.regenerate_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserReload), "Regenerate")
        self.regenerate_button.setToolTip("Sample a new grid from this seed (Ctrl+Return)")
        self.regenerate_button.clicked.connect(self.run)
        self.save_grid_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Save Grid…")
        self.save_grid_button.setToolTip("Save the grid as PNG (Ctrl+S)")
        self.save_grid_button.clicked.connect(self.save)
        self.save_image_button = QPushButton("Save Image…")
        self.save_image_button.setToolTip("Save the image shown on the right as PNG")
        self.save_image_button.clicked.connect(self.save_image)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Seed"))
        bar.addWidget(self.seed)
        bar.addWidget(self.dice)
        bar.addWidget(self.count)
        bar.addWidget(self.regenerate_button)
        bar.addStretch(1)
        bar.addWidget(self.save_grid_button)
        bar.addWidget(self.save_image_button)

        self.grid = SampleGrid()
        self.grid.clicked.connect(self.pick)
        self.grid_hint = hint(PICK_HINT)

        # interpolation
        self.view_a = ImageView(minimum=72, smooth=True)
        self.view_b = ImageView(minimum=72, smooth=True)
        for view in (self.view_a, self.view_b):
            view.setFixedSize(96, 96)
        self.label_a = QLabel("<b style='color:#e67e22'>A</b>")
        self.label_b = QLabel("<b style='color:#8e44ad'>B</b>")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS - 1)
        self.slider.setEnabled(False)
        self.slider.setToolTip("Move from A to B")
        self.slider.valueChanged.connect(self._show_frame)
        ends = QHBoxLayout()
        col_a = QVBoxLayout()
        col_a.addWidget(self.label_a, 0, Qt.AlignmentFlag.AlignHCenter)
        col_a.addWidget(self.view_a)
        col_b = QVBoxLayout()
        col_b.addWidget(self.label_b, 0, Qt.AlignmentFlag.AlignHCenter)
        col_b.addWidget(self.view_b)
        ends.addLayout(col_a)
        ends.addWidget(self.slider, 1)
        ends.addLayout(col_b)
        self.frame_view = ImageView(minimum=200, smooth=True)
        self.frame_label = QLabel(" ")
        self.frame_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.strip = SampleGrid(selectable=False, gap=3)
        interp_box = QGroupBox("Interpolation")
        interp = QVBoxLayout(interp_box)
        interp.addLayout(ends)
        interp.addWidget(self.frame_view, 1)
        interp.addWidget(self.frame_label)
        interp.addWidget(self.strip)
        interp_box.setMinimumWidth(360)
        interp_box.setMaximumWidth(460)

        left = QVBoxLayout()
        left.addWidget(self.grid, 1)
        left.addWidget(self.grid_hint)
        main = QHBoxLayout()
        main.addLayout(left, 3)
        main.addWidget(interp_box, 2)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addLayout(main, 1)
        return body

    # ---- sampling

    def model_ready(self, model: ImageGenerator) -> None:
        self.run()

    def random_seed(self) -> None:
        self.seed.setValue(random.randint(0, MAX_SEED))
        self.run()

    def run(self) -> None:
        if self.model is None or self.busy:
            return
        model, n, seed = self.model, int(self.count.currentData()), self.seed.value()

        def sample(job) -> tuple[np.ndarray, np.ndarray]:
            z = np.asarray(model.sample_latents(n, seed), dtype=np.float32)
            return z, np.asarray(model.decode(z))

        self.start_job(
            sample,
            result=self._on_samples,
            error=lambda m: self.fail("Sampling failed", m),
            finished=self._after_job,
            name="sample",
        )

    def _on_samples(self, value: tuple[np.ndarray, np.ndarray]) -> None:
        self.latents, self.samples = value
        n = len(self.samples)
        columns = round(n**0.5)
        self.grid.set_images([to_qimage(img) for img in self.samples], columns)
        self.picks = []
        self._clear_interpolation()
        self._update_marks()
        h, w = self.samples.shape[1:3]
        self.grid_hint.setText(f"{n} samples of {w}×{h} from seed {self.seed.value()}. {PICK_HINT}")  # noqa: RUF001 (the multiplication sign is meant)

    # ---- picking and interpolating

    def pick(self, i: int) -> None:
        if self.samples is None or not 0 <= i < len(self.samples):
            return
        if i in self.picks:
            self.picks.remove(i)
        elif len(self.picks) < 2:
            self.picks.append(i)
        else:
            self.picks = [self.picks[1], i]
        self._update_marks()
        if len(self.picks) == 2:
            self.interpolate()
        else:
            self._clear_interpolation()

    def _update_marks(self) -> None:
        self.grid.set_marks({i: name for i, name in zip(self.picks, "AB", strict=False)})
        images = self.samples
        self.view_a.set_image(to_qimage(images[self.picks[0]]) if images is not None and self.picks else None)
        self.view_b.set_image(to_qimage(images[self.picks[1]]) if images is not None and len(self.picks) > 1 else None)
        if images is not None and len(self.picks) == 1:
            self.frame_view.set_image(to_qimage(images[self.picks[0]]))
            self.frame_label.setText(f"Sample {self.picks[0] + 1}: now pick B")
        self._changed()

    def _clear_interpolation(self) -> None:
        self.frames = None
        self._frames_for = ()
        self.slider.setEnabled(False)
        self.strip.set_images([], STRIP)
        if not self.picks:
            self.frame_view.set_image(None)
            self.frame_label.setText(" ")

    def interpolate(self) -> None:
        if self.model is None or self.latents is None or len(self.picks) != 2:
            return
        if self.busy:
            return  # _after_job starts it once the running job is done
        model, picks = self.model, tuple(self.picks)
        za, zb = self.latents[picks[0]].copy(), self.latents[picks[1]].copy()
        self.start_job(
            lambda job: np.asarray(model.interpolate(za, zb, STEPS)),
            result=lambda frames: self._on_frames(frames, picks),
            error=lambda m: self.fail("Interpolation failed", m),
            finished=self._after_job,
            name="interpolate",
        )

    def _after_job(self) -> None:
        if len(self.picks) == 2 and tuple(self.picks) != self._frames_for:
            self.interpolate()

    def _on_frames(self, frames: np.ndarray, picks: tuple[int, ...]) -> None:
        if tuple(self.picks) != picks:
            return  # the picks changed meanwhile
        self.frames = frames
        self._frames_for = picks
        self.slider.setEnabled(True)
        shown = np.linspace(0, len(frames) - 1, STRIP).round().astype(int)
        self.strip.set_images([to_qimage(frames[i]) for i in shown], STRIP)
        if self.slider.value() != len(frames) // 2:
            self.slider.setValue(len(frames) // 2)
        else:
            self._show_frame(self.slider.value())
        self._changed()

    def _show_frame(self, i: int) -> None:
        if self.frames is None or not 0 <= i < len(self.frames):
            return
        self.frame_view.set_image(to_qimage(self.frames[i]))
        t = i / max(1, len(self.frames) - 1)
        self.frame_label.setText(f"{100 * (1 - t):.0f} % A · {100 * t:.0f} % B")

    def current_image(self) -> np.ndarray | None:
        """The image on the right: the interpolation frame, else the picked sample."""
        if self.frames is not None:
            return self.frames[self.slider.value()]
        if self.samples is not None and self.picks:
            return self.samples[self.picks[0]]
        return None

    # ---- controls and saving

    def update_controls(self) -> None:
        if not hasattr(self, "regenerate_button"):
            return
        ready = self.model is not None and not self.busy
        self.regenerate_button.setEnabled(ready)
        self.dice.setEnabled(ready)
        self.save_grid_button.setEnabled(self.samples is not None)
        self.save_image_button.setEnabled(self.current_image() is not None)

    def can(self, action: str) -> bool:
        if action == "save":
            return self.samples is not None
        return super().can(action)

    def _ask_png(self, title: str, name: str) -> Path | None:
        start = Path(str(self.ctx.settings.value("gan/last_dir", str(Path.home())))) / name
        path, _ = QFileDialog.getSaveFileName(self, title, str(start), "PNG image (*.png)")
        return Path(path) if path else None

    def save(self) -> None:
        if self.samples is None:
            return
        path = self._ask_png("Save the grid", f"gan-seed{self.seed.value()}.png")
        if path:
            self._save(self.save_grid, path)

    def save_image(self) -> None:
        if self.current_image() is None:
            return
        path = self._ask_png("Save the image", "gan-sample.png")
        if path:
            self._save(self.save_current, path)

    def _save(self, writer, path: Path) -> None:
        try:
            saved = writer(path)
        except OSError as exc:
            self.fail("Cannot save the image", str(exc))
            return
        self.ctx.settings.setValue("gan/last_dir", str(saved.parent))
        self.show_message(f"Saved {saved}")

    def save_grid(self, path: Path | str) -> Path:
        if self.samples is None:
            raise OSError(f"{path}: no samples to save yet")
        columns = round(len(self.samples) ** 0.5)
        return self._write_png(tile(self.samples, columns), path)

    def save_current(self, path: Path | str) -> Path:
        return self._write_png(self.current_image(), path)

    @staticmethod
    def _write_png(pixels: np.ndarray | None, path: Path | str) -> Path:
        if pixels is None:
            raise OSError(f"{path}: no image to save yet")
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        if not to_qimage(pixels).save(str(path)):
            raise OSError(f"{path}: could not write the PNG file")
        return path
