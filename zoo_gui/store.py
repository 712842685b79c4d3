"""The loaded models, a service every page uses.

:class:`ModelStore` loads bundles with ``zoo_runtime.load`` on worker threads and caches them;
the library preloads each listed bundle so it can show the provider it really runs on (and a
bundle that fails verification shows as an error at once).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal

import zoo_runtime
from zoo_gui.catalog import bundle_key
from zoo_gui.workers import Job, Runner
from zoo_runtime import BundleModel


class ModelStore(QObject):
    """Loads bundles on worker threads and keeps the loaded models.

    ``request(path)`` returns the model when it is already loaded, else starts a load
    and returns None; ``loaded``/``failed`` follow. ``preload(paths)`` loads one
    bundle after another in the background."""

    loaded = Signal(str, object)  # key, BundleModel
    failed = Signal(str, str)  # key, message
    started = Signal(str)  # key
    reset = Signal()  # device changed: every model must be requested again

    def __init__(
        self,
        runner: Runner,
        device: str = "auto",
        threads: int | None = None,
        parent: QObject | None = None,
        trusted_keys: Sequence[Path] = (),
    ):
        super().__init__(parent)
        self.runner = runner
        self.device = device
        self.threads = threads
        self.trusted_keys = list(trusted_keys)  # when set, only bundles signed by one of these keys load
        self._models: dict[str, BundleModel] = {}
        self._errors: dict[str, str] = {}
        self._pending: dict[str, Job] = {}
        self._queue: list[str] = []

    def get(self, path: Path | str) -> BundleModel | None:
        return self._models.get(bundle_key(path))

    def error(self, path: Path | str) -> str | None:
        return self._errors.get(bundle_key(path))

    def is_loading(self, path: Path | str) -> bool:
        return bundle_key(path) in self._pending

    def request(self, path: Path | str) -> BundleModel | None:
        """The loaded model, or None while a load runs (a bundle that failed before is tried again)."""
        key = bundle_key(path)
        if key in self._models:
            return self._models[key]
        if key not in self._pending:
            self._start(key)
        return None

    def preload(self, paths: Iterable[Path | str]) -> None:
        for path in paths:
            key = bundle_key(path)
            if key not in self._models and key not in self._errors and key not in self._queue:
                self._queue.append(key)
        self._next_preload()

    def _next_preload(self) -> None:
        if any(job.name == "preload" for job in self._pending.values()):
            return
        while self._queue:
            key = self._queue.pop(0)
            if key not in self._models and key not in self._errors and key not in self._pending:
                self._start(key, name="preload")
                return

    def _start(self, key: str, name: str = "load") -> None:
        device, threads, keys = self.device, self.threads, self.trusted_keys

        def load(job: Job) -> BundleModel:
            return zoo_runtime.load(key, device=device, threads=threads, trusted_keys=keys)

        def settle() -> bool:
            """True when this job is the load now pending for the key, which it then stops being.

            A load that forget() or set_device() let go of is stale and must not report. The entry
            goes as the outcome comes in, not at `finished`, which Qt may deliver later, after a
            request that would have waited on this job."""
            if self._pending.get(key) is not job:
                return False
            del self._pending[key]
            return True

        def done_ok(model: BundleModel) -> None:
            if settle():
                self._models[key] = model
                self._errors.pop(key, None)
                self.loaded.emit(key, model)

        def done_error(message: str) -> None:
            if settle():
                self._errors[key] = message
                self.failed.emit(key, message)

        def finished() -> None:
            settle()  # a job ended by a BaseException reports neither outcome; it must not stay pending
            self._next_preload()

        job = self.runner.submit(load, name=name, result=done_ok, error=done_error, finished=finished)
        self._pending[key] = job
        self.started.emit(key)

    def forget(self, path: Path | str) -> None:
        """Drop what is known of a bundle (it changed on disk): the next request loads it again."""
        key = bundle_key(path)
        self._models.pop(key, None)
        self._errors.pop(key, None)
        self._pending.pop(key, None)

    def set_device(self, device: str) -> None:
        if device == self.device:
            return
        self.device = device
        self._models.clear()
        self._errors.clear()
        self._pending.clear()
        self._queue.clear()
        self.reset.emit()
