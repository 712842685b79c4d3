"""Shared fixtures: tiny checkpoints and bundles of every registry entry.

``tiny_checkpoint(name)`` saves an untrained checkpoint of registry entry ``name`` (its
``tiny_config`` plus plausible data-dependent sizes, see ``zoo_export.synthetic``) in the
trainer's layout and returns ``<run>/checkpoints/best.pt``. ``tiny_bundle(name)`` exports it
(ONNX + TorchScript, parity checked) and returns the bundle directory ``<run>/export``.
``dna_bundle(name)`` is a tiny bundle with the real sequence tasks' vocabularies. All are
session-scoped factories: each is built once per test session, by whichever pytest-xdist worker
asks first, and read by the others, so treat the returned files as read-only (copy them before
tampering).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock


class BuiltOnce:
    """Files the tests build once per session and share: under pytest-xdist, the first worker to ask builds
    each one while the others wait on its lock, then read it (an export takes seconds to half a minute)."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.known: dict[str, Path] = {}

    def get(self, key: str, build: Callable[[Path], Path]) -> Path:
        """``build(folder)``'s path, for the same ``key`` in every worker; ``folder`` is empty and the key's own."""
        if key not in self.known:
            record = self.root / f"{key}.built"
            with FileLock(str(self.root / f"{key}.lock")):
                if not record.is_file():
                    folder = self.root / key
                    shutil.rmtree(folder, ignore_errors=True)  # what a worker's failed build left
                    folder.mkdir()
                    record.write_text(str(build(folder)))
                self.known[key] = Path(record.read_text())
        return self.known[key]


@pytest.fixture(scope="session")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> BuiltOnce:
    base = tmp_path_factory.getbasetemp()
    # pytest-xdist gives each worker a folder inside this session's own, which all workers can reach.
    return BuiltOnce((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "built-once")


def export_for_tests(checkpoint: Path) -> Path:
    from zoo_export import export_checkpoint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export warnings are recorded, with their meaning, in the manifest
        result = export_checkpoint(checkpoint)
    if not result.passed or result.bundle is None:
        raise AssertionError(f"tiny export of {checkpoint} failed: {result.status}: {result.error}")
    return result.bundle


@pytest.fixture(scope="session")
def tiny_checkpoint(built_once: BuiltOnce) -> Callable[[str], Path]:
    from zoo_export.synthetic import write_checkpoint

    def make(model_name: str) -> Path:
        return built_once.get(
            f"checkpoint-{model_name}",
            lambda folder: write_checkpoint(model_name, folder / model_name / "checkpoints" / "best.pt"),
        )

    return make


@pytest.fixture(scope="session")
def tiny_bundle(built_once: BuiltOnce, tiny_checkpoint: Callable[[str], Path]) -> Callable[[str], Path]:
    def make(model_name: str) -> Path:
        return built_once.get(f"bundle-{model_name}", lambda _folder: export_for_tests(tiny_checkpoint(model_name)))

    return make


@pytest.fixture(scope="session")
def dna_bundle(built_once: BuiltOnce) -> Callable[[str], Path]:
    """``dna_bundle(model)``: a tiny bundle with the real tasks' character vocabularies (DNA reads, DNA -> protein)."""
    from sequence_fixtures import character_checkpoint

    def make(model_name: str) -> Path:
        return built_once.get(
            f"dna-bundle-{model_name}", lambda folder: export_for_tests(character_checkpoint(model_name, folder))
        )

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
