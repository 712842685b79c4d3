"""Background work for the app: every model call runs here, never on the UI thread.

A :class:`Job` wraps one function ``fn(job) -> result``. It runs on a
:class:`QThreadPool` thread and talks back only through its signals
(``result``, ``progress``, ``error``, ``finished``), which Qt delivers to the
UI thread as queued calls. A job is stopped through an atomic flag that the
function checks between steps (:func:`stream` does this between generated
pieces), so Stop takes effect after at most one step.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from zoo_gui.errors import describe_error
from zoo_runtime import BundleError

log = logging.getLogger(__name__)


class StopFlag:
    """A thread-safe, set-once stop request."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class Job(QObject):
    """One unit of background work. Create it on the UI thread; :class:`Runner` starts it."""

    result = Signal(object)
    progress = Signal(object)
    error = Signal(str)
    finished = Signal()

    def __init__(self, fn: Callable[[Job], Any], name: str = "") -> None:
        super().__init__()
        self._fn = fn
        self.name = name or getattr(fn, "__name__", "job")
        self.stop_flag = StopFlag()

    def stop(self) -> None:
        self.stop_flag.set()

    @property
    def stopped(self) -> bool:
        return self.stop_flag.is_set()

    def run(self) -> None:  # on a pool thread
        try:
            value = self._fn(self)
        except Exception as exc:  # every failure becomes a message, never a dead thread
            if not isinstance(exc, BundleError):  # a user's problem needs no traceback
                log.debug("job %s failed:\n%s", self.name, traceback.format_exc())
            self.error.emit(describe_error(exc))
        else:
            self.result.emit(value)
        finally:
            self.finished.emit()


class Runner(QObject):
    """Starts jobs on its own thread pool and keeps them alive until they finish."""

    busy_changed = Signal(bool)

    def __init__(self, max_threads: int = 3, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._jobs: set[Job] = set()

    def submit(
        self,
        fn: Callable[[Job], Any],
        *,
        name: str = "",
        result: Callable[[Any], None] | None = None,
        progress: Callable[[Any], None] | None = None,
        error: Callable[[str], None] | None = None,
        finished: Callable[[], None] | None = None,
    ) -> Job:
        job = Job(fn, name)
        for signal, slot in ((job.result, result), (job.progress, progress), (job.error, error), (job.finished, finished)):
            if slot is not None:
                signal.connect(slot)
        job.finished.connect(lambda job=job: self._done(job))
        was_idle = not self._jobs
        self._jobs.add(job)
        if was_idle:
            self.busy_changed.emit(True)
        # The pool holds the bound method (and so the job) until run() has returned.
        self.pool.start(job.run)
        return job

    def _done(self, job: Job) -> None:
        self._jobs.discard(job)
        if not self._jobs:
            self.busy_changed.emit(False)

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def stop_all(self) -> None:
        for job in list(self._jobs):
            job.stop()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop every job and wait for the threads; True when they all ended in time."""
        self.stop_all()
        return self.pool.waitForDone(timeout_ms)


@dataclass(frozen=True)
class Chunk:
    """A batch of streamed text: ``text`` is new, ``pieces`` and ``elapsed`` are running totals."""

    text: str
    pieces: int
    elapsed: float


@dataclass(frozen=True)
class StreamSummary:
    pieces: int
    elapsed: float
    stopped: bool

    @property
    def rate(self) -> float:
        return self.pieces / self.elapsed if self.elapsed > 0 else 0.0


def stream(job: Job, pieces: Iterable[str], interval: float = 0.04) -> StreamSummary:
    """Pull ``pieces`` on the worker thread, checking the stop flag between pieces, and send
    them on as :class:`Chunk` progress at most every ``interval`` seconds (so a fast model
    cannot flood the UI thread with one queued call per character)."""
    iterator = iter(pieces)
    buffer: list[str] = []
    count = 0
    start = last = time.perf_counter()
    stopped = job.stopped
    try:
        while not stopped:
            try:
                piece = next(iterator)
            except StopIteration:
                break
            count += 1
            buffer.append(piece)
            now = time.perf_counter()
            if now - last >= interval:
                job.progress.emit(Chunk("".join(buffer), count, now - start))
                buffer.clear()
                last = now
            stopped = job.stopped
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    elapsed = time.perf_counter() - start
    if buffer:
        job.progress.emit(Chunk("".join(buffer), count, elapsed))
    return StreamSummary(count, elapsed, stopped)
