"""Image classification: open or drop images or folders; each image with its top-5 labels."""

from __future__ import annotations

import csv
import itertools
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QImage, QImageReader, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from zoo_gui.errors import describe_error
from zoo_gui.inside import InsidePanel, InsideView, look_inside
from zoo_gui.pages.base import ModelPage
from zoo_gui.widgets import ERROR_COLOR, ROOT_INDEX, bars_height, paint_bars
from zoo_gui.workers import Job
from zoo_runtime import ImageClassifier, Prediction

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
TOP_K = 5
THUMB = 84
CHUNK = 16


@dataclass
class ImageResult:
    id: int
    path: Path
    thumbnail: QImage | None = None
    predictions: list[Prediction] | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.predictions is not None or self.error is not None


def expand_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files as given (so a non-image file is reported, not skipped); folders become the
    image files under them, sorted."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found: list[Path] = []
            for dirpath, dirnames, files in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found.extend(Path(dirpath) / f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES)
            out.extend(sorted(found))
        else:
            out.append(p)
    return out


def thumbnail(path: Path) -> QImage | None:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    image = reader.read()
    if image.isNull():
        return None
    return image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


ResultRow = tuple[int, QImage | None, list[Prediction] | None, str | None]  # id, thumbnail, predictions, error


def classify_paths(job: Job, model: ImageClassifier, items: Sequence[tuple[int, Path]]) -> int:
    """On a worker: classify in chunks, one image at a time when a chunk fails, so one
    bad file costs only its own row. Sends lists of (id, thumbnail, predictions, error)."""
    done = 0
    for start in range(0, len(items), CHUNK):
        if job.stopped:
            break
        chunk = items[start : start + CHUNK]
        thumbs = [thumbnail(path) for _id, path in chunk]
        rows: list[ResultRow]
        try:
            results = model.classify([str(path) for _id, path in chunk], top_k=TOP_K)
            rows = [(i, t, list(r), None) for (i, _p), t, r in zip(chunk, thumbs, results, strict=True)]
        except Exception:
            rows = []
            for (i, path), t in zip(chunk, thumbs, strict=True):
                try:
                    rows.append((i, t, list(model.classify([str(path)], top_k=TOP_K)[0]), None))
                except Exception as exc:
                    rows.append((i, t, None, describe_error(exc)))
        done += len(rows)
        job.progress.emit(rows)
    return done


def _named(item: ImageResult) -> str:
    """The error, prefixed with the file name unless it already names the file."""
    error = item.error or ""
    return error if item.path.name in error else f"{item.path.name}: {error}"


class ResultsModel(QAbstractListModel):
    ResultRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self) -> None:
        super().__init__()
        self.items: list[ImageResult] = []
        self._ids = itertools.count()
        self._rows: dict[int, int] = {}
        self.running = False

    def set_running(self, running: bool) -> None:
        self.running = running
        if self.items:
            self.dataChanged.emit(self.index(0), self.index(len(self.items) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = ROOT_INDEX) -> int:
        return 0 if parent.isValid() else len(self.items)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self.items[index.row()]
        if role == self.ResultRole:
            return item
        if role == Qt.ItemDataRole.DisplayRole:
            return item.path.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{item.path}\n{item.error}" if item.error else str(item.path)
        return None

    def add(self, paths: Iterable[Path]) -> list[ImageResult]:
        new = [ImageResult(next(self._ids), Path(p)) for p in paths]
        if new:
            self.beginInsertRows(QModelIndex(), len(self.items), len(self.items) + len(new) - 1)
            for item in new:
                self._rows[item.id] = len(self.items)
                self.items.append(item)
            self.endInsertRows()
        return new

    def clear(self) -> None:
        self.beginResetModel()
        self.items.clear()
        self._rows.clear()
        self.endResetModel()

    def reset_results(self) -> None:
        for item in self.items:
            item.predictions = item.error = None
        if self.items:
            self.dataChanged.emit(self.index(0), self.index(len(self.items) - 1))

    def update(self, rows: Iterable[tuple[int, QImage | None, list | None, str | None]]) -> None:
        for item_id, thumb, predictions, error in rows:
            row = self._rows.get(item_id)
            if row is None:
                continue  # cleared meanwhile
            item = self.items[row]
            item.thumbnail = thumb if thumb is not None else item.thumbnail
            item.predictions, item.error = predictions, error
            index = self.index(row)
            self.dataChanged.emit(index, index)


class ResultDelegate(QStyledItemDelegate):
    """A card: thumbnail, file name, top-5 probability bars (or the error)."""

    PAD = 10

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.width = 460  # set by ResultsView to fill its rows

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        line = QFontMetrics(option.font).height()
        return QSize(self.width, max(THUMB, line + 6 + bars_height(TOP_K)) + 2 * self.PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        item: ImageResult = index.data(ResultsModel.ResultRole)
        palette = option.palette
        painter.save()
        card = QRectF(option.rect).adjusted(4, 4, -4, -4)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        border = palette.color(QPalette.ColorRole.Highlight) if selected else palette.color(QPalette.ColorRole.Mid)
        painter.setPen(QPen(border, 2 if selected else 1))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(card, 6, 6)

        inner = card.adjusted(self.PAD - 4, self.PAD - 4, -(self.PAD - 4), -(self.PAD - 4))
        thumb_rect = QRectF(inner.left(), inner.top(), THUMB, THUMB)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Midlight)))
        painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
        painter.drawRect(thumb_rect)
        if item.thumbnail is not None and not item.thumbnail.isNull():
            size = item.thumbnail.size().scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio)
            target = QRectF(
                thumb_rect.left() + (THUMB - size.width()) / 2,
                thumb_rect.top() + (THUMB - size.height()) / 2,
                size.width(),
                size.height(),
            )
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            painter.drawImage(target, item.thumbnail)
        elif item.done:
            icon = option.widget.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning) if option.widget else None
            if icon is not None:
                icon.paint(painter, thumb_rect.adjusted(22, 22, -22, -22).toRect())

        text_left = thumb_rect.right() + 12
        text_rect = QRectF(text_left, inner.top(), inner.right() - text_left, inner.height())
        font = QFont(option.font)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        line = QFontMetrics(font).height()
        name = QFontMetrics(font).elidedText(item.path.name, Qt.TextElideMode.ElideMiddle, int(text_rect.width()))
        painter.drawText(QRectF(text_rect.left(), text_rect.top(), text_rect.width(), line), Qt.AlignmentFlag.AlignLeft, name)
        painter.setFont(option.font)
        body = QRectF(text_rect.left(), text_rect.top() + line + 6, text_rect.width(), text_rect.height() - line - 6)
        if item.error:
            painter.setPen(ERROR_COLOR)
            painter.drawText(body, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap, item.error)
        elif item.predictions is not None:
            bars = [(p.label, p.probability) for p in item.predictions]
            paint_bars(painter, body, bars, palette, label_width=min(150.0, body.width() * 0.42))
        else:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            waiting = "Classifying…" if cast(ResultsModel, index.model()).running else "Not classified yet: press Ctrl+Return"
            painter.drawText(body, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, waiting)
        painter.restore()


class ResultsView(QListView):
    """Cards in as many columns as fit, each stretched to share the row."""

    MIN_CARD = 420

    def __init__(self) -> None:
        super().__init__()
        self.delegate = ResultDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setSpacing(2)
        self.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.setAcceptDrops(False)  # the page takes the drops

    def resizeEvent(self, event) -> None:
        # Room for the scroll bar even while it is hidden, so that its appearing does not
        # push the last column onto a new row.
        scrollbar = 0 if self.verticalScrollBar().isVisible() else self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        available = self.viewport().width() - scrollbar - 6
        columns = max(1, available // self.MIN_CARD)
        width = max(self.MIN_CARD - 40, available // columns - 2 * self.spacing() - 2)
        if width != self.delegate.width:
            self.delegate.width = width
            self.doItemsLayout()
        super().resizeEvent(event)


class DropHint(QLabel):
    def __init__(self) -> None:
        super().__init__(
            "<h2>Drop images or a folder here</h2>"
            "<p>or use <b>Add Images…</b> (Ctrl+O) / <b>Add Folder…</b>.<br>"
            "Each image is shown with the model's five most likely labels.</p>"
        )
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setStyleSheet("QLabel { border: 2px dashed palette(mid); border-radius: 12px; color: palette(placeholder-text); }")


class ClassifyPage(ModelPage[ImageClassifier]):
    title = "Classify"
    tasks = (ImageClassifier.task,)
    icon = QStyle.StandardPixmap.SP_FileDialogContentsView
    supports = frozenset({"open", "run", "stop", "save"})
    run_label = "Classify Again"

    def build(self) -> QWidget:
        self.results = ResultsModel()
        self._started = 0.0

        style = self.style()
        self.add_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_FileIcon), "Add Images…")
        self.add_button.setToolTip("Open image files (Ctrl+O)")
        self.add_button.clicked.connect(self.open_files)
        self.folder_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DirIcon), "Add Folder…")
        self.folder_button.clicked.connect(self.open_folder)
        self.clear_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogResetButton), "Clear")
        self.clear_button.clicked.connect(self.clear)
        self.export_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Export CSV…")
        self.export_button.setToolTip("Save every image's top-5 labels as CSV (Ctrl+S)")
        self.export_button.clicked.connect(self.save)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setFormat("%v of %m")
        self.progress.hide()
        self.summary = QLabel()

        bar = QHBoxLayout()
        for w in (self.add_button, self.folder_button, self.clear_button, self.export_button):
            bar.addWidget(w)
        bar.addSpacing(12)
        bar.addWidget(self.progress)
        bar.addWidget(self.summary, 1)
        self.inside_button = QPushButton("Inside")
        self.inside_button.setCheckable(True)
        self.inside_button.setToolTip("Show the selected image's feature maps per layer and its saliency for a class")
        self.inside_button.toggled.connect(self.show_inside)
        bar.addWidget(self.inside_button)

        self.view = ResultsView()
        self.view.setModel(self.results)

        self.stack = QStackedWidget()
        self.drop_hint = DropHint()
        self.stack.addWidget(self.drop_hint)
        self.stack.addWidget(self.view)
        self.setAcceptDrops(True)
        self.view.selectionModel().currentChanged.connect(lambda *_: self.refresh_inside())

        self.inside = InsidePanel()
        self.inside.wanted.connect(lambda class_index: self.refresh_inside(class_index))
        self.inside.save_requested.connect(self.save_inside)
        self.inside.hide()
        self._inside_request = 0
        splitter = QSplitter()
        splitter.addWidget(self.stack)
        splitter.addWidget(self.inside)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)
        return body

    # ---- adding images

    def open_files(self) -> None:
        filters = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ");;All files (*)"
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", self._last_dir(), filters)
        if files:
            self._remember_dir(Path(files[0]).parent)
            self.add_paths(files)

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", self._last_dir())
        if folder:
            self._remember_dir(Path(folder))
            self.add_paths([folder])

    def _last_dir(self) -> str:
        return str(self.ctx.settings.value("classify/last_dir", str(Path.home())))

    def _remember_dir(self, folder: Path) -> None:
        self.ctx.settings.setValue("classify/last_dir", str(folder))

    def add_paths(self, paths: Iterable[Path | str]) -> int:
        """Add files and folders; returns how many images were queued."""
        files = expand_paths(paths)
        if not files:
            self.show_message("No image files found there.", error=True)
            return 0
        self.results.add(files)
        self.stack.setCurrentWidget(self.view)
        self._classify_pending()
        self._changed()
        return len(files)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    # ---- classifying

    def model_ready(self, model: ImageClassifier) -> None:
        self.inside.set_labels([str(label) for label in model.labels or []])
        self.inside.clear()
        self.progress.hide()
        self.results.set_running(False)
        if self.results.items:
            self.results.reset_results()
            self._classify_pending()

    def run(self) -> None:
        """Classify every image again with the current model."""
        if self.model is None or self.busy:
            return
        if not self.results.items:
            self.show_message("Add images first: drop them here or press Ctrl+O.")
            return
        self.results.reset_results()
        self._classify_pending()

    def _classify_pending(self) -> None:
        """Classify the images without a result (one job at a time; the next starts when it ends)."""
        if self.model is None or self.busy:
            return
        todo = [(item.id, item.path) for item in self.results.items if not item.done]
        if not todo:
            return
        model = self.model
        self._started = time.perf_counter()
        self.progress.setRange(0, len(todo))
        self.progress.setValue(0)
        self.progress.show()
        self.summary.setText(f"Classifying {len(todo)} image{'s' if len(todo) != 1 else ''}…")
        self.results.set_running(True)
        job = self.start_job(
            lambda job: classify_paths(job, model, todo),
            progress=self._on_rows,
            finished=lambda: self._on_finished(job, {i for i, _p in todo}),
            name="classify",
        )

    def _on_rows(self, rows: list) -> None:
        self.results.update(rows)
        self.progress.setValue(self.progress.value() + len(rows))
        if self.inside.view is None:
            self.refresh_inside()  # the selected image may have just got its predictions

    def _on_finished(self, job: Job, ids: set[int]) -> None:
        self.progress.hide()
        self.results.set_running(False)
        elapsed = time.perf_counter() - self._started
        items = self.results.items
        failed = [item for item in items if item.error and item.id in ids]  # new failures only
        done = sum(1 for item in items if item.predictions is not None)
        text = f"{done} image{'s' if done != 1 else ''} classified in {elapsed:.2f} s"
        unreadable = sum(1 for item in items if item.error)
        if unreadable:
            text += f", {unreadable} could not be read"
        if job.stopped:
            text += " (stopped)"
        self.summary.setText(text)
        if failed:
            lines = "\n".join(_named(item) for item in failed[:8])
            more = f"\n… and {len(failed) - 8} more" if len(failed) > 8 else ""
            self.fail(f"{len(failed)} of {len(ids)} files could not be classified", lines + more)
        else:
            self.show_message("")
        if not job.stopped:
            self._classify_pending()  # images added while this job ran

    # ---- looking inside

    def show_inside(self, shown: bool) -> None:
        self.inside.setVisible(shown)
        if shown:
            if not self.view.currentIndex().isValid() and self.results.items:
                self.view.setCurrentIndex(self.results.index(0))
            self.refresh_inside()

    def selected_item(self) -> ImageResult | None:
        index = self.view.currentIndex()
        return self.results.items[index.row()] if index.isValid() and index.row() < len(self.results.items) else None

    def refresh_inside(self, class_index: int | None = None) -> None:
        """Compute the Inside view of the selected image on a worker; a newer request or another model drops it."""
        if not self.inside.isVisible() or self.model is None:
            return
        item = self.selected_item()
        if item is None or item.predictions is None:
            waiting = "Select a classified image to see inside the model."
            self.inside.clear(item.error if item is not None and item.error else waiting)
            return
        if class_index is None:
            class_index = item.predictions[0].index
        self._inside_request += 1
        request, model, path = self._inside_request, self.model, item.path

        def current() -> bool:
            return request == self._inside_request and self.model is model

        self.inside.set_waiting(f"Looking inside for {path.name}…")
        self.ctx.runner.submit(
            lambda _job: look_inside(model, path, class_index),
            name="inside",
            result=lambda view: self._show_inside(view) if current() else None,
            error=lambda message: self.inside.clear(message) if current() else None,
        )

    def _show_inside(self, view: InsideView) -> None:
        self.inside.show_view(view)

    def save_inside(self) -> None:
        if self.inside.view is None:
            return
        default = Path(self._last_dir()) / f"{self.inside.view.path.stem}-inside.png"
        path, _ = QFileDialog.getSaveFileName(self, "Save the Inside view as PNG", str(default), "PNG (*.png)")
        if not path:
            return
        try:
            saved = self.inside.save_png(path)
        except OSError as exc:
            self.fail("Cannot save the PNG", str(exc))
            return
        self.show_message(f"Saved {saved}")

    def clear(self) -> None:
        self.inside.clear()
        if self.busy:
            self.stop()
        self.results.clear()
        self.summary.clear()
        self.show_message("")
        self.stack.setCurrentWidget(self.drop_hint)
        self._changed()

    # ---- export

    def can(self, action: str) -> bool:
        if action == "save":
            return any(item.predictions is not None for item in self.results.items)
        if action == "run":
            return super().can(action) and bool(self.results.items)
        return super().can(action)

    def update_controls(self) -> None:
        if not hasattr(self, "export_button"):
            return
        self.export_button.setEnabled(self.can("save") and not self.busy)

    def save(self) -> None:
        if not self.can("save"):
            self.show_message("Nothing to export yet.")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export results as CSV", str(Path(self._last_dir()) / "predictions.csv"), "CSV (*.csv)"
        )
        if not path:
            return
        try:
            self.export_csv(path)
        except OSError as exc:
            self.fail("Cannot save the CSV", f"{path}: {exc.strerror or exc}")

    def export_csv(self, path: Path | str) -> Path:
        """Write one row per image: its top-5 labels, indices and probabilities, or its error."""
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_suffix(".csv")
        header = ["file"]
        for k in range(1, TOP_K + 1):
            header += [f"top{k}_label", f"top{k}_index", f"top{k}_probability"]
        header.append("error")
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for item in self.results.items:
                row: list[Any] = [str(item.path)]
                preds = item.predictions or []
                for k in range(TOP_K):
                    if k < len(preds):
                        p = preds[k]
                        row += [p.label, int(p.index), f"{float(p.probability):.6f}"]
                    else:
                        row += ["", "", ""]
                row.append(item.error or "")
                writer.writerow(row)
        self.show_message(f"Saved {len(self.results.items)} rows to {path}")
        return path
