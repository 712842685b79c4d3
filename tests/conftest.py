"""Shared fixtures: tiny checkpoints and bundles of every registry entry.

``tiny_checkpoint(name)`` saves an untrained checkpoint of registry entry ``name`` (its
``tiny_config`` plus plausible data-dependent sizes, see ``zoo_export.synthetic``) in the
trainer's layout and returns ``<run>/checkpoints/best.pt``. ``tiny_bundle(name)`` exports it
(ONNX + TorchScript, parity checked) and returns the bundle directory ``<run>/export``. Both
are session-scoped factories: each model is built and exported once per test session, so treat
the returned files as read-only (copy them before tampering).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    from zoo_export.synthetic import write_checkpoint

    root = tmp_path_factory.mktemp("tiny_runs")
    made: dict[str, Path] = {}

    def make(model_name: str) -> Path:
        if model_name not in made:
            made[model_name] = write_checkpoint(model_name, root / model_name / "checkpoints" / "best.pt")
        return made[model_name]

    return make


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint: Callable[[str], Path]) -> Callable[[str], Path]:
    from zoo_export import export_checkpoint

    made: dict[str, Path] = {}

    def make(model_name: str) -> Path:
        if model_name not in made:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # export warnings are recorded, with their meaning, in the manifest
                result = export_checkpoint(tiny_checkpoint(model_name))
            if not result.passed or result.bundle is None:
                raise AssertionError(f"tiny export of {model_name} failed: {result.status}: {result.error}")
            made[model_name] = result.bundle
        return made[model_name]

    return make


@pytest.fixture
def writable_bundle(tmp_path: Path, tiny_bundle: Callable[[str], Path]) -> Callable[[str], Path]:
    """A private, writable copy of a tiny bundle (for tests that alter files)."""

    def make(model_name: str) -> Path:
        dest = tmp_path / f"{model_name}-bundle"
        shutil.copytree(tiny_bundle(model_name), dest)
        return dest

    return make


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Tiny models on 2 shared cores: extra intra-op threads only add contention and make timings erratic.
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def interrupt_after_epochs(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``interrupt_after_epochs(n)``: training then stops as Ctrl-C stops it, once n epochs' checkpoints are written.

    The Ctrl-C (KeyboardInterrupt) comes right after ``Run.end_epoch``, where the trainer saves checkpoints.
    """
    from zoo_train.trainer import Run

    def interrupt_after(epochs: int) -> None:
        real_end_epoch, ended = Run.end_epoch, []

        def end_epoch_then_maybe_stop(run: Run, epoch: int, improved: bool) -> None:
            real_end_epoch(run, epoch, improved)
            ended.append(epoch)
            if len(ended) == epochs:
                raise KeyboardInterrupt

        monkeypatch.setattr(Run, "end_epoch", end_epoch_then_maybe_stop)

    return interrupt_after
