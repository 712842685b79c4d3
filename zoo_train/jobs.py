"""Training one model with its outcome as data, and several at once (``zoo-train --all --jobs N``).

Each parallel model trains in a spawned worker process (torch's thread pools do not survive a fork) with the
cores shared among the workers: small models use two cores poorly, so two models on one core each finish sooner
than one after the other on both (benchmarks/RESULTS.md, "Training several models at once"). A model starts only once
the runs it reads have finished (the GAN's FID classifier, ``Task.runs_read``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from zoo_train.checkpoint import CheckpointError
from zoo_train.registry import get_entry
from zoo_train.tasks.base import DataError, get_task
from zoo_train.trainer import ResumeError, TrainConfig, TrainingError, train


@dataclass(frozen=True)
class Outcome:
    """How one model's training ended."""

    model: str
    run_dir: Path | None = None
    error: str | None = None  # one line, for a model that did not train
    exit_code: int = 0  # what `zoo-train MODEL` exits with: 0, 1 (training failed), 2 (bad input), 130 (stopped)
    seconds: float = 0.0

    @property
    def stopped(self) -> bool:
        return self.exit_code == 130


def train_one(config: TrainConfig) -> Outcome:
    """``train(config)``, with what a user can cause (bad data, a checkpoint that does not fit, Ctrl-C) as an Outcome."""
    started = time.perf_counter()
    try:
        run_dir = train(config)
    except KeyboardInterrupt:
        return Outcome(config.model, exit_code=130)
    except (DataError, CheckpointError) as exc:
        return Outcome(config.model, error=str(exc), exit_code=2)
    except (TrainingError, ValueError, TypeError) as exc:
        failed_in_training = isinstance(exc, TrainingError) and not isinstance(exc, ResumeError)
        return Outcome(config.model, error=str(exc), exit_code=1 if failed_in_training else 2)
    return Outcome(config.model, run_dir=run_dir, seconds=time.perf_counter() - started)


def worker_threads(jobs: int) -> None:
    """A worker process's torch threads: its share of the cores, with ``jobs`` workers side by side."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))


def _start_training_worker(jobs: int) -> None:
    worker_threads(jobs)
    # Ctrl-C reaches every process of the terminal's group: an idle worker ignores it (it would die with a
    # traceback), a training one stops as `zoo-train MODEL` does (train_in_worker).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train_in_worker(config: TrainConfig) -> Outcome:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return train_one(config)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class Schedule:
    """Which models may start: those whose runs to read (among the ones being trained) have finished, in order."""

    def __init__(self, configs: list[TrainConfig]):
        names = {config.model for config in configs}
        self.pending = list(configs)
        self.waits_for = {
            config.model: {
                name
                for name in get_task(get_entry(config.model).task).runs_read(config.data_options or {})
                if name in names and name != config.model
            }
            for config in configs
        }
        self.finished: set[str] = set()

    def take(self, free: int, running: int) -> list[TrainConfig]:
        """Up to ``free`` configs that may start now, removed from the pending ones."""
        ready = [config for config in self.pending if self.waits_for[config.model] <= self.finished]
        if not ready and not running and self.pending:
            ready = self.pending[:1]  # cannot happen with the registry's tasks (no cycles); never wait forever
        taken = ready[:free]
        for config in taken:
            self.pending.remove(config)
        return taken

    def finish(self, model: str) -> None:
        self.finished.add(model)


def train_in_parallel(configs: list[TrainConfig], jobs: int, report: Callable[[Outcome], None]) -> list[Outcome]:
    """Train ``configs`` in ``jobs`` worker processes; ``report`` sees each outcome as it comes. Returns the outcomes
    in the order the models finished. On Ctrl-C the models under way stop (their last finished epoch is kept) and
    the ones not started are not started: their outcomes are those of stopped models."""
    schedule = Schedule(configs)
    running: dict[Future[Outcome], TrainConfig] = {}
    outcomes: list[Outcome] = []

    def collect(done: set[Future[Outcome]]) -> None:
        for future in done:
            config = running.pop(future)
            outcome = _outcome_of(future, config)
            schedule.finish(config.model)
            outcomes.append(outcome)
            report(outcome)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_training_worker, initargs=(jobs,)) as pool:
        try:
            while schedule.pending or running:
                for config in schedule.take(jobs - len(running), len(running)):
                    running[_submit(pool, config)] = config
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                collect(done)
        except KeyboardInterrupt:
            collect(wait(running).done)  # the workers had the Ctrl-C too: they stop at once
            outcomes += [Outcome(config.model, exit_code=130) for config in schedule.pending]
    return outcomes


def _submit(pool: ProcessPoolExecutor, config: TrainConfig) -> Future[Outcome]:
    try:
        return pool.submit(train_in_worker, config)
    except BrokenProcessPool as exc:  # a worker died earlier: this model's outcome says so, as the others' do
        failed: Future[Outcome] = Future()
        failed.set_exception(exc)
        return failed


def _outcome_of(future: Future[Outcome], config: TrainConfig) -> Outcome:
    try:
        return future.result()
    except BrokenProcessPool:
        return Outcome(
            config.model,
            error="its training process ended without a result (killed, or out of memory?); --resume goes on from its "
            "last finished epoch",
            exit_code=1,
        )
