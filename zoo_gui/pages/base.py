"""What every task page shares: a model picker, loading on a worker, one job at a time,
the window's actions (open, run, stop, save) and error reporting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QStyle, QVBoxLayout, QWidget

from zoo_gui.catalog import BundleInfo, bundle_key
from zoo_gui.formatting import key_metric, metric_name, short_provider, task_title
from zoo_gui.store import ModelStore
from zoo_gui.widgets import ERROR_COLOR, busy_bar, heading, hint
from zoo_gui.workers import Job, Runner
from zoo_runtime import BundleModel

ModelT = TypeVar("ModelT", bound=BundleModel)  # the runtime class(es) a page drives


@dataclass
class AppContext:
    """The window's services that pages use."""

    runner: Runner
    store: ModelStore
    settings: QSettings
    report_error: Callable[[str, str], None]  # (title, message): status line + message box
    show_status: Callable[[str], None]


class ModelPage(QWidget, Generic[ModelT]):
    """Base of the task pages. Subclasses name the runtime class they drive (``ModelPage[TextGenerator]``),
    set the class attributes and implement :meth:`build`, and the actions they support (:attr:`supports`)."""

    title: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ()
    icon: ClassVar[QStyle.StandardPixmap] = QStyle.StandardPixmap.SP_FileIcon
    blurb: ClassVar[str] = ""
    supports: ClassVar[frozenset[str]] = frozenset({"run", "stop"})  # of open, run, stop, save
    run_label: ClassVar[str] = "Run"

    state_changed = Signal()  # busy / model / results changed: the window updates its actions
    model_changed = Signal(object)  # the loaded model (or None)

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.model: ModelT | None = None
        self.job: Job | None = None
        self._bundles: list[BundleInfo] = []
        self._current_key: str | None = None

        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(260)
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_combo.currentIndexChanged.connect(self._on_bundle_chosen)
        self.model_info = hint("")
        self.model_info.setWordWrap(False)
        self.load_bar = busy_bar(self, 90)

        top = QHBoxLayout()
        top.addWidget(heading(self.title))
        top.addSpacing(18)
        top.addWidget(QLabel("Model:"))
        top.addWidget(self.model_combo)
        top.addWidget(self.load_bar)
        top.addWidget(self.model_info, 1)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        if self.blurb:
            layout.addWidget(hint(self.blurb))
        layout.addWidget(self.message)
        layout.addWidget(self.build(), 1)

        ctx.store.loaded.connect(self._on_loaded)
        ctx.store.failed.connect(self._on_failed)
        ctx.store.reset.connect(self._on_store_reset)
        self.update_controls()

    # ----------------------------------------------------------- for subclasses

    def build(self) -> QWidget:
        raise NotImplementedError

    def model_ready(self, model: ModelT) -> None:
        """A model was loaded and chosen (fill defaults from its manifest)."""

    def update_controls(self) -> None:
        """Enable and disable widgets from ``self.model`` and ``self.busy``."""

    def open_files(self) -> None: ...

    def run(self) -> None: ...

    def save(self) -> None: ...

    def can(self, action: str) -> bool:
        """Whether the window's action is available now."""
        if action not in self.supports:
            return False
        if action == "stop":
            return self.busy
        if action == "run":
            return self.model is not None and not self.busy
        return True

    def stop(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.show_message("Stopping…")

    # ----------------------------------------------------------- jobs

    @property
    def busy(self) -> bool:
        return self.job is not None

    def start_job(
        self,
        fn: Callable[[Job], Any],
        *,
        result: Callable[[Any], None] | None = None,
        progress: Callable[[Any], None] | None = None,
        error: Callable[[str], None] | None = None,
        finished: Callable[[], None] | None = None,
        name: str = "",
    ) -> Job:
        """Run ``fn`` on a worker; one job per page at a time. The callbacks run on the UI
        thread, and only while the page still has the model the job started with: a job
        outlived by a model switch is dropped, and the new model's ``model_ready`` follows."""
        model = self.model

        def current() -> bool:
            return self.model is model

        def guarded(slot: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
            return None if slot is None else (lambda value: slot(value) if current() else None)

        def failed(message: str) -> None:
            if not current():
                return
            if error is not None:
                error(message)
            else:
                self.fail(f"{self.title} failed", message)

        def done() -> None:
            self.job = None
            if current():
                if finished is not None:
                    finished()
            elif self.model is not None:
                self.model_ready(self.model)  # deferred by _set_model while this job ran
            self._changed()

        self.job = self.ctx.runner.submit(
            fn, name=name or self.title, result=guarded(result), progress=guarded(progress), error=failed, finished=done
        )
        self._changed()
        return self.job

    def fail(self, title: str, message: str) -> None:
        """Tell the user: a red line on the page, the status bar and a message box."""
        self.show_message(message, error=True)
        self.ctx.report_error(title, message)

    def show_message(self, text: str, *, error: bool = False) -> None:
        """An error stays on the page in red until the next action; other news goes to the
        status bar (when this page is the one shown). An empty text clears the error line."""
        if error and text:
            self.message.setStyleSheet(f"color: {ERROR_COLOR.name()};")
            self.message.setText("⚠ " + text)
            self.message.show()
            return
        self.message.hide()
        if text and self.isVisible():
            self.ctx.show_status(text)

    def _changed(self) -> None:
        self.update_controls()
        self.state_changed.emit()

    # ----------------------------------------------------------- bundles and models

    def set_bundles(self, infos: list[BundleInfo]) -> None:
        """Offer the library's usable bundles of this page's tasks."""
        mine = [i for i in infos if i.usable and i.task in self.tasks]
        self._bundles = mine
        keep = self._current_key
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for info in mine:
            self.model_combo.addItem(info.label(), info.key)
            self.model_combo.setItemData(self.model_combo.count() - 1, str(info.path), Qt.ItemDataRole.ToolTipRole)
        if not mine:
            self.model_combo.addItem("No bundle for this task", None)
        self.model_combo.setEnabled(bool(mine))
        index = self.model_combo.findData(keep) if keep else -1
        self.model_combo.setCurrentIndex(max(index, 0))
        self.model_combo.blockSignals(False)
        if not mine:
            self._current_key = None
            self._set_model(None)
            names = " or ".join(task_title(t).lower() for t in self.tasks)
            self.model_info.setText(f"No {names} bundle yet: use Open Folder… in the Library.")
        elif self.model_combo.currentData() != keep or self.model is None:
            self._on_bundle_chosen()

    def bundles(self) -> list[BundleInfo]:
        return list(self._bundles)

    def select_bundle(self, key: str) -> bool:
        """Choose a bundle (loading it, or trying again after a failed load)."""
        key = bundle_key(key)
        index = self.model_combo.findData(key)
        if index < 0:
            return False
        self.model_combo.blockSignals(True)
        self.model_combo.setCurrentIndex(index)
        self.model_combo.blockSignals(False)
        if key != self._current_key or (self.model is None and not self.ctx.store.is_loading(key)):
            self._on_bundle_chosen()
        return True

    def current_info(self) -> BundleInfo | None:
        for info in self._bundles:
            if info.key == self._current_key:
                return info
        return None

    def _on_bundle_chosen(self, *_: Any) -> None:
        key = self.model_combo.currentData()
        if key is None:
            return
        if self.busy:
            self.stop()
        self._current_key = key
        self._set_model(None)
        model = self.ctx.store.request(key)
        if model is not None:
            self._set_model(self._own(model))
        else:
            self.load_bar.show()
            self.model_info.setText("Loading…")

    def _on_loaded(self, key: str, model: BundleModel) -> None:
        if key == self._current_key and self.model is not model:
            self._set_model(self._own(model))

    @staticmethod
    def _own(model: BundleModel) -> ModelT:
        """The store's model as this page's kind: the page asks only for bundles of its ``tasks``,
        and ``zoo_runtime.load`` returns the task's class."""
        return cast(ModelT, model)

    def _on_failed(self, key: str, message: str) -> None:
        if key != self._current_key:
            return
        self.load_bar.hide()
        self.model_info.setText("Could not be loaded")
        if self.isVisible():
            self.fail("Cannot load the model", message)
        else:
            self.show_message(message, error=True)

    def _on_store_reset(self) -> None:
        self._set_model(None)
        if self._current_key:
            self._on_bundle_chosen()

    def _set_model(self, model: ModelT | None) -> None:
        self.model = model
        self.load_bar.hide()
        if model is not None:
            self.show_message("")
            self.model_info.setText(self.describe_model(model))
            if not self.busy:  # else when the running job ends (see start_job)
                self.model_ready(model)
        self.model_changed.emit(model)
        self._changed()

    def describe_model(self, model: ModelT) -> str:
        parts = []
        metric = key_metric(model.metrics)
        if metric:
            parts.append(f"{metric_name(metric[0])} {metric[1]}")
        parts.append(f"runs on {short_provider(model.provider)}")
        return " · ".join(parts)

    def provider_text(self) -> tuple[str, str | None]:
        """(provider, fallback note) of the page's model, for the status bar."""
        if self.model is None:
            return "", None
        return short_provider(self.model.provider), self.model.provider_note
