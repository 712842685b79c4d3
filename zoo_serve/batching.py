"""Dynamic batching: requests for one graph that arrive within a short window run as one onnxruntime call.

Each request brings rows (the batch axis first). The worker takes requests in arrival order whose rows
have the same trailing shape and dtype (a sequence classifier batches sequences of one length only), up
to ``max_batch`` rows, runs them as one call in its own thread, and hands each caller its own rows
back. Requests that arrive while a batch runs wait for the next one; when the graph is busy (its last
batch held several requests, or left some waiting) the worker also waits up to ``window_s`` for more
before running a batch that is not full, while a lone request to an idle graph runs at once, so light
traffic pays no window. The queue is bounded: past
``max_queue`` waiting requests ``submit`` raises ``QueueFull`` at once rather than letting latency grow.
A caller that gives up (timeout, disconnect) leaves a cancelled future that the worker skips.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from zoo_serve.settings import BatchPolicy

RunFn = Callable[[np.ndarray], np.ndarray]  # rows [N, ...] -> output rows [N, ...]


class QueueFull(Exception):
    """The batch queue of a graph holds ``max_queue`` requests already."""


@dataclass
class _Waiting:
    rows: np.ndarray
    future: asyncio.Future[np.ndarray]

    @property
    def key(self) -> tuple[tuple[int, ...], str]:
        return self.rows.shape[1:], self.rows.dtype.str


class Batcher:
    """One graph's queue and the worker that drains it; ``batches`` counts onnxruntime calls made."""

    def __init__(
        self,
        run: RunFn,
        policy: BatchPolicy,
        max_queue: int,
        on_batch: Callable[[int], None] = lambda rows: None,
        on_queue: Callable[[int], None] = lambda depth: None,
    ):
        self._run = run
        self.policy = policy
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._on_queue = on_queue
        self._waiting: deque[_Waiting] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoo-serve-batch")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._busy = False  # the last batch held several requests, or left some waiting: worth waiting for more
        self.batches = 0

    async def submit(self, rows: np.ndarray, timeout_s: float) -> np.ndarray:
        """The graph's output rows for ``rows``; raises QueueFull, TimeoutError, or what the graph raised."""
        wake = self._start()
        self._drop_abandoned()
        if len(self._waiting) >= self.max_queue:
            raise QueueFull
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(rows, future))
        self._on_queue(len(self._waiting))
        wake.set()
        return await asyncio.wait_for(future, timeout_s)  # on timeout the future is cancelled: the worker skips it

    @property
    def depth(self) -> int:
        """Requests waiting (not yet taken into a batch)."""
        return sum(not w.future.done() for w in self._waiting)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------------------ the worker

    def _start(self) -> asyncio.Event:
        """The worker runs in the event loop of its callers: started on first use, again if the loop changed."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done() or self._wake is None:
            self._loop, self._wake = loop, asyncio.Event()
            self._waiting.clear()
            self._worker = loop.create_task(self._work(self._wake))
        return self._wake

    def _drop_abandoned(self) -> None:
        while self._waiting and self._waiting[0].future.done():
            self._waiting.popleft()

    def _ready_rows(self) -> int:
        self._drop_abandoned()
        if not self._waiting:
            return 0
        key = self._waiting[0].key
        return sum(len(w.rows) for w in self._waiting if w.key == key and not w.future.done())

    async def _gather(self, wake: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.window_s
        while 0 < self._ready_rows() < self.policy.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Waiting]:
        """The first waiting request and those after it of the same shape, up to max_batch rows."""
        self._drop_abandoned()
        if not self._waiting:
            return []
        first = self._waiting.popleft()
        taken, rows, kept = [first], len(first.rows), deque[_Waiting]()
        while self._waiting:
            item = self._waiting.popleft()
            if item.future.done():
                continue
            if item.key == first.key and rows + len(item.rows) <= self.policy.max_batch:
                taken.append(item)
                rows += len(item.rows)
            else:
                kept.append(item)
        self._waiting = kept
        return taken

    async def _work(self, wake: asyncio.Event) -> None:
        while True:
            while not self._ready_rows():
                wake.clear()
                await wake.wait()
            if self.policy.max_batch > 1 and self._busy:
                await self._gather(wake)
            taken = self._take()
            self._busy = len(taken) > 1 or self._ready_rows() > 0
            self._on_queue(len(self._waiting))
            if not taken:
                continue
            try:
                await self._run_batch(taken)
            except Exception as exc:
                if len(taken) == 1:
                    _settle(taken[0].future, exc)
                    continue
                for w in taken:  # the graph refused the batch: run each request alone, so only the culprit fails
                    try:
                        await self._run_batch([w])
                    except Exception as alone:
                        _settle(w.future, alone)

    async def _run_batch(self, taken: list[_Waiting]) -> None:
        batch = np.concatenate([w.rows for w in taken]) if len(taken) > 1 else taken[0].rows
        self.batches += 1
        self._on_batch(len(batch))
        out = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, batch)
        start = 0
        for w in taken:
            end = start + len(w.rows)
            _settle(w.future, out[start:end])
            start = end


def _settle(future: asyncio.Future[np.ndarray], outcome: np.ndarray | Exception) -> None:
    if future.done():  # the caller gave up
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
